//! The email flow of PRODUCT.md §1–3, one test per rule, against DynamoDB
//! Local and the SES emulator.

use contact_migration::domain::AccountStatus;
use end_to_end::{unique_email, unix_now, AccountSpec, Stack, ACKNOWLEDGE_ALL};
use serde_json::json;

const DUP: AccountSpec = AccountSpec {
    kyc: false,
    assets: true,
    no_totp: true,
};

#[tokio::test]
async fn migration_moves_the_contact_and_closes_the_duplicate() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();

    let started = stack.start(&main, &duplicate.email, now).await;
    assert_eq!(started.status, 201, "{started:?}");
    assert_eq!(started.body["state"], "codes_sent");
    assert_eq!(started.body["channel"], "email");
    assert!(started.body["new_contact"]
        .as_str()
        .unwrap()
        .contains("***@example.com"));
    assert!(started.body["expires_at"].as_str().unwrap().ends_with('Z'));
    let id = started.body["migration_id"].as_str().unwrap().to_owned();

    let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
    let verified = stack
        .verify(
            &main,
            &id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(
        verified.body,
        json!({"state": "verified", "migration_required": true, "eligible": true, "blockers": []})
    );

    let migrated = stack.step(&main, &id, "migrate", json!({}), now + 1).await;
    assert_eq!(migrated.status, 200, "{migrated:?}");
    assert_eq!(migrated.body["state"], "awaiting_confirmation");
    let warnings = migrated.body["warnings"].as_array().unwrap();
    let ids: Vec<_> = warnings.iter().map(|w| w["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ACKNOWLEDGE_ALL);
    assert_eq!(warnings[1]["duplicate_has_assets"], true);
    assert!(migrated.body["confirm_by"].as_str().is_some());

    let closed = stack.close_all_acknowledged(&main, &id, now + 2).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    assert_eq!(closed.body["state"], "completed");
    assert_eq!(closed.body["closed_account_id"], duplicate.id.as_str());
    assert_eq!(closed.body["channel"], "email");
    assert!(closed.body["completed_at"].as_str().is_some());

    let dup = stack.stored_account(&duplicate.id).await;
    assert_eq!(dup.status, AccountStatus::Closed);
    assert!(!dup.referral_code_active, "referral code deactivated");
    assert_eq!(dup.token_version, 1, "tokens revoked");
    assert_eq!(dup.email, None, "contact removed from the duplicate");
    let main_now = stack.stored_account(&main.id).await;
    assert_eq!(main_now.email.unwrap().value(), duplicate.email);
    let new_contact = contact_migration::domain::Contact::parse(
        contact_migration::domain::Channel::Email,
        &duplicate.email,
    )
    .unwrap();
    assert_eq!(
        stack
            .app
            .store
            .contact_owner(&new_contact)
            .await
            .unwrap()
            .as_deref(),
        Some(main.id.as_str())
    );
    let old = contact_migration::domain::Contact::parse(
        contact_migration::domain::Channel::Email,
        &main.email,
    )
    .unwrap();
    assert_eq!(
        stack.app.store.contact_owner(&old).await.unwrap(),
        None,
        "the main account's old email is free again"
    );

    let got = stack
        .call(
            "GET",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now + 3,
        )
        .await;
    assert_eq!(got.body["state"], "completed");
    let trail = stack.app.store.audit_trail(&main.id).await.unwrap();
    assert_eq!(
        trail
            .iter()
            .filter(|r| r["step"].as_s().unwrap() == "close")
            .count(),
        1
    );
}

#[tokio::test]
async fn free_contact_is_a_plain_verified_change() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let fresh = unique_email("fresh");
    let now = unix_now();
    let (id, verified) = stack.start_and_verify(&main, &fresh, now).await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(
        verified.body,
        json!({"state": "completed", "migration_required": false})
    );
    assert_eq!(
        stack.stored_account(&main.id).await.email.unwrap().value(),
        fresh
    );
    let got = stack
        .call(
            "GET",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now,
        )
        .await;
    assert_eq!(got.body["state"], "completed");
    let migrate = stack.step(&main, &id, "migrate", json!({}), now).await;
    assert_eq!(
        (migrate.status, migrate.error_code()),
        (409, "invalid_state")
    );
    // Security notices went to the old and the new address, without a code.
    let notice = stack.emails_to(&main.email).await.pop().unwrap();
    assert!(notice.0.starts_with("Security notice"), "{notice:?}");
    assert!(end_to_end::first_six_digit_number(&notice.1).is_none());
}

#[tokio::test]
async fn start_answers_identically_for_a_bound_and_a_free_contact() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let bound = stack.start(&main, &duplicate.email, now).await;
    let free = stack.start(&main, &unique_email("free"), now).await;
    assert_eq!(bound.status, free.status);
    let keys = |a: &end_to_end::Answer| {
        let mut k: Vec<String> = a.body.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&bound), keys(&free));
    for field in [
        "state",
        "channel",
        "current_contact",
        "expires_at",
        "resend_available_at",
    ] {
        assert_eq!(bound.body[field], free.body[field], "{field}");
    }
    // Both new contacts received a code.
    stack.latest_code(&duplicate.email).await;
}

#[tokio::test]
async fn main_account_without_totp_cannot_start() {
    let stack = Stack::new().await;
    let main = stack
        .account(AccountSpec {
            no_totp: true,
            ..Default::default()
        })
        .await;
    let answer = stack.start(&main, &unique_email("x"), unix_now()).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (403, "two_factor_required")
    );
}

#[tokio::test]
async fn wrong_codes_are_named_and_counted() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let started = stack.start(&main, &duplicate.email, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, _) = stack.codes(&duplicate.email, &main.email).await;
    let wrong = if new_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    let answer = stack
        .verify(&main, id, (&new_code, wrong, &main.totp_at(now)), now)
        .await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (422, "invalid_codes"),
        "{answer:?}"
    );
    assert_eq!(
        answer.body["error"]["invalid"],
        json!(["current_contact_code"])
    );
    assert_eq!(answer.body["error"]["attempts_remaining"], 4);
}

#[tokio::test]
async fn five_failed_verifications_lock_the_migration() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let started = stack.start(&main, &unique_email("lock"), now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    for remaining in (0..5).rev() {
        let answer = stack
            .verify(&main, id, ("000000", "000000", "000000"), now)
            .await;
        assert_eq!(answer.status, 422, "{answer:?}");
        assert_eq!(answer.body["error"]["attempts_remaining"], remaining);
    }
    let locked = stack
        .verify(&main, id, ("000000", "000000", "000000"), now)
        .await;
    assert_eq!(
        (locked.status, locked.error_code()),
        (423, "migration_locked")
    );
    let got = stack
        .call(
            "GET",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now,
        )
        .await;
    assert_eq!(got.body["state"], "locked");
    let resend = stack.step(&main, id, "resend", json!({}), now + 120).await;
    assert_eq!(
        (resend.status, resend.error_code()),
        (423, "migration_locked")
    );
}

#[tokio::test]
async fn resend_replaces_the_codes_and_never_resets_attempts() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let fresh = unique_email("resend");
    let now = unix_now();
    let started = stack.start(&main, &fresh, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (old_new, old_current) = stack.codes(&fresh, &main.email).await;
    let failed = stack
        .verify(&main, id, ("000000", "000000", "000000"), now)
        .await;
    assert_eq!(failed.body["error"]["attempts_remaining"], 4);

    let early = stack.step(&main, id, "resend", json!({}), now + 10).await;
    assert_eq!((early.status, early.error_code()), (429, "rate_limited"));
    assert_eq!(early.retry_after.as_deref(), Some("50"));

    let resent = stack.step(&main, id, "resend", json!({}), now + 60).await;
    assert_eq!(resent.status, 200, "{resent:?}");
    assert_eq!(resent.body["state"], "codes_sent");
    let (new_new, new_current) = stack.codes(&fresh, &main.email).await;

    let t = now + 90;
    let with_old = stack
        .verify(&main, id, (&old_new, &old_current, &main.totp_at(t)), t)
        .await;
    if old_new != new_new && old_current != new_current {
        assert_eq!(with_old.status, 422, "old codes stop working: {with_old:?}");
        assert_eq!(
            with_old.body["error"]["attempts_remaining"], 3,
            "resend did not reset attempts"
        );
    }
    let t = now + 120;
    let with_new = stack
        .verify(&main, id, (&new_new, &new_current, &main.totp_at(t)), t)
        .await;
    assert_eq!(with_new.status, 200, "{with_new:?}");
}

#[tokio::test]
async fn sends_per_migration_are_limited() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let started = stack.start(&main, &unique_email("limit"), now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    for i in 1..5 {
        let resent = stack
            .step(&main, id, "resend", json!({}), now + 60 * i)
            .await;
        assert_eq!(resent.status, 200, "send {}: {resent:?}", i + 1);
    }
    let sixth = stack.step(&main, id, "resend", json!({}), now + 300).await;
    assert_eq!((sixth.status, sixth.error_code()), (429, "rate_limited"));
    assert!(sixth.retry_after.is_some());
}

#[tokio::test]
async fn used_totp_code_is_refused() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let first = unique_email("first");
    let (_, verified) = stack.start_and_verify(&main, &first, now).await;
    assert_eq!(verified.status, 200, "{verified:?}");

    // Same time step, a second migration: the TOTP code is spent.
    let second = unique_email("second");
    let started = stack.start(&main, &second, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack.codes(&second, &first).await;
    let replay = stack
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(
        (replay.status, replay.error_code()),
        (422, "invalid_codes"),
        "{replay:?}"
    );
    assert_eq!(replay.body["error"]["invalid"], json!(["totp_code"]));
    // An older step is refused too.
    let older = stack
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now - 30)),
            now,
        )
        .await;
    assert_eq!(
        older.body["error"]["invalid"],
        json!(["totp_code"]),
        "{older:?}"
    );
    // The next step works.
    let next = stack
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now + 30)),
            now + 30,
        )
        .await;
    assert_eq!(next.status, 200, "{next:?}");
}

#[tokio::test]
async fn another_accounts_migration_is_not_found() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let intruder = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let started = stack.start(&main, &unique_email("mine"), now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();
    for path_id in [id, unknown.as_str(), "not-an-id"] {
        for (method, suffix) in [
            ("GET", ""),
            ("DELETE", ""),
            ("POST", "/verify"),
            ("POST", "/resend"),
            ("POST", "/migrate"),
        ] {
            let body = (method == "POST").then(|| {
                if suffix == "/verify" {
                    json!({"new_contact_code": "1", "current_contact_code": "1", "totp_code": "1"})
                } else {
                    json!({})
                }
            });
            let answer = stack
                .call(
                    method,
                    &format!("/migrations/{path_id}{suffix}"),
                    Some(&intruder.id),
                    body,
                    now + 60,
                )
                .await;
            assert_eq!(
                (answer.status, answer.error_code()),
                (404, "migration_not_found"),
                "{method} {suffix}"
            );
        }
    }
    let answer = stack.close_all_acknowledged(&intruder, id, now).await;
    assert_eq!(answer.status, 404);
    // The owner's migration is untouched by all of that.
    let got = stack
        .call(
            "GET",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now,
        )
        .await;
    assert_eq!(got.body["state"], "codes_sent");
    assert_eq!(got.body["attempts_remaining"], 5);
}

#[tokio::test]
async fn duplicate_with_identity_verification_is_not_eligible() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let kyc = stack.account(AccountSpec { kyc: true, ..DUP }).await;
    let now = unix_now();
    let (id, verified) = stack.start_and_verify(&main, &kyc.email, now).await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["eligible"], false);
    assert_eq!(
        verified.body["blockers"],
        json!(["duplicate_identity_verified"])
    );
    let migrate = stack.step(&main, &id, "migrate", json!({}), now).await;
    assert_eq!(
        (migrate.status, migrate.error_code()),
        (409, "not_eligible")
    );
    assert_eq!(
        migrate.body["error"]["blockers"],
        json!(["duplicate_identity_verified"])
    );
    assert_eq!(
        stack.stored_account(&kyc.id).await.status,
        AccountStatus::Active
    );
}

#[tokio::test]
async fn a_contact_is_migrated_once_ever() {
    let stack = Stack::new().await;
    let first_main = stack.account(AccountSpec::default()).await;
    let second_main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let (_, closed) = stack
        .migrate_fully(&first_main, &duplicate.email, now)
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    // The contact now belongs to first_main. Another account that controls
    // first_main too still cannot move it a second time.
    let (id, verified) = stack
        .start_and_verify(&second_main, &duplicate.email, now + 30)
        .await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["eligible"], false);
    assert_eq!(
        verified.body["blockers"],
        json!(["contact_already_migrated"])
    );
    let migrate = stack
        .step(&second_main, &id, "migrate", json!({}), now + 30)
        .await;
    assert_eq!(
        (migrate.status, migrate.error_code()),
        (409, "not_eligible")
    );
}

#[tokio::test]
async fn a_main_account_receives_one_email_migration_ever() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let first_dup = stack.account(DUP).await;
    let second_dup = stack.account(DUP).await;
    let now = unix_now();
    let (_, closed) = stack.migrate_fully(&main, &first_dup.email, now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    // The codes for the main account now go to its new address.
    let started = stack.start(&main, &second_dup.email, now + 30).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack.codes(&second_dup.email, &first_dup.email).await;
    let verified = stack
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now + 30)),
            now + 30,
        )
        .await;
    assert_eq!(
        verified.body["blockers"],
        json!(["account_already_migrated"]),
        "{verified:?}"
    );
    let migrate = stack.step(&main, id, "migrate", json!({}), now + 30).await;
    assert_eq!(
        (migrate.status, migrate.error_code()),
        (409, "not_eligible")
    );
    assert_eq!(
        stack.stored_account(&second_dup.id).await.status,
        AccountStatus::Active
    );
}

#[tokio::test]
async fn closure_requires_every_acknowledgement() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let (id, _) = stack.start_and_verify(&main, &duplicate.email, now).await;
    stack.step(&main, &id, "migrate", json!({}), now).await;
    let partial = stack
        .step(
            &main,
            &id,
            "close",
            json!({"acknowledged_warnings": ["account_closure_permanent"], "confirm": true}),
            now,
        )
        .await;
    assert_eq!(
        (partial.status, partial.error_code()),
        (422, "confirmation_required")
    );
    assert_eq!(
        partial.body["error"]["missing"],
        json!(["assets_not_transferred", "invitation_relationships_lost"])
    );
    let unconfirmed = stack
        .step(
            &main,
            &id,
            "close",
            json!({"acknowledged_warnings": ACKNOWLEDGE_ALL}),
            now,
        )
        .await;
    assert_eq!(unconfirmed.body["error"]["missing"], json!(["confirm"]));
    assert_eq!(
        stack.stored_account(&duplicate.id).await.status,
        AccountStatus::Active
    );
    let closed = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
}

#[tokio::test]
async fn repeating_a_successful_close_returns_the_same_answer() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let (id, first) = stack.migrate_fully(&main, &duplicate.email, now).await;
    assert_eq!(first.status, 200);
    let again = stack.close_all_acknowledged(&main, &id, now + 5).await;
    assert_eq!((again.status, &again.body), (200, &first.body));
}

#[tokio::test]
async fn migrate_twice_answers_the_same() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let (id, _) = stack.start_and_verify(&main, &duplicate.email, now).await;
    let first = stack.step(&main, &id, "migrate", json!({}), now).await;
    let again = stack.step(&main, &id, "migrate", json!({}), now + 5).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, again.body);
}

#[tokio::test]
async fn codes_expire_after_ten_minutes() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let fresh = unique_email("late");
    let now = unix_now();
    let started = stack.start(&main, &fresh, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack.codes(&fresh, &main.email).await;
    let late = now + 600;
    let answer = stack
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(late)),
            late,
        )
        .await;
    assert_eq!((answer.status, answer.error_code()), (410, "codes_expired"));
    assert_eq!(
        stack.stored_account(&main.id).await.email.unwrap().value(),
        main.email
    );
}

#[tokio::test]
async fn a_verified_migration_expires_after_fifteen_minutes() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let (id, _) = stack.start_and_verify(&main, &duplicate.email, now).await;
    let migrated = stack
        .step(&main, &id, "migrate", json!({}), now + 899)
        .await;
    assert_eq!(migrated.status, 200, "{migrated:?}");
    let late = stack.close_all_acknowledged(&main, &id, now + 900).await;
    assert_eq!((late.status, late.error_code()), (410, "migration_expired"));
    assert_eq!(
        stack.stored_account(&duplicate.id).await.status,
        AccountStatus::Active
    );
    let got = stack
        .call(
            "GET",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now + 900,
        )
        .await;
    assert_eq!(got.body["state"], "expired");
}

#[tokio::test]
async fn close_refuses_when_the_duplicate_gained_kyc_since_migrate() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let (id, _) = stack.start_and_verify(&main, &duplicate.email, now).await;
    stack.step(&main, &id, "migrate", json!({}), now).await;
    let mut dup = stack.stored_account(&duplicate.id).await;
    dup.kyc_verified = true;
    end_to_end::overwrite_account(&stack, &dup).await;

    let closed = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!(
        (closed.status, closed.error_code()),
        (409, "duplicate_identity_verified"),
        "{closed:?}"
    );
    let dup_after = stack.stored_account(&duplicate.id).await;
    assert_eq!(dup_after, dup, "nothing changed on the duplicate");
    assert_eq!(
        stack.stored_account(&main.id).await.email.unwrap().value(),
        main.email
    );
    let got = stack
        .call(
            "GET",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now,
        )
        .await;
    assert_eq!(got.body["state"], "awaiting_confirmation");
}

#[tokio::test]
async fn contact_already_yours_is_refused() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let answer = stack
        .start(&main, &main.email.to_uppercase(), unix_now())
        .await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (409, "contact_already_yours")
    );
}

#[tokio::test]
async fn steps_out_of_order_are_invalid_state() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let started = stack.start(&main, &duplicate.email, now).await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    let migrate = stack.step(&main, &id, "migrate", json!({}), now).await;
    assert_eq!(
        (migrate.status, migrate.error_code()),
        (409, "invalid_state")
    );
    let close = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!((close.status, close.error_code()), (409, "invalid_state"));
    let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
    stack
        .verify(
            &main,
            &id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    let close = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!(
        (close.status, close.error_code()),
        (409, "invalid_state"),
        "close needs migrate first"
    );
    let again = stack
        .verify(
            &main,
            &id,
            (&new_code, &current_code, &main.totp_at(now + 30)),
            now + 30,
        )
        .await;
    assert_eq!(
        (again.status, again.error_code()),
        (409, "invalid_state"),
        "codes are single use"
    );
}

#[tokio::test]
async fn cancel_ends_a_migration_unless_completed() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let started = stack.start(&main, &duplicate.email, now).await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    let cancelled = stack
        .call(
            "DELETE",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now,
        )
        .await;
    assert_eq!(
        (cancelled.status, &cancelled.body),
        (200, &json!({"state": "cancelled"}))
    );
    let again = stack
        .call(
            "DELETE",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now,
        )
        .await;
    assert_eq!(again.status, 200);
    let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
    let verify = stack
        .verify(
            &main,
            &id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!((verify.status, verify.error_code()), (409, "invalid_state"));

    let (done, closed) = stack.migrate_fully(&main, &duplicate.email, now + 30).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    let refused = stack
        .call(
            "DELETE",
            &format!("/migrations/{done}"),
            Some(&main.id),
            None,
            now + 30,
        )
        .await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (409, "invalid_state")
    );
}
