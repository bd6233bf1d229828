//! The relay (PRODUCT.md §6): delivers what commits announced in the outbox.
//! The `relay` function receives the table's stream, filtered to the
//! insertion of outbox items; for each it reads the outbox item and
//!
//! - sends each security notice not yet delivered through the courier, and
//!   records its delivery on the item, once (a retried batch does not send
//!   it again);
//! - publishes each domain event not yet published to EventBridge, in the
//!   order of the account's event sequence: an account's event is published
//!   only after its predecessor, and the account's published sequence is
//!   recorded after each (a retried batch does not publish it again).
//!
//! A record whose notices or events are not all delivered is reported as a
//! batch item failure, so it is retried without blocking or replaying the
//! others' deliveries. Delivery is at least once: a process that dies
//! between a delivery and its record delivers that one again.

mod bus;
pub mod event;
#[cfg(feature = "local-relay")]
pub mod local;

pub use bus::EventBus;
pub use event::{BatchItemFailure, BatchResponse, StreamChange, StreamEvent, StreamRecord};

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::{HashMap, HashSet};
use std::future::Future;

use crate::domain::{DomainEvent, NoticeKind, PendingNotice};
use crate::notify::{Courier, DeliveryError, Message, Notice};
use crate::store::{Store, StoredOutbox};

/// Outbox items read, and notices sent (each with its record), this many at
/// a time: a batch of 100 outboxes is drained in a few round trips' time
/// rather than a few hundred, without a burst that SES's or SNS's sending
/// rate would throttle (throttled sends are retried by the SDK, then by the
/// batch's retry).
const CONCURRENCY: usize = 16;

#[derive(Clone, Debug)]
pub struct Relay {
    pub store: Store,
    pub courier: Courier,
    pub bus: EventBus,
}

fn notice_of(notice: &PendingNotice, migration_id: &str) -> Notice {
    let (new_contact, migration_id) = (notice.new_contact.clone(), migration_id.to_owned());
    match notice.kind {
        NoticeKind::ContactChanged => Notice::ContactChanged {
            new_contact,
            migration_id,
        },
        NoticeKind::ContactMigrated => Notice::ContactMigrated {
            new_contact,
            migration_id,
        },
    }
}

impl Relay {
    /// The function's handler: one batch of stream records.
    pub async fn handle(&self, event: StreamEvent) -> BatchResponse {
        let reads: Vec<_> = event
            .records
            .iter()
            .filter_map(|r| {
                Some(self.read_outbox(r.inserted_outbox()?, &r.dynamodb.sequence_number))
            })
            .collect();
        let read = bounded(reads).await;
        let mut outboxes = Vec::new();
        let mut failed: HashSet<&str> = HashSet::new();
        for (migration_id, sequence, stored) in read {
            match stored {
                Ok(Some(stored)) => outboxes.push((sequence, stored)),
                // Expired long after its delivery: nothing left to do.
                Ok(None) => tracing::warn!(migration_id, "outbox item no longer stored"),
                Err(e) => {
                    tracing::error!(migration_id, error = %e, "outbox item not read");
                    failed.insert(sequence);
                }
            }
        }
        let undelivered = self.deliver(&outboxes).await;
        failed.extend(
            outboxes
                .iter()
                .filter(|(_, stored)| undelivered.contains(&stored.outbox.migration_id))
                .map(|(sequence, _)| *sequence),
        );
        BatchResponse {
            batch_item_failures: event
                .records
                .iter()
                .map(|r| &r.dynamodb.sequence_number)
                .filter(|sequence| failed.contains(sequence.as_str()))
                .map(|sequence| BatchItemFailure {
                    item_identifier: sequence.clone(),
                })
                .collect(),
        }
    }

    /// Delivers the outboxes of the given migrations again, whatever the
    /// stream did (an operator's `admin redeliver`): what was delivered is
    /// skipped. Answers the migrations whose outbox is not all delivered.
    pub async fn redeliver(&self, migration_ids: &[String]) -> Result<Vec<String>, String> {
        let mut outboxes = Vec::new();
        for id in migration_ids {
            match self.store.outbox(id).await {
                Ok(Some(stored)) => outboxes.push((id.clone(), stored)),
                Ok(None) => return Err(format!("migration {id} has no outbox")),
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut undelivered: Vec<String> = self.deliver(&outboxes).await.into_iter().collect();
        undelivered.sort();
        Ok(undelivered)
    }

    /// Notices and events of `outboxes`; answers the migrations whose
    /// outbox is not all delivered.
    async fn deliver<K>(&self, outboxes: &[(K, StoredOutbox)]) -> HashSet<String> {
        let notices = outboxes.iter().flat_map(|(_, stored)| {
            let id = stored.outbox.migration_id.as_str();
            stored
                .outbox
                .notices
                .iter()
                .filter(|notice| !stored.delivered.contains_key(&notice.id))
                .map(move |notice| (id, notice))
        });
        let sends: Vec<_> = notices
            .map(|(id, notice)| self.send_notice(id, notice))
            .collect();
        let mut undelivered: HashSet<String> = bounded(sends)
            .await
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect();
        let events: Vec<(&DomainEvent, &str)> = outboxes
            .iter()
            .flat_map(|(_, stored)| {
                let id = stored.outbox.migration_id.as_str();
                stored.outbox.events.iter().map(move |e| (e, id))
            })
            .collect();
        undelivered.extend(self.publish_in_order(events).await);
        undelivered
    }

    /// The outbox item a stream record announced, with the record's
    /// sequence number.
    async fn read_outbox<'a>(
        &self,
        migration_id: &'a str,
        sequence: &'a str,
    ) -> (
        &'a str,
        &'a str,
        Result<Option<StoredOutbox>, crate::domain::Error>,
    ) {
        (
            migration_id,
            sequence,
            self.store.outbox(migration_id).await,
        )
    }

    /// Sends one notice of `migration_id`'s outbox and records it; answers
    /// `None` when it is delivered (or refused for good) and recorded,
    /// otherwise the migration.
    async fn send_notice<'a>(
        &self,
        migration_id: &'a str,
        notice: &PendingNotice,
    ) -> Option<&'a str> {
        let message = Message::Notice(notice_of(notice, migration_id));
        let outcome = match self.courier.deliver(&notice.to, &message).await {
            Ok(()) => "sent",
            // Never deliverable (an SMS destination outside the allowed
            // countries): recorded, so it is not retried forever.
            Err(DeliveryError::Refused(reason)) => {
                tracing::warn!(migration_id, notice = %notice.id, recipient = %notice.to.masked(), reason, "security notice refused");
                "refused"
            }
            Err(e) => {
                tracing::warn!(migration_id, notice = %notice.id, channel = %notice.to.channel(), recipient = %notice.to.masked(), error = %e, "security notice not delivered; retried");
                return Some(migration_id);
            }
        };
        if let Err(e) = self
            .store
            .record_notice(migration_id, &notice.id, outcome)
            .await
        {
            tracing::error!(migration_id, notice = %notice.id, error = %e, "delivery of a notice not recorded");
            return Some(migration_id);
        }
        None
    }

    /// Publishes the events not yet published, each account's in sequence
    /// order; answers the migrations with an event left unpublished.
    async fn publish_in_order(&self, events: Vec<(&DomainEvent, &str)>) -> HashSet<String> {
        let mut accounts: Vec<&str> = events.iter().map(|(e, _)| e.subject.as_str()).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let mut published: HashMap<&str, u64> = match self.store.event_heads(&accounts).await {
            Ok(heads) => accounts
                .iter()
                .zip(heads)
                .map(|(&account, (_, published))| (account, published))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "event heads not read");
                return events.iter().map(|(_, id)| (*id).to_owned()).collect();
            }
        };
        let mut pending = events;
        loop {
            pending.retain(|(e, _)| e.sequence_number() > published[e.subject.as_str()]);
            // Each account's next event, if it is here: one a round.
            let ready: Vec<&DomainEvent> = pending
                .iter()
                .map(|(e, _)| *e)
                .filter(|e| e.sequence_number() == published[e.subject.as_str()] + 1)
                .collect();
            if ready.is_empty() {
                break;
            }
            let taken = self.bus.publish(&ready).await;
            // Each account's record of its own event: one per account, so
            // they go out together.
            let records: Vec<_> = ready
                .into_iter()
                .zip(taken)
                .filter(|(_, taken)| *taken)
                .map(|(event, _)| self.record_published(event))
                .collect();
            let mut progressed = false;
            for event in bounded(records).await.into_iter().flatten() {
                published.insert(event.subject.as_str(), event.sequence_number());
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        for (event, migration_id) in &pending {
            tracing::warn!(migration_id, event_id = %event.id, "event not published yet; retried");
        }
        pending.iter().map(|(_, id)| (*id).to_owned()).collect()
    }

    /// Records `event` as its account's last published; answers it if recorded.
    async fn record_published<'a>(&self, event: &'a DomainEvent) -> Option<&'a DomainEvent> {
        match self
            .store
            .record_published(&event.subject, event.sequence_number())
            .await
        {
            Ok(_) => Some(event),
            Err(e) => {
                tracing::error!(event_id = %event.id, error = %e, "publication not recorded; the event will be published again");
                None
            }
        }
    }
}

/// Runs `futures` at most [`CONCURRENCY`] at a time; their outputs, in the
/// order they finish.
async fn bounded<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut waiting = futures.into_iter();
    let mut running: FuturesUnordered<F> = waiting.by_ref().take(CONCURRENCY).collect();
    let mut outputs = Vec::new();
    while let Some(output) = running.next().await {
        outputs.push(output);
        running.extend(waiting.next());
    }
    outputs
}
