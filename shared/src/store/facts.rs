//! The account facts as attributes of the account's own item: what the
//! `table` adapter of the facts port reads and `admin` sets, and what the
//! local stand-in of the exchange's endpoint serves. A change is refused for
//! a closed account (its facts can no longer change what happened to it)
//! and while a closure hold is in force.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::item::{self, b, n, s, Item};
use super::{names, sdk_error, values, Store};
use crate::domain::{AccountStatus, Error, Timestamp};
use crate::facts::{AccountFacts, Changed, FactsChange};

/// How a closure hold request ended on the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Held until the given time (or longer, by an earlier hold).
    Held,
    UnknownAccount,
    AccountClosed,
}

pub(crate) fn facts_of(it: &Item) -> AccountFacts {
    AccountFacts {
        kyc_verified: item::get_bool(it, "kyc_verified"),
        has_assets: item::get_bool(it, "has_assets"),
        pending_withdrawals: item::get_bool(it, "pending_withdrawals"),
    }
}

/// Why a conditional update of an account failed, from its old image.
fn refused_for(old: Option<&Item>) -> Changed {
    match old {
        None => Changed::UnknownAccount,
        Some(old) if item::get_s(old, "status") != Some(AccountStatus::Active.as_str()) => {
            Changed::AccountClosed
        }
        Some(_) => Changed::Held,
    }
}

fn old_image(e: &aws_sdk_dynamodb::error::SdkError<UpdateItemError>) -> Option<Option<Item>> {
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(failed)) => Some(failed.item.clone()),
        _ => None,
    }
}

impl Store {
    /// The account's facts, or `None` when there is no such account.
    pub async fn account_facts(&self, account_id: &str) -> Result<Option<AccountFacts>, Error> {
        Ok(self
            .get(item::account_key(account_id))
            .await?
            .map(|it| facts_of(&it)))
    }

    /// Sets the facts `change` gives, provided the account is active and no
    /// closure hold is in force at `now`.
    pub async fn set_account_facts(
        &self,
        account_id: &str,
        change: FactsChange,
        now: Timestamp,
    ) -> Result<Changed, Error> {
        let fields = [
            ("kyc_verified", change.kyc_verified),
            ("has_assets", change.has_assets),
            ("pending_withdrawals", change.pending_withdrawals),
        ];
        let mut set = Vec::new();
        let mut attribute_values = values([
            (":active", s(AccountStatus::Active.as_str())),
            (":now", n(now)),
        ])
        .unwrap_or_default();
        for (name, value) in fields {
            if let Some(value) = value {
                set.push(format!("{name} = :{name}"));
                attribute_values.insert(format!(":{name}"), b(value));
            }
        }
        if set.is_empty() {
            set.push("#status = :active".into());
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::account_key(account_id)))
            .update_expression(format!("SET {}", set.join(", ")))
            // A closed account's facts no longer change (what happened to it
            // was decided on the facts it had); a held one's wait for the
            // hold to end, so the closure's last read stays true.
            .condition_expression(
                "attribute_exists(pk) AND #status = :active \
                 AND (attribute_not_exists(facts_held_until) OR facts_held_until <= :now)",
            )
            .set_expression_attribute_names(names([("#status", "status")]))
            .set_expression_attribute_values(Some(attribute_values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Changed::Done(facts_of(&out.attributes.unwrap_or_default()))),
            Err(e) => match old_image(&e) {
                Some(old) => Ok(refused_for(old.as_ref())),
                None => Err(sdk_error("UpdateItem")(e)),
            },
        }
    }

    /// Holds the account's facts until `until` for `migration_id`: no change
    /// lands before then unless the hold is released.
    pub async fn hold_account_facts(
        &self,
        account_id: &str,
        migration_id: &str,
        until: Timestamp,
    ) -> Result<HoldOutcome, Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::account_key(account_id)))
            .update_expression("SET facts_held_until = :until, facts_held_by = :migration")
            .condition_expression(
                "attribute_exists(pk) AND #status = :active \
                 AND (attribute_not_exists(facts_held_until) OR facts_held_until < :until)",
            )
            .set_expression_attribute_names(names([("#status", "status")]))
            .set_expression_attribute_values(values([
                (":active", s(AccountStatus::Active.as_str())),
                (":until", n(until)),
                (":migration", s(migration_id)),
            ]))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(HoldOutcome::Held),
            Err(e) => match old_image(&e) {
                // Active and already held longer: held all the same.
                Some(old) => Ok(match refused_for(old.as_ref()) {
                    Changed::UnknownAccount => HoldOutcome::UnknownAccount,
                    Changed::AccountClosed => HoldOutcome::AccountClosed,
                    _ => HoldOutcome::Held,
                }),
                None => Err(sdk_error("UpdateItem")(e)),
            },
        }
    }

    /// Ends `migration_id`'s hold, if it is the one in force.
    pub async fn release_account_facts(
        &self,
        account_id: &str,
        migration_id: &str,
    ) -> Result<(), Error> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item::account_key(account_id)))
            .update_expression("REMOVE facts_held_until, facts_held_by")
            .condition_expression("facts_held_by = :migration")
            .set_expression_attribute_values(values([(":migration", s(migration_id))]))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if old_image(&e).is_some() => Ok(()),
            Err(e) => Err(sdk_error("UpdateItem")(e)),
        }
    }
}
