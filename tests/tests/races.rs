//! Races: concurrent requests against one DynamoDB Local table. The
//! invariants hold because every state change is one conditional write or
//! one transaction, not because requests happen to arrive in order. Where
//! the order matters, a gate ([`Gate`]) holds one request's write until
//! the others have landed.

use contact_migration::domain::{AccountStatus, Channel, Contact, MigrationState, Policy};
use contact_migration::facts::Facts;
use end_to_end::facts::{faulty_endpoint, Fault};
use end_to_end::gate::Gate;
use end_to_end::{
    all, facts_client, unique_contact, unique_email, unix_now, AccountSpec, Answer, Stack,
    TestAccount,
};
use serde_json::json;
use std::sync::Arc;

const DUP: AccountSpec = AccountSpec {
    kyc: false,
    assets: false,
    no_totp: true,
    phone: false,
    pending_withdrawal: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_closes_commit_once() {
    let stack = Arc::new(Stack::new().await);
    let main = Arc::new(stack.account(AccountSpec::default()).await);
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let (id, verified) = stack.start_and_verify(&main, &duplicate.email, now).await;
    assert_eq!(verified.body["state"], "verified", "{verified:?}");
    assert_eq!(
        stack
            .step(&main, &id, "migrate", json!({}), now)
            .await
            .status,
        200
    );

    let closes = (0..20)
        .map(|_| {
            let (stack, main, id) = (stack.clone(), main.clone(), id.clone());
            async move { stack.close_all_acknowledged(&main, &id, now).await }
        })
        .collect();
    let answers = all(closes).await;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(
            answer.body, answers[0].body,
            "every caller sees the one commit"
        );
    }
    let trail = stack.app.store.audit_trail(&main.id).await.unwrap();
    let closes = trail
        .iter()
        .filter(|r| r["step"].as_s().unwrap() == "close")
        .count();
    assert_eq!(closes, 1, "one commit, one audit record");
    let dup = stack.stored_account(&duplicate.id).await;
    assert_eq!((dup.status, dup.token_version), (AccountStatus::Closed, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_main_accounts_racing_for_one_duplicate_contact_have_one_winner() {
    let stack = Arc::new(Stack::new().await);
    let first = Arc::new(stack.account(AccountSpec::default()).await);
    let second = Arc::new(stack.account(AccountSpec::default()).await);
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let mut ids = Vec::new();
    for main in [&first, &second] {
        let (id, verified) = stack.start_and_verify(main, &duplicate.email, now).await;
        assert_eq!(verified.body["eligible"], true, "{verified:?}");
        assert_eq!(
            stack
                .step(main, &id, "migrate", json!({}), now)
                .await
                .status,
            200
        );
        ids.push(id);
    }
    let second_before = stack.stored_account(&second.id).await;
    let first_before = stack.stored_account(&first.id).await;

    let closes = [
        (first.clone(), ids[0].clone()),
        (second.clone(), ids[1].clone()),
    ]
    .into_iter()
    .map(|(main, id)| {
        let stack = stack.clone();
        async move { stack.close_all_acknowledged(&main, &id, now).await }
    })
    .collect();
    let answers = all(closes).await;
    let winners: Vec<usize> = (0..2).filter(|&i| answers[i].status == 200).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    let (winner, loser) = if winners[0] == 0 {
        (&first, &second)
    } else {
        (&second, &first)
    };
    let lost = &answers[1 - winners[0]];
    assert_eq!(lost.status, 409, "{lost:?}");
    assert!(
        [
            "contact_already_migrated",
            "duplicate_closed",
            "state_changed"
        ]
        .contains(&lost.error_code()),
        "{lost:?}"
    );

    let contact = Contact::parse(Channel::Email, &duplicate.email).unwrap();
    assert_eq!(
        stack
            .app
            .store
            .contact_owner(&contact)
            .await
            .unwrap()
            .as_deref(),
        Some(winner.id.as_str())
    );
    let loser_before = if loser.id == second.id {
        second_before
    } else {
        first_before
    };
    assert_eq!(
        stack.stored_account(&loser.id).await,
        loser_before,
        "the loser's account is untouched"
    );
    let loser_id = &ids[1 - winners[0]];
    let got = stack
        .call(
            "GET",
            &format!("/migrations/{loser_id}"),
            Some(&loser.id),
            None,
            now,
        )
        .await;
    assert_eq!(
        got.body["state"], "awaiting_confirmation",
        "the loser's migration is untouched"
    );
    let loser_trail = stack.app.store.audit_trail(&loser.id).await.unwrap();
    assert!(
        loser_trail
            .iter()
            .all(|r| r["step"].as_s().unwrap() != "close"),
        "no close recorded for the loser"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_cannot_exceed_the_attempt_limit() {
    let stack = Arc::new(Stack::new().await);
    let main = Arc::new(stack.account(AccountSpec::default()).await);
    let now = unix_now();
    let started = stack.start(&main, &unique_email("guess"), now).await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();

    let guesses = (0..20)
        .map(|i| {
            let (stack, main, id) = (stack.clone(), main.clone(), id.clone());
            async move {
                let code = format!("{:06}", 100_000 + i);
                stack
                    .verify(&main, &id, (&code, &code, "000000"), now)
                    .await
            }
        })
        .collect();
    let answers = all(guesses).await;
    // Exactly five guesses were checked; the others were refused unchecked,
    // by the lock or by the account's failure quota (whose slots the
    // in-flight guesses hold).
    let checked = answers.iter().filter(|a| a.status == 422).count();
    assert_eq!(checked, 5, "{answers:?}");
    assert!(
        answers.iter().all(|a| [422, 423, 429].contains(&a.status)),
        "{answers:?}"
    );
    let migration = stack.app.store.migration(&id).await.unwrap().unwrap();
    assert_eq!(migration.failed_attempts, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_right_verifies_succeed_once() {
    let stack = Arc::new(Stack::new().await);
    let main = Arc::new(stack.account(AccountSpec::default()).await);
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let started = stack.start(&main, &duplicate.email, now).await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
    let totp = main.totp_at(now);
    let verifies = (0..10)
        .map(|_| {
            let (stack, main, id) = (stack.clone(), main.clone(), id.clone());
            let codes = (new_code.clone(), current_code.clone(), totp.clone());
            async move {
                stack
                    .verify(&main, &id, (&codes.0, &codes.1, &codes.2), now)
                    .await
            }
        })
        .collect();
    let answers = all(verifies).await;
    assert_eq!(
        answers.iter().filter(|a| a.status == 200).count(),
        1,
        "{answers:?}"
    );
}

/// A guess none of whose codes is right.
const WRONG: (&str, &str, &str) = ("000000", "000000", "000000");

/// A started migration of `contact` and the codes sent for it.
async fn started(
    stack: &Stack,
    main: &TestAccount,
    contact: &str,
    now: i64,
) -> (String, (String, String)) {
    let answer = stack.start(main, contact, now).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let id = answer.body["migration_id"].as_str().unwrap().to_owned();
    let codes = stack
        .codes(contact, end_to_end::current_contact_of(main, contact))
        .await;
    (id, codes)
}

/// The right guess, sent through `gated` (whose armed write waits at the
/// gate) on a task of its own.
fn right_guess(
    gated: Stack,
    main: &TestAccount,
    id: &str,
    codes: &(String, String),
    now: i64,
) -> tokio::task::JoinHandle<Answer> {
    let (main, id, codes) = (main.clone(), id.to_owned(), codes.clone());
    tokio::spawn(async move {
        gated
            .verify(&main, &id, (&codes.0, &codes.1, &main.totp_at(now)), now)
            .await
    })
}

fn assert_answer(answer: &Answer, status: u16, code: &str) {
    assert_eq!(
        (answer.status, answer.error_code()),
        (status, code),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_guess_cannot_succeed_once_concurrent_failures_used_up_the_attempts() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let contact = unique_email("last");
    let (id, codes) = started(&stack, &main, &contact, now).await;
    for _ in 0..4 {
        assert_answer(
            &stack.verify(&main, &id, WRONG, now).await,
            422,
            "invalid_codes",
        );
    }
    // The right guess reads the migration with one attempt left and checks
    // its factors; before its commit lands, a wrong guess takes that attempt.
    let gate = Gate::default();
    gate.arm("TransactWriteItems");
    let right = right_guess(gate.stack(&stack).await, &main, &id, &codes, now);
    gate.holding().await;
    let last = stack.verify(&main, &id, WRONG, now).await;
    assert_answer(&last, 422, "invalid_codes");
    assert_eq!(last.body["error"]["attempts_remaining"], 0);
    gate.open();
    // The commit was conditional on an attempt being left: the right guess
    // is answered as every guess past the limit is.
    assert_answer(&right.await.unwrap(), 423, "migration_locked");
    let stored = stack.app.store.migration(&id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.failed_attempts),
        (MigrationState::Locked, 5)
    );
    assert_eq!(
        stack.stored_account(&main.id).await.email.unwrap().value(),
        main.email
    );
    assert!(stack.violations().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_guess_cannot_succeed_once_concurrent_failures_filled_the_account_quota() {
    let mut policy = Policy::default();
    policy.failures_per_account.limit = 2;
    let stack = Stack::with_policy(policy).await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let (other, _) = started(&stack, &main, &unique_email("other"), now).await;
    let (id, codes) = started(&stack, &main, &unique_email("right"), now).await;
    // The right guess reads an account with failures to spare; before its
    // commit lands, wrong guesses on another migration use them up.
    let gate = Gate::default();
    gate.arm("TransactWriteItems");
    let right = right_guess(gate.stack(&stack).await, &main, &id, &codes, now);
    gate.holding().await;
    for _ in 0..2 {
        assert_answer(
            &stack.verify(&main, &other, WRONG, now).await,
            422,
            "invalid_codes",
        );
    }
    gate.open();
    assert_answer(&right.await.unwrap(), 429, "rate_limited");
    // Refused before it counted: nothing of it was written.
    let stored = stack.app.store.migration(&id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.failed_attempts),
        (MigrationState::CodesSent, 0)
    );
    let account = stack.stored_account(&main.id).await;
    assert_eq!(account.email.unwrap().value(), main.email);
    assert_eq!(account.totp_last_step, None, "the TOTP step is not spent");
    assert!(stack.violations().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_guess_whose_facts_cannot_be_read_is_no_answer_past_the_limits() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let (id, codes) = started(&stack, &main, &duplicate.email, now).await;
    for _ in 0..4 {
        assert_answer(
            &stack.verify(&main, &id, WRONG, now).await,
            422,
            "invalid_codes",
        );
    }
    // Right codes, facts down: the refusal is checked against the limits,
    // and a wrong guess takes the last attempt first.
    let gate = Gate::default();
    gate.arm("TransactWriteItems");
    let mut gated = gate.stack(&stack).await;
    gated.app.facts = Facts::Http(Box::new(facts_client(&faulty_endpoint(Fault::Down).await)));
    let right = right_guess(gated, &main, &id, &codes, now);
    gate.holding().await;
    assert_answer(
        &stack.verify(&main, &id, WRONG, now).await,
        422,
        "invalid_codes",
    );
    gate.open();
    assert_answer(&right.await.unwrap(), 423, "migration_locked");
    assert!(stack.violations().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_failure_locks_even_when_the_accounts_events_moved_meanwhile() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let (locking, _) = started(&stack, &main, &unique_email("lock"), now).await;
    // A phone of its own: its current-contact code goes to the email,
    // which stays the account's.
    let free = unique_contact(Channel::Phone, "free");
    let (changing, codes) = started(&stack, &main, &free, now).await;
    for _ in 0..4 {
        assert_answer(
            &stack.verify(&main, &locking, WRONG, now).await,
            422,
            "invalid_codes",
        );
    }
    // The last failure reads the account's event head; before its lock
    // lands, a plain change of the same account announces at that head.
    let gate = Gate::default();
    gate.arm("TransactWriteItems");
    let gated = gate.stack(&stack).await;
    let (owner, id) = (main.clone(), locking.clone());
    let last = tokio::spawn(async move { gated.verify(&owner, &id, WRONG, now).await });
    gate.holding().await;
    let changed = stack
        .verify(
            &main,
            &changing,
            (&codes.0, &codes.1, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(changed.body["state"], "completed", "{changed:?}");
    gate.open();
    let last = last.await.unwrap();
    assert_answer(&last, 422, "invalid_codes");
    assert_eq!(last.body["error"]["attempts_remaining"], 0);
    let stored = stack.app.store.migration(&locking).await.unwrap().unwrap();
    assert_eq!(stored.state, MigrationState::Locked);
    // Locked together with its event, at the account's next sequence.
    let outbox = stack
        .app
        .store
        .outbox(&locking)
        .await
        .unwrap()
        .unwrap()
        .outbox;
    let events: Vec<(&str, u64)> = outbox
        .events
        .iter()
        .map(|e| (e.event_type.as_str(), e.sequence_number()))
        .collect();
    assert_eq!(events, [("migration.locked.v1", 2)]);
    assert!(stack.violations().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_totp_code_spent_between_the_check_and_the_commit_is_a_replay() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack.account(DUP).await;
    let now = unix_now();
    let (id, codes) = started(&stack, &main, &unique_email("free"), now).await;
    let (other, other_codes) = started(&stack, &main, &duplicate.email, now).await;
    // Both right, with the same TOTP code: the other verification spends
    // it while this one's commit is on its way.
    let gate = Gate::default();
    gate.arm("TransactWriteItems");
    let replayed = right_guess(gate.stack(&stack).await, &main, &id, &codes, now);
    gate.holding().await;
    let verified = stack
        .verify(
            &main,
            &other,
            (&other_codes.0, &other_codes.1, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(verified.body["state"], "verified", "{verified:?}");
    gate.open();
    let replayed = replayed.await.unwrap();
    assert_answer(&replayed, 422, "invalid_codes");
    assert_eq!(replayed.body["error"]["invalid"], json!(["totp_code"]));
    assert_eq!(replayed.body["error"]["attempts_remaining"], 4);
    let stored = stack.app.store.migration(&id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.failed_attempts),
        (MigrationState::CodesSent, 1)
    );
    assert_eq!(
        stack.stored_account(&main.id).await.email.unwrap().value(),
        main.email
    );
    assert!(stack.violations().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_guess_among_parallel_wrong_ones_is_evaluated_within_the_limit() {
    for _ in 0..3 {
        let stack = Arc::new(Stack::new().await);
        let main = Arc::new(stack.account(AccountSpec::default()).await);
        let now = unix_now();
        let contact = unique_contact(Channel::Email, "race");
        let (id, codes) = started(&stack, &main, &contact, now).await;
        let totp = main.totp_at(now);
        // Nine wrong guesses and the right one in the middle, all at once.
        let guesses = (0..10)
            .map(|i| {
                let (stack, main, id) = (stack.clone(), main.clone(), id.clone());
                let (new_code, current_code, totp) = if i == 5 {
                    (codes.0.clone(), codes.1.clone(), totp.clone())
                } else {
                    let wrong = format!("{:06}", 100_000 + i);
                    (wrong.clone(), wrong, "000000".to_owned())
                };
                async move {
                    stack
                        .verify(&main, &id, (&new_code, &current_code, &totp), now)
                        .await
                }
            })
            .collect();
        let answers = all(guesses).await;
        let right = &answers[5];
        let failures = answers.iter().filter(|a| a.status == 422).count() as u32;
        let stored = stack.app.store.migration(&id).await.unwrap().unwrap();
        match right.status {
            // It committed while attempts were left; the guesses after it
            // found the migration completed.
            200 => {
                assert!(failures <= 4, "{answers:?}");
                assert_eq!(stored.state, MigrationState::Completed);
                assert_eq!(stored.failed_attempts, failures + 1);
            }
            // The wrong guesses used up the attempts first.
            _ => {
                assert_answer(right, 423, "migration_locked");
                assert_eq!(failures, 5, "{answers:?}");
                assert_eq!(
                    (stored.state, stored.failed_attempts),
                    (MigrationState::Locked, 5)
                );
            }
        }
        assert!(
            answers
                .iter()
                .all(|a| [200, 409, 422, 423, 429].contains(&a.status)),
            "{answers:?}"
        );
        assert!(stack.violations().await.is_empty());
    }
}
