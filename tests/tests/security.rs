//! Findings of the security review, each as the rule it now enforces
//! (SECURITY.md's threat table names these tests).

use contact_migration::domain::{Account, AccountStatus, Channel, CodeKey, Contact};
use contact_migration::store::item;
use end_to_end::{
    all, overwrite_account, unique_contact, unix_now, AccountSpec, Answer, Stack, TestAccount,
    ACKNOWLEDGE_ALL, TEST_SECRET,
};
use serde_json::{json, Value};
use std::sync::Arc;

/// A duplicate with its own authenticator app, an email and a phone.
const GUARDED: AccountSpec = AccountSpec {
    kyc: false,
    assets: false,
    no_totp: false,
    phone: true,
    pending_withdrawal: false,
};

/// A duplicate with no authenticator and no assets.
const PLAIN: AccountSpec = AccountSpec {
    kyc: false,
    assets: false,
    no_totp: true,
    phone: true,
    pending_withdrawal: false,
};

fn close_body(duplicate_code: Option<String>) -> Value {
    let mut body = json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true});
    if let Some(code) = duplicate_code {
        body["duplicate_totp_code"] = json!(code);
    }
    body
}

/// A code of `account`'s authenticator that is none of the window's three.
fn wrong_code(account: &TestAccount, at: i64) -> String {
    let mut wrong = 0u32;
    while [-30, 0, 30]
        .iter()
        .any(|d| account.totp_at(at + d) == format!("{wrong:06}"))
    {
        wrong += 1;
    }
    format!("{wrong:06}")
}

/// Start, verify and migrate `duplicate`'s email to `main`; the migration id
/// and migrate's answer.
async fn awaiting_confirmation(
    stack: &Stack,
    main: &TestAccount,
    duplicate: &TestAccount,
    now: i64,
) -> (String, Answer) {
    let (id, verified) = stack.start_and_verify(main, &duplicate.email, now).await;
    assert_eq!(verified.body["state"], "verified", "{verified:?}");
    let migrated = stack.step(main, &id, "migrate", json!({}), now).await;
    assert_eq!(migrated.status, 200, "{migrated:?}");
    (id, migrated)
}

async fn assert_still_open(stack: &Stack, duplicate: &TestAccount) {
    let stored = stack.stored_account(&duplicate.id).await;
    assert_eq!(stored.status, AccountStatus::Active);
    assert_eq!(
        stored.email.as_ref().map(|c| c.value().to_owned()),
        Some(duplicate.email.clone()),
        "the contact stays with the duplicate"
    );
}

/// A fresh main account's migration of a duplicate's email, awaiting
/// confirmation.
struct Closing {
    stack: Stack,
    main: TestAccount,
    duplicate: TestAccount,
    id: String,
    now: i64,
    migrated: Answer,
}

impl Closing {
    async fn of(duplicate: AccountSpec) -> Closing {
        let stack = Stack::new().await;
        let main = stack.main_account(Channel::Email).await;
        let duplicate = stack.account(duplicate).await;
        let now = unix_now();
        let (id, migrated) = awaiting_confirmation(&stack, &main, &duplicate, now).await;
        Closing {
            stack,
            main,
            duplicate,
            id,
            now,
            migrated,
        }
    }

    async fn close(&self, duplicate_code: Option<String>) -> Answer {
        let body = close_body(duplicate_code);
        self.stack
            .step(&self.main, &self.id, "close", body, self.now)
            .await
    }

    /// Changes the duplicate's stored account, as the exchange might.
    async fn change_duplicate(&self, change: impl FnOnce(&mut Account)) {
        let mut stored = self.stack.stored_account(&self.duplicate.id).await;
        change(&mut stored);
        overwrite_account(&self.stack, &stored).await;
    }

    async fn assert_duplicate_still_open(&self) {
        assert_still_open(&self.stack, &self.duplicate).await;
    }
}

#[tokio::test]
async fn closing_a_duplicate_with_an_authenticator_needs_its_code() {
    let c = Closing::of(GUARDED).await;
    assert_eq!(c.migrated.body["duplicate_two_factor_required"], true);

    // Control of the duplicate's mailbox alone is not enough.
    let without = c.close(None).await;
    assert_eq!(without.status, 422, "{without:?}");
    assert_eq!(without.error_code(), "confirmation_required");
    assert_eq!(
        without.body["error"]["missing"],
        json!(["duplicate_totp_code"])
    );

    let wrong = c.close(Some(wrong_code(&c.duplicate, c.now))).await;
    assert_eq!(wrong.status, 422, "{wrong:?}");
    assert_eq!(wrong.error_code(), "invalid_codes");
    assert_eq!(
        wrong.body["error"]["invalid"],
        json!(["duplicate_totp_code"])
    );
    // One attempt at verification, one here.
    assert_eq!(wrong.body["error"]["attempts_remaining"], 3);
    c.assert_duplicate_still_open().await;

    let right = c.close(Some(c.duplicate.totp_at(c.now))).await;
    assert_eq!(right.status, 200, "{right:?}");
    let closed = c.stack.stored_account(&c.duplicate.id).await;
    assert_eq!(closed.status, AccountStatus::Closed);

    // Once committed, a repeat answers the same without checking any code.
    let again = c.close(None).await;
    assert_eq!((again.status, &again.body), (200, &right.body));
}

#[tokio::test]
async fn a_duplicate_without_an_authenticator_needs_no_code() {
    let c = Closing::of(PLAIN).await;
    assert_eq!(c.migrated.body["duplicate_two_factor_required"], false);
    let closed = c.close(None).await;
    assert_eq!(closed.status, 200, "{closed:?}");
}

#[tokio::test]
async fn wrong_duplicate_codes_lock_the_migration() {
    let c = Closing::of(GUARDED).await;
    let wrong = wrong_code(&c.duplicate, c.now);
    for remaining in (0..4).rev() {
        let answer = c.close(Some(wrong.clone())).await;
        assert_eq!(answer.status, 422, "{answer:?}");
        assert_eq!(answer.body["error"]["attempts_remaining"], remaining);
    }
    let locked = c.close(Some(c.duplicate.totp_at(c.now))).await;
    assert_eq!(
        (locked.status, locked.error_code()),
        (423, "migration_locked")
    );
    let path = format!("/migrations/{}", c.id);
    let got = c
        .stack
        .call("GET", &path, Some(&c.main.id), None, c.now)
        .await;
    assert_eq!(got.body["state"], "locked");
    c.assert_duplicate_still_open().await;
}

#[tokio::test]
async fn parallel_duplicate_code_guesses_cannot_exceed_the_attempts() {
    let stack = Arc::new(Stack::new().await);
    let main = Arc::new(stack.main_account(Channel::Email).await);
    let duplicate = stack.account(GUARDED).await;
    let now = unix_now();
    let (id, _) = awaiting_confirmation(&stack, &main, &duplicate, now).await;
    let wrong = close_body(Some(wrong_code(&duplicate, now)));
    let guesses = (0..12)
        .map(|_| {
            let (stack, main, id, body) = (stack.clone(), main.clone(), id.clone(), wrong.clone());
            async move { stack.step(&main, &id, "close", body, now).await }
        })
        .collect();
    let answers = all(guesses).await;
    let checked = answers.iter().filter(|a| a.status == 422).count();
    // Verification spent one of the five attempts.
    assert_eq!(checked, 4, "{answers:?}");
    assert!(
        answers.iter().all(|a| [422, 423].contains(&a.status)),
        "{answers:?}"
    );
    assert_still_open(&stack, &duplicate).await;
}

#[tokio::test]
async fn a_duplicate_code_spent_by_a_refused_close_cannot_be_used_again() {
    let c = Closing::of(GUARDED).await;
    let code = c.duplicate.totp_at(c.now);

    c.change_duplicate(|d| d.kyc_verified = true).await;
    let refused = c.close(Some(code.clone())).await;
    assert_eq!(
        refused.error_code(),
        "duplicate_identity_verified",
        "{refused:?}"
    );

    c.change_duplicate(|d| d.kyc_verified = false).await;
    let replayed = c.close(Some(code)).await;
    assert_eq!(replayed.status, 422, "{replayed:?}");
    assert_eq!(
        replayed.body["error"]["invalid"],
        json!(["duplicate_totp_code"])
    );
    c.assert_duplicate_still_open().await;
}

#[tokio::test]
async fn the_code_message_warns_that_an_account_using_the_contact_will_be_closed() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let bound = stack.account(PLAIN).await;
    let free = unique_contact(Channel::Email, "free");
    let now = unix_now();
    let mut texts = Vec::new();
    for contact in [&bound.email, &free] {
        let started = stack.start(&main, contact, now).await;
        assert_eq!(started.status, 201, "{started:?}");
        let (_, text) = stack.emails_to(contact).await.pop().expect("a code email");
        assert!(
            text.contains("permanently closed"),
            "the message says what completing means: {text}"
        );
        let code = end_to_end::first_six_digit_number(&text).expect("a code");
        texts.push(text.replace(&code, "CODE"));
    }
    assert_eq!(texts[0], texts[1], "the same words for every address");
}

#[tokio::test]
async fn assets_that_arrive_after_migrate_stop_the_close() {
    let c = Closing::of(PLAIN).await;
    assert_eq!(
        c.migrated.body["warnings"][1]["duplicate_has_assets"],
        false
    );

    c.change_duplicate(|d| d.has_assets = true).await;
    let refused = c.close(None).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (409, "state_changed")
    );
    c.assert_duplicate_still_open().await;
    let main = c.stack.stored_account(&c.main.id).await;
    assert_eq!(
        main.email.map(|e| e.value().to_owned()),
        Some(c.main.email.clone()),
        "nothing moved"
    );
}

#[tokio::test]
async fn an_authenticator_enrolled_after_migrate_stops_the_close() {
    let c = Closing::of(PLAIN).await;
    let enrolled = c.stack.account(GUARDED).await;
    let secret = c.stack.stored_account(&enrolled.id).await.totp_secret;
    c.change_duplicate(|d| d.totp_secret = secret).await;
    let refused = c.close(None).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (409, "state_changed")
    );
    c.assert_duplicate_still_open().await;
}

#[tokio::test]
async fn a_closed_accounts_token_does_nothing() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    // The duplicate has its own migration under way when it is closed.
    let duplicate = stack.account(GUARDED).await;
    let now = unix_now();
    let started = stack
        .start(&duplicate, &unique_contact(Channel::Email, "own"), now)
        .await;
    let own = started.body["migration_id"].as_str().unwrap().to_owned();
    let (id, _) = awaiting_confirmation(&stack, &main, &duplicate, now).await;
    let closed = stack
        .step(
            &main,
            &id,
            "close",
            close_body(Some(duplicate.totp_at(now))),
            now,
        )
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");

    let later = now + 120;
    let path = format!("/migrations/{own}");
    let answers = [
        stack
            .call("GET", &path, Some(&duplicate.id), None, later)
            .await,
        stack
            .call("DELETE", &path, Some(&duplicate.id), None, later)
            .await,
        stack
            .step(&duplicate, &own, "resend", json!({}), later)
            .await,
        stack
            .verify(&duplicate, &own, ("000000", "000000", "000000"), later)
            .await,
        stack
            .step(&duplicate, &own, "migrate", json!({}), later)
            .await,
        stack
            .step(&duplicate, &own, "close", close_body(None), later)
            .await,
        stack
            .start(&duplicate, &unique_contact(Channel::Email, "new"), later)
            .await,
    ];
    for answer in &answers {
        assert_eq!(
            (answer.status, answer.error_code()),
            (403, "account_not_active"),
            "{answer:?}"
        );
    }
    let stored = stack
        .stored_item(item::migration_key(&own))
        .await
        .expect("stored");
    assert_eq!(
        item::get_s(&stored, "state"),
        Some("codes_sent"),
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_resends_deliver_once() {
    let stack = Arc::new(Stack::new().await);
    let main = Arc::new(stack.main_account(Channel::Email).await);
    let contact = unique_contact(Channel::Email, "resend");
    let now = unix_now();
    let started = stack.start(&main, &contact, now).await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    let later = now + stack.app.policy.resend_cooldown;
    let resends = (0..8)
        .map(|_| {
            let (stack, main, id) = (stack.clone(), main.clone(), id.clone());
            async move { stack.step(&main, &id, "resend", json!({}), later).await }
        })
        .collect();
    let answers = all(resends).await;
    let sent = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(sent, 1, "{answers:?}");
    assert!(
        answers.iter().all(|a| [200, 409, 429].contains(&a.status)),
        "{answers:?}"
    );
    assert_eq!(
        stack.emails_to(&contact).await.len(),
        2,
        "the start's code and one resend's, no more"
    );
    let stored = stack.stored_item(item::migration_key(&id)).await.unwrap();
    assert_eq!(item::get_n::<u32>(&stored, "sends"), Some(2));
}

#[tokio::test]
async fn a_right_totp_code_is_spent_when_verify_answers_contact_already_yours() {
    let stack = Stack::new().await;
    // No phone: a phone migration's current-contact code goes to the email.
    let main = stack.main_account(Channel::Email).await;
    let phone = unique_contact(Channel::Phone, "p");
    let now = unix_now();
    let first = stack.start(&main, &phone, now).await;
    let second = stack.start(&main, &phone, now).await;
    let third = stack
        .start(&main, &unique_contact(Channel::Phone, "q"), now)
        .await;
    let ids: Vec<String> = [first, second, third]
        .iter()
        .map(|a| a.body["migration_id"].as_str().unwrap().to_owned())
        .collect();
    let sms = stack.sms_to(&phone).await;
    let emails = stack.emails_to(&main.email).await;
    let code = |text: &str| end_to_end::first_six_digit_number(text).unwrap();

    // The first makes the number the account's own.
    let done = stack
        .verify(
            &main,
            &ids[0],
            (&code(&sms[0]), &code(&emails[0].1), &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(done.body["state"], "completed", "{done:?}");
    let next = now + 30;
    let totp = main.totp_at(next);
    let mine = stack
        .verify(
            &main,
            &ids[1],
            (&code(&sms[1]), &code(&emails[1].1), &totp),
            next,
        )
        .await;
    assert_eq!(mine.error_code(), "contact_already_yours", "{mine:?}");
    // That TOTP code was checked, so it cannot be used again.
    let third_new = stack
        .sms_to(&unique_contact_of(&stack, &ids[2]).await)
        .await;
    let reused = stack
        .verify(
            &main,
            &ids[2],
            (&code(&third_new[0]), &code(&emails[2].1), &totp),
            next,
        )
        .await;
    assert_eq!(reused.status, 422, "{reused:?}");
    assert_eq!(reused.body["error"]["invalid"], json!(["totp_code"]));
}

/// The new contact of a stored migration.
async fn unique_contact_of(stack: &Stack, id: &str) -> String {
    let stored = stack.stored_item(item::migration_key(id)).await.unwrap();
    item::get_s(&stored, "new_contact").unwrap().to_owned()
}

/// A fresh main account's migration of a free email address, its codes
/// just sent.
struct Started {
    stack: Stack,
    main: TestAccount,
    contact: String,
    id: String,
    codes: (String, String),
    now: i64,
}

impl Started {
    async fn new() -> Started {
        let stack = Stack::new().await;
        let main = stack.main_account(Channel::Email).await;
        let contact = unique_contact(Channel::Email, "started");
        let now = unix_now();
        let started = stack.start(&main, &contact, now).await;
        let id = started.body["migration_id"].as_str().unwrap().to_owned();
        let codes = stack.codes(&contact, &main.email).await;
        Started {
            stack,
            main,
            contact,
            id,
            codes,
            now,
        }
    }
}

#[tokio::test]
async fn verify_refuses_a_code_sent_to_a_contact_the_account_gave_up() {
    let Started {
        stack,
        main,
        id,
        codes: (new_code, current_code),
        now,
        ..
    } = Started::new().await;
    let id = id.as_str();
    // Since the codes were sent, the account's email changed: the
    // current-contact code went to an address it no longer has.
    let mut gave_up = stack.stored_account(&main.id).await;
    let elsewhere = unique_contact(Channel::Email, "later");
    gave_up.email = Some(Contact::parse(Channel::Email, &elsewhere).unwrap());
    overwrite_account(&stack, &gave_up).await;

    let refused = stack
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (409, "state_changed")
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
    assert_eq!(got.body["attempts_remaining"], 5, "no attempt was counted");
}

#[tokio::test]
async fn the_duplicate_is_closed_even_without_a_stored_token_version() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.account(PLAIN).await;
    stack
        .app
        .store
        .client()
        .update_item()
        .table_name(stack.app.store.table())
        .set_key(Some(item::account_key(&duplicate.id)))
        .update_expression("REMOVE token_version")
        .send()
        .await
        .unwrap();
    let (_, closed) = stack
        .migrate_fully(&main, &duplicate.email, unix_now())
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    let stored = stack
        .stored_item(item::account_key(&duplicate.id))
        .await
        .unwrap();
    assert_eq!(item::get_n::<u64>(&stored, "token_version"), Some(1));
}

/// The same table under another code key.
fn with_codes(stack: &Stack, codes: CodeKey) -> Stack {
    let mut app = stack.app.clone();
    app.codes = codes.into();
    Stack::of(app)
}

fn key(byte: u8) -> CodeKey {
    CodeKey::new(vec![byte; 32]).unwrap()
}

#[tokio::test]
async fn codes_sent_before_a_key_rotation_still_verify() {
    let Started {
        stack,
        main,
        id,
        codes: (new_code, current_code),
        now,
        ..
    } = Started::new().await;
    let id = id.as_str();

    let original = CodeKey::new(TEST_SECRET).unwrap();
    let rotated = with_codes(&stack, key(7).replacing(original));
    let verified = rotated
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(verified.status, 200, "{verified:?}");
}

#[tokio::test]
async fn codes_under_a_key_no_longer_held_are_expired_and_cost_no_attempt() {
    let Started {
        stack,
        main,
        contact,
        id,
        codes: (new_code, current_code),
        now,
    } = Started::new().await;
    let id = id.as_str();

    let twice = with_codes(&stack, key(9).replacing(key(7)));
    let answer = twice
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!((answer.status, answer.error_code()), (410, "codes_expired"));
    let got = twice
        .call(
            "GET",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now,
        )
        .await;
    assert_eq!(got.body["attempts_remaining"], 5, "{got:?}");
    // A resend under the current key makes codes that verify.
    let later = now + stack.app.policy.resend_cooldown;
    let resent = twice.step(&main, id, "resend", json!({}), later).await;
    assert_eq!(resent.status, 200, "{resent:?}");
    let (new_code, current_code) = twice.codes(&contact, &main.email).await;
    let verified = twice
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(later)),
            later,
        )
        .await;
    assert_eq!(verified.status, 200, "{verified:?}");
}
