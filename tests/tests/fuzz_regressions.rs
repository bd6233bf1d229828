//! Inputs the fuzz targets (fuzz/) found, kept as tests of the request
//! edge: each is answered with the contract's error JSON, never a panic.

use contact_migration::http::{self, AuthMode};
use end_to_end::{api_gateway_event, unix_now, AccountSpec, Answer, Stack, ALL_ENDPOINTS};
use serde_json::{json, Value};

async fn serve(stack: &Stack, event: &Value) -> Answer {
    let request = http::request_from_str(&event.to_string()).expect("an API Gateway event");
    let response =
        http::serve::<ALL_ENDPOINTS>(&stack.app, AuthMode::Jwt, request, unix_now()).await;
    let bytes: &[u8] = response.body().as_ref();
    Answer {
        status: response.status().as_u16(),
        body: serde_json::from_slice(bytes).unwrap_or(Value::Null),
        retry_after: None,
    }
}

/// Whether lambda_http's own conversion panics on `event` (the reason
/// `http::request_from_event` exists), with the panic message kept quiet.
fn lambda_http_panics_on(event: &Value) -> bool {
    let text = event.to_string();
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicked = std::panic::catch_unwind(|| lambda_http::request::from_str(&text)).is_err();
    std::panic::set_hook(report);
    panicked
}

/// `request_event` found these: events whose conversion to a request
/// panicked inside lambda_http before any handler ran.
#[tokio::test]
async fn events_lambda_http_cannot_convert_are_answered_by_the_contract() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let id = uuid::Uuid::new_v4();
    let one = format!("/migrations/{id}");
    let event = |path: &str, headers: &[(&str, &str)]| {
        api_gateway_event("GET", path, Some(&main.id), None, headers)
    };
    let mut cases = vec![
        (
            "Host with a port past 65535",
            event(&one, &[("host", "example.com:99999")]),
            404,
            "migration_not_found",
        ),
        (
            "Host with a space",
            event(&one, &[("host", "a b")]),
            404,
            "migration_not_found",
        ),
        (
            "Host that is an impossible IPv4 address",
            event(&one, &[("host", "1.2.3.999")]),
            404,
            "migration_not_found",
        ),
        (
            "X-Forwarded-Proto that is not a scheme",
            event(&one, &[("x-forwarded-proto", "http /migrations")]),
            404,
            "migration_not_found",
        ),
        (
            "a path longer than a URI may be",
            event(&format!("/migrations/{}", "\u{e9}".repeat(30_000)), &[]),
            404,
            "not_found",
        ),
    ];
    let mut stage = event(&one, &[]);
    stage["requestContext"]["domainName"] = json!("api.example.com:99999");
    cases.push((
        "domain name with a port past 65535",
        stage,
        404,
        "migration_not_found",
    ));
    let mut base64 = api_gateway_event(
        "POST",
        "/migrations",
        Some(&main.id),
        Some("{}"),
        &[("content-type", "application/json")],
    );
    base64["isBase64Encoded"] = json!(true);
    cases.push((
        "a body marked base64 that is not",
        base64,
        400,
        "invalid_request",
    ));

    for (what, event, status, code) in cases {
        assert!(
            lambda_http_panics_on(&event),
            "{what}: lambda_http copes now"
        );
        let answer = serve(&stack, &event).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (status, code),
            "{what}: {answer:?}"
        );
    }
}
