//! Quota logs: one item per (kind, subject) holding the recent events, replaced
//! only if its version is still the one read (optimistic concurrency), so the
//! limit holds under any number of parallel requests.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use std::time::Duration;

use super::item::{self, n, s};
use super::{build_error, is_condition_failure, key_of, sdk_error, Refusal, Store};
use crate::domain::quota::{Hit, Quota, QuotaKind};
use crate::domain::{Error, Timestamp};

/// Version conflicts are retried this often before the caller is told to
/// come back (a second later: the contention is momentary).
const CONFLICT_RETRIES: u32 = 12;

pub(super) fn quota_key(kind: QuotaKind, subject: &str) -> item::Item {
    item::key(format!("QUOTA#{}#{subject}", kind.as_str()), "QUOTA")
}

/// A new event for a quota log, at `at`.
fn new_hit(at: Timestamp) -> Hit {
    Hit {
        at,
        nonce: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
    }
}

fn log_of(it: &item::Item) -> Vec<Hit> {
    it.get("hits")
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_s().ok())
                .filter_map(|v| Hit::decode(v))
                .collect()
        })
        .unwrap_or_default()
}

/// One quota log as read: its key, events and version (0: no item yet).
struct Log {
    kind: QuotaKind,
    subject: String,
    hits: Vec<Hit>,
    version: u64,
}

/// A quota log read together with other items: its events, and the version
/// a write of it is conditional on (0: no item yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaLog {
    pub hits: Vec<Hit>,
    pub version: u64,
}

impl QuotaLog {
    /// The log of the item read (`None`: no item yet).
    pub(super) fn of(it: Option<&item::Item>) -> QuotaLog {
        QuotaLog {
            hits: it.map(log_of).unwrap_or_default(),
            version: it.and_then(|it| item::get_n(it, "version")).unwrap_or(0),
        }
    }

    /// The log with one more event at `now` if `quota` admits it; otherwise
    /// the seconds until it will.
    pub fn admit(&self, quota: Quota, now: Timestamp) -> Result<Vec<Hit>, u64> {
        quota.admit(&self.hits, new_hit(now))
    }
}

impl Store {
    /// The logs of `keys` (distinct), each with its version, in one round
    /// trip: a `GetItem` for one, a `BatchGetItem` for several.
    async fn quota_logs(&self, keys: &[(QuotaKind, &str)]) -> Result<Vec<Log>, Error> {
        let items: Vec<item::Item> = keys.iter().map(|(k, s)| quota_key(*k, s)).collect();
        let mut found = match items.as_slice() {
            [one] => self
                .get(one.clone())
                .await?
                .map(|it| (key_of(&it), it))
                .into_iter()
                .collect(),
            _ => self.get_many(items.clone()).await?,
        };
        Ok(keys
            .iter()
            .zip(&items)
            .map(|((kind, subject), key)| {
                let read = QuotaLog::of(Store::take(&mut found, key).as_ref());
                Log {
                    kind: *kind,
                    subject: (*subject).to_owned(),
                    hits: read.hits,
                    version: read.version,
                }
            })
            .collect())
    }

    /// A log's new content, written only if the item is still at the
    /// version read.
    fn quota_put(&self, log: &Log, expires_at: Timestamp) -> Result<Put, Error> {
        self.log_put(
            quota_key(log.kind, &log.subject),
            &log.hits,
            log.version,
            expires_at,
        )
    }

    fn log_put(
        &self,
        key: item::Item,
        hits: &[Hit],
        version: u64,
        expires_at: Timestamp,
    ) -> Result<Put, Error> {
        let it = item::with_key(
            key,
            [
                (
                    "hits",
                    AttributeValue::L(hits.iter().map(|h| s(h.encode())).collect()),
                ),
                ("version", n(version + 1)),
                (item::TTL, n(expires_at)),
            ],
        );
        let put = Put::builder().table_name(&self.table).set_item(Some(it));
        let put = if version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(version))
        };
        put.build().map_err(build_error)
    }

    /// A quota log replaced by `hits`, as an item of a transaction: written
    /// only if the log is still at the version read (`read_version`), so
    /// the limit holds against every concurrent writer.
    pub(super) fn quota_log_put(
        &self,
        kind: QuotaKind,
        subject: &str,
        read_version: u64,
        hits: &[Hit],
        expires_at: Timestamp,
    ) -> Result<TransactWriteItem, Error> {
        let put = self.log_put(quota_key(kind, subject), hits, read_version, expires_at)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A condition, as an item of a transaction, that a quota log is still
    /// at the version read: no event was recorded against it since.
    pub(super) fn quota_log_unchanged(
        &self,
        kind: QuotaKind,
        subject: &str,
        read_version: u64,
    ) -> Result<TransactWriteItem, Error> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(quota_key(kind, subject)));
        let check = if read_version == 0 {
            check.condition_expression("attribute_not_exists(pk)")
        } else {
            check
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(read_version))
        };
        Ok(TransactWriteItem::builder()
            .condition_check(check.build().map_err(build_error)?)
            .build())
    }

    /// Writes every log, all or none, if each is still at the version read:
    /// a `PutItem` for one, a `TransactWriteItems` for several. Returns
    /// whether they were written (false: a concurrent writer came first).
    async fn replace_quota_logs(&self, logs: &[(Log, Timestamp)]) -> Result<bool, Error> {
        if let [(log, expires_at)] = logs {
            let put = self.quota_put(log, *expires_at)?;
            let sent = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_values(put.expression_attribute_values)
                .send()
                .await;
            return match sent {
                Ok(_) => Ok(true),
                Err(e) if is_condition_failure(&e) => Ok(false),
                Err(e) => Err(sdk_error("PutItem")(e)),
            };
        }
        let puts = logs
            .iter()
            .map(|(log, expires_at)| {
                Ok(TransactWriteItem::builder()
                    .put(self.quota_put(log, *expires_at)?)
                    .build())
            })
            .collect::<Result<Vec<_>, Error>>()?;
        match self.transact(puts).await? {
            Ok(()) => Ok(true),
            Err(refusals) if refusals.iter().any(Refusal::lost_a_race) => Ok(false),
            Err(refusals) => Err(Error::Internal(format!(
                "dynamodb TransactWriteItems (quotas): {:?}",
                refusals.iter().map(|r| r.code.as_str()).collect::<Vec<_>>()
            ))),
        }
    }

    /// Records one event against each quota of `wants`, all or none: one
    /// read and one write when no concurrent writer interferes.
    /// `Ok(Err(seconds))` is a refusal (nothing recorded) with the time
    /// until every quota admits its event again.
    pub async fn take_quotas(
        &self,
        wants: &[(QuotaKind, String, Quota)],
        now: Timestamp,
    ) -> Result<Result<Vec<Hit>, u64>, Error> {
        let hits: Vec<Hit> = wants.iter().map(|_| new_hit(now)).collect();
        let keys = distinct(
            wants
                .iter()
                .map(|(kind, subject, _)| (*kind, subject.as_str())),
        );
        for attempt in 0..CONFLICT_RETRIES {
            let mut logs: Vec<(Log, Timestamp)> = self
                .quota_logs(&keys)
                .await?
                .into_iter()
                .map(|log| (log, now))
                .collect();
            let mut retry_after = 0;
            for ((kind, subject, quota), hit) in wants.iter().zip(&hits) {
                let (log, expires_at) = logs
                    .iter_mut()
                    .find(|(log, _)| log.kind == *kind && log.subject == *subject)
                    .expect("every wanted quota was read");
                match quota.admit(&log.hits, hit.clone()) {
                    Ok(admitted) => {
                        log.hits = admitted;
                        *expires_at = (*expires_at).max(now + quota.window);
                    }
                    Err(seconds) => {
                        tracing::warn!(
                            quota = kind.as_str(),
                            retry_after = seconds,
                            "quota exhausted"
                        );
                        retry_after = retry_after.max(seconds);
                    }
                }
            }
            if retry_after > 0 {
                return Ok(Err(retry_after));
            }
            if self.replace_quota_logs(&logs).await? {
                return Ok(Ok(hits));
            }
            backoff(attempt).await;
        }
        Ok(Err(1))
    }

    /// Gives back events that bought nothing (their delivery failed), all
    /// in one read and one write.
    pub async fn refund_quotas(
        &self,
        taken: &[(QuotaKind, String, Hit, i64)],
    ) -> Result<(), Error> {
        let keys = distinct(
            taken
                .iter()
                .map(|(kind, subject, _, _)| (*kind, subject.as_str())),
        );
        for attempt in 0..CONFLICT_RETRIES {
            let mut changed: Vec<(Log, Timestamp)> = Vec::new();
            for mut log in self.quota_logs(&keys).await? {
                let mine: Vec<&(QuotaKind, String, Hit, i64)> = taken
                    .iter()
                    .filter(|(kind, subject, _, _)| *kind == log.kind && *subject == log.subject)
                    .collect();
                let before = log.hits.len();
                log.hits
                    .retain(|h| !mine.iter().any(|(_, _, hit, _)| hit == h));
                if log.hits.len() == before {
                    continue;
                }
                let window = mine
                    .iter()
                    .map(|(_, _, _, window)| *window)
                    .max()
                    .unwrap_or(0);
                let expires_at = log
                    .hits
                    .iter()
                    .map(|h| h.at + window)
                    .max()
                    .unwrap_or_else(|| mine.iter().map(|(_, _, hit, _)| hit.at).max().unwrap_or(0));
                changed.push((log, expires_at));
            }
            if changed.is_empty() || self.replace_quota_logs(&changed).await? {
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(Error::Internal("quota refund lost every race".into()))
    }
}

/// `keys` without repeats, in their first order.
fn distinct<'a>(keys: impl Iterator<Item = (QuotaKind, &'a str)>) -> Vec<(QuotaKind, &'a str)> {
    let mut out = Vec::new();
    for key in keys {
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// A few milliseconds, growing and jittered, so racing writers spread out.
pub(crate) async fn backoff(attempt: u32) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 8);
    tokio::time::sleep(Duration::from_millis(2 * u64::from(attempt + 1) + jitter)).await;
}
