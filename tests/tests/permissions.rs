//! Each function's role in `template.yaml` allows exactly what the function
//! sends to AWS: no fewer actions (a missing one fails in production only,
//! since the emulators ignore IAM) and no more (least privilege).
//!
//! The app is built as the functions build it (`Config::from_env`,
//! `aws::sdk_config`, `lambda::resolve_code_key` from SSM, `lambda::app`),
//! and the relay as the relay function builds it (`RelayConfig::from_env`,
//! `lambda::relay`), their SDK configuration wrapped by a [`Recorder`] that
//! reads every request of every client as IAM authorises it. Every step of
//! every function then runs against the local stack, on its success paths
//! and on the failure paths that send something different, and the relay
//! delivers what those steps committed to the outbox, a failed delivery and
//! its retry included; each request is attributed to the function the
//! template routes its endpoint to (the code key, read from init on, to every
//! function serving an endpoint that makes or checks codes), or to the relay. Each function's
//! role, evaluated for this deployment, must allow each access seen and
//! nothing else: every action, resource and `dynamodb:LeadingKeys` pattern
//! of its statements must be needed by some access. What Lambda does with a
//! role on the function's behalf (the runtime's logs, the event source
//! mapping's reads of the stream and its failure queue) is required and
//! limited by the template's own events (see `iam::Function::on_behalf`).
//!
//! Nothing here lists what a role should allow: when the code sends
//! something new (another service, another kind of item), only the role in
//! `template.yaml` changes, and the failure says which function needs which
//! action on which resource (missing) or no longer needs it (unused).

use contact_migration::config::{Config, RelayConfig};
use contact_migration::domain::{Channel, Policy};
use contact_migration::facts::Facts;
use contact_migration::http::{self, Endpoint};
use contact_migration::relay::local::{Poll, StreamPoller};
use contact_migration::relay::Relay;
use contact_migration::App;
use contact_migration::{aws, lambda};
use end_to_end::facts::{faulty_endpoint, Fault as FactsFault};
use end_to_end::iam::{Function, Observed, Template};
use end_to_end::wire::{Recorder, Sent};
use end_to_end::{
    current_contact_of, dynamodb_endpoint, local_config, unique_contact, unix_now, AccountSpec,
    Answer, Stack, TestAccount, ACKNOWLEDGE_ALL,
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

/// What sent a request: an endpoint's name, or one of these.
const CODE_KEY: &str = "code key";
const RELAY_INIT: &str = "relay init";
const RELAY: &str = "relay";

/// What `functions/<binary>/src/main.rs` runs.
#[derive(Debug, PartialEq, Eq)]
enum Main {
    /// `lambda::run`, with these endpoints.
    Http(BTreeSet<String>),
    /// `lambda::run_relay`.
    Relay,
}

fn main_of(binary: &str) -> Main {
    let path = repository()
        .join("functions")
        .join(binary)
        .join("src/main.rs");
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if source.contains("lambda::run::<") {
        Main::Http(
            source
                .split("Endpoint::")
                .skip(1)
                .map(|rest| {
                    rest.chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect()
                })
                .collect(),
        )
    } else if source.contains("lambda::run_relay(") {
        Main::Relay
    } else {
        panic!(
            "{} runs neither lambda::run nor lambda::run_relay: tell this test what its init sends",
            path.display()
        )
    }
}

/// Whether a request sent by `by` is `function`'s: the code key (read by the
/// functions that make or check codes),
/// the endpoints the template routes to it, the relay's init and handler.
fn sent_by(
    function: &Function,
    main: &Main,
    served: &BTreeMap<Endpoint, String>,
    by: &str,
) -> bool {
    match main {
        Main::Http(_) => {
            (by == CODE_KEY
                && served
                    .iter()
                    .any(|(e, f)| e.uses_code_key() && *f == function.binary))
                || served
                    .iter()
                    .any(|(e, f)| e.name() == by && *f == function.binary)
        }
        Main::Relay => by == RELAY_INIT || by == RELAY,
    }
}

/// The function serving each endpoint, from the template's events, checked
/// against the endpoints each function's `main` serves (none for the relay,
/// which the table's stream invokes).
fn served_by(functions: &[Function]) -> BTreeMap<Endpoint, String> {
    let mut served = BTreeMap::new();
    for function in functions {
        let routed: BTreeSet<Endpoint> = function
            .routes
            .iter()
            .map(|(method, path)| route(method, path))
            .collect();
        let names: BTreeSet<String> = routed.iter().map(|e| format!("{e:?}")).collect();
        let main = main_of(&function.binary);
        let in_main = match &main {
            Main::Http(endpoints) => endpoints.clone(),
            Main::Relay => BTreeSet::new(),
        };
        assert_eq!(
            names, in_main,
            "{}: the template's events and functions/{}/src/main.rs serve different endpoints",
            function.logical_id, function.binary
        );
        assert_eq!(
            !function.streams.is_empty(),
            main == Main::Relay,
            "{}: a function invoked by the table's stream runs lambda::run_relay, and only one",
            function.logical_id
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

/// Requests attributed to what sent them: an endpoint, `init`, or the relay.
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

/// One caller's requests to one stack, as API Gateway sends them; whatever
/// the app sends meanwhile is the endpoint's.
struct Client<'a> {
    driver: &'a Driver<'a>,
    stack: &'a Stack,
    caller: &'a TestAccount,
}

impl Driver<'_> {
    fn as_<'a>(&'a self, stack: &'a Stack, caller: &'a TestAccount) -> Client<'a> {
        Client {
            driver: self,
            stack,
            caller,
        }
    }
}

impl Client<'_> {
    async fn call(&self, method: &str, path: &str, body: Value, now: i64) -> Answer {
        let endpoint = route(method, path);
        let Driver { recorder, seen } = self.driver;
        recorder.take();
        let caller = Some(self.caller.id.as_str());
        let answer = self.stack.call(method, path, caller, Some(body), now).await;
        seen.keep(endpoint.name(), recorder.take());
        answer
    }

    /// The same request twice at once: one of them loses the race.
    async fn twice(&self, id: &str, step: &str, body: Value, now: i64) -> [Answer; 2] {
        let path = format!("/migrations/{id}/{step}");
        let Driver { recorder, seen } = self.driver;
        recorder.take();
        let caller = Some(self.caller.id.as_str());
        let (a, b) = tokio::join!(
            self.stack
                .call("POST", &path, caller, Some(body.clone()), now),
            self.stack.call("POST", &path, caller, Some(body), now),
        );
        seen.keep(route("POST", &path).name(), recorder.take());
        [a, b]
    }

    async fn start(&self, contact: &str, now: i64) -> Answer {
        let channel = if contact.starts_with('+') {
            "phone"
        } else {
            "email"
        };
        let body = json!({"channel": channel, "new_contact": contact});
        self.call("POST", "/migrations", body, now).await
    }

    /// Starts a migration of `contact`; its id and the codes sent for it.
    async fn started(&self, contact: &str, now: i64) -> (String, (String, String)) {
        let answer = self.start(contact, now).await.is(201, "start");
        let id = answer.body["migration_id"].as_str().unwrap().to_owned();
        let current = current_contact_of(self.caller, contact);
        (id, self.stack.codes(contact, current).await)
    }

    async fn post(&self, id: &str, step: &str, body: Value, now: i64) -> Answer {
        let path = format!("/migrations/{id}/{step}");
        self.call("POST", &path, body, now).await
    }

    async fn verify(&self, id: &str, codes: &(String, String), totp: &str, now: i64) -> Answer {
        let body = json!({
            "new_contact_code": codes.0, "current_contact_code": codes.1, "totp_code": totp
        });
        self.post(id, "verify", body, now).await
    }

    async fn close(&self, id: &str, now: i64) -> Answer {
        let body = json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true});
        self.post(id, "close", body, now).await
    }
}

trait Expect {
    fn is(self, status: u16, what: &str) -> Self;
}

impl Expect for Answer {
    fn is(self, status: u16, what: &str) -> Answer {
        assert_eq!(self.status, status, "{what}: {self:?}");
        self
    }
}

/// The same table and courier under another policy.
fn under(stack: &Stack, change: impl FnOnce(&mut Policy)) -> Stack {
    let mut app = stack.app.clone();
    change(&mut app.policy);
    Stack::of(app)
}

/// Another code than `code`.
fn not(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_owned()
}

/// Closes that need the duplicate's authenticator code.
async fn drive_duplicate_codes(stack: &Stack, d: &Driver<'_>, now: i64) {
    // A duplicate with its own authenticator: the close needs its code
    // (absent, wrong, right); a closure refused after a right code spends it.
    let with_phone = AccountSpec {
        phone: true,
        ..AccountSpec::default()
    };
    let with_authenticator = AccountSpec {
        phone: true,
        ..AccountSpec::default()
    };
    for refused in [false, true] {
        let owner = stack.account(with_phone).await;
        let guarded = stack.account(with_authenticator).await;
        let as_owner = d.as_(stack, &owner);
        let (id, codes) = as_owner.started(&guarded.email, now).await;
        let answer = as_owner.verify(&id, &codes, &owner.totp_at(now), now).await;
        answer.is(200, "verify of a bound contact");
        let answer = as_owner.post(&id, "migrate", json!({}), now).await;
        answer.is(200, "migrate");
        let with_code = |code: String| {
            json!({
                "acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true,
                "duplicate_totp_code": code
            })
        };
        if refused {
            let mut changed = stack.stored_account(&guarded.id).await;
            changed.kyc_verified = true;
            end_to_end::overwrite_account(stack, &changed).await;
            let answer = as_owner
                .post(&id, "close", with_code(guarded.totp_at(now)), now)
                .await;
            answer.is(409, "a refused close with the duplicate's code");
            continue;
        }
        as_owner
            .close(&id, now)
            .await
            .is(422, "close without the duplicate's code");
        let answer = as_owner
            .post(&id, "close", with_code(not(&guarded.totp_at(now))), now)
            .await;
        answer.is(422, "close with a wrong duplicate code");
        let answer = as_owner
            .post(&id, "close", with_code(guarded.totp_at(now)), now)
            .await;
        answer.is(200, "close with the duplicate's code");
    }
}

/// Every step of every function, on each path that sends something of its own.
async fn drive(stack: &Stack, d: &Driver<'_>) {
    let now = unix_now();
    let later = now + stack.app.policy.resend_cooldown + 1;
    let with_phone = AccountSpec {
        phone: true,
        ..AccountSpec::default()
    };
    let duplicate = AccountSpec {
        assets: true,
        no_totp: true,
        phone: true,
        ..AccountSpec::default()
    };

    // A bound email: start, get, resend (refused, then sent), verify (wrong
    // code, wrong TOTP, right), migrate, close, and the steps after it.
    let main = stack.account(with_phone).await;
    let bound = stack.account(duplicate).await.email;
    let as_main = d.as_(stack, &main);
    let (id, _) = as_main.started(&bound, now).await;
    let path = format!("/migrations/{id}");
    as_main
        .call("GET", &path, json!({}), now)
        .await
        .is(200, "get");
    let nothing = format!("/migrations/{}", uuid::Uuid::new_v4());
    let answer = as_main.call("GET", &nothing, json!({}), now).await;
    answer.is(404, "get of no migration");
    let answer = as_main.post(&id, "resend", json!({}), now).await;
    answer.is(429, "resend inside the cooldown");
    // A concurrent resend claims the send first: resend reads what it left.
    d.recorder
        .refuse_next("dynamodb", "UpdateItem", "ConditionalCheckFailedException");
    let answer = as_main.post(&id, "resend", json!({}), later).await;
    answer.is(409, "resend overtaken by a concurrent send");
    as_main
        .post(&id, "resend", json!({}), later)
        .await
        .is(200, "resend");
    let codes = stack.codes(&bound, &main.email).await;
    let wrong = (not(&codes.0), codes.1.clone());
    let (t1, t2, t3) = (later, later + 30, later + 60);
    let answer = as_main.verify(&id, &wrong, &main.totp_at(t1), t1).await;
    answer.is(422, "verify with a wrong code and the right TOTP");
    let answer = as_main
        .verify(&id, &codes, &not(&main.totp_at(t2)), t2)
        .await;
    answer.is(422, "verify with the right codes and a wrong TOTP");
    let answer = as_main.verify(&id, &codes, &main.totp_at(t3), t3).await;
    answer.is(200, "verify of a bound contact");
    as_main
        .post(&id, "migrate", json!({}), t3)
        .await
        .is(200, "migrate");
    as_main.close(&id, t3).await.is(200, "close");
    as_main.close(&id, t3).await.is(200, "repeated close");
    let answer = as_main.call("DELETE", &path, json!({}), t3).await;
    answer.is(409, "cancel of a completed migration");

    Box::pin(drive_duplicate_codes(stack, d, now)).await;

    // A concurrent migrate commits first: migrate reads what it left.
    let slow = stack.account(with_phone).await;
    let bound = stack.account(duplicate).await.email;
    let as_slow = d.as_(stack, &slow);
    let (id, codes) = as_slow.started(&bound, now).await;
    let answer = as_slow.verify(&id, &codes, &slow.totp_at(now), now).await;
    answer.is(200, "verify of a bound contact");
    d.recorder.refuse_next(
        "dynamodb",
        "TransactWriteItems",
        "TransactionCanceledException",
    );
    let answer = as_slow.post(&id, "migrate", json!({}), now).await;
    answer.is(409, "migrate overtaken by a concurrent change");

    // Free contacts, by SMS and by email: plain changes of contact.
    for contact in [
        unique_contact(Channel::Phone, "free"),
        unique_contact(Channel::Email, "free"),
    ] {
        let changer = stack.account(with_phone).await;
        let as_changer = d.as_(stack, &changer);
        let (id, codes) = as_changer.started(&contact, now).await;
        let answer = as_changer
            .verify(&id, &codes, &changer.totp_at(now), now)
            .await;
        answer.is(200, "verify of a free contact");
    }

    // A concurrent request changes what verify read before its commit lands.
    let loser = stack.account(AccountSpec::default()).await;
    let as_loser = d.as_(stack, &loser);
    let (id, codes) = as_loser
        .started(&unique_contact(Channel::Email, "r"), now)
        .await;
    d.recorder.refuse_next(
        "dynamodb",
        "TransactWriteItems",
        "TransactionCanceledException",
    );
    let answer = as_loser.verify(&id, &codes, &loser.totp_at(now), now).await;
    answer.is(409, "verify overtaken by a concurrent change");

    // The duplicate's facts cannot be read: verify checks that the limits
    // still admit the attempt, and changes nothing.
    let stranded = stack.account(AccountSpec::default()).await;
    let bound = stack.account(duplicate).await.email;
    let without_facts = Stack::of(App {
        facts: Facts::Http(Box::new(end_to_end::facts_client(
            &faulty_endpoint(FactsFault::Down).await,
        ))),
        ..stack.app.clone()
    });
    let as_stranded = d.as_(&without_facts, &stranded);
    let (id, codes) = as_stranded.started(&bound, now).await;
    let answer = as_stranded
        .verify(&id, &codes, &stranded.totp_at(now), now)
        .await;
    answer.is(503, "verify without the duplicate's facts");

    // Cancel.
    let canceller = stack.account(AccountSpec::default()).await;
    let as_canceller = d.as_(stack, &canceller);
    let (id, _) = as_canceller
        .started(&unique_contact(Channel::Email, "c"), now)
        .await;
    let path = format!("/migrations/{id}");
    let answer = as_canceller.call("DELETE", &path, json!({}), now).await;
    answer.is(200, "cancel");

    // The last failed attempt locks the migration.
    let strict = under(stack, |p| p.max_failed_attempts = 1);
    let guesser = stack.account(AccountSpec::default()).await;
    let as_guesser = d.as_(&strict, &guesser);
    let (id, codes) = as_guesser
        .started(&unique_contact(Channel::Email, "l"), now)
        .await;
    let wrong = (not(&codes.0), not(&codes.1));
    let answer = as_guesser.verify(&id, &wrong, "000000", now).await;
    answer.is(422, "the last failed attempt");
    let answer = as_guesser.verify(&id, &wrong, "000000", now).await;
    answer.is(423, "verify of a locked migration");

    // Quota refusal: a second start of the day.
    let one_a_day = under(stack, |p| p.starts_per_account.limit = 1);
    let starter = stack.account(AccountSpec::default()).await;
    let as_starter = d.as_(&one_a_day, &starter);
    as_starter
        .started(&unique_contact(Channel::Email, "q"), now)
        .await;
    let answer = as_starter
        .start(&unique_contact(Channel::Email, "q"), now)
        .await;
    answer.is(429, "start over the quota");

    // Delivery failures: the quota taken for them is given back.
    let unlucky = stack.account(AccountSpec::default()).await;
    let as_unlucky = d.as_(stack, &unlucky);
    d.recorder
        .refuse_next("ses", "SendEmail", "MessageRejected");
    let answer = as_unlucky
        .start(&unique_contact(Channel::Email, "f"), now)
        .await;
    answer.is(503, "start whose code is not delivered");
    let (id, _) = as_unlucky
        .started(&unique_contact(Channel::Email, "f"), now)
        .await;
    d.recorder
        .refuse_next("ses", "SendEmail", "MessageRejected");
    let answer = as_unlucky.post(&id, "resend", json!({}), later).await;
    answer.is(503, "resend whose code is not delivered");

    // Concurrent losers: two verifications, then two closes, of one migration.
    let racer = stack.account(with_phone).await;
    let bound = stack.account(duplicate).await.phone.unwrap();
    let as_racer = d.as_(stack, &racer);
    let (id, codes) = as_racer.started(&bound, now).await;
    let body = json!({
        "new_contact_code": codes.0, "current_contact_code": codes.1,
        "totp_code": racer.totp_at(now)
    });
    let [a, b] = as_racer.twice(&id, "verify", body, now).await;
    assert!(
        a.status == 200 || b.status == 200,
        "one verification wins: {a:?} {b:?}"
    );
    as_racer
        .post(&id, "migrate", json!({}), now)
        .await
        .is(200, "migrate");
    let body = json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true});
    let [a, b] = as_racer.twice(&id, "close", body, now).await;
    let statuses = [a.status, b.status];
    assert!(
        statuses.contains(&200) && statuses.iter().all(|s| [200, 409].contains(s)),
        "one close commits, the other loses or answers the result: {a:?} {b:?}"
    );
}

/// The relay over everything `drive` committed (closes, plain changes,
/// locks): the table's stream is read as the event source mapping reads it,
/// with clients of its own (what it sends with the role is checked from the
/// template's events, see `iam::Function::on_behalf`), and each batch is
/// handed to `relay`, whose requests are the relay's. The first notice email
/// is not delivered: its record fails and comes again, and the retry reads
/// the outbox and the event heads again.
async fn drive_relay(stack: &Stack, relay: &Relay, d: &Driver<'_>) -> Poll {
    let aws = local_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&aws)
            .endpoint_url(dynamodb_endpoint())
            .build(),
    );
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&aws)
            .endpoint_url(dynamodb_endpoint())
            .build(),
    );
    let mut poller = StreamPoller::new(&dynamodb, streams, stack.app.store.table(), 100)
        .await
        .expect("the table has a stream");
    d.recorder.take();
    d.recorder
        .refuse_next("ses", "SendEmail", "MessageRejected");
    let mut total = Poll::default();
    for _ in 0..20 {
        let poll = poller.poll(relay).await.expect("the stream reads");
        d.seen.keep(RELAY, d.recorder.take());
        total.delivered += poll.delivered;
        total.failed += poll.failed;
        if poll == Poll::default() {
            break;
        }
    }
    let last = poller.poll(relay).await.expect("the stream reads");
    d.seen.keep(RELAY, d.recorder.take());
    assert_eq!(last, Poll::default(), "the relay delivered everything");
    total
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
    // The template gives the functions the TOTP key's ARN; the local stack
    // names it by its alias.
    end_to_end::local_vault().await;
    let key = end_to_end::kms_client(&local_config().await, &end_to_end::kms_endpoint())
        .describe_key()
        .key_id(end_to_end::totp_key_id())
        .send()
        .await
        .expect("the TOTP key exists on the local stack");
    let key_arn = key.key_metadata.and_then(|k| k.arn).expect("a key ARN");
    // Set before anything else reads the environment; this file holds one test.
    std::env::set_var("TABLE_NAME", &table);
    std::env::set_var("CODE_HMAC_SECRET_PARAMETER", &parameter);
    std::env::set_var("TOTP_KEY_ID", &key_arn);
    // The stack's own event bus (`Stack::event_sink` names it after the table).
    std::env::set_var("EVENT_BUS_NAME", &table);
    // Facts over HTTP, as the local stack runs them: the exchange's stand-in
    // over this test's table, its key in a parameter of this test's own.
    if std::env::var("FACTS_ADAPTER").as_deref() != Ok("table") {
        let facts_parameter = format!("{parameter}-facts");
        aws_sdk_ssm::Client::new(&local_config().await)
            .put_parameter()
            .name(&facts_parameter)
            .value(String::from_utf8(end_to_end::facts_key_bytes().to_vec()).unwrap())
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("the SSM emulator is reachable");
        let plain = contact_migration::store::Store::new(
            aws_sdk_dynamodb::Client::new(&local_config().await),
            &table,
        );
        let address = admin::stand_in::spawn(plain, end_to_end::facts_key())
            .await
            .expect("a loopback port");
        std::env::set_var("FACTS_ADAPTER", "http");
        std::env::set_var("FACTS_URL", format!("http://{address}"));
        std::env::set_var("FACTS_HMAC_SECRET_PARAMETER", &facts_parameter);
    }

    // Init, as every HTTP function runs it.
    let recorder = Recorder::default();
    let seen = Seen::default();
    let config = Config::from_env().expect("the local stack's environment (infra/local/env.sh)");
    let aws =
        recorder.wrap(&aws::sdk_config(config.tls_roots).expect("the local stack's environment"));
    let codes = lambda::resolve_code_key(&aws, &config.code_key)
        .await
        .expect("the code key is read from SSM");
    seen.keep(CODE_KEY, recorder.take());
    // The facts key, read at init by the functions that read facts (and
    // only by them), from an SSM parameter of this test's own.
    let facts_key = lambda::resolve_facts_key(&aws, &config.facts)
        .await
        .expect("the facts key is read from SSM");
    let facts_init = recorder.take();
    for endpoint in [Endpoint::Verify, Endpoint::Migrate, Endpoint::Close] {
        assert!(endpoint.reads_facts());
        seen.keep(endpoint.name(), facts_init.clone());
    }
    let app = lambda::app::<{ http::ALL }>(
        &aws,
        &config,
        codes.into(),
        config.totp_key_id.clone(),
        facts_key,
    );
    app.store
        .create_table()
        .await
        .expect("DynamoDB Local is reachable");
    let stack = Stack::of(app);

    // Boxed: the whole drive is one future, too large for a test thread's
    // stack in a debug build.
    Box::pin(drive(
        &stack,
        &Driver {
            recorder: &recorder,
            seen: &seen,
        },
    ))
    .await;

    // The relay's init, as the relay function runs it, and the relay over
    // what the drive committed.
    let events = stack.event_sink().await;
    let relay_config = RelayConfig::from_env().expect("the relay's environment");
    assert_eq!(relay_config.event_bus_name, events.bus);
    let relay = lambda::relay(&aws, &relay_config);
    seen.keep(RELAY_INIT, recorder.take());
    let driver = Driver {
        recorder: &recorder,
        seen: &seen,
    };
    let relayed = Box::pin(drive_relay(&stack, &relay, &driver)).await;
    assert!(
        relayed.failed > 0 && relayed.delivered > 0,
        "the relay delivers, and a failed delivery comes again: {relayed:?}"
    );
    assert!(
        !stack.events().await.is_empty(),
        "the relay published the drive's events"
    );

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
    for function in &functions {
        if main_of(&function.binary) == Main::Relay {
            assert!(
                driven.contains(RELAY),
                "{} is never driven: see drive_relay()",
                function.binary
            );
        }
    }

    let mut differences = Vec::new();
    for function in &functions {
        let main = main_of(&function.binary);
        let observed: Vec<Observed> = seen
            .iter()
            .filter(|(by, _)| sent_by(function, &main, &served, by))
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
