//! The account facts port on the real local stack (PRODUCT.md §7): facts
//! that cannot be trusted refuse the step with 503 `facts_unavailable` and
//! change nothing, whichever step asked; facts that change between
//! `migrate` and `close` refuse the close with nothing changed; a closed
//! account's facts no longer change; a closure hold keeps them still.

use contact_migration::domain::AccountStatus;
use contact_migration::facts::{Changed, Facts, FactsChange};
use contact_migration::store::item::{self, Item};
use contact_migration::App;
use end_to_end::facts::{faulty_endpoint, Fault, ALL_FAULTS};
use end_to_end::{facts_client, unix_now, Answer, Stack, TestAccount};
use serde_json::json;
use std::time::Instant;

/// The same table and everything else, with facts from an endpoint that
/// has `fault`.
async fn with_fault(stack: &Stack, fault: Fault) -> Stack {
    let url = faulty_endpoint(fault).await;
    Stack::of(App {
        facts: Facts::Http(Box::new(facts_client(&url))),
        ..stack.app.clone()
    })
}

/// What "nothing changed" is checked on: the migration and both accounts
/// as stored, and the duplicate's facts.
async fn snapshot(
    stack: &Stack,
    id: &str,
    main: &TestAccount,
    duplicate: &TestAccount,
) -> Vec<Item> {
    let mut items = Vec::new();
    for key in [
        item::migration_key(id),
        item::account_key(&main.id),
        item::account_key(&duplicate.id),
    ] {
        items.push(stack.stored_item(key).await.expect("stored"));
    }
    items
}

fn unavailable(fault: Fault, answer: &Answer, started: Instant) {
    assert_eq!(
        (answer.status, answer.error_code()),
        (503, "facts_unavailable"),
        "{fault:?}: {answer:?}"
    );
    // The step gave up on the endpoint (the slow one answers after 30 s):
    // a bound well above the one-second timeout, so a busy machine does
    // not fail it.
    assert!(
        started.elapsed().as_secs() < 15,
        "{fault:?} took {:?}",
        started.elapsed()
    );
}

async fn parties(stack: &Stack) -> (TestAccount, TestAccount) {
    let main = stack
        .main_account(contact_migration::domain::Channel::Email)
        .await;
    let duplicate = stack
        .duplicate_account(contact_migration::domain::Channel::Email, false)
        .await;
    (main, duplicate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_unavailable_at_verify_refuse_it_with_nothing_changed() {
    let stack = Stack::new().await;
    let (main, duplicate) = parties(&stack).await;
    let now = unix_now();
    let started = stack.start(&main, &duplicate.email, now).await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
    let codes = (
        new_code.as_str(),
        current_code.as_str(),
        &*main.totp_at(now),
    );
    let before = snapshot(&stack, &id, &main, &duplicate).await;
    for fault in ALL_FAULTS {
        let faulty = with_fault(&stack, fault).await;
        let clock = Instant::now();
        let answer = faulty.verify(&main, &id, codes, now).await;
        unavailable(fault, &answer, clock);
        assert_eq!(
            snapshot(&stack, &id, &main, &duplicate).await,
            before,
            "{fault:?}"
        );
    }
    // The same codes and TOTP code still verify.
    let verified = stack.verify(&main, &id, codes, now).await;
    assert_eq!(verified.body["state"], "verified", "{verified:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_unavailable_at_migrate_refuse_it_with_nothing_changed() {
    let stack = Stack::new().await;
    let (main, duplicate) = parties(&stack).await;
    let now = unix_now();
    let (id, verified) = stack.start_and_verify(&main, &duplicate.email, now).await;
    assert_eq!(verified.body["state"], "verified", "{verified:?}");
    let before = snapshot(&stack, &id, &main, &duplicate).await;
    for fault in ALL_FAULTS {
        let faulty = with_fault(&stack, fault).await;
        let clock = Instant::now();
        let answer = faulty.step(&main, &id, "migrate", json!({}), now).await;
        unavailable(fault, &answer, clock);
        assert_eq!(
            snapshot(&stack, &id, &main, &duplicate).await,
            before,
            "{fault:?}"
        );
    }
    let migrated = stack.step(&main, &id, "migrate", json!({}), now).await;
    assert_eq!(migrated.status, 200, "{migrated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_unavailable_at_close_refuse_it_with_nothing_changed() {
    let stack = Stack::new().await;
    let (main, duplicate) = parties(&stack).await;
    let now = unix_now();
    let (id, _) = stack.start_and_verify(&main, &duplicate.email, now).await;
    let migrated = stack.step(&main, &id, "migrate", json!({}), now).await;
    assert_eq!(migrated.status, 200, "{migrated:?}");
    let before = snapshot(&stack, &id, &main, &duplicate).await;
    for fault in ALL_FAULTS {
        let faulty = with_fault(&stack, fault).await;
        let clock = Instant::now();
        let answer = faulty.close_all_acknowledged(&main, &id, now).await;
        unavailable(fault, &answer, clock);
        assert_eq!(
            snapshot(&stack, &id, &main, &duplicate).await,
            before,
            "{fault:?}"
        );
    }
    let closed = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
}

/// Facts that change between `migrate` and `close` refuse the close with
/// the given answer, and nothing changes.
async fn changed_before_close(change: FactsChange, status: u16, code: &str) -> Answer {
    let stack = Stack::new().await;
    let (main, duplicate) = parties(&stack).await;
    let now = unix_now();
    let (id, _) = stack.start_and_verify(&main, &duplicate.email, now).await;
    let migrated = stack.step(&main, &id, "migrate", json!({}), now).await;
    assert_eq!(migrated.status, 200, "{migrated:?}");
    stack.set_facts(&duplicate.id, change).await;
    let before = snapshot(&stack, &id, &main, &duplicate).await;
    let answer = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (status, code),
        "{answer:?}"
    );
    assert_eq!(snapshot(&stack, &id, &main, &duplicate).await, before);
    assert_eq!(
        stack.stored_account(&duplicate.id).await.status,
        AccountStatus::Active
    );
    // The refused close held nothing back: the account's life goes on.
    let undo = FactsChange {
        kyc_verified: change.kyc_verified.map(|_| false),
        ..FactsChange::default()
    };
    assert!(matches!(
        stack.try_set_facts(&duplicate.id, undo).await,
        Changed::Done(_)
    ));
    assert!(stack.violations().await.is_empty());
    answer
}

#[tokio::test]
async fn kyc_appearing_between_migrate_and_close_refuses_the_close() {
    let kyc = FactsChange {
        kyc_verified: Some(true),
        ..FactsChange::default()
    };
    changed_before_close(kyc, 409, "duplicate_identity_verified").await;
}

#[tokio::test]
async fn a_withdrawal_starting_between_migrate_and_close_refuses_the_close() {
    let withdrawal = FactsChange {
        pending_withdrawals: Some(true),
        ..FactsChange::default()
    };
    let answer = changed_before_close(withdrawal, 409, "not_eligible").await;
    assert_eq!(
        answer.body["error"]["blockers"],
        json!(["duplicate_has_pending_withdrawals"])
    );
}

#[tokio::test]
async fn assets_changing_between_migrate_and_close_refuse_the_close() {
    // The duplicate had assets when the warning was acknowledged.
    let emptied = FactsChange {
        has_assets: Some(false),
        ..FactsChange::default()
    };
    changed_before_close(emptied, 409, "state_changed").await;
}

#[tokio::test]
async fn a_closed_accounts_facts_no_longer_change() {
    let stack = Stack::new().await;
    let (main, duplicate) = parties(&stack).await;
    let (_, closed) = stack
        .migrate_fully(&main, &duplicate.email, unix_now())
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    for change in [
        FactsChange {
            kyc_verified: Some(true),
            ..FactsChange::default()
        },
        FactsChange {
            pending_withdrawals: Some(true),
            ..FactsChange::default()
        },
    ] {
        assert_eq!(
            stack.try_set_facts(&duplicate.id, change).await,
            Changed::AccountClosed
        );
    }
    let stored = stack
        .stored_item(item::account_key(&duplicate.id))
        .await
        .unwrap();
    assert!(!item::get_bool(&stored, "kyc_verified"));
    assert!(stack.violations().await.is_empty());
}

#[tokio::test]
async fn a_closure_hold_keeps_the_facts_still_until_released() {
    let stack = Stack::new().await;
    let (_, duplicate) = parties(&stack).await;
    let facts = &stack.app.facts;
    let hold = facts.hold(&duplicate.id, "migration-1").await.unwrap();
    let kyc = FactsChange {
        kyc_verified: Some(true),
        ..FactsChange::default()
    };
    if !hold.guards_in_commit() {
        // Over HTTP the exchange holds the account: nothing lands.
        assert_eq!(stack.try_set_facts(&duplicate.id, kyc).await, Changed::Held);
        facts.release(&duplicate.id, "another-migration").await;
        assert_eq!(stack.try_set_facts(&duplicate.id, kyc).await, Changed::Held);
        facts.release(&duplicate.id, "migration-1").await;
    }
    assert!(matches!(
        stack.try_set_facts(&duplicate.id, kyc).await,
        Changed::Done(facts) if facts.kyc_verified
    ));
    assert!(facts.facts(&duplicate.id).await.unwrap().kyc_verified);
}
