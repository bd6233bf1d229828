//! Concurrency stress: repeated trials of the races that matter, each
//! followed by the table's invariants. `STRESS_TRIALS` (or `SOAK_TRIALS`, set by `make soak`) trials per race
//! (default 3; `make soak` raises it); the outcome counts are printed.

use contact_migration::domain::{Channel, Policy};
use end_to_end::{all, unique_email, unix_now, Answer, Stack, TestAccount};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

fn trials() -> usize {
    ["STRESS_TRIALS", "SOAK_TRIALS"]
        .iter()
        .find_map(|name| std::env::var(name).ok().and_then(|v| v.parse().ok()))
        .unwrap_or(3)
}

fn tally(outcomes: &mut BTreeMap<String, usize>, answers: &[Answer]) {
    for a in answers {
        *outcomes
            .entry(format!("{} {}", a.status, a.error_code()))
            .or_default() += 1;
    }
}

async fn assert_sound(stack: &Stack) {
    let violations = stack.violations().await;
    assert!(violations.is_empty(), "{violations:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_right_verifies_succeed_exactly_once() {
    let mut outcomes = BTreeMap::new();
    for _ in 0..trials() {
        let stack = Arc::new(Stack::new().await);
        let main = Arc::new(stack.main_account(Channel::Email).await);
        let duplicate = stack.duplicate_account(Channel::Email, false).await;
        let now = unix_now();
        let started = stack.start(&main, &duplicate.email, now).await;
        let id = started.body["migration_id"].as_str().unwrap().to_owned();
        let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
        let totp = main.totp_at(now);
        let answers = all((0..12)
            .map(|_| {
                let (stack, main, id) = (stack.clone(), main.clone(), id.clone());
                let codes = (new_code.clone(), current_code.clone(), totp.clone());
                async move {
                    stack
                        .verify(&main, &id, (&codes.0, &codes.1, &codes.2), now)
                        .await
                }
            })
            .collect())
        .await;
        assert_eq!(
            answers.iter().filter(|a| a.status == 200).count(),
            1,
            "{answers:?}"
        );
        tally(&mut outcomes, &answers);
        assert_sound(&stack).await;
        stack.drop_table().await;
    }
    println!(
        "stress verify: {} trials x 12 concurrent right verifies: {outcomes:?}",
        trials()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_closes_of_migrations_of_one_contact_have_one_winner() {
    let mut outcomes = BTreeMap::new();
    for _ in 0..trials() {
        let stack = Arc::new(Stack::new().await);
        let duplicate = stack.duplicate_account(Channel::Email, false).await;
        let now = unix_now();
        let mut mains: Vec<(Arc<TestAccount>, String)> = Vec::new();
        for _ in 0..4 {
            let main = Arc::new(stack.main_account(Channel::Email).await);
            let (id, verified) = stack.start_and_verify(&main, &duplicate.email, now).await;
            assert_eq!(verified.body["eligible"], true, "{verified:?}");
            assert_eq!(
                stack
                    .step(&main, &id, "migrate", json!({}), now)
                    .await
                    .status,
                200
            );
            mains.push((main, id));
        }
        // Each main account closes its migration three times at once.
        let closes = mains
            .iter()
            .flat_map(|(main, id)| std::iter::repeat_n((main.clone(), id.clone()), 3))
            .map(|(main, id)| {
                let stack = stack.clone();
                async move { stack.close_all_acknowledged(&main, &id, now).await }
            })
            .collect();
        let answers = all(closes).await;
        let winners: std::collections::HashSet<String> = answers
            .iter()
            .filter(|a| a.status == 200)
            .map(|a| a.body.to_string())
            .collect();
        assert_eq!(winners.len(), 1, "one migration committed: {answers:?}");
        assert!(
            answers.iter().all(|a| a.status == 200 || a.status == 409),
            "{answers:?}"
        );
        tally(&mut outcomes, &answers);
        assert_sound(&stack).await;
        stack.drop_table().await;
    }
    println!(
        "stress close: {} trials x 4 migrations x 3 concurrent closes: {outcomes:?}",
        trials()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_never_exceed_the_quota() {
    let mut outcomes = BTreeMap::new();
    for _ in 0..trials() {
        let stack = Arc::new(Stack::with_policy(Policy::default()).await);
        let main = Arc::new(stack.main_account(Channel::Email).await);
        let now = unix_now();
        let answers = all((0..15)
            .map(|_| {
                let (stack, main) = (stack.clone(), main.clone());
                async move { stack.start(&main, &unique_email("stress"), now).await }
            })
            .collect())
        .await;
        assert_eq!(
            answers.iter().filter(|a| a.status == 201).count(),
            5,
            "{answers:?}"
        );
        tally(&mut outcomes, &answers);
        assert_sound(&stack).await;
        stack.drop_table().await;
    }
    println!(
        "stress start: {} trials x 15 concurrent starts: {outcomes:?}",
        trials()
    );
}
