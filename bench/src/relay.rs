//! The relay on the local stack: how fast it drains a backlog of committed
//! migrations at a given batch size (events published per second, notices
//! included in the work), and how long an event takes from the commit to the
//! SQS queue a rule copies the bus to, with a relay polling the stream as
//! `make dev`'s does.

use end_to_end::relay::{drain, poller};
use end_to_end::Stack;
use std::time::{Duration, Instant};

use crate::flow::Inbox;
use crate::warm;

pub struct Drain {
    pub batch: i32,
    pub events: usize,
    pub elapsed: Duration,
}

impl Drain {
    pub fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// `migrations` complete migrations committed first (relay stopped), then
/// the relay drains them with batches of `batch` records.
pub async fn drain_backlog(base: &Stack, inbox: &Inbox, batch: i32, migrations: usize) -> Drain {
    let stack = Stack::new().await.with_courier(base.courier());
    warm::throughput(&stack, inbox, 4, migrations).await;
    let relay = stack.relay().await;
    let mut poller = poller(&relay).await.with_batch_size(batch);
    let started = Instant::now();
    let poll = drain(&mut poller, &relay, 50).await;
    let elapsed = started.elapsed();
    assert_eq!(poll.failed, 0, "the relay failed records: {poll:?}");
    let events = stack.events().await.len();
    assert_eq!(events, 2 * migrations, "every migration's two events");
    Drain {
        batch,
        events,
        elapsed,
    }
}

/// For `migrations` migrations one after another, the time from the close's
/// answer to its `contact.migrated.v1` on the queue, with a relay polling
/// the stream every `poll_every` in the background. Sorted.
pub async fn commit_to_queue(
    base: &Stack,
    inbox: &Inbox,
    migrations: usize,
    poll_every: Duration,
) -> Vec<Duration> {
    let stack = Stack::new().await.with_courier(base.courier());
    let relay = stack.relay().await;
    let mut poller = poller(&relay).await;
    let background = tokio::spawn(async move {
        loop {
            let _ = poller.poll(&relay).await;
            tokio::time::sleep(poll_every).await;
        }
    });
    let sink = stack.event_sink().await;
    let mut latencies = Vec::with_capacity(migrations);
    for _ in 0..migrations {
        let before = sink.events().await.len();
        warm::throughput(&stack, inbox, 1, 1).await;
        let committed = Instant::now();
        loop {
            if sink.events().await.len() >= before + 2 {
                break;
            }
            assert!(
                committed.elapsed() < Duration::from_secs(30),
                "no event on the queue 30 s after the commit"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(committed.elapsed());
    }
    background.abort();
    latencies.sort();
    latencies
}
