//! The sample events in `infra/events/` (for `cargo lambda invoke --data-file`
//! and `sam local invoke -e`) are real API Gateway HTTP API events: each one
//! parses, routes to its endpoint, and, with its `sub` claim naming a real
//! account, drives a whole migration through the function that serves it.

use contact_migration::domain::Timestamp;
use contact_migration::http::{self, endpoints, route, served, AuthMode, Endpoint, Served};
use end_to_end::{unique_email, unix_now, AccountSpec, Stack, TestAccount};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use serde_json::{json, Value};

/// What each function serves, as its `main.rs` wires it.
const SEND_CODES: Served = endpoints(&[
    Endpoint::Start,
    Endpoint::Resend,
    Endpoint::Get,
    Endpoint::Cancel,
]);
const VERIFY: Served = endpoints(&[Endpoint::Verify]);
const MIGRATE: Served = endpoints(&[Endpoint::Migrate]);
const CLOSE: Served = endpoints(&[Endpoint::Close]);
const FUNCTIONS: &[Served] = &[SEND_CODES, VERIFY, MIGRATE, CLOSE];

/// Sample name, the endpoint it is for, the function that serves it.
const SAMPLES: &[(&str, Endpoint, Served)] = &[
    ("start", Endpoint::Start, SEND_CODES),
    ("resend", Endpoint::Resend, SEND_CODES),
    ("get", Endpoint::Get, SEND_CODES),
    ("cancel", Endpoint::Cancel, SEND_CODES),
    ("verify", Endpoint::Verify, VERIFY),
    ("migrate", Endpoint::Migrate, MIGRATE),
    ("close", Endpoint::Close, CLOSE),
];

const PLACEHOLDER_MIGRATION_ID: &str = "00000000-0000-4000-8000-0000000000b1";

fn sample_text(name: &str) -> String {
    let path = format!("{}/../infra/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sample(name: &str) -> Value {
    serde_json::from_str(&sample_text(name)).expect("sample is JSON")
}

/// A sample's JSON body.
fn sample_body(name: &str) -> Value {
    serde_json::from_str(sample(name)["body"].as_str().expect("a body")).expect("JSON body")
}

fn functions_serving(endpoint: Endpoint) -> usize {
    FUNCTIONS
        .iter()
        .filter(|set| served(**set, endpoint))
        .count()
}

/// The sample with its `sub` claim naming `caller`, its migration id
/// replaced by `id` (everywhere it appears), and `body` as its body.
fn event(name: &str, caller: &str, id: Option<&str>, body: Option<Value>) -> lambda_http::Request {
    let mut text = sample_text(name);
    if let Some(id) = id {
        text = text.replace(PLACEHOLDER_MIGRATION_ID, id);
    }
    let mut event: Value = serde_json::from_str(&text).expect("sample is JSON");
    if let Some(body) = body {
        let body = body.to_string();
        event["headers"]["content-length"] = json!(body.len().to_string());
        event["body"] = json!(body);
    }
    let mut request =
        lambda_http::request::from_str(&event.to_string()).expect("an API Gateway event");
    let Some(RequestContext::ApiGatewayV2(context)) =
        request.extensions_mut().get_mut::<RequestContext>()
    else {
        panic!("{name}: not an HTTP API (payload 2.0) event");
    };
    let jwt = context
        .authorizer
        .as_mut()
        .and_then(|a| a.jwt.as_mut())
        .expect("JWT authorizer claims");
    jwt.claims.insert("sub".into(), caller.to_owned());
    request
}

struct Answer {
    status: u16,
    body: Value,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

async fn invoke(
    stack: &Stack,
    function: Served,
    request: lambda_http::Request,
    now: Timestamp,
) -> Answer {
    // AuthMode::Jwt, as in production: the caller is the `sub` claim only.
    let (app, auth) = (&stack.app, AuthMode::Jwt);
    let response = match function {
        SEND_CODES => http::serve::<SEND_CODES>(app, auth, request, now).await,
        VERIFY => http::serve::<VERIFY>(app, auth, request, now).await,
        MIGRATE => http::serve::<MIGRATE>(app, auth, request, now).await,
        CLOSE => http::serve::<CLOSE>(app, auth, request, now).await,
        _ => panic!("not a function's set of endpoints: {function:#b}"),
    };
    let bytes: &[u8] = response.body().as_ref();
    Answer {
        status: response.status().as_u16(),
        body: serde_json::from_slice(bytes).unwrap_or(Value::Null),
    }
}

fn served_by(name: &str) -> Served {
    SAMPLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, function)| *function)
        .expect("known sample")
}

async fn send(
    stack: &Stack,
    name: &str,
    caller: &TestAccount,
    id: Option<&str>,
    body: Option<Value>,
    now: Timestamp,
) -> Answer {
    invoke(
        stack,
        served_by(name),
        event(name, &caller.id, id, body),
        now,
    )
    .await
}

#[test]
fn every_sample_is_an_http_api_event_for_its_route() {
    for (name, endpoint, function) in SAMPLES {
        let raw = sample(name);
        assert_eq!(raw["version"], "2.0", "{name}");
        assert!(
            raw["requestContext"]["authorizer"]["jwt"]["claims"]["sub"].is_string(),
            "{name}: JWT claims with a sub"
        );
        let request = lambda_http::request::from_str(&sample_text(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let routed = route(request.method(), request.uri().path()).unwrap_or_else(|| {
            panic!(
                "{name}: {} {} routes nowhere",
                request.method(),
                request.uri().path()
            )
        });
        assert_eq!(routed.endpoint, *endpoint, "{name}");
        assert!(
            served(*function, *endpoint),
            "{name}: its function serves it"
        );
        assert_eq!(
            functions_serving(*endpoint),
            1,
            "{name}: exactly one function serves it"
        );
        if *endpoint != Endpoint::Start {
            assert_eq!(
                routed.migration_id.as_deref(),
                Some(PLACEHOLDER_MIGRATION_ID),
                "{name}"
            );
            assert_eq!(
                request.path_parameters_ref().and_then(|p| p.first("id")),
                Some(PLACEHOLDER_MIGRATION_ID),
                "{name}: pathParameters.id"
            );
        }
        assert!(
            matches!(
                request.request_context_ref(),
                Some(RequestContext::ApiGatewayV2(_))
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn samples_drive_a_whole_migration_through_their_functions() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack
        .account(AccountSpec {
            assets: true,
            ..AccountSpec::default()
        })
        .await;
    let t0 = unix_now();

    let started = send(
        &stack,
        "start",
        &main,
        None,
        Some(json!({"channel": "email", "new_contact": duplicate.email})),
        t0,
    )
    .await;
    assert_eq!(started.status, 201, "{started:?}");
    assert_eq!(started.body["state"], "codes_sent");
    let id = started.body["migration_id"].as_str().unwrap().to_owned();

    let got = send(&stack, "get", &main, Some(&id), None, t0).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.body["migration_id"], id.as_str());

    let early = send(&stack, "resend", &main, Some(&id), None, t0 + 1).await;
    assert_eq!(early.status, 429, "{early:?}");
    assert_eq!(early.body["error"]["code"], "rate_limited");

    let t1 = t0 + stack.app.policy.resend_cooldown + 1;
    let resent = send(&stack, "resend", &main, Some(&id), None, t1).await;
    assert_eq!(resent.status, 200, "{resent:?}");

    let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
    let verified = send(
        &stack,
        "verify",
        &main,
        Some(&id),
        Some(json!({
            "new_contact_code": new_code,
            "current_contact_code": current_code,
            "totp_code": main.totp_at(t1),
        })),
        t1,
    )
    .await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["state"], "verified");
    assert_eq!(verified.body["eligible"], true);

    let migrated = send(&stack, "migrate", &main, Some(&id), None, t1).await;
    assert_eq!(migrated.status, 200, "{migrated:?}");
    assert_eq!(migrated.body["state"], "awaiting_confirmation");

    assert_eq!(migrated.body["duplicate_two_factor_required"], true);
    let mut close = sample_body("close");
    close["duplicate_totp_code"] = json!(duplicate.totp_at(t1));
    let closed = send(&stack, "close", &main, Some(&id), Some(close), t1).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    assert_eq!(closed.body["state"], "completed");
    assert_eq!(closed.body["closed_account_id"], duplicate.id.as_str());

    let too_late = send(&stack, "cancel", &main, Some(&id), None, t1).await;
    assert_eq!(too_late.status, 409, "{too_late:?}");
    assert_eq!(too_late.body["error"]["code"], "invalid_state");

    let other = send(
        &stack,
        "start",
        &main,
        None,
        Some(json!({"channel": "email", "new_contact": unique_email("free")})),
        t1,
    )
    .await;
    assert_eq!(other.status, 201, "{other:?}");
    let other_id = other.body["migration_id"].as_str().unwrap();
    let cancelled = send(&stack, "cancel", &main, Some(other_id), None, t1).await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(cancelled.body, json!({"state": "cancelled"}));
}

#[tokio::test]
async fn samples_as_shipped_name_no_real_account_or_migration() {
    let stack = Stack::new().await;
    let now = unix_now();
    for (name, _, function) in SAMPLES {
        let request = lambda_http::request::from_str(&sample_text(name)).unwrap();
        let answer = invoke(&stack, *function, request, now).await;
        // The samples' caller has no account here, and every step first
        // checks that the caller's account is active.
        let (status, code) = (403, "account_not_active");
        assert_eq!(answer.status, status, "{name}: {answer:?}");
        assert_eq!(answer.body["error"]["code"], code, "{name}");
    }
}

#[tokio::test]
async fn a_sample_sent_to_another_function_is_not_found() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    for (name, endpoint, _) in SAMPLES {
        for other in FUNCTIONS.iter().filter(|set| !served(**set, *endpoint)) {
            let answer = invoke(&stack, *other, event(name, &main.id, None, None), now).await;
            assert_eq!(answer.status, 404, "{name}: {answer:?}");
            assert_eq!(answer.body["error"]["code"], "not_found", "{name}");
        }
    }
}

#[tokio::test]
async fn the_sub_claim_alone_names_the_caller() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let started = send(
        &stack,
        "start",
        &main,
        None,
        Some(json!({"channel": "email", "new_contact": unique_email("free")})),
        now,
    )
    .await;
    assert_eq!(started.status, 201, "{started:?}");
    let id = started.body["migration_id"].as_str().unwrap();

    let stranger = stack.account(AccountSpec::default()).await;
    let answer = send(&stack, "get", &stranger, Some(id), None, now).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "migration_not_found");

    let mut anonymous = sample("get");
    anonymous["requestContext"]["authorizer"] = Value::Null;
    let request = lambda_http::request::from_str(&anonymous.to_string()).unwrap();
    let answer = invoke(&stack, SEND_CODES, request, now).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "unauthenticated");
}
