//! Logs never carry a code, a TOTP code, the HMAC key or a full contact: a
//! whole set of flows (success, wrong codes, replay, lock, delivery failure,
//! both channels) runs under the production log subscriber, and every
//! secret that passed through is searched for in what it wrote.

use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::error::TooManyRequestsException;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use contact_migration::domain::Channel;
use contact_migration::notify::Courier;
use end_to_end::{
    local_config, sns_client, sns_endpoint, unique_contact, unix_now, LogBuffer, Stack, SENDER,
    TEST_SECRET,
};
use serde_json::{json, Value};

#[tokio::test]
async fn no_secret_or_full_contact_reaches_a_log_line() {
    let buffer = LogBuffer::default();
    tracing::subscriber::set_global_default(contact_migration::lambda::json_logs(
        buffer.clone(),
        tracing::Level::INFO,
    ))
    .expect("the only subscriber of this test binary");
    let mut secrets: Vec<String> = vec![
        String::from_utf8(TEST_SECRET.to_vec()).unwrap(),
        TEST_SECRET.iter().map(|b| format!("{b:02x}")).collect(),
    ];
    let stack = Stack::new().await;
    let now = unix_now();

    for ch in [Channel::Email, Channel::Phone] {
        let main = stack.main_account(ch).await;
        let duplicate = stack.duplicate_account(ch, false).await;
        secrets.extend([main.email.clone(), duplicate.email.clone()]);
        secrets.extend(main.phone.iter().chain(duplicate.phone.iter()).cloned());
        secrets.push(main.totp_secret.clone().unwrap());

        // A migration with a wrong attempt, a TOTP replay and a success.
        let started = stack.start(&main, duplicate.contact(ch), now).await;
        let id = started.body["migration_id"].as_str().unwrap().to_owned();
        let (new_code, current_code) = stack.codes(duplicate.contact(ch), main.contact(ch)).await;
        let totp = main.totp_at(now);
        secrets.extend([new_code.clone(), current_code.clone(), totp.clone()]);
        stack
            .verify(&main, &id, (&new_code, "000000", &totp), now)
            .await;
        let replay = stack
            .verify(&main, &id, (&new_code, &current_code, &totp), now)
            .await;
        assert_eq!(replay.status, 422);
        let totp = main.totp_at(now + 30);
        secrets.push(totp.clone());
        let verified = stack
            .verify(&main, &id, (&new_code, &current_code, &totp), now + 30)
            .await;
        assert_eq!(verified.status, 200, "{verified:?}");
        stack.step(&main, &id, "migrate", json!({}), now + 30).await;
        let closed = stack.close_all_acknowledged(&main, &id, now + 30).await;
        assert_eq!(closed.status, 200, "{closed:?}");

        // A migration locked by guesses.
        let fresh = unique_contact(ch, "locked");
        secrets.push(fresh.clone());
        let started = stack.start(&main, &fresh, now + 60).await;
        let id = started.body["migration_id"].as_str().unwrap().to_owned();
        let (new_code, current_code) = stack.codes(&fresh, duplicate.contact(ch)).await;
        secrets.extend([new_code, current_code]);
        for _ in 0..6 {
            stack
                .verify(&main, &id, ("123456", "654321", "000000"), now + 60)
                .await;
        }
    }

    // A delivery failure, whose provider error is logged.
    let ses = mock_client!(
        aws_sdk_sesv2,
        RuleMode::MatchAny,
        [&mock!(aws_sdk_sesv2::Client::send_email).then_error(|| {
            SendEmailError::TooManyRequestsException(TooManyRequestsException::builder().build())
        })]
    );
    let courier = Courier::new(
        ses,
        SENDER,
        sns_client(&local_config().await, &sns_endpoint()),
        None,
    );
    let main = stack.main_account(Channel::Email).await;
    secrets.push(main.email.clone());
    let undeliverable = unique_contact(Channel::Email, "undeliverable");
    secrets.push(undeliverable.clone());
    let failed = stack
        .with_courier(courier)
        .start(&main, &undeliverable, now)
        .await;
    assert_eq!(failed.status, 503);

    let raw = buffer.text();
    let lines: Vec<&str> = raw.lines().collect();
    assert!(
        lines.len() > 20,
        "the flows were logged: {} lines",
        lines.len()
    );
    // Every line is JSON; the timestamp is set aside, since its microseconds
    // could equal a 6-digit code by chance.
    let mut logs = String::new();
    for line in &lines {
        let mut parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
        parsed.as_object_mut().unwrap().remove("timestamp");
        logs.push_str(&parsed.to_string());
        logs.push('\n');
    }
    assert!(
        logs.contains("delivery failed"),
        "the delivery failure was logged"
    );
    assert!(logs.contains("locked"), "the lock was logged");
    // Ids are random hex, which could hold a 6-digit run by chance.
    let logs = without_uuids(&logs);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a log line carries a secret or full contact ({} chars)",
            secret.len()
        );
    }
    // The contacts' local parts, on their own, do not appear either.
    for contact in secrets.iter().filter(|s| s.contains('@')) {
        let local = contact.split('@').next().unwrap();
        assert!(
            !logs.contains(local),
            "a log line carries part of a contact"
        );
    }
}

/// `text` with every UUID (8-4-4-4-12 hex digits) replaced by `<id>`.
fn without_uuids(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_uuid_at = |i: usize| {
        bytes.len() >= i + 36
            && bytes[i..i + 36].iter().enumerate().all(|(k, b)| {
                if [8, 13, 18, 23].contains(&k) {
                    *b == b'-'
                } else {
                    b.is_ascii_hexdigit()
                }
            })
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if is_uuid_at(i) {
            out.push_str("<id>");
            i += 36;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}
