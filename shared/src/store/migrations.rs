//! Migrations: creation, the send claim and codes, attempts and the lock,
//! `migrate`'s reads and transition, and cancellation.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::item::{self, b, n, s};
use super::{build_error, is_condition_failure, names, sdk_error, values, Refusal, Store};
use crate::domain::eligibility::EligibilityFacts;
use crate::domain::{Account, AuditEvent, Error, Migration, Outbox, Step, Timestamp};

/// How a lock ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Lock {
    Locked,
    /// Already locked, or past the states a lock applies to.
    NotLockable,
    /// Another commit about the owner advanced its event sequence first.
    Conflict,
}

/// What the migrate step reads in one round trip.
#[derive(Debug)]
pub struct MigrateFacts {
    pub main: Account,
    pub eligibility: EligibilityFacts,
    /// Who owns the contact now; the closure needs it to still be the duplicate.
    pub contact_owner: Option<String>,
}

impl Store {
    /// A migration and an account in one round trip (every step needs both:
    /// the caller's account must be active).
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
    /// can never exceed `max_attempts` checks in all: at the closure (the
    /// duplicate's authenticator code, inside the confirmation window), or
    /// for `Step::Verify` while the codes live. Verification itself counts
    /// its attempts in the transaction that answers them
    /// ([`Store::record_failure`] and the commits beside it).
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

    /// Locks a migration whose attempts are spent at the closure, together
    /// with what the lock announces (verification locks inside the failure's
    /// own transaction).
    pub async fn lock(
        &self,
        migration_id: &str,
        event: &AuditEvent,
        outbox: &Outbox,
    ) -> Result<Lock, Error> {
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
        let mut items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit(event)?,
        ];
        items.extend(self.announce(outbox)?);
        Ok(match self.transact(items).await? {
            Ok(()) => Lock::Locked,
            Err(refusals) if refusals.first().is_some_and(Refusal::condition_failed) => {
                Lock::NotLockable
            }
            Err(_) => Lock::Conflict,
        })
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
}
