//! The real function binaries over HTTP: `cargo lambda watch` serves the
//! production paths (router table in Cargo.toml) and each request runs the
//! binary API Gateway would invoke, with `AUTH_MODE=dev` identity.

use end_to_end::{dynamodb_endpoint, unix_now, AccountSpec, Stack, ACKNOWLEDGE_ALL};
use serde_json::{json, Value};
use std::time::Duration;

mod watch;
use watch::Watch;

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    caller: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http.request(method, url).timeout(Duration::from_secs(300));
    if let Some(caller) = caller {
        request = request.header("x-dev-account-id", caller);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("cargo lambda watch answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_function_binaries_serve_a_complete_migration_over_http() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack
        .account(AccountSpec {
            no_totp: true,
            ..Default::default()
        })
        .await;
    let watch = Watch::start(
        stack.app.store.table(),
        &dynamodb_endpoint(),
        &stack.app.facts,
    );
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", watch.base);
    let post = reqwest::Method::POST;

    let (status, body) = send(
        &http,
        post.clone(),
        url("/migrations"),
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthenticated")),
        "{body}"
    );

    let start = json!({"channel": "email", "new_contact": duplicate.email});
    let (status, started) = send(
        &http,
        post.clone(),
        url("/migrations"),
        Some(&main.id),
        Some(start),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["migration_id"].as_str().unwrap().to_owned();

    let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
    let now = unix_now();
    let codes = json!({"new_contact_code": new_code, "current_contact_code": current_code, "totp_code": main.totp_at(now)});
    let (status, verified) = send(
        &http,
        post.clone(),
        url(&format!("/migrations/{id}/verify")),
        Some(&main.id),
        Some(codes),
    )
    .await;
    assert_eq!(
        (status, &verified["state"]),
        (200, &json!("verified")),
        "{verified}"
    );

    let (status, migrated) = send(
        &http,
        post.clone(),
        url(&format!("/migrations/{id}/migrate")),
        Some(&main.id),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, &migrated["state"]),
        (200, &json!("awaiting_confirmation")),
        "{migrated}"
    );

    let confirm = json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true});
    let (status, closed) = send(
        &http,
        post.clone(),
        url(&format!("/migrations/{id}/close")),
        Some(&main.id),
        Some(confirm),
    )
    .await;
    assert_eq!(
        (status, &closed["closed_account_id"]),
        (200, &json!(duplicate.id)),
        "{closed}"
    );

    let (status, got) = send(
        &http,
        reqwest::Method::GET,
        url(&format!("/migrations/{id}")),
        Some(&main.id),
        None,
    )
    .await;
    assert_eq!((status, &got["state"]), (200, &json!("completed")), "{got}");
    let dup = stack.stored_account(&duplicate.id).await;
    assert_eq!(dup.status, contact_migration::domain::AccountStatus::Closed);
}
