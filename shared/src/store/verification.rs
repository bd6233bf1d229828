//! A verification's reads and its one write.
//!
//! The codes are checked in process, between the reads and the write; no
//! answer that depends on them is given before a write conditional on the
//! attempt limits has landed. A failure counts itself on the migration
//! (conditional on the count read) and appends itself to the account's
//! failure log (conditional on the version read), with the lock when it is
//! the last allowed one; a right attempt counts itself too (while an attempt
//! is left) and requires the failure log to be still as read. So however
//! many guesses run in parallel, no more than the migration's attempts are
//! evaluated, nor more than the account's failures per window, and a right
//! guess cannot pass limits that concurrent failures used up.

use aws_sdk_dynamodb::types::{
    ConditionCheck, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::facts::facts_of;
use super::item::{self, n, s, Item};
use super::outbox::event_head_key;
use super::quota::{quota_key, QuotaLog};
use super::{build_error, names, values, Refusal, Store, TOTP_STEP_UNUSED};
use crate::domain::eligibility::EligibilityFacts;
use crate::domain::quota::{Hit, QuotaKind};
use crate::domain::{Account, AuditEvent, Contact, Error, Migration, Outbox, Sequence, Timestamp};
use crate::facts::AccountFacts;

/// What a verification reads first, in one request.
#[derive(Debug)]
pub struct VerificationRead {
    pub migration: Option<Migration>,
    pub account: Option<Account>,
    /// The account's failed verifications (the failure quota's log).
    pub failures: QuotaLog,
    /// The account's event head, for a lock or a plain change to announce at.
    pub sequence: Sequence,
}

/// What eligibility reads at verification, in one request.
#[derive(Debug)]
pub struct VerificationFacts {
    pub eligibility: EligibilityFacts,
    /// The duplicate's facts as its own item holds them (the `table`
    /// adapter's facts), read in the same request.
    pub stored: AccountFacts,
}

/// The limits an attempt's write is conditional on, as they were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Attempts per migration.
    pub max_attempts: u32,
    /// The version of the account's failure log that was read.
    pub failures_version: u64,
}

/// An attempt whose three factors were right, as its write needs it.
#[derive(Debug, Clone, Copy)]
pub struct RightAttempt<'a> {
    /// The migration as read: its codes are the ones checked.
    pub migration: &'a Migration,
    /// The TOTP step the attempt spends.
    pub totp_step: u64,
    pub limits: Limits,
    pub now: Timestamp,
}

/// A failed attempt, as its write needs it.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// The migration as read: the count moves on from its, and its codes are
    /// the ones checked.
    pub migration: &'a Migration,
    pub limits: Limits,
    /// The account's failure log with this failure admitted, and how long
    /// the log must be kept.
    pub failures: &'a [Hit],
    pub failures_expire_at: Timestamp,
    /// A right TOTP code's step, spent even though another factor was wrong.
    pub totp_step: Option<u64>,
    pub event: &'a AuditEvent,
    /// The last allowed failure: the lock's audit record and what the lock
    /// announces.
    pub lock: Option<(&'a AuditEvent, &'a Outbox)>,
    pub now: Timestamp,
}

/// How the write of an attempt whose factors were right ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Committed,
    /// The TOTP step was used by a concurrent request first.
    TotpReplayed,
    /// The migration moved on since it was read: another step, a resend,
    /// its expiry, or its attempts used up by concurrent failures.
    MigrationChanged,
    /// Only what is read again anyway moved: the account's failure log (a
    /// failure landed) or its event sequence, or a concurrent transaction
    /// held an item.
    Outdated,
    /// The account or the contact changed since they were read.
    StateChanged,
}

/// What a write needs of the attempts counted so far.
#[derive(Debug, Clone, Copy)]
enum Counted {
    /// At least one attempt is left.
    Below(u32),
    /// Exactly this many were counted: nothing else counted since the read.
    Exactly(u32),
}

/// Where the items whose refusal has a meaning sit in an attempt's
/// transaction; the migration is always item 0.
struct Layout {
    account: Option<usize>,
    /// Items a fresh read fixes: the failure log and the event head.
    outdated: Vec<usize>,
}

impl Store {
    /// The migration, the caller's account, the account's failure log and
    /// its event head, in one round trip.
    pub async fn verification_read(
        &self,
        migration_id: &str,
        account_id: &str,
    ) -> Result<VerificationRead, Error> {
        let keys = [
            item::migration_key(migration_id),
            item::account_key(account_id),
            quota_key(QuotaKind::Failures, account_id),
            event_head_key(account_id),
        ];
        let mut found = self.get_many(keys.to_vec()).await?;
        let migration = Store::take(&mut found, &keys[0])
            .map(|it| item::migration_from_item(&it))
            .transpose()?;
        let account = Store::take(&mut found, &keys[1])
            .map(|it| item::account_from_item(&it))
            .transpose()?;
        let failures = QuotaLog::of(Store::take(&mut found, &keys[2]).as_ref());
        let committed = Store::take(&mut found, &keys[3])
            .and_then(|it| item::get_n(&it, "committed"))
            .unwrap_or(0);
        Ok(VerificationRead {
            migration,
            account,
            failures,
            sequence: Sequence { committed },
        })
    }

    /// Everything eligibility needs at verification, in one request; `None`
    /// when the duplicate account does not exist.
    pub async fn eligibility_facts(
        &self,
        main_account_id: &str,
        duplicate_account_id: &str,
        contact: &Contact,
    ) -> Result<Option<VerificationFacts>, Error> {
        let keys = [
            item::account_key(duplicate_account_id),
            item::migrated_marker_key(contact),
            item::received_marker_key(main_account_id, contact.channel()),
        ];
        let mut found = self.get_many(keys.to_vec()).await?;
        let Some(duplicate) = Self::take(&mut found, &keys[0]) else {
            return Ok(None);
        };
        Ok(Some(VerificationFacts {
            stored: facts_of(&duplicate),
            eligibility: EligibilityFacts {
                duplicate: item::account_from_item(&duplicate)?,
                contact_already_migrated: Self::take(&mut found, &keys[1]).is_some(),
                main_already_received: Self::take(&mut found, &keys[2]).is_some(),
            },
        }))
    }

    /// A failed attempt, in one transaction: counted on the migration, its
    /// failure appended to the account's log, a right TOTP code's step
    /// spent, the audit record, and for the last allowed failure the lock
    /// with what it announces. Returns whether it was written; `false` when
    /// anything moved since it was read, which a fresh read shows.
    pub async fn record_failure(&self, failure: &Failure<'_>) -> Result<bool, Error> {
        let migration = failure.migration;
        let counted = migration.failed_attempts + 1;
        let mut set = vec!["failed_attempts = :counted"];
        let mut extra = values([(":counted", n(counted))]).unwrap_or_default();
        if failure.lock.is_some() {
            set.push("#state = :locked");
            extra.insert(":locked".into(), s("locked"));
        }
        let mut items = vec![
            // Exactly the count read: the lock and the attempts remaining
            // answered rest on it.
            self.attempt_update(
                migration,
                &set.join(", "),
                extra,
                Counted::Exactly(migration.failed_attempts),
                failure.now,
            )?,
            self.quota_log_put(
                QuotaKind::Failures,
                &migration.account_id,
                failure.limits.failures_version,
                failure.failures,
                failure.failures_expire_at,
            )?,
            self.audit(failure.event)?,
        ];
        if let Some(step) = failure.totp_step {
            items.push(self.totp_step_spent(&migration.account_id, step)?);
        }
        if let Some((event, outbox)) = failure.lock {
            items.push(self.audit(event)?);
            items.extend(self.announce(outbox)?);
        }
        Ok(self.transact(items).await?.is_ok())
    }

    /// A right attempt that changes nothing else (the contact is already
    /// the account's): counted, and its TOTP step spent, as a check of the
    /// limits.
    pub async fn record_right_attempt(
        &self,
        attempt: &RightAttempt<'_>,
    ) -> Result<Verification, Error> {
        let migration = attempt.migration;
        let items = vec![
            self.attempt_update(
                migration,
                "failed_attempts = failed_attempts + :one",
                values([(":one", n(1))]).unwrap_or_default(),
                Counted::Below(attempt.limits.max_attempts),
                attempt.now,
            )?,
            self.totp_step_update(migration, attempt.totp_step, None)?,
            self.failures_unchanged(migration, attempt.limits)?,
        ];
        let layout = Layout {
            account: Some(1),
            outdated: vec![2],
        };
        Ok(outcome(
            self.transact(items).await?,
            &layout,
            attempt.totp_step,
        ))
    }

    /// Whether the limits still admit the attempt, without changing
    /// anything: for a right attempt refused for a reason of its own (the
    /// duplicate's facts could not be read), so that refusal is not an
    /// answer past the limits either.
    pub async fn check_limits(
        &self,
        migration: &Migration,
        limits: Limits,
        now: Timestamp,
    ) -> Result<Verification, Error> {
        let (condition, attribute_values) =
            attempt_condition(migration, Counted::Below(limits.max_attempts), now);
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(item::migration_key(&migration.migration_id)))
            .condition_expression(condition)
            .set_expression_attribute_names(names([("#state", "state")]))
            .set_expression_attribute_values(Some(attribute_values))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().condition_check(check).build(),
            self.failures_unchanged(migration, limits)?,
        ];
        let layout = Layout {
            account: None,
            outdated: vec![1],
        };
        Ok(outcome(self.transact(items).await?, &layout, 0))
    }

    /// Verification of a contact bound to another account: the migration
    /// becomes `verified` (the attempt counted) and the TOTP step is spent,
    /// together, within the limits.
    pub async fn mark_verified(
        &self,
        attempt: &RightAttempt<'_>,
        duplicate_account_id: &str,
        confirm_by: Timestamp,
        event: &AuditEvent,
    ) -> Result<Verification, Error> {
        let migration = attempt.migration;
        let items = vec![
            self.verified_migration_update(
                attempt,
                "#state = :verified, duplicate_account_id = :dup, verified_at = :now, confirm_by = :by",
                values([
                    (":verified", s("verified")),
                    (":dup", s(duplicate_account_id)),
                    (":by", n(confirm_by)),
                ])
                .unwrap_or_default(),
            )?,
            self.totp_step_update(migration, attempt.totp_step, None)?,
            self.audit(event)?,
            self.failures_unchanged(migration, attempt.limits)?,
        ];
        let layout = Layout {
            account: Some(1),
            outdated: vec![3],
        };
        Ok(outcome(
            self.transact(items).await?,
            &layout,
            attempt.totp_step,
        ))
    }

    /// Verification of a free contact: a plain change of contact, committed
    /// at once, within the limits. The new contact is claimed, the old one
    /// released, the TOTP step spent and the migration completed (the
    /// attempt counted), together with what the change announces (`outbox`).
    pub async fn complete_plain_change(
        &self,
        attempt: &RightAttempt<'_>,
        previous: Option<&Contact>,
        event: &AuditEvent,
        outbox: &Outbox,
    ) -> Result<Verification, Error> {
        let migration = attempt.migration;
        let owner = &migration.account_id;
        let mut items = vec![
            self.verified_migration_update(
                attempt,
                "#state = :completed, completed_at = :now",
                values([(":completed", s("completed"))]).unwrap_or_default(),
            )?,
            self.totp_step_update(migration, attempt.totp_step, Some(previous))?,
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
        // The event head's advance is the last item `announce` returns.
        items.extend(self.announce(outbox)?);
        let head = items.len() - 1;
        items.push(self.failures_unchanged(migration, attempt.limits)?);
        let layout = Layout {
            account: Some(1),
            outdated: vec![head, items.len() - 1],
        };
        Ok(outcome(
            self.transact(items).await?,
            &layout,
            attempt.totp_step,
        ))
    }

    /// The account's failure log still at the version read: no failure
    /// landed since, so the quota that admitted this attempt still does.
    fn failures_unchanged(
        &self,
        migration: &Migration,
        limits: Limits,
    ) -> Result<TransactWriteItem, Error> {
        self.quota_log_unchanged(
            QuotaKind::Failures,
            &migration.account_id,
            limits.failures_version,
        )
    }

    /// The migration's half of a successful verification: the attempt
    /// counted and the codes spent.
    fn verified_migration_update(
        &self,
        attempt: &RightAttempt<'_>,
        set: &str,
        mut extra: Item,
    ) -> Result<TransactWriteItem, Error> {
        extra.insert(":one".into(), n(1));
        self.attempt_update(
            attempt.migration,
            &format!(
                "failed_attempts = failed_attempts + :one, {set} \
                 REMOVE new_code_digest, current_code_digest"
            ),
            extra,
            Counted::Below(attempt.limits.max_attempts),
            attempt.now,
        )
    }

    /// An update of the migration by an attempt (`SET {set}`), conditional
    /// on [`attempt_condition`].
    fn attempt_update(
        &self,
        migration: &Migration,
        set: &str,
        extra: Item,
        counted: Counted,
        now: Timestamp,
    ) -> Result<TransactWriteItem, Error> {
        let (condition, mut attribute_values) = attempt_condition(migration, counted, now);
        attribute_values.extend(extra);
        Ok(TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(item::migration_key(&migration.migration_id)))
                    .update_expression(format!("SET {set}"))
                    .condition_expression(condition)
                    .set_expression_attribute_names(names([("#state", "state")]))
                    .set_expression_attribute_values(Some(attribute_values))
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }

    /// A failed attempt's right TOTP code: its step spent, so an observed
    /// code cannot be tried again.
    fn totp_step_spent(&self, account_id: &str, step: u64) -> Result<TransactWriteItem, Error> {
        Ok(TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(item::account_key(account_id)))
                    .update_expression("SET totp_last_step = :step")
                    .condition_expression(TOTP_STEP_UNUSED)
                    .set_expression_attribute_values(values([(":step", n(step))]))
                    .build()
                    .map_err(build_error)?,
            )
            .build())
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
}

/// What an attempt's write requires of the migration: still awaiting
/// verification by its owner, its codes unexpired and the ones checked, and
/// the attempts counted as `counted` says. Uses `#state`.
fn attempt_condition(migration: &Migration, counted: Counted, now: Timestamp) -> (String, Item) {
    let mut condition = "#state = :codes_sent AND account_id = :owner AND codes_expire_at > :now \
                         AND "
        .to_owned();
    let mut attribute_values = values([
        (":codes_sent", s("codes_sent")),
        (":owner", s(&migration.account_id)),
        (":now", n(now)),
    ])
    .unwrap_or_default();
    match &migration.new_code_digest {
        Some(digest) => {
            condition.push_str("new_code_digest = :digest");
            attribute_values.insert(":digest".into(), s(digest));
        }
        None => condition.push_str("attribute_not_exists(new_code_digest)"),
    }
    match counted {
        Counted::Below(max) => {
            condition.push_str(" AND failed_attempts < :max");
            attribute_values.insert(":max".into(), n(max));
        }
        Counted::Exactly(count) => {
            condition.push_str(" AND failed_attempts = :before");
            attribute_values.insert(":before".into(), n(count));
        }
    }
    (condition, attribute_values)
}

/// Why a right attempt's transaction was refused. A replay is an account
/// refused only because its TOTP step was spent by a concurrent request
/// first.
fn outcome(result: Result<(), Vec<Refusal>>, layout: &Layout, step: u64) -> Verification {
    let Err(refusals) = result else {
        return Verification::Committed;
    };
    let failed: Vec<usize> = refusals
        .iter()
        .enumerate()
        .filter(|(_, r)| r.condition_failed())
        .map(|(i, _)| i)
        .collect();
    if failed.contains(&0) {
        return Verification::MigrationChanged;
    }
    let rest: Vec<usize> = failed
        .into_iter()
        .filter(|i| !layout.outdated.contains(i))
        .collect();
    if rest.is_empty() {
        return if refusals.iter().any(Refusal::lost_a_race) {
            Verification::Outdated
        } else {
            Verification::StateChanged
        };
    }
    let old = layout
        .account
        .filter(|account| rest == [*account])
        .and_then(|account| refusals.get(account))
        .and_then(|r| r.old.as_ref());
    let active = old.is_some_and(|old| item::get_s(old, "status") == Some("active"));
    let spent = old.and_then(|old| item::get_n::<u64>(old, "totp_last_step"));
    if active && spent.is_some_and(|spent| spent >= step) {
        Verification::TotpReplayed
    } else {
        Verification::StateChanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: &str) -> Refusal {
        Refusal {
            code: code.into(),
            old: None,
        }
    }

    fn refused(codes: &[&str]) -> Result<(), Vec<Refusal>> {
        Err(codes.iter().map(|c| refusal(c)).collect())
    }

    /// Migration, account, audit, the failure log's check.
    fn layout() -> Layout {
        Layout {
            account: Some(1),
            outdated: vec![3],
        }
    }

    const FAILED: &str = "ConditionalCheckFailed";

    fn outcome_of(codes: &[&str]) -> Verification {
        outcome(refused(codes), &layout(), 7)
    }

    #[test]
    fn a_refused_migration_is_a_moved_migration_whatever_else_was_refused() {
        assert_eq!(
            outcome_of(&[FAILED, FAILED, "None", FAILED]),
            Verification::MigrationChanged
        );
    }

    #[test]
    fn a_failure_log_that_moved_alone_is_read_again() {
        assert_eq!(
            outcome_of(&["None", "None", "None", FAILED]),
            Verification::Outdated
        );
        assert_eq!(
            outcome_of(&["None", "TransactionConflict", "None", "None"]),
            Verification::Outdated,
            "a concurrent transaction held an item"
        );
    }

    #[test]
    fn an_account_refused_for_a_step_spent_since_is_a_replay() {
        let mut refusals: Vec<Refusal> = ["None", FAILED, "None", "None"]
            .iter()
            .map(|c| refusal(c))
            .collect();
        refusals[1].old = Some(
            [
                ("status".to_owned(), s("active")),
                ("totp_last_step".to_owned(), n(7)),
            ]
            .into(),
        );
        assert_eq!(
            outcome(Err(refusals), &layout(), 7),
            Verification::TotpReplayed
        );
    }

    #[test]
    fn an_account_refused_otherwise_is_a_change_of_state() {
        let mut refusals: Vec<Refusal> = ["None", FAILED, "None", "None"]
            .iter()
            .map(|c| refusal(c))
            .collect();
        refusals[1].old = Some(
            [
                ("status".to_owned(), s("active")),
                ("totp_last_step".to_owned(), n(6)),
            ]
            .into(),
        );
        assert_eq!(
            outcome(Err(refusals), &layout(), 7),
            Verification::StateChanged
        );
        assert_eq!(
            outcome_of(&["None", "None", FAILED, "None"]),
            Verification::StateChanged,
            "another item refused"
        );
        assert_eq!(
            outcome_of(&[]),
            Verification::StateChanged,
            "no reasons given"
        );
    }

    #[test]
    fn a_failure_counts_on_the_count_read_and_a_right_attempt_on_any_count_left() {
        let migration = Migration {
            new_code_digest: Some("d".into()),
            failed_attempts: 3,
            ..crate::domain::migration::started_at(0)
        };
        let (exactly, values) = attempt_condition(&migration, Counted::Exactly(3), 10);
        assert!(exactly.ends_with("failed_attempts = :before"), "{exactly}");
        assert_eq!(values.get(":before"), Some(&n(3)));
        assert_eq!(values.get(":digest"), Some(&s("d")));
        let (below, values) = attempt_condition(&migration, Counted::Below(5), 10);
        assert!(below.ends_with("failed_attempts < :max"), "{below}");
        assert_eq!(values.get(":max"), Some(&n(5)));
    }
}
