//! Each function's role in `template.yaml` allows exactly what the function
//! sends to AWS: no fewer actions (a missing one fails in production only,
//! since the emulators ignore IAM) and no more (least privilege).
//!
//! The app is built as the functions build it (`Config::from_env`,
//! `lambda::sdk_config`, `lambda::resolve_code_key` from SSM, `lambda::app`),
//! its SDK configuration wrapped by a [`Recorder`] that reads every request
//! of every client as IAM authorises it. Every step of every function then
//! runs against the local stack, on its success paths and on the failure
//! paths that send something different; each request is attributed to the
//! function the template routes its endpoint to (and the code key read at
//! init to every function). Each function's role, evaluated for this
//! deployment, must allow each access seen and nothing else: every action,
//! resource and `dynamodb:LeadingKeys` pattern of its statements must be
//! needed by some access.
//!
//! Nothing here names an action or a resource: when the code sends
//! something new, only the role in `template.yaml` changes.

use contact_migration::config::Config;
use contact_migration::domain::{Channel, Policy};
use contact_migration::http::{self, Endpoint};
use contact_migration::lambda;
use end_to_end::iam::{Function, Observed, Template};
use end_to_end::wire::{Recorder, Sent};
use end_to_end::{
    current_contact_of, local_config, unique_contact, unix_now, AccountSpec, Answer, Stack,
    TestAccount, ACKNOWLEDGE_ALL,
};
use lambda_http::http::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_owned()
}

fn route(method: &str, path: &str) -> Endpoint {
    let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let path = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
    http::route(&method, &path)
        .unwrap_or_else(|| panic!("{method} {path} routes to no endpoint"))
        .endpoint
}

/// The endpoints `functions/<binary>/src/main.rs` passes to `lambda::run`.
fn endpoints_in_main(binary: &str) -> BTreeSet<String> {
    let path = repository()
        .join("functions")
        .join(binary)
        .join("src/main.rs");
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    source
        .split("Endpoint::")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect()
        })
        .collect()
}

/// The function serving each endpoint, from the template's events, checked
/// against the endpoints each function's `main` serves.
fn served_by(functions: &[Function]) -> BTreeMap<Endpoint, String> {
    let mut served = BTreeMap::new();
    for function in functions {
        let routed: BTreeSet<Endpoint> = function
            .routes
            .iter()
            .map(|(method, path)| route(method, path))
            .collect();
        let names: BTreeSet<String> = routed.iter().map(|e| format!("{e:?}")).collect();
        assert_eq!(
            names,
            endpoints_in_main(&function.binary),
            "{}: the template's events and functions/{}/src/main.rs serve different endpoints",
            function.logical_id,
            function.binary
        );
        for endpoint in routed {
            if let Some(other) = served.insert(endpoint, function.binary.clone()) {
                panic!(
                    "{endpoint:?} is routed to both {other} and {}",
                    function.binary
                );
            }
        }
    }
    served
}

/// Requests attributed to what sent them: an endpoint, or `init`.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, Sent)>>);

impl Seen {
    fn keep(&self, by: &str, sent: Vec<Sent>) {
        self.0
            .lock()
            .unwrap()
            .extend(sent.into_iter().map(|s| (by.to_owned(), s)));
    }
}

/// Calls on the app whose requests are recorded.
struct Driver<'a> {
    recorder: &'a Recorder,
    seen: &'a Seen,
}

impl Driver<'_> {
    /// One request to `stack`, as API Gateway sends it; whatever the app
    /// sends meanwhile is the endpoint's.
    async fn call(
        &self,
        stack: &Stack,
        method: &str,
        path: &str,
        caller: &TestAccount,
        body: Value,
        now: i64,
    ) -> Answer {
        let endpoint = route(method, path);
        self.recorder.take();
        let answer = stack
            .call(method, path, Some(&caller.id), Some(body), now)
            .await;
        self.seen.keep(endpoint.name(), self.recorder.take());
        answer
    }

    /// The same request twice at once (one of them loses the race).
    async fn call_twice(
        &self,
        stack: &Stack,
        method: &str,
        path: &str,
        caller: &TestAccount,
        body: Value,
        now: i64,
    ) -> (Answer, Answer) {
        let endpoint = route(method, path);
        self.recorder.take();
        let answers = tokio::join!(
            stack.call(method, path, Some(&caller.id), Some(body.clone()), now),
            stack.call(method, path, Some(&caller.id), Some(body), now),
        );
        self.seen.keep(endpoint.name(), self.recorder.take());
        answers
    }

    async fn start(&self, stack: &Stack, main: &TestAccount, contact: &str, now: i64) -> Answer {
        let channel = if contact.starts_with('+') {
            "phone"
        } else {
            "email"
        };
        self.call(
            stack,
            "POST",
            "/migrations",
            main,
            json!({"channel": channel, "new_contact": contact}),
            now,
        )
        .await
    }

    async fn started(&self, stack: &Stack, main: &TestAccount, contact: &str, now: i64) -> String {
        let answer = self.start(stack, main, contact, now).await;
        assert_eq!(answer.status, 201, "start: {answer:?}");
        answer.body["migration_id"].as_str().unwrap().to_owned()
    }

    async fn step(
        &self,
        stack: &Stack,
        main: &TestAccount,
        id: &str,
        step: &str,
        body: Value,
        now: i64,
    ) -> Answer {
        let path = format!("/migrations/{id}/{step}");
        self.call(stack, "POST", &path, main, body, now).await
    }
}

fn verification(codes: &(String, String), totp: String) -> Value {
    json!({"new_contact_code": codes.0, "current_contact_code": codes.1, "totp_code": totp})
}

fn closing() -> Value {
    json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true})
}

/// The same table and courier under another policy.
fn under(stack: &Stack, change: impl FnOnce(&mut Policy)) -> Stack {
    let mut app = stack.app.clone();
    change(&mut app.policy);
    Stack {
        app,
        http: stack.http.clone(),
    }
}

/// Codes the app sent to both sides of a migration of `contact`.
async fn codes(stack: &Stack, main: &TestAccount, contact: &str) -> (String, String) {
    stack
        .codes(contact, current_contact_of(main, contact))
        .await
}

fn expect(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {answer:?}");
}

/// Every step of every function, on each path that sends something of its own.
async fn drive(stack: &Stack, d: &Driver<'_>) {
    let now = unix_now();
    let cooldown = stack.app.policy.resend_cooldown;
    let with_phone = AccountSpec {
        phone: true,
        ..AccountSpec::default()
    };
    let duplicate_spec = AccountSpec {
        assets: true,
        no_totp: true,
        phone: true,
        ..AccountSpec::default()
    };

    // A bound email: start, get, resend (refused, then sent), verify (wrong
    // code, wrong TOTP, right), migrate, close, and the steps after it.
    let main = stack.account(with_phone).await;
    let duplicate = stack.account(duplicate_spec).await;
    let id = d.started(stack, &main, &duplicate.email, now).await;
    let get = d
        .call(
            stack,
            "GET",
            &format!("/migrations/{id}"),
            &main,
            json!({}),
            now,
        )
        .await;
    expect(&get, 200, "get");
    let unknown = format!("/migrations/{}", uuid::Uuid::new_v4());
    expect(
        &d.call(stack, "GET", &unknown, &main, json!({}), now).await,
        404,
        "get of nothing",
    );
    let resend = d.step(stack, &main, &id, "resend", json!({}), now).await;
    expect(&resend, 429, "resend inside the cooldown");
    let t = now + cooldown + 1;
    expect(
        &d.step(stack, &main, &id, "resend", json!({}), t).await,
        200,
        "resend",
    );
    let right = codes(stack, &main, &duplicate.email).await;
    let wrong = (
        if right.0 == "000000" {
            "111111"
        } else {
            "000000"
        }
        .to_owned(),
        right.1.clone(),
    );
    let wrong_code = d
        .step(
            stack,
            &main,
            &id,
            "verify",
            verification(&wrong, main.totp_at(t)),
            t,
        )
        .await;
    expect(
        &wrong_code,
        422,
        "verify with a wrong code and the right TOTP",
    );
    let t = t + 30;
    let wrong_totp = d
        .step(
            stack,
            &main,
            &id,
            "verify",
            verification(&right, "000000".into()),
            t,
        )
        .await;
    assert!(
        wrong_totp.status == 422,
        "verify with a wrong TOTP: {wrong_totp:?}"
    );
    let t = t + 30;
    let verified = d
        .step(
            stack,
            &main,
            &id,
            "verify",
            verification(&right, main.totp_at(t)),
            t,
        )
        .await;
    expect(&verified, 200, "verify of a bound contact");
    expect(
        &d.step(stack, &main, &id, "migrate", json!({}), t).await,
        200,
        "migrate",
    );
    expect(
        &d.step(stack, &main, &id, "close", closing(), t).await,
        200,
        "close",
    );
    expect(
        &d.step(stack, &main, &id, "close", closing(), t).await,
        200,
        "repeated close",
    );
    let cancel = d
        .call(
            stack,
            "DELETE",
            &format!("/migrations/{id}"),
            &main,
            json!({}),
            t,
        )
        .await;
    expect(&cancel, 409, "cancel of a completed migration");

    // A free phone number: codes by SMS, then a plain change of contact.
    let changer = stack.account(with_phone).await;
    let phone = unique_contact(Channel::Phone, "free");
    let id = d.started(stack, &changer, &phone, now).await;
    let sent = codes(stack, &changer, &phone).await;
    let changed = d
        .step(
            stack,
            &changer,
            &id,
            "verify",
            verification(&sent, changer.totp_at(now)),
            now,
        )
        .await;
    expect(&changed, 200, "verify of a free contact");

    // A free email address: a plain change of contact, notices by email.
    let changer = stack.account(AccountSpec::default()).await;
    let email = unique_contact(Channel::Email, "free");
    let id = d.started(stack, &changer, &email, now).await;
    let sent = codes(stack, &changer, &email).await;
    let changed = d
        .step(
            stack,
            &changer,
            &id,
            "verify",
            verification(&sent, changer.totp_at(now)),
            now,
        )
        .await;
    expect(&changed, 200, "verify of a free contact");

    // Cancel.
    let canceller = stack.account(AccountSpec::default()).await;
    let id = d
        .started(stack, &canceller, &unique_contact(Channel::Email, "c"), now)
        .await;
    let path = format!("/migrations/{id}");
    expect(
        &d.call(stack, "DELETE", &path, &canceller, json!({}), now)
            .await,
        200,
        "cancel",
    );

    // The last failed attempt locks the migration.
    let strict = under(stack, |p| p.max_failed_attempts = 1);
    let guesser = stack.account(AccountSpec::default()).await;
    let id = d
        .started(&strict, &guesser, &unique_contact(Channel::Email, "l"), now)
        .await;
    let guess = verification(&("000000".into(), "000000".into()), "000000".into());
    let locked = d
        .step(&strict, &guesser, &id, "verify", guess.clone(), now)
        .await;
    expect(&locked, 422, "the last failed attempt");
    expect(
        &d.step(&strict, &guesser, &id, "verify", guess, now).await,
        423,
        "locked",
    );

    // Quota refusal: a second start of the day.
    let one_a_day = under(stack, |p| p.starts_per_account.limit = 1);
    let starter = stack.account(AccountSpec::default()).await;
    d.started(
        &one_a_day,
        &starter,
        &unique_contact(Channel::Email, "q"),
        now,
    )
    .await;
    let refused = d
        .start(
            &one_a_day,
            &starter,
            &unique_contact(Channel::Email, "q"),
            now,
        )
        .await;
    expect(&refused, 429, "start over the quota");

    // Delivery failures: the quota taken for them is given back.
    let unlucky = stack.account(AccountSpec::default()).await;
    d.recorder.refuse_next("ses", "SendEmail");
    let failed = d
        .start(stack, &unlucky, &unique_contact(Channel::Email, "f"), now)
        .await;
    expect(&failed, 503, "start whose code is not delivered");
    let id = d
        .started(stack, &unlucky, &unique_contact(Channel::Email, "f"), now)
        .await;
    d.recorder.refuse_next("ses", "SendEmail");
    let t = now + cooldown + 1;
    let failed = d.step(stack, &unlucky, &id, "resend", json!({}), t).await;
    expect(&failed, 503, "resend whose code is not delivered");

    // Concurrent losers: two verifications, then two closes, of one migration.
    let racer = stack.account(with_phone).await;
    let duplicate = stack.account(duplicate_spec).await;
    let id = d
        .started(stack, &racer, &duplicate.phone.clone().unwrap(), now)
        .await;
    let sent = codes(stack, &racer, duplicate.phone.as_deref().unwrap()).await;
    let body = verification(&sent, racer.totp_at(now));
    let path = format!("/migrations/{id}/verify");
    let (a, b) = d.call_twice(stack, "POST", &path, &racer, body, now).await;
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses[0], 200, "one verification wins: {a:?} {b:?}");
    expect(
        &d.step(stack, &racer, &id, "migrate", json!({}), now).await,
        200,
        "migrate",
    );
    let path = format!("/migrations/{id}/close");
    let (a, b) = d
        .call_twice(stack, "POST", &path, &racer, closing(), now)
        .await;
    assert!(
        [a.status, b.status].contains(&200)
            && [a.status, b.status].iter().all(|s| [200, 409].contains(s)),
        "one close commits, the other loses or answers the result: {a:?} {b:?}"
    );
}

#[tokio::test]
async fn each_function_role_allows_exactly_what_the_function_calls() {
    // The deployment: a table and a code key of this test's own, the rest
    // of the environment as the local stack sets it.
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    let parameter = format!("/contact-migration/test/{}", uuid::Uuid::new_v4().simple());
    aws_sdk_ssm::Client::new(&local_config().await)
        .put_parameter()
        .name(&parameter)
        .value(format!("code-key-{}", uuid::Uuid::new_v4().simple()))
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("the SSM emulator is reachable (make test starts it)");
    // Set before anything else reads the environment; this file holds one test.
    std::env::set_var("TABLE_NAME", &table);
    std::env::set_var("CODE_HMAC_SECRET_PARAMETER", &parameter);

    // Init, as every function runs it.
    let recorder = Recorder::default();
    let seen = Seen::default();
    let config = Config::from_env().expect("the local stack's environment (infra/local/env.sh)");
    let aws = recorder.wrap(&lambda::sdk_config(config.tls_roots).await);
    let codes = lambda::resolve_code_key(&aws, &config.code_key)
        .await
        .expect("the code key is read from SSM");
    seen.keep("init", recorder.take());
    let app = lambda::app(&aws, &config, codes);
    app.store
        .create_table()
        .await
        .expect("DynamoDB Local is reachable");
    let stack = Stack {
        app,
        http: reqwest::Client::new(),
    };

    drive(
        &stack,
        &Driver {
            recorder: &recorder,
            seen: &seen,
        },
    )
    .await;

    let region = aws.region().expect("a region").to_string();
    let template = Template::load(&repository().join("template.yaml"), &region, |name| {
        std::env::var(name).ok()
    });
    let functions = template.functions();
    let served = served_by(&functions);
    let seen = seen.0.into_inner().unwrap();
    let driven: BTreeSet<&str> = seen.iter().map(|(by, _)| by.as_str()).collect();
    for endpoint in served.keys() {
        assert!(
            driven.contains(endpoint.name()),
            "{} is never driven: add its paths to drive()",
            endpoint.name()
        );
    }

    let mut differences = Vec::new();
    for function in &functions {
        let observed: Vec<Observed> = seen
            .iter()
            .filter(|(by, _)| {
                by == "init"
                    || served
                        .iter()
                        .any(|(e, f)| e.name() == by && *f == function.binary)
            })
            .flat_map(|(by, sent)| {
                sent.accesses.iter().map(|access| Observed {
                    by: by.clone(),
                    request: format!("{}:{}", sent.service, sent.operation),
                    access: access.clone(),
                })
            })
            .collect();
        differences.extend(function.differences(&observed));
    }
    assert!(
        differences.is_empty(),
        "the roles of template.yaml do not allow exactly what the functions send:\n  {}",
        differences.join("\n  ")
    );
}
