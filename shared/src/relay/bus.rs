//! Publishing domain events to EventBridge: at most 10 entries per
//! `PutEvents`, and of a partly failed call only the failed entries are
//! sent again.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::time::Duration;

use crate::domain::event::{DomainEvent, SOURCE};

/// EventBridge's limit of entries per `PutEvents`.
const MAX_ENTRIES: usize = 10;
/// Tries per entry within one invocation; what still fails is retried with
/// its stream record.
const ATTEMPTS: u32 = 3;

#[derive(Clone, Debug)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    name: String,
}

impl EventBus {
    pub fn new(client: aws_sdk_eventbridge::Client, name: impl Into<String>) -> EventBus {
        EventBus {
            client,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn entry(&self, event: &DomainEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.name)
            .source(SOURCE)
            .detail_type(&event.event_type)
            // Strings and JSON values only: serialising cannot fail.
            .detail(serde_json::to_string(event).unwrap_or_default())
            .build()
    }

    /// Publishes `events`; answers, for each, whether EventBridge took it.
    pub async fn publish(&self, events: &[&DomainEvent]) -> Vec<bool> {
        let mut taken = vec![false; events.len()];
        let indices: Vec<usize> = (0..events.len()).collect();
        for chunk in indices.chunks(MAX_ENTRIES) {
            let mut todo = chunk.to_vec();
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                let entries = todo.iter().map(|&i| self.entry(events[i])).collect();
                match self
                    .client
                    .put_events()
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => {
                        for (&i, result) in todo.iter().zip(out.entries()) {
                            match result.error_code() {
                                None => taken[i] = true,
                                Some(code) => tracing::warn!(
                                    event_id = %events[i].id,
                                    error_code = code,
                                    attempt,
                                    "event not taken by EventBridge"
                                ),
                            }
                        }
                    }
                    Err(e) => tracing::warn!(
                        error = %aws_sdk_eventbridge::error::DisplayErrorContext(&e),
                        attempt,
                        "PutEvents failed"
                    ),
                }
                todo.retain(|&i| !taken[i]);
                if todo.is_empty() {
                    break;
                }
            }
        }
        taken
    }
}
