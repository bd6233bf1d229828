//! Quota logs: one item per (kind, subject) holding the recent events, replaced
//! only if its version is still the one read (optimistic concurrency), so the
//! limit holds under any number of parallel requests.

use aws_sdk_dynamodb::types::AttributeValue;
use std::time::Duration;

use super::item::{self, n, s};
use super::{is_condition_failure, sdk_error, Store};
use crate::domain::quota::{Hit, Quota, QuotaKind};
use crate::domain::{Error, Timestamp};

/// Version conflicts are retried this often before the caller is told to
/// come back (a second later: the contention is momentary).
const CONFLICT_RETRIES: u32 = 12;

fn quota_key(kind: QuotaKind, subject: &str) -> item::Item {
    item::key(format!("QUOTA#{}#{subject}", kind.as_str()), "QUOTA")
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

impl Store {
    async fn quota_log(&self, kind: QuotaKind, subject: &str) -> Result<(Vec<Hit>, u64), Error> {
        Ok(match self.get(quota_key(kind, subject)).await? {
            Some(it) => (log_of(&it), item::get_n(&it, "version").unwrap_or(0)),
            None => (Vec::new(), 0),
        })
    }

    /// Writes `log` if the item is still at `version`. Returns whether it did.
    async fn replace_quota_log(
        &self,
        kind: QuotaKind,
        subject: &str,
        log: &[Hit],
        version: u64,
        expires_at: Timestamp,
    ) -> Result<bool, Error> {
        let it = item::with_key(
            quota_key(kind, subject),
            [
                (
                    "hits",
                    AttributeValue::L(log.iter().map(|h| s(h.encode())).collect()),
                ),
                ("version", n(version + 1)),
                (item::TTL, n(expires_at)),
            ],
        );
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(it));
        put = if version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(version))
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(sdk_error("PutItem")(e)),
        }
    }

    /// Records one event against a quota if it admits it. `Ok(Err(seconds))`
    /// is a refusal with the time until a slot frees.
    pub async fn take_quota(
        &self,
        kind: QuotaKind,
        subject: &str,
        quota: Quota,
        now: Timestamp,
    ) -> Result<Result<Hit, u64>, Error> {
        let hit = Hit {
            at: now,
            nonce: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        };
        for attempt in 0..CONFLICT_RETRIES {
            let (log, version) = self.quota_log(kind, subject).await?;
            let admitted = match quota.admit(&log, hit.clone()) {
                Ok(admitted) => admitted,
                Err(retry_after) => return Ok(Err(retry_after)),
            };
            if self
                .replace_quota_log(kind, subject, &admitted, version, now + quota.window)
                .await?
            {
                return Ok(Ok(hit));
            }
            backoff(attempt).await;
        }
        Ok(Err(1))
    }

    /// Gives back an event that bought nothing (its delivery failed).
    pub async fn refund_quota(
        &self,
        kind: QuotaKind,
        subject: &str,
        hit: &Hit,
        window: i64,
    ) -> Result<(), Error> {
        for attempt in 0..CONFLICT_RETRIES {
            let (log, version) = self.quota_log(kind, subject).await?;
            if !log.contains(hit) {
                return Ok(());
            }
            let kept: Vec<Hit> = log.into_iter().filter(|h| h != hit).collect();
            let expires_at = kept.iter().map(|h| h.at + window).max().unwrap_or(hit.at);
            if self
                .replace_quota_log(kind, subject, &kept, version, expires_at)
                .await?
            {
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(Error::Internal("quota refund lost every race".into()))
    }
}

/// A few milliseconds, growing and jittered, so racing writers spread out.
async fn backoff(attempt: u32) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 8);
    tokio::time::sleep(Duration::from_millis(2 * u64::from(attempt + 1) + jitter)).await;
}
