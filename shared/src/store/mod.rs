//! The persistence port: everything the steps ask of DynamoDB, as methods of
//! one adapter. Every state change is a single conditional write or a single
//! `TransactWriteItems`; the condition expressions carry the invariants, so a
//! check made on a read cannot be overtaken by a concurrent request.
//!
//! By what it stores: `accounts` (accounts, contact ownership, the audit
//! trail), `migrations` (a migration's life up to `migrate`, and cancel),
//! `verification` (a verification's reads and its write), `closure` (the
//! closing transaction), `facts` (an account's facts on its own item, and
//! their closure hold), `quota` (the quota logs), `outbox` (what commits
//! announce, and the accounts' event sequences); `item` maps items and
//! keys, `table` creates the table. This file holds the plumbing they share.

mod accounts;
mod closure;
mod facts;
pub mod item;
mod migrations;
pub mod outbox;
mod quota;
mod table;
mod verification;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

use crate::domain::{AuditEvent, Error};
use item::Item;

pub use closure::Closure;
pub use facts::HoldOutcome;
pub use migrations::{Lock, MigrateFacts};
pub use outbox::StoredOutbox;
pub(crate) use quota::backoff;
pub use quota::QuotaLog;
pub use verification::{
    Failure, Limits, RightAttempt, Verification, VerificationFacts, VerificationRead,
};

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

/// Why one item of a cancelled transaction refused, with its old image when
/// it failed a condition.
#[derive(Debug)]
struct Refusal {
    code: String,
    old: Option<Item>,
}

impl Refusal {
    fn condition_failed(&self) -> bool {
        self.code == "ConditionalCheckFailed"
    }

    /// A concurrent writer changed the item first: read again and retry.
    fn lost_a_race(&self) -> bool {
        self.condition_failed() || self.code == "TransactionConflict"
    }
}

/// An item's (or a key's) `pk` and `sk`.
fn key_of(it: &Item) -> (String, String) {
    (
        item::get_s(it, item::PK).unwrap_or_default().to_owned(),
        item::get_s(it, item::SK).unwrap_or_default().to_owned(),
    )
}

pub(crate) fn sdk_error<E>(operation: &'static str) -> impl FnOnce(SdkError<E>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| Error::Internal(format!("dynamodb {operation}: {}", DisplayErrorContext(&e)))
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> Error {
    Error::Internal(format!("dynamodb request: {e}"))
}

fn values<const N: usize>(
    pairs: [(&str, aws_sdk_dynamodb::types::AttributeValue); N],
) -> Option<Item> {
    Some(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn names<const N: usize>(pairs: [(&str, &str); N]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Store {
        Store {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client, for operators' tools and tests that read the
    /// table as a whole.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table if it does not exist; returns whether it did.
    pub async fn create_table(&self) -> Result<bool, Error> {
        table::create_table(&self.client, &self.table).await
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error("GetItem"))?;
        Ok(out.item)
    }

    /// Strongly consistent reads of several items in one request, keyed by `pk`+`sk`.
    async fn get_many(&self, keys: Vec<Item>) -> Result<HashMap<(String, String), Item>, Error> {
        let mut found = HashMap::new();
        let mut pending = keys;
        // Unprocessed keys are retried; the SDK already backs off on throttling.
        for _ in 0..5 {
            if pending.is_empty() {
                break;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(build_error)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(sdk_error("BatchGetItem"))?;
            for it in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                found.insert(key_of(&it), it);
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
        if !pending.is_empty() {
            return Err(Error::Internal(
                "dynamodb BatchGetItem: keys left unprocessed".into(),
            ));
        }
        Ok(found)
    }

    fn take(found: &mut HashMap<(String, String), Item>, key: &Item) -> Option<Item> {
        found.remove(&key_of(key))
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<Refusal>>, Error> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) => match e.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(c) => Ok(Err(c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| Refusal {
                        code: r.code().unwrap_or("None").to_owned(),
                        old: r.item().cloned(),
                    })
                    .collect())),
                other => Err(Error::Internal(format!(
                    "dynamodb TransactWriteItems: {}",
                    DisplayErrorContext(&other)
                ))),
            },
        }
    }

    fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, Error> {
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression(condition)
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }

    fn audit(&self, event: &AuditEvent) -> Result<TransactWriteItem, Error> {
        self.put(item::audit_to_item(event), "attribute_not_exists(pk)")
    }

    /// Appends an audit record on its own, for events that change nothing
    /// else (a failed verification).
    pub async fn append_audit(&self, event: &AuditEvent) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::audit_to_item(event)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(sdk_error("PutItem"))?;
        Ok(())
    }

    /// One conditional update and its audit record, together. Returns
    /// whether the update's condition held.
    async fn update_with_audit(&self, update: Update, event: &AuditEvent) -> Result<bool, Error> {
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit(event)?,
        ];
        Ok(self.transact(items).await?.is_ok())
    }
}

/// A TOTP step is accepted once per account: only a later step may be stored.
const TOTP_STEP_UNUSED: &str = "attribute_not_exists(totp_last_step) OR totp_last_step < :step";

pub(crate) fn is_condition_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// Whether a conditional `UpdateItem` applied: a failed condition is
/// `false`, any other failure an error.
fn applied<T>(
    result: Result<T, SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>>,
) -> Result<bool, Error> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(sdk_error("UpdateItem")(e)),
    }
}
