//! Warm latency of each step (the handler in-process, against DynamoDB Local
//! and the emulators, codes from the SES emulator) and throughput of complete
//! migrations at several concurrency levels.

use contact_migration::notify::Courier;
use end_to_end::{
    local_config, ses_endpoint, sns_client, sns_endpoint, unique_email, unix_now, Stack,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::flow::{self, call, expect, CodeTrap, Inbox, Pair, Req};
use contact_migration::http::Endpoint;

/// `migrations` complete flows one after another; every step timed in the
/// handler alone (account set-up and reading codes are not timed).
pub async fn latency(stack: &Stack, migrations: usize) -> BTreeMap<Endpoint, Vec<Duration>> {
    let app = &stack.app;
    let inbox = Inbox::emulator();
    let mut samples: BTreeMap<Endpoint, Vec<Duration>> = BTreeMap::new();
    let mut record = |step: Endpoint, took: Duration| samples.entry(step).or_default().push(took);
    for i in 0..migrations {
        let now = unix_now();
        let later = now + app.policy.resend_cooldown + 1;
        let pair = flow::pair(stack).await;
        let main = pair.main.id.clone();

        let started = expect(app, &main, &Req::start(&pair.duplicate.email), now, 201).await;
        record(Endpoint::Start, started.took);
        let id = started.body["migration_id"].as_str().unwrap().to_owned();
        inbox
            .codes(&pair.duplicate.email, &pair.main, now - 2)
            .await;
        record(
            Endpoint::Resend,
            expect(app, &main, &Req::resend(&id), later, 200).await.took,
        );
        let codes = inbox
            .codes(&pair.duplicate.email, &pair.main, unix_now() - 2)
            .await;
        let prepared = flow::Prepared { pair, id, codes };
        let id = &prepared.id;
        for (step, req) in [
            (Endpoint::Verify, prepared.verify(later)),
            (Endpoint::Migrate, Req::migrate(id)),
            (Endpoint::Close, Req::close(id)),
            (Endpoint::Get, Req::get(id)),
        ] {
            record(step, expect(app, &main, &req, later, 200).await.took);
        }
        let other = expect(app, &main, &Req::start(&unique_email("cancel")), now, 201).await;
        let other = other.body["migration_id"].as_str().unwrap().to_owned();
        record(
            Endpoint::Cancel,
            expect(app, &main, &Req::cancel(&other), now, 200)
                .await
                .took,
        );
        if (i + 1) % 10 == 0 {
            eprint!(".");
        }
    }
    eprintln!();
    for v in samples.values_mut() {
        v.sort();
    }
    samples
}

pub struct Throughput {
    pub concurrency: usize,
    pub migrations: usize,
    pub elapsed: Duration,
    /// Sorted durations of whole migrations (start to close).
    pub per_migration: Vec<Duration>,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.migrations as f64 / self.elapsed.as_secs_f64()
    }
}

/// The stack with codes read off the `SendEmail` requests: at high
/// concurrency, polling the emulator's store would cost the machine more than
/// the service under test does.
pub async fn trapping_stack(stack: &Stack) -> (Stack, Inbox) {
    let trap = CodeTrap::default();
    let aws = local_config().await;
    let ses = aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(&aws)
            .endpoint_url(ses_endpoint())
            .interceptor(trap.clone())
            .build(),
    );
    let courier = Courier::new(
        ses,
        end_to_end::SENDER,
        sns_client(&aws, &sns_endpoint()),
        None,
    );
    (stack.with_courier(courier), Inbox::Trap(trap))
}

/// `migrations` complete migrations (start, verify, migrate, close) by
/// `concurrency` clients at once. Accounts are created before the clock starts.
pub async fn throughput(
    stack: &Stack,
    inbox: &Inbox,
    concurrency: usize,
    migrations: usize,
) -> Throughput {
    let mut pairs = Vec::with_capacity(migrations);
    for _ in 0..migrations {
        pairs.push(flow::pair(stack).await);
    }
    let queue: Arc<Mutex<Vec<Pair>>> = Arc::new(Mutex::new(pairs));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (stack, inbox, queue) = (Stack::of(stack.app.clone()), inbox.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            let mut durations = Vec::new();
            loop {
                let Some(pair) = queue.lock().unwrap().pop() else {
                    return durations;
                };
                let began = Instant::now();
                migrate_fully(&stack, &inbox, pair).await;
                durations.push(began.elapsed());
            }
        }));
    }
    let mut per_migration = Vec::new();
    for worker in workers {
        per_migration.extend(worker.await.expect("a worker finished"));
    }
    let elapsed = started.elapsed();
    per_migration.sort();
    Throughput {
        concurrency,
        migrations: per_migration.len(),
        elapsed,
        per_migration,
    }
}

async fn migrate_fully(stack: &Stack, inbox: &Inbox, pair: Pair) {
    let app = &stack.app;
    let now = unix_now();
    let main = pair.main.id.clone();
    let started = expect(app, &main, &Req::start(&pair.duplicate.email), now, 201).await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    let codes = inbox
        .codes(&pair.duplicate.email, &pair.main, now - 2)
        .await;
    let prepared = flow::Prepared { pair, id, codes };
    let answer = call(app, &main, &prepared.verify(now), now).await;
    assert_eq!(answer.status, 200, "verify: {}", answer.body);
    expect(app, &main, &Req::migrate(&prepared.id), now, 200).await;
    expect(app, &main, &Req::close(&prepared.id), now, 200).await;
}
