//! Domain events (PRODUCT.md §6): what the rest of the exchange must learn of
//! a commit, as CloudEvents 1.0 objects. They are built with the commit,
//! stored with it (the outbox, [`super::Outbox`]) and published by the relay
//! as the `Detail` of EventBridge entries. Their schemas are in
//! `docs/asyncapi.yaml`.
//!
//! Every id is deterministic (the migration id and the type: a migration
//! commits each type at most once), so consumers deduplicate on it. Every
//! event is about one account (`subject`) and carries that account's
//! `sequence`, which increases by one with each event about the account, so
//! consumers can order them and notice a gap. Events carry ids, the channel
//! and timestamps: never a contact value, a code or a secret.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{rfc3339, Channel, Timestamp};

/// `Source` of the EventBridge entries and `source` of the CloudEvents.
pub const SOURCE: &str = "contact-migration";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A close committed: the contact moved from the duplicate to the main
    /// account. About the main account.
    ContactMigrated,
    /// The same commit closed the duplicate, permanently. About the duplicate.
    AccountClosed,
    /// A plain change committed at verify. About the main account.
    ContactChanged,
    /// A migration locked after too many failed attempts. About its owner.
    MigrationLocked,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::ContactMigrated,
        EventType::AccountClosed,
        EventType::ContactChanged,
        EventType::MigrationLocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ContactMigrated => "contact.migrated.v1",
            EventType::AccountClosed => "account.closed.v1",
            EventType::ContactChanged => "contact.changed.v1",
            EventType::MigrationLocked => "migration.locked.v1",
        }
    }

    pub fn parse(value: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// Width of the zero-padded `sequence`: the CloudEvents sequence extension
/// is a string compared lexicographically, so the padding makes that order
/// the numeric order.
const SEQUENCE_DIGITS: usize = 12;

pub fn sequence_string(sequence: u64) -> String {
    format!("{sequence:0SEQUENCE_DIGITS$}")
}

/// One CloudEvents 1.0 object, in its JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The account the event is about.
    pub subject: String,
    pub time: String,
    /// The CloudEvents `sequence` extension: this event's place among the
    /// events about `subject`, from 1, zero-padded.
    pub sequence: String,
    pub datacontenttype: String,
    pub data: serde_json::Value,
}

impl DomainEvent {
    fn new(
        event_type: EventType,
        migration_id: &str,
        subject: &str,
        sequence: u64,
        at: Timestamp,
        data: serde_json::Value,
    ) -> DomainEvent {
        DomainEvent {
            specversion: "1.0".into(),
            id: format!("{migration_id}/{}", event_type.as_str()),
            source: SOURCE.into(),
            event_type: event_type.as_str().into(),
            subject: subject.into(),
            time: rfc3339(at),
            sequence: sequence_string(sequence),
            datacontenttype: "application/json".into(),
            data,
        }
    }

    pub fn kind(&self) -> Option<EventType> {
        EventType::parse(&self.event_type)
    }

    /// The numeric value of `sequence`.
    pub fn sequence_number(&self) -> u64 {
        self.sequence.parse().unwrap_or(0)
    }

    /// `contact.migrated.v1`: `main` gained the contact of `channel` from
    /// `duplicate`; withdrawals of `main` are held until `hold_until`.
    pub fn contact_migrated(
        migration_id: &str,
        channel: Channel,
        main: (&str, u64),
        duplicate: &str,
        at: Timestamp,
        hold_until: Timestamp,
    ) -> DomainEvent {
        let (account_id, sequence) = main;
        DomainEvent::new(
            EventType::ContactMigrated,
            migration_id,
            account_id,
            sequence,
            at,
            json!({
                "migration_id": migration_id,
                "account_id": account_id,
                "channel": channel.as_str(),
                "from_account_id": duplicate,
                "committed_at": rfc3339(at),
                "withdrawal_hold_until": rfc3339(hold_until),
            }),
        )
    }

    /// `account.closed.v1`: `duplicate` is closed for good (its sessions
    /// must end); its contact of `channel` moved to `main`. Ends the closure
    /// hold keyed by the migration id.
    pub fn account_closed(
        migration_id: &str,
        channel: Channel,
        duplicate: (&str, u64),
        main: &str,
        at: Timestamp,
    ) -> DomainEvent {
        let (account_id, sequence) = duplicate;
        DomainEvent::new(
            EventType::AccountClosed,
            migration_id,
            account_id,
            sequence,
            at,
            json!({
                "migration_id": migration_id,
                "account_id": account_id,
                "reason": "contact_migrated",
                "channel": channel.as_str(),
                "contact_moved_to_account_id": main,
                "closed_at": rfc3339(at),
            }),
        )
    }

    /// `contact.changed.v1`: a plain change of `main`'s contact of `channel`.
    pub fn contact_changed(
        migration_id: &str,
        channel: Channel,
        main: (&str, u64),
        at: Timestamp,
        hold_until: Timestamp,
    ) -> DomainEvent {
        let (account_id, sequence) = main;
        DomainEvent::new(
            EventType::ContactChanged,
            migration_id,
            account_id,
            sequence,
            at,
            json!({
                "migration_id": migration_id,
                "account_id": account_id,
                "channel": channel.as_str(),
                "committed_at": rfc3339(at),
                "withdrawal_hold_until": rfc3339(hold_until),
            }),
        )
    }

    /// `migration.locked.v1`: `owner`'s migration locked after
    /// `failed_attempts` failed attempts.
    pub fn migration_locked(
        migration_id: &str,
        channel: Channel,
        owner: (&str, u64),
        failed_attempts: u32,
        at: Timestamp,
    ) -> DomainEvent {
        let (account_id, sequence) = owner;
        DomainEvent::new(
            EventType::MigrationLocked,
            migration_id,
            account_id,
            sequence,
            at,
            json!({
                "migration_id": migration_id,
                "account_id": account_id,
                "channel": channel.as_str(),
                "failed_attempts": failed_attempts,
                "locked_at": rfc3339(at),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATION: &str = "6f1c9b54-3c1e-4d0e-9d55-0b1a2f3c4d5e";

    #[test]
    fn ids_are_deterministic_and_distinct_per_type() {
        let a =
            DomainEvent::contact_migrated(MIGRATION, Channel::Email, ("main", 3), "dup", 10, 20);
        let b =
            DomainEvent::contact_migrated(MIGRATION, Channel::Email, ("main", 3), "dup", 10, 20);
        let closed = DomainEvent::account_closed(MIGRATION, Channel::Email, ("dup", 1), "main", 10);
        assert_eq!(a, b);
        assert_eq!(a.id, format!("{MIGRATION}/contact.migrated.v1"));
        assert_ne!(a.id, closed.id);
    }

    #[test]
    fn sequences_order_as_strings_as_they_do_as_numbers() {
        let (nine, ten) = (sequence_string(9), sequence_string(10));
        assert!(nine < ten, "{nine} {ten}");
        let event = DomainEvent::migration_locked(MIGRATION, Channel::Phone, ("main", 10), 5, 0);
        assert_eq!(event.sequence_number(), 10);
    }

    #[test]
    fn events_are_cloudevents_about_one_account() {
        let event = DomainEvent::contact_changed(MIGRATION, Channel::Phone, ("main", 1), 0, 86_400);
        let json = serde_json::to_value(&event).unwrap();
        for attribute in ["specversion", "id", "source", "type", "subject", "time"] {
            assert!(json[attribute].is_string(), "{attribute} in {json}");
        }
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["subject"], "main");
        assert_eq!(
            json["data"]["withdrawal_hold_until"],
            "1970-01-02T00:00:00Z"
        );
        assert_eq!(event.kind(), Some(EventType::ContactChanged));
    }

    #[test]
    fn every_type_parses_back() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("contact.migrated.v2"), None);
    }
}
