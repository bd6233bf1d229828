//! Races: concurrent requests against one DynamoDB Local table. The
//! invariants hold because every state change is one conditional write or
//! one transaction, not because requests happen to arrive in order.

use contact_migration::domain::{AccountStatus, Channel, Contact};
use end_to_end::{all, unique_email, unix_now, AccountSpec, Stack};
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
