//! The real function binaries over HTTP: `cargo lambda watch` serves the
//! production paths (router table in Cargo.toml) and each request runs the
//! binary API Gateway would invoke, with `AUTH_MODE=dev` identity.

use end_to_end::{dynamodb_endpoint, ses_endpoint, unix_now, AccountSpec, Stack, ACKNOWLEDGE_ALL};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// `cargo lambda watch` in its own process group, stopped with it on drop.
struct Watch {
    child: Child,
    base: String,
}

impl Watch {
    fn start(table: &str) -> Watch {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log_path = std::env::temp_dir().join(format!("cargo-lambda-watch-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env("TABLE_NAME", table)
            .env("AUTH_MODE", "dev")
            .env(
                "CODE_HMAC_SECRET",
                "served-test-secret-0123456789abcdef-0123",
            )
            .env("SENDER_EMAIL", "no-reply@example.com")
            .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint())
            .env("AWS_ENDPOINT_URL_SESV2", ses_endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("cargo lambda is installed (make test installs it into .venv)");
        let mut watch = Watch {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = watch.child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("cargo lambda watch exited ({status}); is .venv/bin on PATH (make test)?\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        watch
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SIGTERM to the group lets cargo-lambda stop the function processes.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

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
    let watch = Watch::start(stack.app.store.table());
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
