//! A successful verification's commit: the codes spent, the main account's
//! TOTP step spent (and for a plain change its contact swapped), together;
//! and what eligibility reads at verification.

use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use super::item::{self, n, s, Item};
use super::{build_error, names, values, Refusal, Store, TOTP_STEP_UNUSED};
use crate::domain::eligibility::EligibilityFacts;
use crate::domain::{AuditEvent, Contact, Error, Migration, Outbox, Timestamp};

/// The outcome of a transaction that consumes a TOTP step.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Committed,
    /// The TOTP step was used by a concurrent request first.
    TotpReplayed,
    /// The migration, the account or the contact changed since they were read.
    StateChanged,
}

impl Store {
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
    /// step spent and the migration completed, together with what the
    /// change announces (`outbox`).
    pub async fn complete_plain_change(
        &self,
        migration: &Migration,
        previous: Option<&Contact>,
        totp_step: u64,
        now: Timestamp,
        event: &AuditEvent,
        outbox: &Outbox,
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
        items.extend(self.announce(outbox)?);
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
