//! The transactional outbox (PRODUCT.md §6): what a commit must announce,
//! written by the same transaction as the commit, so a cancelled commit
//! announces nothing and a committed one cannot lose its announcements. The
//! relay function delivers them: the security notices through the courier,
//! the domain events through EventBridge.
//!
//! A migration commits at most one announcing change (a close, a plain
//! change or a lock are all final), so it has at most one outbox.

use super::event::DomainEvent;
use super::{Contact, Migration, Timestamp};

/// Which security notice; the texts are the courier's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A plain change: to the previous contact and the new one.
    ContactChanged,
    /// A migration: to the previous contact, the moved one and the closed
    /// duplicate's other contact.
    ContactMigrated,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::ContactChanged => "contact_changed",
            NoticeKind::ContactMigrated => "contact_migrated",
        }
    }

    pub fn parse(value: &str) -> Option<NoticeKind> {
        [NoticeKind::ContactChanged, NoticeKind::ContactMigrated]
            .into_iter()
            .find(|k| k.as_str() == value)
    }
}

/// One notice to one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotice {
    /// Unique within the outbox; deliveries are recorded under it.
    pub id: String,
    pub kind: NoticeKind,
    pub to: Contact,
    /// The contact the notice is about (the migration's new contact).
    pub new_contact: Contact,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outbox {
    pub migration_id: String,
    pub created_at: Timestamp,
    pub notices: Vec<PendingNotice>,
    pub events: Vec<DomainEvent>,
}

/// The next event sequence of an account: the last one committed plus one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence {
    pub committed: u64,
}

impl Sequence {
    pub fn next(self) -> u64 {
        self.committed + 1
    }
}

fn notices(m: &Migration, kind: NoticeKind, to: &[&Contact]) -> Vec<PendingNotice> {
    to.iter()
        .enumerate()
        .map(|(i, contact)| PendingNotice {
            id: format!("notice-{i}"),
            kind,
            to: (*contact).clone(),
            new_contact: m.new_contact.clone(),
        })
        .collect()
}

impl Outbox {
    /// A committed close: notices to the main account's previous contact,
    /// the moved contact and the closed duplicate's other contact;
    /// `contact.migrated.v1` about the main account and `account.closed.v1`
    /// about the duplicate.
    pub fn closure(
        m: &Migration,
        duplicate: &str,
        sequences: (Sequence, Sequence),
        at: Timestamp,
        withdrawal_hold: i64,
    ) -> Outbox {
        let (main_sequence, duplicate_sequence) = sequences;
        let to: Vec<&Contact> = m
            .previous_contact
            .iter()
            .chain([&m.new_contact])
            .chain(m.duplicate_other_contact.iter())
            .collect();
        Outbox {
            migration_id: m.migration_id.clone(),
            created_at: at,
            notices: notices(m, NoticeKind::ContactMigrated, &to),
            events: vec![
                DomainEvent::contact_migrated(
                    &m.migration_id,
                    m.channel,
                    (&m.account_id, main_sequence.next()),
                    duplicate,
                    at,
                    at + withdrawal_hold,
                ),
                DomainEvent::account_closed(
                    &m.migration_id,
                    m.channel,
                    (duplicate, duplicate_sequence.next()),
                    &m.account_id,
                    at,
                ),
            ],
        }
    }

    /// A plain change committed at verify: notices to the previous contact
    /// (if any) and the new one; `contact.changed.v1`.
    pub fn plain_change(
        m: &Migration,
        previous: Option<&Contact>,
        sequence: Sequence,
        at: Timestamp,
        withdrawal_hold: i64,
    ) -> Outbox {
        let to: Vec<&Contact> = previous.into_iter().chain([&m.new_contact]).collect();
        Outbox {
            migration_id: m.migration_id.clone(),
            created_at: at,
            notices: notices(m, NoticeKind::ContactChanged, &to),
            events: vec![DomainEvent::contact_changed(
                &m.migration_id,
                m.channel,
                (&m.account_id, sequence.next()),
                at,
                at + withdrawal_hold,
            )],
        }
    }

    /// A migration locked: `migration.locked.v1`, no notice (the owner sees
    /// the lock in the answer that caused it).
    pub fn lock(m: &Migration, sequence: Sequence, failed_attempts: u32, at: Timestamp) -> Outbox {
        Outbox {
            migration_id: m.migration_id.clone(),
            created_at: at,
            notices: Vec::new(),
            events: vec![DomainEvent::migration_locked(
                &m.migration_id,
                m.channel,
                (&m.account_id, sequence.next()),
                failed_attempts,
                at,
            )],
        }
    }

    /// The accounts whose event sequence this outbox advances, with the
    /// sequence it advances each to.
    pub fn sequences(&self) -> Vec<(&str, u64)> {
        self.events
            .iter()
            .map(|e| (e.subject.as_str(), e.sequence_number()))
            .collect()
    }
}
