//! The quotas of PRODUCT.md §4, each at its boundary and under parallel
//! requests: stored in DynamoDB, taken with conditional writes, so no number
//! of concurrent requests gets past one.

use contact_migration::domain::{Channel, Policy, Timestamp};
use end_to_end::{all, unique_email, unix_now, Answer, Stack, TestAccount};
use serde_json::json;
use std::sync::Arc;

fn count(answers: &[Answer], status: u16) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

#[tokio::test]
async fn an_account_starts_at_most_five_migrations_a_day() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let now = unix_now();
    for i in 0..5 {
        let started = stack.start(&main, &unique_email("q"), now + i).await;
        assert_eq!(started.status, 201, "start {}: {started:?}", i + 1);
    }
    let sixth = stack.start(&main, &unique_email("q"), now + 10).await;
    assert_eq!((sixth.status, sixth.error_code()), (429, "rate_limited"));
    assert_eq!(
        sixth.retry_after.as_deref(),
        Some((86_400 - 10).to_string().as_str())
    );
    let next_day = stack.start(&main, &unique_email("q"), now + 86_400).await;
    assert_eq!(next_day.status, 201, "the window slides: {next_day:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_starts_cannot_exceed_the_daily_quota() {
    let stack = Arc::new(Stack::new().await);
    let main = Arc::new(stack.main_account(Channel::Email).await);
    let now = unix_now();
    let starts = (0..12)
        .map(|_| {
            let (stack, main) = (stack.clone(), main.clone());
            async move { stack.start(&main, &unique_email("p"), now).await }
        })
        .collect();
    let answers = all(starts).await;
    assert_eq!(count(&answers, 201), 5, "{answers:?}");
    assert_eq!(count(&answers, 429), 7, "{answers:?}");
}

/// A policy where only the send quotas can bind.
fn sends_policy() -> Policy {
    let mut policy = Policy::default();
    policy.starts_per_account.limit = 100;
    policy
}

/// A main account whose email has had the five code messages of the day
/// one account may have sent to it: five starts, each sending the current
/// contact's code to it (starts do not bind).
async fn five_messages_sent() -> (Stack, TestAccount, Timestamp) {
    let stack = Stack::with_policy(sends_policy()).await;
    let main = stack.main_account(Channel::Email).await;
    let now = unix_now();
    for i in 0..5 {
        let started = stack.start(&main, &unique_email("s"), now + i).await;
        assert_eq!(started.status, 201, "send {}: {started:?}", i + 1);
    }
    (stack, main, now)
}

#[tokio::test]
async fn one_requester_sends_to_one_contact_at_most_five_times_a_day() {
    let stack = Stack::with_policy(sends_policy()).await;
    let (a, b) = (
        stack.main_account(Channel::Email).await,
        stack.main_account(Channel::Email).await,
    );
    let target = unique_email("target");
    let now = unix_now();
    for i in 0..5 {
        let started = stack.start(&a, &target, now + i).await;
        assert_eq!(started.status, 201, "send {}: {started:?}", i + 1);
    }
    let sixth = stack.start(&a, &target, now + 10).await;
    assert_eq!((sixth.status, sixth.error_code()), (429, "rate_limited"));
    assert_eq!(
        sixth.retry_after.as_deref(),
        Some((86_400 - 10).to_string().as_str())
    );
    assert_eq!(stack.emails_to(&target).await.len(), 5, "no sixth message");
    // The limit is the requester's, not the contact's: another account is
    // still served, and the first one again a day after its first send.
    let other = stack.start(&b, &target, now + 10).await;
    assert_eq!(other.status, 201, "{other:?}");
    let next_day = stack.start(&a, &target, now + 86_400).await;
    assert_eq!(next_day.status, 201, "the window slides: {next_day:?}");
}

#[tokio::test]
async fn resends_count_against_the_requesters_quota() {
    let stack = Stack::with_policy(sends_policy()).await;
    let main = stack.main_account(Channel::Email).await;
    let target = unique_email("resent");
    let now = unix_now();
    let started = stack.start(&main, &target, now).await;
    assert_eq!(started.status, 201, "{started:?}");
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    for i in 1..4 {
        let resent = stack
            .step(&main, &id, "resend", json!({}), now + 60 * i)
            .await;
        assert_eq!(resent.status, 200, "resend {i}: {resent:?}");
    }
    let fifth = stack.start(&main, &target, now + 240).await;
    assert_eq!(fifth.status, 201, "{fifth:?}");
    // The migration may still resend, but not past the day's five.
    let sixth = stack.step(&main, &id, "resend", json!({}), now + 300).await;
    assert_eq!((sixth.status, sixth.error_code()), (429, "rate_limited"));
    assert_eq!(stack.emails_to(&target).await.len(), 5);
}

/// Contact `target` has had the code messages of the day that all
/// requesters together may send it: four other accounts, five new-contact
/// codes each.
async fn global_cap_reached(stack: &Stack, target: &str, now: Timestamp) {
    let per_requester = stack.app.policy.sends_per_contact_per_requester.limit;
    let requesters = stack.app.policy.sends_per_contact.limit / per_requester;
    for r in 0..requesters {
        let other = stack.main_account(Channel::Email).await;
        for i in 0..per_requester {
            let started = stack.start(&other, target, now + i64::from(i)).await;
            assert_eq!(started.status, 201, "requester {r} send {i}: {started:?}");
        }
    }
}

#[tokio::test]
async fn all_requesters_together_hit_the_global_cap() {
    let stack = Stack::new().await;
    assert_eq!(stack.app.policy.sends_per_contact.limit, 20);
    let target = unique_email("global");
    let now = unix_now();
    global_cap_reached(&stack, &target, now).await;
    assert_eq!(stack.emails_to(&target).await.len(), 20);
    let late = stack.main_account(Channel::Email).await;
    let refused = stack.start(&late, &target, now + 10).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (429, "rate_limited"),
        "{refused:?}"
    );
    assert!(refused.retry_after.is_some());
    assert_eq!(stack.emails_to(&target).await.len(), 20, "no 21st message");
    assert_eq!(
        quota_events(&stack, "starts", &late.id).await,
        0,
        "the refused start took nothing from the late requester"
    );
}

#[tokio::test]
async fn a_contacts_own_account_is_never_locked_out_by_other_accounts_requests() {
    let stack = Stack::new().await;
    let owner = stack.main_account(Channel::Email).await;
    let now = unix_now();
    // Other accounts ask for codes to the owner's email until no one else may.
    global_cap_reached(&stack, &owner.email, now).await;
    let stranger = stack.main_account(Channel::Email).await;
    let refused = stack.start(&stranger, &owner.email, now + 10).await;
    assert_eq!(refused.status, 429, "the cap is reached: {refused:?}");
    // The owner's own migration sends its current-contact code to that
    // email all the same, and the owner can complete it.
    let fresh = unique_email("own");
    let (_, verified) = stack.start_and_verify(&owner, &fresh, now + 20).await;
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["state"], "completed", "{verified:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_sends_to_one_contact_cannot_exceed_the_quota() {
    let stack = Arc::new(Stack::with_policy(sends_policy()).await);
    let main = Arc::new(stack.main_account(Channel::Email).await);
    let now = unix_now();
    let starts = (0..16)
        .map(|_| {
            let (stack, main) = (stack.clone(), main.clone());
            async move { stack.start(&main, &unique_email("ps"), now).await }
        })
        .collect();
    let answers = all(starts).await;
    assert_eq!(count(&answers, 201), 5, "{answers:?}");
    assert_eq!(stack.emails_to(&main.email).await.len(), 5);
}

/// A policy where only the per-account failure quota can bind.
fn failures_policy() -> Policy {
    let mut policy = Policy::default();
    policy.starts_per_account.limit = 100;
    policy.sends_per_contact_per_requester.limit = 100;
    policy.sends_per_contact.limit = 100;
    policy
}

#[tokio::test]
async fn an_account_fails_verification_at_most_ten_times_a_day() {
    let stack = Stack::with_policy(failures_policy()).await;
    let main = stack.main_account(Channel::Email).await;
    let now = unix_now();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let started = stack.start(&main, &unique_email("f"), now).await;
        ids.push(started.body["migration_id"].as_str().unwrap().to_owned());
    }
    // 4 + 4 + 2 failures across three migrations.
    for (id, failures) in ids.iter().zip([4, 4, 2]) {
        for _ in 0..failures {
            let answer = stack
                .verify(&main, id, ("000000", "000000", "000000"), now)
                .await;
            assert_eq!(answer.status, 422, "{answer:?}");
        }
    }
    // The eleventh attempt is refused before any code is checked, even a right one.
    let fresh = unique_email("f");
    let started = stack.start(&main, &fresh, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack.codes(&fresh, &main.email).await;
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
        (429, "rate_limited"),
        "{refused:?}"
    );
    let stored = stack.app.store.migration(id).await.unwrap().unwrap();
    assert_eq!(
        stored.failed_attempts, 0,
        "the refused attempt was not counted against the migration"
    );
}

#[tokio::test]
async fn a_successful_verification_is_not_a_failure() {
    let stack = Stack::with_policy(failures_policy()).await;
    let main = stack.main_account(Channel::Email).await;
    let now = unix_now();
    // Contacts bound to other accounts: verification leaves the main
    // account's own contact, where its codes go, as it is.
    for i in 0..12 {
        let duplicate = stack.duplicate_account(Channel::Email, false).await;
        let at = now + 30 * i;
        let (_, verified) = stack.start_and_verify(&main, &duplicate.email, at).await;
        assert_eq!(verified.status, 200, "verification {}: {verified:?}", i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_failures_cannot_exceed_the_account_quota() {
    let stack = Arc::new(Stack::with_policy(failures_policy()).await);
    let main = Arc::new(stack.main_account(Channel::Email).await);
    let now = unix_now();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let started = stack.start(&main, &unique_email("pf"), now).await;
        ids.push(started.body["migration_id"].as_str().unwrap().to_owned());
    }
    let guesses = (0..24)
        .map(|i| {
            let (stack, main, id) = (stack.clone(), main.clone(), ids[i % 4].clone());
            async move {
                stack
                    .verify(&main, &id, ("000000", "000000", "000000"), now)
                    .await
            }
        })
        .collect();
    let answers = all(guesses).await;
    assert!(count(&answers, 422) <= 10, "{answers:?}");
    let mut failed = 0;
    for id in &ids {
        failed += stack
            .app
            .store
            .migration(id)
            .await
            .unwrap()
            .unwrap()
            .failed_attempts;
    }
    assert!(failed <= 10, "{failed} failed attempts were checked");
    assert_eq!(failed as usize, count(&answers, 422));
}

#[tokio::test]
async fn resend_inside_the_cooldown_is_rate_limited() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let now = unix_now();
    let started = stack.start(&main, &unique_email("c"), now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let early = stack.step(&main, id, "resend", json!({}), now + 59).await;
    assert_eq!(
        (early.status, early.retry_after.as_deref()),
        (429, Some("1"))
    );
    let on_time = stack.step(&main, id, "resend", json!({}), now + 60).await;
    assert_eq!(on_time.status, 200, "{on_time:?}");
}

async fn quota_events(stack: &Stack, kind: &str, subject: &str) -> usize {
    stack.quota_events(kind, subject).await
}

#[tokio::test]
async fn a_refused_start_takes_nothing_from_the_other_quotas() {
    let (stack, main, now) = five_messages_sent().await;
    assert_eq!(quota_events(&stack, "starts", &main.id).await, 5);
    // Refused by the main account's quota for its own email ...
    let new_contact = unique_email("r");
    let refused = stack.start(&main, &new_contact, now + 20).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (429, "rate_limited")
    );
    // ... it used neither a start nor a send to the new contact.
    assert_eq!(quota_events(&stack, "starts", &main.id).await, 5);
    let own = format!("{}#email#{}", main.id, main.email);
    assert_eq!(quota_events(&stack, "requester_sends", &own).await, 5);
    assert_eq!(
        quota_events(&stack, "sends", &format!("email#{}", main.email)).await,
        0,
        "the current contact's codes never count against the global cap"
    );
    assert_eq!(
        quota_events(&stack, "sends", &format!("email#{new_contact}")).await,
        0
    );
    let mine = format!("{}#email#{new_contact}", main.id);
    assert_eq!(quota_events(&stack, "requester_sends", &mine).await, 0);
}
