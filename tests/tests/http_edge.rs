//! The HTTP edge: identity, malformed input, and delivery failures. Each bad
//! request gets a clear code from the contract's table and changes nothing.

use contact_migration::http::AuthMode;
use contact_migration::notify::Courier;
use end_to_end::{
    local_config, ses_client, sns_client, unique_email, unix_now, AccountSpec, Stack,
};
use serde_json::json;

type Headers = &'static [(&'static str, &'static str)];

const JSON: Headers = &[("content-type", "application/json")];

#[tokio::test]
async fn requests_without_identity_are_unauthenticated() {
    let stack = Stack::new().await;
    let body = json!({"channel": "email", "new_contact": unique_email("x")}).to_string();
    let answer = stack
        .call_raw(
            "POST",
            "/migrations",
            None,
            Some(&body),
            JSON,
            unix_now(),
            AuthMode::Jwt,
        )
        .await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (401, "unauthenticated")
    );
}

#[tokio::test]
async fn dev_header_names_the_caller_only_in_dev_mode() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let body = json!({"channel": "email", "new_contact": unique_email("dev")}).to_string();
    let headers = [
        ("content-type", "application/json"),
        ("x-dev-account-id", main.id.as_str()),
    ];
    let ignored = stack
        .call_raw(
            "POST",
            "/migrations",
            None,
            Some(&body),
            &headers,
            unix_now(),
            AuthMode::Jwt,
        )
        .await;
    assert_eq!(
        ignored.status, 401,
        "the header is ignored outside dev mode"
    );
    let dev = stack
        .call_raw(
            "POST",
            "/migrations",
            None,
            Some(&body),
            &headers,
            unix_now(),
            AuthMode::Dev,
        )
        .await;
    assert_eq!(dev.status, 201, "{dev:?}");
}

#[tokio::test]
async fn the_body_cannot_name_the_caller() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let body = json!({"channel": "email", "new_contact": unique_email("x"), "account_id": main.id});
    let answer = stack
        .call(
            "POST",
            "/migrations",
            Some("someone-else"),
            Some(body),
            unix_now(),
        )
        .await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (400, "invalid_request")
    );
}

#[tokio::test]
async fn malformed_requests_are_invalid_requests() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let big = format!(
        "{{\"channel\":\"email\",\"new_contact\":\"{}\"}}",
        "a".repeat(20_000)
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, String, Headers)> = vec![
        ("not json", "{".into(), JSON),
        (
            "unknown channel",
            json!({"channel": "fax", "new_contact": "a@example.com"}).to_string(),
            JSON,
        ),
        (
            "missing field",
            json!({"channel": "email"}).to_string(),
            JSON,
        ),
        (
            "wrong type",
            json!({"channel": "email", "new_contact": 42}).to_string(),
            JSON,
        ),
        ("too large", big, JSON),
        ("too deep", deep, JSON),
        (
            "wrong content type",
            json!({"channel": "email", "new_contact": "a@example.com"}).to_string(),
            &[("content-type", "text/plain")],
        ),
    ];
    for (what, body, headers) in cases {
        let answer = stack
            .call_raw(
                "POST",
                "/migrations",
                Some(&main.id),
                Some(&body),
                headers,
                now,
                AuthMode::Jwt,
            )
            .await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (400, "invalid_request"),
            "{what}: {answer:?}"
        );
        assert!(answer.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn unknown_routes_are_not_found() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let answer = stack
        .call("PUT", "/migrations/x", Some(&main.id), None, unix_now())
        .await;
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn undeliverable_codes_answer_delivery_failed_and_change_nothing() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    // Nothing listens on port 9; the SDK's retries give up and start fails.
    let aws = local_config().await;
    let unreachable = Courier::new(
        ses_client(&aws, "http://127.0.0.1:9"),
        "no-reply@example.com",
        sns_client(&aws, "http://127.0.0.1:9"),
        None,
    );
    let broken = stack.with_courier(unreachable);
    let fresh = unique_email("undeliverable");
    let answer = broken.start(&main, &fresh, unix_now()).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (503, "delivery_failed"),
        "{answer:?}"
    );
    assert!(answer.body.get("migration_id").is_none());
    assert!(stack.emails_to(&fresh).await.is_empty());
    // Delivery restored, the same request goes through.
    let answer = stack.start(&main, &fresh, unix_now()).await;
    assert_eq!(answer.status, 201, "{answer:?}");
}

#[tokio::test]
async fn responses_never_carry_codes_or_full_contacts() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let fresh = unique_email("private");
    let now = unix_now();
    let started = stack.start(&main, &fresh, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack.codes(&fresh, &main.email).await;
    let got = stack
        .call(
            "GET",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now,
        )
        .await;
    for answer in [&started, &got] {
        let text = answer.body.to_string();
        assert!(
            !text.contains(&fresh) && !text.contains(&main.email),
            "{text}"
        );
        assert!(
            !text.contains(&new_code) && !text.contains(&current_code),
            "{text}"
        );
    }
}
