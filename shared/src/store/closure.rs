//! The closure commit: one transaction that moves the contact, closes the
//! duplicate for good, writes the once-only markers and the audit records.
//! Its conditions carry everything `migrate` showed and everything the
//! closure relies on, so a change between `migrate` and the commit cancels
//! the whole of it.

use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use super::item::{self, b, n, s};
use super::{build_error, names, values, Refusal, Store, TOTP_STEP_UNUSED};
use crate::domain::{AccountStatus, AuditEvent, Blocker, Error, Migration, Outbox, Timestamp};

/// How a closure commit ended, when DynamoDB answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Closure {
    Committed,
    /// A condition failed: the most specific answer for it.
    Refused(Error),
    /// The duplicate's TOTP step was spent by a concurrent request first:
    /// the code submitted is a replay.
    DuplicateTotpReplayed,
}

impl Store {
    /// The closure, in one transaction: the migration completes, the duplicate
    /// closes (tokens revoked, referral code off, contacts removed, the TOTP
    /// step of its authenticator spent when one was checked), the contact
    /// moves to the main account and its previous one is released, both
    /// once-only markers are written, the audit records are stored, and so
    /// is what the closure announces (`outbox`: the notices and the events,
    /// with the accounts' event sequences advanced). Any refused condition
    /// cancels all of it.
    pub async fn commit_closure(
        &self,
        migration: &Migration,
        duplicate_totp_step: Option<u64>,
        guard_facts: bool,
        now: Timestamp,
        event: &AuditEvent,
        outbox: &Outbox,
    ) -> Result<Closure, Error> {
        let main = &migration.account_id;
        let duplicate = migration
            .duplicate_account_id
            .as_deref()
            .ok_or(Error::InvalidState("verified"))?;
        let contact = &migration.new_contact;
        let field = contact.channel().as_str();

        let migration_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::migration_key(&migration.migration_id)))
            .update_expression(
                "SET #state = :completed, completed_at = :now, closed_account_id = :dup",
            )
            .condition_expression(
                "#state = :awaiting AND account_id = :main AND duplicate_account_id = :dup \
                 AND confirm_by > :now",
            )
            .set_expression_attribute_names(names([("#state", "state")]))
            .set_expression_attribute_values(values([
                (":completed", s("completed")),
                (":awaiting", s("awaiting_confirmation")),
                (":main", s(main)),
                (":dup", s(duplicate)),
                (":now", n(now)),
            ]))
            .build()
            .map_err(build_error)?;

        let duplicate_update =
            self.duplicate_closure(migration, duplicate, duplicate_totp_step, guard_facts, now)?;

        // The main account takes the contact, provided its own contact on the
        // channel is still the one `migrate` saw.
        let mut main_condition = "#status = :active".to_owned();
        let mut main_values = values([
            (":active", s(AccountStatus::Active.as_str())),
            (":contact", s(contact.value())),
        ])
        .unwrap_or_default();
        match &migration.previous_contact {
            Some(previous) => {
                main_condition.push_str(" AND #contact = :previous");
                main_values.insert(":previous".into(), s(previous.value()));
            }
            None => main_condition.push_str(" AND attribute_not_exists(#contact)"),
        }
        let main_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::account_key(main)))
            .update_expression("SET #contact = :contact")
            .condition_expression(main_condition)
            .set_expression_attribute_names(names([("#status", "status"), ("#contact", field)]))
            .set_expression_attribute_values(Some(main_values))
            .build()
            .map_err(build_error)?;

        let ownership_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::contact_key(contact)))
            .update_expression("SET #owner = :main")
            .condition_expression("#owner = :dup")
            .set_expression_attribute_names(names([("#owner", "owner")]))
            .set_expression_attribute_values(values([(":main", s(main)), (":dup", s(duplicate))]))
            .build()
            .map_err(build_error)?;

        let mut items = vec![
            TransactWriteItem::builder()
                .update(migration_update)
                .build(),
            TransactWriteItem::builder()
                .update(duplicate_update)
                .build(),
            TransactWriteItem::builder().update(main_update).build(),
            TransactWriteItem::builder()
                .update(ownership_update)
                .build(),
            // Rule 3, both halves, as markers that can be written only once.
            self.put(
                item::with_key(
                    item::migrated_marker_key(contact),
                    [
                        ("account_id", s(main)),
                        ("migration_id", s(&migration.migration_id)),
                        ("at", n(now)),
                    ],
                ),
                "attribute_not_exists(pk)",
            )?,
            self.put(
                item::with_key(
                    item::received_marker_key(main, contact.channel()),
                    [("migration_id", s(&migration.migration_id)), ("at", n(now))],
                ),
                "attribute_not_exists(pk)",
            )?,
            self.audit(event)?,
            self.audit(&event.for_account(duplicate))?,
        ];
        if let Some(previous) = &migration.previous_contact {
            items.push(self.release_contact(previous, main)?);
        }
        if let Some(other) = &migration.duplicate_other_contact {
            items.push(self.release_contact(other, duplicate)?);
        }
        items.extend(self.announce(outbox)?);

        Ok(match self.transact(items).await? {
            Ok(()) => Closure::Committed,
            Err(refusals) => closure_refusal(&refusals, duplicate_totp_step),
        })
    }

    /// The duplicate's half: closed for good, with no sign-in (token version
    /// bumped), no referrals and no contact. Conditional on it still being
    /// what `migrate` showed: active, unverified (rules 1 and 5), owning the
    /// contact, holding assets or not as the acknowledged warning said, with
    /// or without an authenticator as the confirmation asked, and its other
    /// contact the one the closure releases (a closed account owns none);
    /// with `guard_facts`, its facts too (the `table` adapter's hold).
    fn duplicate_closure(
        &self,
        migration: &Migration,
        duplicate: &str,
        totp_step: Option<u64>,
        guard_facts: bool,
        now: Timestamp,
    ) -> Result<Update, Error> {
        let contact = &migration.new_contact;
        let mut update = "SET #status = :closed, closed_at = :now, tokens_revoked_at = :now, \
             token_version = if_not_exists(token_version, :zero) + :one, \
             referral_code_active = :false"
            .to_owned();
        let mut condition = "#status = :active AND #contact = :contact".to_owned();
        let mut attribute_values = values([
            (":closed", s(AccountStatus::Closed.as_str())),
            (":active", s(AccountStatus::Active.as_str())),
            (":now", n(now)),
            (":zero", n(0)),
            (":one", n(1)),
            (":false", b(false)),
            (":contact", s(contact.value())),
        ])
        .unwrap_or_default();
        if guard_facts {
            // The `table` adapter's facts: the commit is the closure hold.
            // No KYC and no withdrawal in flight (rules 1 and §7), assets
            // as the acknowledged warning said.
            condition.push_str(
                " AND kyc_verified = :false AND has_assets = :assets \
                 AND (attribute_not_exists(pending_withdrawals) OR pending_withdrawals = :false)",
            );
            attribute_values.insert(
                ":assets".into(),
                b(migration.duplicate_has_assets.unwrap_or(false)),
            );
        }
        match &migration.duplicate_other_contact {
            Some(other) => {
                condition.push_str(" AND #other = :other");
                attribute_values.insert(":other".into(), s(other.value()));
            }
            None => condition.push_str(" AND attribute_not_exists(#other)"),
        }
        match (migration.needs_duplicate_totp(), totp_step) {
            (true, Some(step)) => {
                update.push_str(", totp_last_step = :step");
                condition.push_str(&format!(
                    " AND attribute_exists(#totp) AND ({TOTP_STEP_UNUSED})"
                ));
                attribute_values.insert(":step".into(), n(step));
            }
            (true, None) => {
                return Err(Error::Internal(
                    "a closure that needs the duplicate's code was not given one".into(),
                ))
            }
            (false, _) => condition.push_str(" AND attribute_not_exists(#totp)"),
        }
        update.push_str(" REMOVE #contact, #other");
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(item::account_key(duplicate)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(names([
                ("#status", "status"),
                ("#contact", contact.channel().as_str()),
                ("#other", contact.channel().other().as_str()),
                ("#totp", item::TOTP_SECRET_CIPHERTEXT),
            ]))
            .set_expression_attribute_values(Some(attribute_values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)
    }
}

/// Closure transaction layout: 0 migration, 1 duplicate, 2 main, 3 contact
/// ownership, 4 contact marker, 5 received marker, 6-7 audit, then the
/// releases of the main account's previous and the duplicate's other
/// contact, then the outbox and the event sequences (a sequence advanced by
/// a concurrent commit is a plain `state_changed`: the close retries).
fn closure_refusal(refusals: &[Refusal], duplicate_totp_step: Option<u64>) -> Closure {
    let failed = |i: usize| refusals.get(i).is_some_and(Refusal::condition_failed);
    if failed(4) {
        return Closure::Refused(Error::ContactAlreadyMigrated);
    }
    if failed(5) {
        return Closure::Refused(Error::AccountAlreadyMigrated);
    }
    if failed(1) {
        if let Some(old) = refusals[1].old.as_ref() {
            if item::get_s(old, "status") == Some(AccountStatus::Closed.as_str()) {
                return Closure::Refused(Error::DuplicateClosed);
            }
            if item::get_bool(old, "kyc_verified") {
                return Closure::Refused(Error::DuplicateIdentityVerified);
            }
            if item::get_bool(old, "pending_withdrawals") {
                return Closure::Refused(Error::from_blocker(
                    Blocker::DuplicateHasPendingWithdrawals,
                ));
            }
            let spent = item::get_n::<u64>(old, "totp_last_step");
            let only_the_duplicate = refusals
                .iter()
                .enumerate()
                .all(|(i, r)| i == 1 || !r.condition_failed());
            if let (Some(step), Some(spent)) = (duplicate_totp_step, spent) {
                if spent >= step && only_the_duplicate {
                    return Closure::DuplicateTotpReplayed;
                }
            }
        }
    }
    Closure::Refused(Error::StateChanged)
}
