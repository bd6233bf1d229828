//! The outbox and the accounts' event sequences.
//!
//! - `OUTBOX#<migration id>` / `OUTBOX`: what one commit announces (notices
//!   and events), put by the commit's own transaction, and the notices'
//!   deliveries recorded on it (`delivered:<notice id>`, one attribute per
//!   notice, each written once). The relay's stream filter takes only the insertion of
//!   such an item, so recording a delivery does not trigger it again.
//! - `ACCOUNT#<id>` / `EVENTS`: the account's event head: `committed`, the
//!   sequence of the last event a commit wrote about the account (each
//!   commit advances it conditionally, in its transaction, so sequences are
//!   gapless and in commit order), and `published`, the last one the relay
//!   published (events of an account are published in sequence order).

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use std::collections::HashMap;

use super::item::{self, get_n, get_s, n, s, Item};
use super::{applied, build_error, names, values, Store};
use crate::domain::{
    Channel, Contact, DomainEvent, Error, NoticeKind, Outbox, PendingNotice, Sequence,
};

/// How long an outbox item is kept after its commit: long after any retry
/// of its delivery, long enough for an operator to look it up.
const OUTBOX_RETENTION_SECONDS: i64 = 30 * 24 * 3600;

pub const OUTBOX_PREFIX: &str = "OUTBOX#";
/// A notice's delivery is recorded as the attribute `delivered:<notice id>`.
const DELIVERED_PREFIX: &str = "delivered:";

pub fn outbox_key(migration_id: &str) -> Item {
    item::key(format!("{OUTBOX_PREFIX}{migration_id}"), "OUTBOX")
}

pub fn event_head_key(account_id: &str) -> Item {
    item::key(format!("ACCOUNT#{account_id}"), "EVENTS")
}

/// An outbox as stored: what it announces and which notices are done.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOutbox {
    pub outbox: Outbox,
    /// Notice id -> how its delivery ended (`sent`, or `refused` when the
    /// courier will never send to that contact).
    pub delivered: HashMap<String, String>,
}

fn notice_to_value(notice: &PendingNotice) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("id".to_owned(), s(&notice.id)),
        ("kind".to_owned(), s(notice.kind.as_str())),
        ("to_channel".to_owned(), s(notice.to.channel().as_str())),
        ("to".to_owned(), s(notice.to.value())),
        (
            "new_contact_channel".to_owned(),
            s(notice.new_contact.channel().as_str()),
        ),
        ("new_contact".to_owned(), s(notice.new_contact.value())),
    ]))
}

fn notice_from_value(value: &AttributeValue) -> Result<PendingNotice, Error> {
    let corrupt = || Error::Internal("outbox item has a malformed notice".into());
    let m = value.as_m().map_err(|_| corrupt())?;
    let field = |name: &str| get_s(m, name).ok_or_else(corrupt);
    let contact = |channel: &str, value: &str| -> Result<Contact, Error> {
        let channel = Channel::parse(field(channel)?).ok_or_else(corrupt)?;
        Ok(Contact::from_canonical(channel, field(value)?))
    };
    Ok(PendingNotice {
        id: field("id")?.to_owned(),
        kind: NoticeKind::parse(field("kind")?).ok_or_else(corrupt)?,
        to: contact("to_channel", "to")?,
        new_contact: contact("new_contact_channel", "new_contact")?,
    })
}

pub fn outbox_to_item(outbox: &Outbox) -> Result<Item, Error> {
    let events = outbox
        .events
        .iter()
        .map(|e| serde_json::to_string(e).map(AttributeValue::S))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Internal(format!("event not serialisable: {e}")))?;
    Ok(item::with_key(
        outbox_key(&outbox.migration_id),
        [
            ("migration_id", s(&outbox.migration_id)),
            ("created_at", n(outbox.created_at)),
            (
                "notices",
                AttributeValue::L(outbox.notices.iter().map(notice_to_value).collect()),
            ),
            ("events", AttributeValue::L(events)),
            (item::TTL, n(outbox.created_at + OUTBOX_RETENTION_SECONDS)),
        ],
    ))
}

pub fn outbox_from_item(it: &Item) -> Result<StoredOutbox, Error> {
    let corrupt = |what: &str| Error::Internal(format!("outbox item has a malformed {what}"));
    let list = |name: &str| {
        it.get(name)
            .and_then(|v| v.as_l().ok())
            .ok_or_else(|| corrupt(name))
    };
    let notices = list("notices")?
        .iter()
        .map(notice_from_value)
        .collect::<Result<Vec<_>, _>>()?;
    let events = list("events")?
        .iter()
        .map(|v| {
            v.as_s()
                .ok()
                .and_then(|json| serde_json::from_str::<DomainEvent>(json).ok())
                .ok_or_else(|| corrupt("event"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let delivered = it
        .iter()
        .filter_map(|(name, outcome)| {
            let id = name.strip_prefix(DELIVERED_PREFIX)?;
            Some((id.to_owned(), outcome.as_s().ok()?.clone()))
        })
        .collect();
    Ok(StoredOutbox {
        outbox: Outbox {
            migration_id: get_s(it, "migration_id")
                .ok_or_else(|| corrupt("migration_id"))?
                .to_owned(),
            created_at: get_n(it, "created_at").ok_or_else(|| corrupt("created_at"))?,
            notices,
            events,
        },
        delivered,
    })
}

impl Store {
    /// The outbox of a commit, as an item of the commit's transaction.
    fn outbox_put(&self, outbox: &Outbox) -> Result<TransactWriteItem, Error> {
        self.put(outbox_to_item(outbox)?, "attribute_not_exists(pk)")
    }

    /// What a commit announces, as items of its transaction: the outbox,
    /// and the event sequence of each account an event is about advanced
    /// to that event's.
    pub(super) fn announce(&self, outbox: &Outbox) -> Result<Vec<TransactWriteItem>, Error> {
        let mut items = vec![self.outbox_put(outbox)?];
        for (account_id, sequence) in outbox.sequences() {
            let from = Sequence {
                committed: sequence.saturating_sub(1),
            };
            items.push(self.sequence_advance(account_id, from)?);
        }
        Ok(items)
    }

    /// Advances an account's committed event sequence from `from` to the
    /// next, as an item of the commit's transaction: refused if another
    /// commit about the account advanced it since it was read.
    fn sequence_advance(
        &self,
        account_id: &str,
        from: Sequence,
    ) -> Result<TransactWriteItem, Error> {
        let condition = if from.committed == 0 {
            "attribute_not_exists(committed)"
        } else {
            "committed = :previous"
        };
        let mut attribute_values = values([(":next", n(from.next()))]).unwrap_or_default();
        if from.committed != 0 {
            attribute_values.insert(":previous".into(), n(from.committed));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(event_head_key(account_id)))
            .update_expression("SET committed = :next")
            .condition_expression(condition)
            .set_expression_attribute_values(Some(attribute_values))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The accounts' event heads, in the order asked: (committed, published).
    pub async fn event_heads(&self, account_ids: &[&str]) -> Result<Vec<(u64, u64)>, Error> {
        let keys: Vec<Item> = account_ids.iter().map(|id| event_head_key(id)).collect();
        let mut found = self.get_many(keys.clone()).await?;
        Ok(keys
            .iter()
            .map(|key| {
                Store::take(&mut found, key).map_or((0, 0), |it| {
                    (
                        get_n(&it, "committed").unwrap_or(0),
                        get_n(&it, "published").unwrap_or(0),
                    )
                })
            })
            .collect())
    }

    /// The accounts' committed event sequences, for the next commit.
    pub async fn sequences(&self, account_ids: &[&str]) -> Result<Vec<Sequence>, Error> {
        Ok(self
            .event_heads(account_ids)
            .await?
            .into_iter()
            .map(|(committed, _)| Sequence { committed })
            .collect())
    }

    /// An outbox and its deliveries so far (strongly consistent).
    pub async fn outbox(&self, migration_id: &str) -> Result<Option<StoredOutbox>, Error> {
        self.get(outbox_key(migration_id))
            .await?
            .map(|it| outbox_from_item(&it))
            .transpose()
    }

    /// Records how a notice's delivery ended, once: returns false when it
    /// was already recorded.
    pub async fn record_notice(
        &self,
        migration_id: &str,
        notice_id: &str,
        outcome: &str,
    ) -> Result<bool, Error> {
        applied(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(outbox_key(migration_id)))
                .update_expression("SET #delivered = :outcome")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(#delivered)")
                .set_expression_attribute_names(names([(
                    "#delivered",
                    format!("{DELIVERED_PREFIX}{notice_id}").as_str(),
                )]))
                .set_expression_attribute_values(values([(":outcome", s(outcome))]))
                .send()
                .await,
        )
    }

    /// Records that the account's event `sequence` is published. Only ever
    /// moves forward: returns false when it already was that far.
    pub async fn record_published(&self, account_id: &str, sequence: u64) -> Result<bool, Error> {
        applied(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(event_head_key(account_id)))
                .update_expression("SET published = :sequence")
                .condition_expression("attribute_not_exists(published) OR published < :sequence")
                .set_expression_attribute_values(values([(":sequence", n(sequence))]))
                .send()
                .await,
        )
    }
}

/// The migration id of an outbox item's key, if it is one.
pub fn outbox_migration_id(pk: &str) -> Option<&str> {
    pk.strip_prefix(OUTBOX_PREFIX)
}
