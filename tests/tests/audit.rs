//! The audit trail: one append-only record per step, with the accounts, the
//! channel, masked contacts, where the request came from and how it ended.

use contact_migration::domain::{Channel, Contact};
use end_to_end::{unique_contact, unix_now, Stack};
use serde_json::json;

fn steps(trail: &[contact_migration::store::item::Item]) -> Vec<(String, String)> {
    trail
        .iter()
        .map(|r| {
            (
                r["step"].as_s().unwrap().clone(),
                r["outcome"].as_s().unwrap().clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_step_of_a_migration_is_audited() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    let now = unix_now();
    let started = stack.start(&main, &duplicate.email, now).await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    let resent = stack.step(&main, &id, "resend", json!({}), now + 60).await;
    assert_eq!(resent.status, 200);
    let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
    stack
        .verify(&main, &id, ("000000", "000000", "000000"), now + 60)
        .await;
    let t = now + 90;
    let verified = stack
        .verify(&main, &id, (&new_code, &current_code, &main.totp_at(t)), t)
        .await;
    assert_eq!(verified.status, 200, "{verified:?}");
    stack.step(&main, &id, "migrate", json!({}), t).await;
    let closed = stack.close_all_acknowledged(&main, &id, t).await;
    assert_eq!(closed.status, 200, "{closed:?}");

    let trail = stack.app.store.audit_trail(&main.id).await.unwrap();
    let expected = [
        ("start", "ok"),
        ("resend", "ok"),
        ("verify", "invalid_codes"),
        ("verify", "ok"),
        ("migrate", "ok"),
        ("close", "ok"),
    ];
    let mut got = steps(&trail);
    got.sort_by_key(|(step, outcome)| {
        expected
            .iter()
            .position(|e| (e.0, e.1) == (step.as_str(), outcome.as_str()))
    });
    assert_eq!(
        got,
        expected
            .iter()
            .map(|(s, o)| (s.to_string(), o.to_string()))
            .collect::<Vec<_>>()
    );
    let masked = Contact::parse(Channel::Email, &duplicate.email)
        .unwrap()
        .masked();
    for record in &trail {
        assert_eq!(record["migration_id"].as_s().unwrap(), &id);
        assert_eq!(record["main_account_id"].as_s().unwrap(), &main.id);
        assert_eq!(record["channel"].as_s().unwrap(), "email");
        assert_eq!(record["new_contact"].as_s().unwrap(), &masked);
        assert_eq!(record["source_ip"].as_s().unwrap(), "203.0.113.7");
        assert_eq!(record["user_agent"].as_s().unwrap(), "end-to-end");
        let text = format!("{record:?}");
        for secret in [&duplicate.email, &main.email, &new_code, &current_code] {
            assert!(
                !text.contains(secret.as_str()),
                "an audit record carries a secret or full contact"
            );
        }
    }
    let close = trail
        .iter()
        .find(|r| r["step"].as_s().unwrap() == "close")
        .unwrap();
    assert_eq!(close["duplicate_account_id"].as_s().unwrap(), &duplicate.id);

    // The closed account's own trail records its closure too.
    let dup_trail = stack.app.store.audit_trail(&duplicate.id).await.unwrap();
    assert_eq!(
        steps(&dup_trail),
        vec![("close".to_string(), "ok".to_string())]
    );
}

#[tokio::test]
async fn lock_and_cancel_are_audited() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Phone).await;
    let now = unix_now();
    let locked = stack
        .start(&main, &unique_contact(Channel::Phone, "l"), now)
        .await;
    let locked_id = locked.body["migration_id"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        stack
            .verify(&main, &locked_id, ("000000", "000000", "000000"), now)
            .await;
    }
    let cancelled = stack
        .start(&main, &unique_contact(Channel::Phone, "c"), now)
        .await;
    let cancelled_id = cancelled.body["migration_id"].as_str().unwrap().to_owned();
    let answer = stack
        .call(
            "DELETE",
            &format!("/migrations/{cancelled_id}"),
            Some(&main.id),
            None,
            now,
        )
        .await;
    assert_eq!(answer.status, 200);

    let trail = stack.app.store.audit_trail(&main.id).await.unwrap();
    let of = |id: &str, step: &str| {
        trail
            .iter()
            .filter(|r| {
                r["migration_id"].as_s().unwrap() == id && r["step"].as_s().unwrap() == step
            })
            .count()
    };
    assert_eq!(of(&locked_id, "verify"), 5);
    assert_eq!(of(&locked_id, "lock"), 1);
    assert_eq!(of(&cancelled_id, "cancel"), 1);
    assert!(trail
        .iter()
        .all(|r| r["channel"].as_s().unwrap() == "phone"));
}
