//! The persistence port: everything the steps ask of DynamoDB, as methods of
//! one adapter. Every state change is a single conditional write or a single
//! `TransactWriteItems`; the condition expressions carry the invariants, so a
//! check made on a read cannot be overtaken by a concurrent request.

mod closure;
pub mod item;
mod quota;
mod table;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    Delete, KeysAndAttributes, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

use crate::domain::eligibility::EligibilityFacts;
use crate::domain::{Account, AuditEvent, Contact, Error, Migration, Step, Timestamp};
use item::{b, n, s, Item};

pub use closure::Closure;

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

/// What the migrate step reads in one round trip.
#[derive(Debug)]
pub struct MigrateFacts {
    pub main: Account,
    pub eligibility: EligibilityFacts,
    /// Who owns the contact now; the closure needs it to still be the duplicate.
    pub contact_owner: Option<String>,
}

/// The outcome of a transaction that consumes a TOTP step.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Committed,
    /// The TOTP step was used by a concurrent request first.
    TotpReplayed,
    /// The migration, the account or the contact changed since they were read.
    StateChanged,
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

    // ---- accounts -------------------------------------------------------

    /// Creates an account and claims its contacts, all or nothing: a contact
    /// that already has an owner refuses the whole account.
    pub async fn create_account(&self, account: &Account) -> Result<bool, Error> {
        let mut items = vec![self.put(item::account_to_item(account), "attribute_not_exists(pk)")?];
        for contact in [&account.email, &account.phone].into_iter().flatten() {
            items.push(self.put(
                item::with_key(
                    item::contact_key(contact),
                    [("owner", s(&account.account_id))],
                ),
                "attribute_not_exists(pk)",
            )?);
        }
        Ok(self.transact(items).await?.is_ok())
    }

    /// Writes an account as it is, for operators and tests that change the
    /// world between two steps. Contact ownership items are not touched.
    pub async fn put_account_item(&self, account: &Account) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::account_to_item(account)))
            .send()
            .await
            .map_err(sdk_error("PutItem"))?;
        Ok(())
    }

    pub async fn account(&self, account_id: &str) -> Result<Option<Account>, Error> {
        self.get(item::account_key(account_id))
            .await?
            .map(|it| item::account_from_item(&it))
            .transpose()
    }

    pub async fn contact_owner(&self, contact: &Contact) -> Result<Option<String>, Error> {
        Ok(self
            .get(item::contact_key(contact))
            .await?
            .and_then(|it| item::get_s(&it, "owner").map(str::to_owned)))
    }

    /// Every audit record of an account, oldest first.
    pub async fn audit_trail(&self, account_id: &str) -> Result<Vec<Item>, Error> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :audit)")
                .expression_attribute_values(":pk", s(format!("ACCOUNT#{account_id}")))
                .expression_attribute_values(":audit", s("AUDIT#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error("Query"))?;
            records.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(records);
            }
        }
    }

    // ---- migrations -----------------------------------------------------

    /// A migration and an account in one round trip (verification needs
    /// both before it counts an attempt).
    pub async fn migration_and_account(
        &self,
        migration_id: &str,
        account_id: &str,
    ) -> Result<(Option<Migration>, Option<Account>), Error> {
        let (migration_key, account_key) = (
            item::migration_key(migration_id),
            item::account_key(account_id),
        );
        let mut found = self
            .get_many(vec![migration_key.clone(), account_key.clone()])
            .await?;
        let migration = Store::take(&mut found, &migration_key)
            .map(|it| item::migration_from_item(&it))
            .transpose()?;
        let account = Store::take(&mut found, &account_key)
            .map(|it| item::account_from_item(&it))
            .transpose()?;
        Ok((migration, account))
    }

    pub async fn migration(&self, migration_id: &str) -> Result<Option<Migration>, Error> {
        self.get(item::migration_key(migration_id))
            .await?
            .map(|it| item::migration_from_item(&it))
            .transpose()
    }

    pub async fn insert_migration(
        &self,
        migration: &Migration,
        event: &AuditEvent,
    ) -> Result<(), Error> {
        let items = vec![
            self.put(
                item::migration_to_item(migration),
                "attribute_not_exists(pk)",
            )?,
            self.audit(event)?,
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::Internal("a new migration id collided".into())),
        }
    }

    /// Claims the next send of a migration before any code is delivered:
    /// the send count and time move on only if no other send or step
    /// happened since `current` was read, so of concurrent resends one
    /// delivers and the others are refused, and the send limit and cooldown
    /// hold for messages actually sent. `claim` names this request's claim,
    /// so a retry whose first response was lost knows the claim is its own.
    /// Returns whether the claim is this request's.
    pub async fn claim_send(
        &self,
        current: &Migration,
        claimed: &Migration,
        claim: &str,
    ) -> Result<bool, Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::migration_key(&current.migration_id)))
            .update_expression("SET sends = :sends, last_sent_at = :now, send_claim = :claim")
            .condition_expression(
                "#state = :codes_sent AND account_id = :owner AND sends = :before \
                 AND last_sent_at = :before_at",
            )
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(values([
                (":sends", n(claimed.sends)),
                (":now", n(claimed.last_sent_at)),
                (":claim", s(claim)),
                (":before", n(current.sends)),
                (":before_at", n(current.last_sent_at)),
                (":codes_sent", s("codes_sent")),
                (":owner", s(&current.account_id)),
            ]))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => {
                let holder = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(refused)) => refused
                        .item()
                        .and_then(|old| item::get_s(old, "send_claim"))
                        .map(str::to_owned),
                    _ => None,
                };
                Ok(holder.as_deref() == Some(claim))
            }
            Err(e) => Err(sdk_error("UpdateItem")(e)),
        }
    }

    /// Gives a claimed send back when its delivery failed. Best effort: a
    /// claim left in place only makes the next resend wait its cooldown.
    pub async fn release_send(&self, current: &Migration, claim: &str) -> Result<bool, Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::migration_key(&current.migration_id)))
            .update_expression("SET sends = :sends, last_sent_at = :at REMOVE send_claim")
            .condition_expression("#state = :codes_sent AND send_claim = :claim")
            .expression_attribute_names("#state", "state")
            .set_expression_attribute_values(values([
                (":sends", n(current.sends)),
                (":at", n(current.last_sent_at)),
                (":claim", s(claim)),
                (":codes_sent", s("codes_sent")),
            ]))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(sdk_error("UpdateItem")(e)),
        }
    }

    /// Replaces the codes of `updated` (holding the new digests and expiry)
    /// if this request's claim ([`Store::claim_send`]) is still the latest
    /// send and the migration still awaits verification. Returns whether it
    /// applied.
    pub async fn reissue_codes(
        &self,
        updated: &Migration,
        claim: &str,
        event: &AuditEvent,
    ) -> Result<bool, Error> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::migration_key(&updated.migration_id)))
            .update_expression(
                "SET new_code_digest = :new, current_code_digest = :current, \
                 codes_expire_at = :expires",
            )
            .condition_expression(
                "#state = :codes_sent AND account_id = :owner AND send_claim = :claim",
            )
            .set_expression_attribute_names(names([("#state", "state")]))
            .set_expression_attribute_values(values([
                (
                    ":new",
                    s(updated.new_code_digest.clone().unwrap_or_default()),
                ),
                (
                    ":current",
                    s(updated.current_code_digest.clone().unwrap_or_default()),
                ),
                (":expires", n(updated.codes_expire_at)),
                (":codes_sent", s("codes_sent")),
                (":owner", s(&updated.account_id)),
                (":claim", s(claim)),
            ]))
            .build()
            .map_err(build_error)?;
        self.update_with_audit(update, event).await
    }

    /// Counts one attempt before any code is checked, so parallel guesses
    /// can never exceed `max_attempts` checks in all: at verification (the
    /// three factors, while the codes live) or at the closure (the
    /// duplicate's authenticator code, inside the confirmation window).
    /// Returns the migration as it now stands, or `None` when it is no
    /// longer open for that step (locked, expired, moved on).
    pub async fn count_attempt(
        &self,
        migration_id: &str,
        owner: &str,
        step: Step,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<Option<Migration>, Error> {
        let (state, deadline) = match step {
            Step::Close => ("awaiting_confirmation", "confirm_by"),
            _ => ("codes_sent", "codes_expire_at"),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::migration_key(migration_id)))
            .update_expression("SET failed_attempts = failed_attempts + :one")
            .condition_expression(format!(
                "#state = :state AND account_id = :owner AND failed_attempts < :max \
                 AND {deadline} > :now"
            ))
            .set_expression_attribute_names(names([("#state", "state")]))
            .set_expression_attribute_values(values([
                (":one", n(1)),
                (":state", s(state)),
                (":owner", s(owner)),
                (":max", n(max_attempts)),
                (":now", n(now)),
            ]))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let it = out
                    .attributes
                    .ok_or_else(|| Error::Internal("UpdateItem returned no attributes".into()))?;
                Ok(Some(item::migration_from_item(&it)?))
            }
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(sdk_error("UpdateItem")(e)),
        }
    }

    /// Locks a migration whose attempts are spent (at verification or at
    /// the closure).
    pub async fn lock(&self, migration_id: &str, event: &AuditEvent) -> Result<bool, Error> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::migration_key(migration_id)))
            .update_expression("SET #state = :locked")
            .condition_expression("#state IN (:codes_sent, :awaiting)")
            .set_expression_attribute_names(names([("#state", "state")]))
            .set_expression_attribute_values(values([
                (":locked", s("locked")),
                (":codes_sent", s("codes_sent")),
                (":awaiting", s("awaiting_confirmation")),
            ]))
            .build()
            .map_err(build_error)?;
        self.update_with_audit(update, event).await
    }

    /// Records a TOTP step as used without any other change (a failed attempt
    /// whose TOTP was right), so the same code cannot be tried again.
    pub async fn consume_totp_step(&self, account_id: &str, step: u64) -> Result<bool, Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::account_key(account_id)))
            .update_expression("SET totp_last_step = :step")
            .condition_expression(TOTP_STEP_UNUSED)
            .set_expression_attribute_values(values([(":step", n(step))]))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(sdk_error("UpdateItem")(e)),
        }
    }

    /// The migration's half of a successful verification: codes spent,
    /// conditional on them being the codes that were checked.
    fn verified_migration_update(
        &self,
        migration: &Migration,
        set: &str,
        mut extra: Item,
        now: Timestamp,
    ) -> Result<TransactWriteItem, Error> {
        extra.extend(
            values([
                (":codes_sent", s("codes_sent")),
                (":owner", s(&migration.account_id)),
                (":now", n(now)),
                (
                    ":digest",
                    s(migration.new_code_digest.clone().unwrap_or_default()),
                ),
            ])
            .unwrap_or_default(),
        );
        Ok(TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(item::migration_key(&migration.migration_id)))
                    .update_expression(format!("{set} REMOVE new_code_digest, current_code_digest"))
                    .condition_expression(
                        "#state = :codes_sent AND account_id = :owner AND codes_expire_at > :now \
                         AND new_code_digest = :digest",
                    )
                    .set_expression_attribute_names(names([("#state", "state")]))
                    .set_expression_attribute_values(Some(extra))
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }

    /// Verification of a contact bound to another account: the migration
    /// becomes `verified` and the TOTP step is spent, together.
    pub async fn mark_verified(
        &self,
        migration: &Migration,
        duplicate_account_id: &str,
        totp_step: u64,
        now: Timestamp,
        confirm_by: Timestamp,
        event: &AuditEvent,
    ) -> Result<Verification, Error> {
        let items = vec![
            self.verified_migration_update(
                migration,
                "SET #state = :verified, duplicate_account_id = :dup, verified_at = :now, confirm_by = :by",
                values([
                    (":verified", s("verified")),
                    (":dup", s(duplicate_account_id)),
                    (":by", n(confirm_by)),
                ])
                .unwrap_or_default(),
                now,
            )?,
            self.totp_step_update(migration, totp_step, None)?,
            self.audit(event)?,
        ];
        Ok(verification_outcome(self.transact(items).await?, totp_step))
    }

    /// Verification of a free contact: a plain change of contact, committed
    /// at once. The new contact is claimed, the old one released, the TOTP
    /// step spent and the migration completed, together.
    pub async fn complete_plain_change(
        &self,
        migration: &Migration,
        previous: Option<&Contact>,
        totp_step: u64,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Verification, Error> {
        let owner = &migration.account_id;
        let mut items = vec![
            self.verified_migration_update(
                migration,
                "SET #state = :completed, completed_at = :now",
                values([(":completed", s("completed"))]).unwrap_or_default(),
                now,
            )?,
            self.totp_step_update(migration, totp_step, Some(previous))?,
            self.put(
                item::with_key(
                    item::contact_key(&migration.new_contact),
                    [("owner", s(owner))],
                ),
                "attribute_not_exists(pk)",
            )?,
            self.audit(event)?,
        ];
        if let Some(previous) = previous {
            items.push(self.release_contact(previous, owner)?);
        }
        Ok(verification_outcome(self.transact(items).await?, totp_step))
    }

    /// The main account's half of a verification: the TOTP step spent, and
    /// for a plain change (`contact_change`: the account's previous contact
    /// on the channel) the contact swapped. Conditional on the account being
    /// active and the contact the current-contact code went to still being
    /// the account's own: a code sent to a contact the account has since
    /// given up proves nothing.
    fn totp_step_update(
        &self,
        migration: &Migration,
        step: u64,
        contact_change: Option<Option<&Contact>>,
    ) -> Result<TransactWriteItem, Error> {
        let current = &migration.current_contact;
        let mut update = "SET totp_last_step = :step".to_owned();
        let mut condition =
            format!("#status = :active AND ({TOTP_STEP_UNUSED}) AND #current = :current");
        let mut attribute_names = names([
            ("#status", "status"),
            ("#current", current.channel().as_str()),
        ])
        .unwrap_or_default();
        let mut attribute_values = values([
            (":step", n(step)),
            (":active", s("active")),
            (":current", s(current.value())),
        ])
        .unwrap_or_default();
        if let Some(previous) = contact_change {
            let new = &migration.new_contact;
            update.push_str(", #contact = :new");
            attribute_names.insert("#contact".into(), new.channel().as_str().into());
            attribute_values.insert(":new".into(), s(new.value()));
            match previous {
                Some(previous) => {
                    condition.push_str(" AND #contact = :previous");
                    attribute_values.insert(":previous".into(), s(previous.value()));
                }
                None => condition.push_str(" AND attribute_not_exists(#contact)"),
            }
        }
        Ok(TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(item::account_key(&migration.account_id)))
                    .update_expression(update)
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(attribute_names))
                    .set_expression_attribute_values(Some(attribute_values))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }

    fn release_contact(&self, contact: &Contact, owner: &str) -> Result<TransactWriteItem, Error> {
        Ok(TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(item::contact_key(contact)))
                    .condition_expression("#owner = :owner")
                    .set_expression_attribute_names(names([("#owner", "owner")]))
                    .set_expression_attribute_values(values([(":owner", s(owner))]))
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }

    /// Everything eligibility needs at verification, in one request.
    pub async fn eligibility_facts(
        &self,
        main_account_id: &str,
        duplicate_account_id: &str,
        contact: &Contact,
    ) -> Result<Option<EligibilityFacts>, Error> {
        let keys = [
            item::account_key(duplicate_account_id),
            item::migrated_marker_key(contact),
            item::received_marker_key(main_account_id, contact.channel()),
        ];
        let mut found = self.get_many(keys.to_vec()).await?;
        let Some(duplicate) = Self::take(&mut found, &keys[0]) else {
            return Ok(None);
        };
        Ok(Some(EligibilityFacts {
            duplicate: item::account_from_item(&duplicate)?,
            contact_already_migrated: Self::take(&mut found, &keys[1]).is_some(),
            main_already_received: Self::take(&mut found, &keys[2]).is_some(),
        }))
    }

    /// Everything the migrate step re-checks, in one request.
    pub async fn migrate_facts(
        &self,
        migration: &Migration,
    ) -> Result<Option<MigrateFacts>, Error> {
        let Some(duplicate_id) = &migration.duplicate_account_id else {
            return Ok(None);
        };
        let keys = [
            item::account_key(&migration.account_id),
            item::account_key(duplicate_id),
            item::migrated_marker_key(&migration.new_contact),
            item::received_marker_key(&migration.account_id, migration.channel),
            item::contact_key(&migration.new_contact),
        ];
        let mut found = self.get_many(keys.to_vec()).await?;
        let (Some(main), Some(duplicate)) = (
            Self::take(&mut found, &keys[0]),
            Self::take(&mut found, &keys[1]),
        ) else {
            return Ok(None);
        };
        Ok(Some(MigrateFacts {
            main: item::account_from_item(&main)?,
            eligibility: EligibilityFacts {
                duplicate: item::account_from_item(&duplicate)?,
                contact_already_migrated: Self::take(&mut found, &keys[2]).is_some(),
                main_already_received: Self::take(&mut found, &keys[3]).is_some(),
            },
            contact_owner: Self::take(&mut found, &keys[4])
                .and_then(|it| item::get_s(&it, "owner").map(str::to_owned)),
        }))
    }

    /// `verified` -> `awaiting_confirmation`, recording what the closure will
    /// be conditional on. Returns whether it applied.
    pub async fn await_confirmation(
        &self,
        prepared: &Migration,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<bool, Error> {
        let mut set = vec![
            "#state = :awaiting",
            "duplicate_has_assets = :assets",
            "duplicate_two_factor_required = :two_factor",
        ];
        let mut remove = Vec::new();
        let mut attribute_values = values([
            (":awaiting", s("awaiting_confirmation")),
            (":verified", s("verified")),
            (":assets", b(prepared.duplicate_has_assets.unwrap_or(false))),
            (
                ":two_factor",
                b(prepared.duplicate_two_factor_required.unwrap_or(false)),
            ),
            (":owner", s(&prepared.account_id)),
            (":now", n(now)),
        ])
        .unwrap_or_default();
        for (field, placeholder, contact) in [
            ("previous_contact", ":previous", &prepared.previous_contact),
            (
                "duplicate_other_contact",
                ":other",
                &prepared.duplicate_other_contact,
            ),
        ] {
            match contact {
                Some(c) => {
                    set.push(if field == "previous_contact" {
                        "previous_contact = :previous"
                    } else {
                        "duplicate_other_contact = :other"
                    });
                    attribute_values.insert(placeholder.into(), s(c.value()));
                }
                None => remove.push(field),
            }
        }
        let mut update = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            update.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::migration_key(&prepared.migration_id)))
            .update_expression(update)
            .condition_expression(
                "#state = :verified AND account_id = :owner AND confirm_by > :now",
            )
            .set_expression_attribute_names(names([("#state", "state")]))
            .set_expression_attribute_values(Some(attribute_values))
            .build()
            .map_err(build_error)?;
        self.update_with_audit(update, event).await
    }

    /// Any open migration -> `cancelled`. Returns whether it applied.
    pub async fn cancel(
        &self,
        migration: &Migration,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<bool, Error> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::migration_key(&migration.migration_id)))
            .update_expression("SET #state = :cancelled, cancelled_at = :now")
            .condition_expression(
                "#state IN (:codes_sent, :verified, :awaiting) AND account_id = :owner",
            )
            .set_expression_attribute_names(names([("#state", "state")]))
            .set_expression_attribute_values(values([
                (":cancelled", s("cancelled")),
                (":codes_sent", s("codes_sent")),
                (":verified", s("verified")),
                (":awaiting", s("awaiting_confirmation")),
                (":owner", s(&migration.account_id)),
                (":now", n(now)),
            ]))
            .build()
            .map_err(build_error)?;
        self.update_with_audit(update, event).await
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

/// Verification transactions: item 0 is the migration, item 1 the account.
/// A replay is an account refused only because its TOTP step was spent by a
/// concurrent request; any other refusal means something changed.
fn verification_outcome(result: Result<(), Vec<Refusal>>, step: u64) -> Verification {
    let Err(refusals) = result else {
        return Verification::Committed;
    };
    let only_the_account = refusals
        .iter()
        .enumerate()
        .all(|(i, r)| (i == 1) == r.condition_failed());
    let old = refusals.get(1).and_then(|r| r.old.as_ref());
    let active = old.is_some_and(|old| item::get_s(old, "status") == Some("active"));
    let spent = old.and_then(|old| item::get_n::<u64>(old, "totp_last_step"));
    if only_the_account && active && spent.is_some_and(|spent| spent >= step) {
        Verification::TotpReplayed
    } else {
        Verification::StateChanged
    }
}
