//! The rules of PRODUCT.md §1–3, one test per rule, run for both channels
//! (`email::<rule>` and `phone::<rule>`) against DynamoDB Local and the SES
//! and SNS emulators.

use contact_migration::domain::{AccountStatus, Channel, Contact};
use contact_migration::facts::FactsChange;
use end_to_end::{
    first_six_digit_number, unique_contact, unix_now, AccountSpec, Stack, ACKNOWLEDGE_ALL,
};
use serde_json::json;

macro_rules! for_both_channels {
    ($($rule:ident),* $(,)?) => {
        mod email {
            $( #[tokio::test] async fn $rule() { super::$rule(super::Channel::Email).await } )*
        }
        mod phone {
            $( #[tokio::test] async fn $rule() { super::$rule(super::Channel::Phone).await } )*
        }
    };
}

for_both_channels!(
    migration_moves_the_contact_and_closes_the_duplicate,
    free_contact_is_a_plain_verified_change,
    start_answers_identically_for_a_bound_and_a_free_contact,
    main_account_without_totp_cannot_start,
    wrong_codes_are_named_and_counted,
    five_failed_verifications_lock_the_migration,
    resend_replaces_the_codes_and_never_resets_attempts,
    sends_per_migration_are_limited,
    used_totp_code_is_refused,
    another_accounts_migration_is_not_found,
    duplicate_with_identity_verification_is_not_eligible,
    duplicate_has_pending_withdrawals,
    a_contact_is_migrated_once_ever,
    a_main_account_receives_one_migration_per_channel_ever,
    closure_requires_every_acknowledgement,
    repeating_a_successful_close_returns_the_same_answer,
    migrate_twice_answers_the_same,
    codes_expire_after_ten_minutes,
    a_verified_migration_expires_after_fifteen_minutes,
    close_refuses_when_the_duplicate_gained_kyc_since_migrate,
    contact_already_yours_is_refused,
    steps_out_of_order_are_invalid_state,
    cancel_ends_a_migration_unless_completed,
    malformed_contacts_are_invalid_contacts,
);

fn contact(channel: Channel, value: &str) -> Contact {
    Contact::parse(channel, value).unwrap()
}

async fn migration_moves_the_contact_and_closes_the_duplicate(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();

    let started = stack.start(&main, duplicate.contact(ch), now).await;
    assert_eq!(started.status, 201, "{started:?}");
    assert_eq!(started.body["state"], "codes_sent");
    assert_eq!(started.body["channel"], ch.as_str());
    assert_eq!(
        started.body["new_contact"],
        contact(ch, duplicate.contact(ch)).masked()
    );
    assert!(started.body["expires_at"].as_str().unwrap().ends_with('Z'));
    let id = started.body["migration_id"].as_str().unwrap().to_owned();

    let (new_code, current_code) = stack.codes(duplicate.contact(ch), main.contact(ch)).await;
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
    assert_eq!(closed.body["channel"], ch.as_str());
    assert!(closed.body["completed_at"].as_str().is_some());

    let dup = stack.stored_account(&duplicate.id).await;
    assert_eq!(dup.status, AccountStatus::Closed);
    assert!(!dup.referral_code_active, "referral code deactivated");
    assert_eq!(dup.token_version, 1, "tokens revoked");
    assert_eq!(dup.contact(ch), None, "contact removed from the duplicate");
    assert_eq!(
        dup.contact(ch.other()),
        None,
        "a closed account owns no contact"
    );
    let released = contact(ch.other(), duplicate.contact(ch.other()));
    assert_eq!(
        stack.app.store.contact_owner(&released).await.unwrap(),
        None,
        "its other contact is free"
    );
    let main_now = stack.stored_account(&main.id).await;
    assert_eq!(main_now.contact(ch).unwrap().value(), duplicate.contact(ch));
    let moved = contact(ch, duplicate.contact(ch));
    assert_eq!(
        stack
            .app
            .store
            .contact_owner(&moved)
            .await
            .unwrap()
            .as_deref(),
        Some(main.id.as_str())
    );
    let old = contact(ch, main.contact(ch));
    assert_eq!(
        stack.app.store.contact_owner(&old).await.unwrap(),
        None,
        "the main account's old contact is free again"
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

    // Security notices, delivered by the relay: the previous contact, the
    // moved one, and the duplicate's other contact; none carries a code.
    stack.deliver().await;
    for to in [main.contact(ch), duplicate.contact(ch)] {
        let last = stack.messages_to(to).await.pop().unwrap();
        assert!(
            last.contains("Security notice") || last.starts_with("The "),
            "{to}: {last}"
        );
        assert!(first_six_digit_number(&last).is_none(), "{last}");
    }
    let other = stack
        .messages_to(duplicate.contact(ch.other()))
        .await
        .pop()
        .expect("the duplicate's other contact is told");
    assert!(
        other.contains("wasn't you") || other.contains("Not you?"),
        "{other}"
    );
}

async fn free_contact_is_a_plain_verified_change(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let fresh = unique_contact(ch, "fresh");
    let now = unix_now();
    let (id, verified) = stack.start_and_verify(&main, &fresh, now).await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(
        verified.body,
        json!({"state": "completed", "migration_required": false})
    );
    assert_eq!(
        stack
            .stored_account(&main.id)
            .await
            .contact(ch)
            .unwrap()
            .value(),
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
    // Security notices, delivered by the relay, went to the old and the
    // new contact, without a code.
    stack.deliver().await;
    for to in [main.contact(ch), fresh.as_str()] {
        let notice = stack.messages_to(to).await.pop().unwrap();
        assert!(
            notice.contains("changed") || notice.contains("Security notice"),
            "{notice}"
        );
        assert!(first_six_digit_number(&notice).is_none(), "{notice}");
    }
}

async fn start_answers_identically_for_a_bound_and_a_free_contact(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let bound = stack.start(&main, duplicate.contact(ch), now).await;
    let free = stack.start(&main, &unique_contact(ch, "free"), now).await;
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
        "attempts_remaining",
    ] {
        assert_eq!(bound.body[field], free.body[field], "{field}");
    }
    // The bound contact received a code like any other.
    stack.latest_code(duplicate.contact(ch)).await;
}

async fn main_account_without_totp_cannot_start(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack
        .account(end_to_end::AccountSpec {
            no_totp: true,
            phone: ch == Channel::Phone,
            ..Default::default()
        })
        .await;
    let answer = stack
        .start(&main, &unique_contact(ch, "x"), unix_now())
        .await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (403, "two_factor_required")
    );
}

async fn wrong_codes_are_named_and_counted(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let started = stack.start(&main, duplicate.contact(ch), now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack.codes(duplicate.contact(ch), main.contact(ch)).await;
    let wrong = if current_code == "000000" {
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

async fn five_failed_verifications_lock_the_migration(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let now = unix_now();
    let started = stack.start(&main, &unique_contact(ch, "lock"), now).await;
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

async fn resend_replaces_the_codes_and_never_resets_attempts(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let fresh = unique_contact(ch, "resend");
    let now = unix_now();
    let started = stack.start(&main, &fresh, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (old_new, old_current) = stack.codes(&fresh, main.contact(ch)).await;
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
    assert_eq!(
        resent.body["attempts_remaining"], 4,
        "resend did not reset attempts"
    );
    let (new_new, new_current) = stack.codes(&fresh, main.contact(ch)).await;

    let t = now + 90;
    let with_old = stack
        .verify(&main, id, (&old_new, &old_current, &main.totp_at(t)), t)
        .await;
    if old_new != new_new && old_current != new_current {
        assert_eq!(with_old.status, 422, "old codes stop working: {with_old:?}");
        assert_eq!(with_old.body["error"]["attempts_remaining"], 3);
    }
    let t = now + 120;
    let with_new = stack
        .verify(&main, id, (&new_new, &new_current, &main.totp_at(t)), t)
        .await;
    assert_eq!(with_new.status, 200, "{with_new:?}");
}

async fn sends_per_migration_are_limited(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let now = unix_now();
    let started = stack.start(&main, &unique_contact(ch, "limit"), now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    for i in 1..5 {
        let resent = stack
            .step(&main, id, "resend", json!({}), now + 60 * i)
            .await;
        assert_eq!(resent.status, 200, "send {}: {resent:?}", i + 1);
    }
    let sixth = stack.step(&main, id, "resend", json!({}), now + 300).await;
    assert_eq!((sixth.status, sixth.error_code()), (429, "rate_limited"));
    // No later resend of this migration can succeed: a Retry-After would
    // only invite a retry that ends in 410 once the codes expire.
    assert_eq!(sixth.retry_after, None, "{sixth:?}");
    assert!(
        sixth.body["error"].get("retry_after").is_none(),
        "{sixth:?}"
    );
    assert!(
        sixth.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("start a new migration")),
        "{sixth:?}"
    );
}

async fn used_totp_code_is_refused(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let now = unix_now();
    let first = unique_contact(ch, "first");
    let (_, verified) = stack.start_and_verify(&main, &first, now).await;
    assert_eq!(verified.status, 200, "{verified:?}");

    // Same time step, a second change: the TOTP code is spent.
    let second = unique_contact(ch, "second");
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

async fn another_accounts_migration_is_not_found(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let intruder = stack.main_account(ch).await;
    let now = unix_now();
    let started = stack.start(&main, &unique_contact(ch, "mine"), now).await;
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

async fn duplicate_with_identity_verification_is_not_eligible(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let kyc = stack.duplicate_account(ch, true).await;
    let now = unix_now();
    let (id, verified) = stack.start_and_verify(&main, kyc.contact(ch), now).await;
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

/// §7: a duplicate with a withdrawal in flight is not closed ("check for
/// pending withdrawals first"); the blocker goes when the withdrawal does.
async fn duplicate_has_pending_withdrawals(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack
        .account(AccountSpec {
            assets: true,
            no_totp: true,
            phone: true,
            pending_withdrawal: true,
            ..AccountSpec::default()
        })
        .await;
    let now = unix_now();
    let (id, verified) = stack
        .start_and_verify(&main, duplicate.contact(ch), now)
        .await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["eligible"], false);
    let blocked = json!(["duplicate_has_pending_withdrawals"]);
    assert_eq!(verified.body["blockers"], blocked);
    let migrate = stack.step(&main, &id, "migrate", json!({}), now).await;
    assert_eq!(
        (migrate.status, migrate.error_code()),
        (409, "not_eligible")
    );
    assert_eq!(migrate.body["error"]["blockers"], blocked);
    let settled = FactsChange {
        pending_withdrawals: Some(false),
        ..FactsChange::default()
    };
    stack.set_facts(&duplicate.id, settled).await;
    let migrate = stack.step(&main, &id, "migrate", json!({}), now).await;
    assert_eq!(migrate.status, 200, "{migrate:?}");
    let closed = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
}

async fn a_contact_is_migrated_once_ever(ch: Channel) {
    let stack = Stack::new().await;
    let first_main = stack.main_account(ch).await;
    let second_main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let (_, closed) = stack
        .migrate_fully(&first_main, duplicate.contact(ch), now)
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    // The contact now belongs to first_main. Whoever controls first_main too
    // still cannot move it a second time.
    let (id, verified) = stack
        .start_and_verify(&second_main, duplicate.contact(ch), now + 30)
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

async fn a_main_account_receives_one_migration_per_channel_ever(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let first_dup = stack.duplicate_account(ch, false).await;
    let second_dup = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let (_, closed) = stack.migrate_fully(&main, first_dup.contact(ch), now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    // The main account's codes now go to the contact it received.
    let started = stack.start(&main, second_dup.contact(ch), now + 30).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack
        .codes(second_dup.contact(ch), first_dup.contact(ch))
        .await;
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

    // The other channel is a separate allowance.
    let other = ch.other();
    let main = stack
        .account(end_to_end::AccountSpec {
            phone: true,
            ..Default::default()
        })
        .await;
    let dup_one = stack.duplicate_account(Channel::Phone, false).await;
    let first_contact = dup_one.contact(ch);
    let (_, closed) = stack.migrate_fully(&main, first_contact, now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    let dup_two = stack.duplicate_account(Channel::Phone, false).await;
    let (_, verified) = stack
        .start_and_verify(&main, dup_two.contact(other), now + 30)
        .await;
    assert_eq!(
        verified.body["eligible"], true,
        "one migration per channel, not one overall: {verified:?}"
    );
}

async fn closure_requires_every_acknowledgement(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let (id, _) = stack
        .start_and_verify(&main, duplicate.contact(ch), now)
        .await;
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

async fn repeating_a_successful_close_returns_the_same_answer(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let (id, first) = stack.migrate_fully(&main, duplicate.contact(ch), now).await;
    assert_eq!(first.status, 200);
    let again = stack.close_all_acknowledged(&main, &id, now + 5).await;
    assert_eq!((again.status, &again.body), (200, &first.body));
}

async fn migrate_twice_answers_the_same(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let (id, _) = stack
        .start_and_verify(&main, duplicate.contact(ch), now)
        .await;
    let first = stack.step(&main, &id, "migrate", json!({}), now).await;
    let again = stack.step(&main, &id, "migrate", json!({}), now + 5).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, again.body);
}

async fn codes_expire_after_ten_minutes(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let fresh = unique_contact(ch, "late");
    let now = unix_now();
    let started = stack.start(&main, &fresh, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack.codes(&fresh, main.contact(ch)).await;
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
        stack
            .stored_account(&main.id)
            .await
            .contact(ch)
            .unwrap()
            .value(),
        main.contact(ch)
    );
}

async fn a_verified_migration_expires_after_fifteen_minutes(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let (id, _) = stack
        .start_and_verify(&main, duplicate.contact(ch), now)
        .await;
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

async fn close_refuses_when_the_duplicate_gained_kyc_since_migrate(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let (id, _) = stack
        .start_and_verify(&main, duplicate.contact(ch), now)
        .await;
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
    assert_eq!(
        stack.stored_account(&duplicate.id).await,
        dup,
        "nothing changed on the duplicate"
    );
    assert_eq!(
        stack
            .stored_account(&main.id)
            .await
            .contact(ch)
            .unwrap()
            .value(),
        main.contact(ch)
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

async fn contact_already_yours_is_refused(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    // Another spelling of the same contact.
    let spelled = match ch {
        Channel::Email => main.email.to_uppercase(),
        Channel::Phone => {
            let p = main.contact(ch);
            format!("{} {} {}", &p[..3], &p[3..7], &p[7..])
        }
    };
    let answer = stack.start(&main, &spelled, unix_now()).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (409, "contact_already_yours"),
        "{answer:?}"
    );
}

async fn steps_out_of_order_are_invalid_state(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let started = stack.start(&main, duplicate.contact(ch), now).await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    let migrate = stack.step(&main, &id, "migrate", json!({}), now).await;
    assert_eq!(
        (migrate.status, migrate.error_code()),
        (409, "invalid_state")
    );
    let close = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!((close.status, close.error_code()), (409, "invalid_state"));
    let (new_code, current_code) = stack.codes(duplicate.contact(ch), main.contact(ch)).await;
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

async fn cancel_ends_a_migration_unless_completed(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let duplicate = stack.duplicate_account(ch, false).await;
    let now = unix_now();
    let started = stack.start(&main, duplicate.contact(ch), now).await;
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
    let (new_code, current_code) = stack.codes(duplicate.contact(ch), main.contact(ch)).await;
    let verify = stack
        .verify(
            &main,
            &id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!((verify.status, verify.error_code()), (409, "invalid_state"));

    let (done, closed) = stack
        .migrate_fully(&main, duplicate.contact(ch), now + 30)
        .await;
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

async fn malformed_contacts_are_invalid_contacts(ch: Channel) {
    let stack = Stack::new().await;
    let main = stack.main_account(ch).await;
    let long_email = format!("{}@example.com", "a".repeat(65));
    let bad: &[&str] = match ch {
        Channel::Email => &[
            "not-an-email",
            "a@b",
            "\u{0430}dmin@example.com",
            &long_email,
        ],
        Channel::Phone => &["07911123456", "+44 12", "+999 123456789", "+44 7911 12345x"],
    };
    for value in bad {
        let answer = stack
            .call(
                "POST",
                "/migrations",
                Some(&main.id),
                Some(json!({"channel": ch.as_str(), "new_contact": value})),
                unix_now(),
            )
            .await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (400, "invalid_contact"),
            "{value}: {answer:?}"
        );
    }
}

/// Phone only: a main account with no phone binds its first one with the
/// current-contact code sent to its email.
#[tokio::test]
async fn a_first_phone_is_bound_with_the_current_contact_code_sent_to_the_email() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    assert!(main.phone.is_none());
    let duplicate = stack.duplicate_account(Channel::Phone, false).await;
    let now = unix_now();
    let started = stack
        .start(&main, duplicate.contact(Channel::Phone), now)
        .await;
    assert_eq!(started.status, 201, "{started:?}");
    assert_eq!(
        started.body["current_contact"],
        contact(Channel::Email, &main.email).masked()
    );
    let (new_code, current_code) = stack
        .codes(duplicate.contact(Channel::Phone), &main.email)
        .await;
    let id = started.body["migration_id"].as_str().unwrap();
    let verified = stack
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(verified.body["eligible"], true, "{verified:?}");
    stack.step(&main, id, "migrate", json!({}), now).await;
    let closed = stack.close_all_acknowledged(&main, id, now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    let stored = stack.stored_account(&main.id).await;
    assert_eq!(
        stored.phone.unwrap().value(),
        duplicate.contact(Channel::Phone)
    );
    assert_eq!(
        stored.email.unwrap().value(),
        main.email,
        "the email is kept"
    );
}
