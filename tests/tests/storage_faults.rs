//! Faults at the DynamoDB SDK boundary at every step: throttling and
//! transaction conflicts before a request reaches the table, and responses
//! lost after a write committed. Transient faults are absorbed by the SDK's
//! standard retry policy; persistent ones fail the step with a 500 and leave
//! nothing half-written; a lost commit response never commits twice.

use contact_migration::domain::{Channel, Policy};
use end_to_end::faults::{Fault, FaultInjector, Mode};
use end_to_end::{unique_contact, unix_now, Answer, Stack, TestAccount};
use serde_json::json;

const OPERATIONS: [&str; 5] = [
    "GetItem",
    "BatchGetItem",
    "PutItem",
    "UpdateItem",
    "TransactWriteItems",
];

async fn faulty_stack() -> (Stack, FaultInjector) {
    let faults = FaultInjector::start().await;
    (Stack::with_faults(Policy::default(), &faults).await, faults)
}

/// Runs a whole migration; every answer must be a success.
async fn complete_migration(
    stack: &Stack,
    main: &TestAccount,
    duplicate: &TestAccount,
    now: i64,
) -> String {
    let (id, verified) = stack.start_and_verify(main, &duplicate.email, now).await;
    assert_eq!(verified.body["state"], "verified", "{verified:?}");
    let migrated = stack.step(main, &id, "migrate", json!({}), now).await;
    assert_eq!(migrated.status, 200, "{migrated:?}");
    let closed = stack.close_all_acknowledged(main, &id, now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    id
}

/// The operations of [`OPERATIONS`] a complete migration sends.
async fn operations_of_a_migration() -> Vec<&'static str> {
    let (stack, faults) = faulty_stack().await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    faults.take_calls();
    complete_migration(&stack, &main, &duplicate, unix_now()).await;
    let sent = faults.take_calls();
    OPERATIONS
        .into_iter()
        .filter(|operation| sent.iter().any(|s| s == operation))
        .collect()
}

#[tokio::test]
async fn transient_faults_on_every_operation_are_retried_by_the_sdk() {
    let operations = operations_of_a_migration().await;
    assert!(operations.contains(&"TransactWriteItems"), "{operations:?}");
    for operation in operations {
        for mode in [Mode::Throttle, Mode::LostResponse] {
            let (stack, faults) = faulty_stack().await;
            let main = stack.main_account(Channel::Email).await;
            let duplicate = stack.duplicate_account(Channel::Email, false).await;
            // Two failed attempts; the SDK's third succeeds.
            faults.set(vec![Fault {
                operation,
                mode,
                times: 2,
            }]);
            complete_migration(&stack, &main, &duplicate, unix_now()).await;
            assert_eq!(faults.injected(), 2, "{operation} {mode:?}");
            let violations = stack.violations().await;
            assert!(
                violations.is_empty(),
                "{operation} {mode:?}: {violations:?}"
            );
        }
    }
}

/// The steps of a migration, each a request given the migration id.
#[derive(Debug, Clone, Copy)]
enum Step {
    Start,
    Resend,
    Verify,
    Migrate,
    Close,
    Cancel,
}

struct Flow {
    stack: Stack,
    faults: FaultInjector,
    main: TestAccount,
    duplicate: TestAccount,
    id: Option<String>,
    now: i64,
}

impl Flow {
    async fn new() -> Flow {
        let (stack, faults) = faulty_stack().await;
        let main = stack.main_account(Channel::Email).await;
        let duplicate = stack.duplicate_account(Channel::Email, false).await;
        Flow {
            stack,
            faults,
            main,
            duplicate,
            id: None,
            now: unix_now(),
        }
    }

    async fn run(&mut self, step: Step) -> Answer {
        let id = self.id.clone().unwrap_or_default();
        match step {
            Step::Start => {
                let answer = self
                    .stack
                    .start(&self.main, &self.duplicate.email, self.now)
                    .await;
                if let Some(id) = answer.body["migration_id"].as_str() {
                    self.id = Some(id.to_owned());
                }
                answer
            }
            Step::Resend => {
                self.stack
                    .step(&self.main, &id, "resend", json!({}), self.now)
                    .await
            }
            Step::Verify => {
                let (new_code, current_code) = self
                    .stack
                    .codes(&self.duplicate.email, &self.main.email)
                    .await;
                let totp = self.main.totp_at(self.now);
                self.stack
                    .verify(&self.main, &id, (&new_code, &current_code, &totp), self.now)
                    .await
            }
            Step::Migrate => {
                self.stack
                    .step(&self.main, &id, "migrate", json!({}), self.now)
                    .await
            }
            Step::Close => {
                self.stack
                    .close_all_acknowledged(&self.main, &id, self.now)
                    .await
            }
            Step::Cancel => {
                self.stack
                    .call(
                        "DELETE",
                        &format!("/migrations/{id}"),
                        Some(&self.main.id),
                        None,
                        self.now,
                    )
                    .await
            }
        }
    }

    /// Runs the steps before `step` without faults.
    async fn prepare(&mut self, step: Step) {
        let before: &[Step] = match step {
            Step::Start => &[],
            Step::Resend | Step::Verify | Step::Cancel => &[Step::Start],
            Step::Migrate => &[Step::Start, Step::Verify],
            Step::Close => &[Step::Start, Step::Verify, Step::Migrate],
        };
        for s in before {
            let answer = self.run(*s).await;
            assert!(answer.status < 300, "{s:?}: {answer:?}");
        }
        if matches!(step, Step::Resend) {
            self.now += 60;
        }
        // A fresh TOTP step for a verify under test.
        self.now += 30;
    }
}

#[tokio::test]
async fn persistent_faults_at_every_step_fail_it_cleanly_and_it_can_be_retried() {
    let mut injected = 0;
    for step in [
        Step::Start,
        Step::Resend,
        Step::Verify,
        Step::Migrate,
        Step::Close,
        Step::Cancel,
    ] {
        for operation in OPERATIONS {
            let mut flow = Flow::new().await;
            flow.prepare(step).await;
            flow.faults.set(vec![Fault {
                operation,
                mode: Mode::Throttle,
                times: usize::MAX,
            }]);
            let before = flow.faults.injected();
            let failed = flow.run(step).await;
            flow.faults.clear();
            let hit = flow.faults.injected() > before;
            injected += flow.faults.injected() - before;
            if hit {
                assert!(
                    failed.status == 500 && failed.error_code() == "internal"
                        || failed.status < 300,
                    "{step:?} with {operation} throttled: {failed:?}"
                );
                assert!(
                    !failed.body.to_string().contains("Throttling"),
                    "no detail leaks: {failed:?}"
                );
            } else {
                assert!(
                    failed.status < 300,
                    "{step:?} does not use {operation}: {failed:?}"
                );
            }
            let violations = flow.stack.violations().await;
            assert!(
                violations.is_empty(),
                "{step:?} with {operation} throttled: {violations:?}"
            );
            // The same request again, faults gone: it goes through.
            if failed.status >= 300 {
                if matches!(step, Step::Verify) {
                    flow.now += 30;
                }
                if matches!(step, Step::Resend) {
                    flow.now += 60;
                }
                let retried = flow.run(step).await;
                assert!(
                    retried.status < 300,
                    "{step:?} retried after {operation} recovered: {retried:?}"
                );
            }
        }
    }
    println!("persistent faults injected: {injected}");
    assert!(injected > 0);
}

#[tokio::test]
async fn a_lost_response_after_the_closing_commit_returns_the_committed_result() {
    let mut flow = Flow::new().await;
    flow.prepare(Step::Close).await;
    flow.faults.set(vec![Fault {
        operation: "TransactWriteItems",
        mode: Mode::LostResponse,
        times: 1,
    }]);
    let closed = flow.run(Step::Close).await;
    assert_eq!(flow.faults.injected(), 1);
    assert_eq!(
        closed.status, 200,
        "the committed result, not an error: {closed:?}"
    );
    let again = flow.run(Step::Close).await;
    assert_eq!(
        again.body, closed.body,
        "a client retry gets the same result"
    );
    let violations = flow.stack.violations().await;
    assert!(violations.is_empty(), "{violations:?}");
}

#[tokio::test]
async fn a_lost_response_after_any_commit_never_applies_it_twice() {
    for step in [
        Step::Start,
        Step::Resend,
        Step::Verify,
        Step::Migrate,
        Step::Cancel,
    ] {
        let mut flow = Flow::new().await;
        flow.prepare(step).await;
        flow.faults.set(
            ["TransactWriteItems", "UpdateItem", "PutItem"]
                .into_iter()
                .map(|operation| Fault {
                    operation,
                    mode: Mode::LostResponse,
                    times: 1,
                })
                .collect(),
        );
        let answer = flow.run(step).await;
        flow.faults.clear();
        // Each write's retry carries the first attempt's idempotency token (a
        // transaction) or finds its condition already met, so the step
        // answers its committed result.
        assert!(
            answer.status < 300,
            "{step:?} with its response lost: {answer:?}"
        );
        let violations = flow.stack.violations().await;
        assert!(violations.is_empty(), "{step:?}: {violations:?}");
        // The flow can go on to a completed migration from wherever it stands.
        let got = flow
            .stack
            .call(
                "GET",
                &format!("/migrations/{}", flow.id.clone().unwrap_or_default()),
                Some(&flow.main.id),
                None,
                flow.now,
            )
            .await;
        let trail = flow
            .stack
            .app
            .store
            .audit_trail(&flow.main.id)
            .await
            .unwrap();
        let step_records = trail
            .iter()
            .filter(|r| *r["step"].as_s().unwrap() == format!("{step:?}").to_lowercase())
            .count();
        assert!(
            step_records <= 1,
            "{step:?} recorded {step_records} times: {got:?}"
        );
    }
}

#[tokio::test]
async fn a_transaction_conflict_at_close_is_retried() {
    let mut flow = Flow::new().await;
    flow.prepare(Step::Close).await;
    flow.faults.set(vec![Fault {
        operation: "TransactWriteItems",
        mode: Mode::Conflict,
        times: 1,
    }]);
    let closed = flow.run(Step::Close).await;
    assert_eq!(flow.faults.injected(), 1);
    assert_eq!(closed.status, 200, "{closed:?}");
    assert!(flow.stack.violations().await.is_empty());
}

#[tokio::test]
async fn a_fresh_contact_flow_survives_a_lost_plain_change_response() {
    let (stack, faults) = faulty_stack().await;
    let main = stack.main_account(Channel::Email).await;
    let fresh = unique_contact(Channel::Email, "lost");
    let now = unix_now();
    let started = stack.start(&main, &fresh, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack.codes(&fresh, &main.email).await;
    faults.set(vec![Fault {
        operation: "TransactWriteItems",
        mode: Mode::LostResponse,
        times: 1,
    }]);
    let verified = stack
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(faults.injected(), 1);
    // The SDK retries the transaction with the same idempotency token, and
    // DynamoDB answers the retry with the first attempt's success.
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(
        stack.stored_account(&main.id).await.email.unwrap().value(),
        fresh,
        "the change committed once"
    );
    assert!(stack.violations().await.is_empty());
}
