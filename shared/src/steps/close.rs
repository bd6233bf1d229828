//! `POST /migrations/{id}/close`: the one atomic commit. Nothing changes
//! unless every condition holds; repeating a successful close answers the
//! same 200, including for the losers of a race on the same migration.
//!
//! When the duplicate has an authenticator enrolled (`migrate` said
//! `duplicate_two_factor_required`), the closure also needs a code from it:
//! control of the duplicate's mailbox or SIM alone must not be enough to
//! close someone's account for good. That code is counted against the
//! migration's attempts before it is checked, like a verification, and its
//! TOTP step is spent by the closing transaction itself.
//!
//! Right before the commit the duplicate's facts are read once more, under
//! the exchange's closure hold (PRODUCT.md §7), so no deposit, withdrawal or
//! identity verification can land between that read and the commit; with
//! the `table` adapter the commit's own conditions are the hold.

use serde::{Deserialize, Serialize};

use super::failed_attempt;
use crate::app::App;
use crate::domain::totp;
use crate::domain::warning::missing_acknowledgements;
use crate::domain::Blocker;
use crate::domain::{
    rfc3339, AuditEvent, Caller, Error, Migration, MigrationState, Outbox, Step, Timestamp,
};
use crate::facts::{AccountFacts, Hold};
use crate::store::Closure;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    #[serde(default)]
    pub acknowledged_warnings: Vec<String>,
    #[serde(default)]
    pub confirm: bool,
    #[serde(default)]
    pub duplicate_totp_code: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Closed {
    pub state: &'static str,
    pub channel: &'static str,
    pub contact: String,
    pub closed_account_id: String,
    pub completed_at: String,
}

/// Transaction conflicts with a concurrent request are retried this often.
const CONFLICT_RETRIES: usize = 2;

const DUPLICATE_TOTP_FIELD: &str = "duplicate_totp_code";

fn closed(m: &Migration) -> Option<Closed> {
    match (m.state, &m.closed_account_id, m.completed_at) {
        (MigrationState::Completed, Some(closed_account_id), Some(at)) => Some(Closed {
            state: MigrationState::Completed.as_str(),
            channel: m.channel.as_str(),
            contact: m.new_contact.masked(),
            closed_account_id: closed_account_id.clone(),
            completed_at: rfc3339(at),
        }),
        _ => None,
    }
}

/// What checking the duplicate's authenticator code came to.
enum DuplicateCode {
    /// Right: the TOTP step the closure spends.
    Accepted(u64),
    /// A concurrent close of this migration committed first.
    AlreadyClosed(Closed),
}

pub async fn close(
    app: &App,
    caller: &Caller,
    migration_id: &str,
    request: CloseRequest,
    now: Timestamp,
) -> Result<Closed, Error> {
    let (migration, _) = app
        .active_caller_migration(&caller.account_id, migration_id)
        .await?;
    // Once committed, a repeated or concurrent identical request gets the
    // committed answer; no code is checked again.
    if let Some(done) = closed(&migration) {
        return Ok(done);
    }
    let mut missing = missing_acknowledgements(&request.acknowledged_warnings, request.confirm);
    if migration.needs_duplicate_totp() && request.duplicate_totp_code.is_none() {
        missing.push(DUPLICATE_TOTP_FIELD.into());
    }
    if !missing.is_empty() {
        return Err(Error::ConfirmationRequired { missing });
    }
    migration.check_closable(now, &app.policy)?;
    let duplicate_step = match request.duplicate_totp_code.as_deref() {
        Some(code) if migration.needs_duplicate_totp() => {
            match check_duplicate_code(app, caller, &migration, code, now).await? {
                DuplicateCode::Accepted(step) => Some(step),
                DuplicateCode::AlreadyClosed(done) => return Ok(done),
            }
        }
        _ => None,
    };
    let duplicate_id = migration
        .duplicate_account_id
        .clone()
        .ok_or(Error::StateChanged)?;
    let hold = match hold_and_check_facts(app, &migration, &duplicate_id).await {
        Ok(hold) => hold,
        Err(refusal) => {
            // A concurrent close of this migration may have closed the
            // duplicate first: then its answer is this one's.
            let stored = app
                .owned_migration(&caller.account_id, migration_id)
                .await?;
            if let Some(done) = closed(&stored) {
                return Ok(done);
            }
            spend_refused_code(app, &migration, duplicate_step).await;
            return Err(refusal);
        }
    };
    let result = commit(app, caller, migration, duplicate_step, hold, now).await;
    if result.is_err() {
        app.facts.release(&duplicate_id, migration_id).await;
    }
    result
}

/// The closure hold, then the duplicate's facts read under it and checked
/// against what `migrate` showed. Refused, the hold is released at once.
async fn hold_and_check_facts(
    app: &App,
    migration: &Migration,
    duplicate_id: &str,
) -> Result<Hold, Error> {
    let migration_id = migration.migration_id.as_str();
    let hold = app.facts.hold(duplicate_id, migration_id).await?;
    let refusal = match app.facts.facts(duplicate_id).await {
        Ok(facts) => facts_refusal(migration, &facts),
        Err(e) => Some(e),
    };
    match refusal {
        None => Ok(hold),
        Some(refusal) => {
            app.facts.release(duplicate_id, migration_id).await;
            Err(refusal)
        }
    }
}

/// Facts that forbid the closure, or changed since `migrate` showed them:
/// identity verification is rule 1's own 409, a withdrawal in flight is
/// `not_eligible` with its blocker (as `migrate` answers it), and assets
/// that appeared or went since the acknowledged warning are
/// `state_changed` (the warning no longer describes the account).
fn facts_refusal(migration: &Migration, facts: &AccountFacts) -> Option<Error> {
    if facts.kyc_verified {
        return Some(Error::DuplicateIdentityVerified);
    }
    if facts.pending_withdrawals {
        return Some(Error::from_blocker(Blocker::DuplicateHasPendingWithdrawals));
    }
    (migration.duplicate_has_assets != Some(facts.has_assets)).then_some(Error::StateChanged)
}

/// The closing transaction, retried over conflicts with concurrent requests.
async fn commit(
    app: &App,
    caller: &Caller,
    mut migration: Migration,
    duplicate_step: Option<u64>,
    hold: Hold,
    now: Timestamp,
) -> Result<Closed, Error> {
    let migration_id = migration.migration_id.clone();
    let migration_id = migration_id.as_str();
    for attempt in 0..=CONFLICT_RETRIES {
        if let Some(done) = closed(&migration) {
            return Ok(done);
        }
        migration.check_closable(now, &app.policy)?;
        let event = AuditEvent::new(Step::Close, "ok", &migration, caller, now);
        let outbox = announcement(app, &migration, now).await?;
        let refusal = match app
            .store
            .commit_closure(
                &migration,
                duplicate_step,
                hold.guards_in_commit(),
                now,
                &event,
                &outbox,
            )
            .await?
        {
            Closure::Committed => {
                migration.state = MigrationState::Completed;
                migration.completed_at = Some(now);
                migration.closed_account_id = migration.duplicate_account_id.clone();
                return closed(&migration)
                    .ok_or_else(|| Error::Internal("closure without result".into()));
            }
            Closure::DuplicateTotpReplayed => {
                let counted = app
                    .owned_migration(&caller.account_id, migration_id)
                    .await?;
                if let Some(done) = closed(&counted) {
                    return Ok(done);
                }
                return Err(failed_attempt(
                    app,
                    caller,
                    &counted,
                    Step::Close,
                    vec![DUPLICATE_TOTP_FIELD],
                    now,
                )
                .await);
            }
            Closure::Refused(refusal) => refusal,
        };
        // Perhaps a concurrent close of this same migration won: then its
        // result is this call's result too.
        migration = app
            .owned_migration(&caller.account_id, migration_id)
            .await?;
        if closed(&migration).is_some()
            || (refusal == Error::StateChanged && attempt < CONFLICT_RETRIES)
        {
            continue;
        }
        migration.check_closable(now, &app.policy)?;
        spend_refused_code(app, &migration, duplicate_step).await;
        return Err(refusal);
    }
    spend_refused_code(app, &migration, duplicate_step).await;
    closed(&migration).ok_or(Error::StateChanged)
}

/// The duplicate's authenticator code, counted as an attempt before it is
/// checked, so parallel guesses cannot exceed the migration's attempts; the
/// last allowed failure locks the migration.
async fn check_duplicate_code(
    app: &App,
    caller: &Caller,
    migration: &Migration,
    code: &str,
    now: Timestamp,
) -> Result<DuplicateCode, Error> {
    let account_id = caller.account_id.as_str();
    let migration_id = migration.migration_id.as_str();
    let Some(counted) = app
        .store
        .count_attempt(
            migration_id,
            account_id,
            Step::Close,
            app.policy.max_failed_attempts,
            now,
        )
        .await?
    else {
        // Closed, locked, expired or moved on by a concurrent request.
        let stored = app.owned_migration(account_id, migration_id).await?;
        if let Some(done) = closed(&stored) {
            return Ok(DuplicateCode::AlreadyClosed(done));
        }
        stored.check_closable(now, &app.policy)?;
        if stored.failed_attempts >= app.policy.max_failed_attempts {
            return Err(Error::MigrationLocked);
        }
        return Err(Error::StateChanged);
    };
    let duplicate_id = counted
        .duplicate_account_id
        .as_deref()
        .ok_or(Error::StateChanged)?;
    let duplicate = app
        .store
        .account(duplicate_id)
        .await?
        .ok_or(Error::StateChanged)?;
    // An authenticator removed since `migrate` is a change the closure's
    // conditions refuse anyway; answer it now.
    let secret = app
        .totp_secret(&duplicate)
        .await?
        .ok_or(Error::StateChanged)?;
    if let Ok(step) = totp::accept(&secret, code, now, duplicate.totp_last_step) {
        return Ok(DuplicateCode::Accepted(step));
    }
    // A concurrent close with the same code may have committed, spending
    // it: then its answer is this one's too.
    let stored = app.owned_migration(account_id, migration_id).await?;
    if let Some(done) = closed(&stored) {
        return Ok(DuplicateCode::AlreadyClosed(done));
    }
    Err(failed_attempt(
        app,
        caller,
        &counted,
        Step::Close,
        vec![DUPLICATE_TOTP_FIELD],
        now,
    )
    .await)
}

/// A right code of the duplicate's authenticator is spent even when the
/// closure was refused, so an observed code cannot be tried again.
async fn spend_refused_code(app: &App, migration: &Migration, step: Option<u64>) {
    let (Some(step), Some(duplicate)) = (step, migration.duplicate_account_id.as_deref()) else {
        return;
    };
    if let Err(e) = app.store.consume_totp_step(duplicate, step).await {
        tracing::warn!(migration_id = %migration.migration_id, error = %e, "duplicate's TOTP step not spent");
    }
}

/// What the closure announces: the notices, `contact.migrated.v1` and
/// `account.closed.v1`, at the next event sequence of each account (read
/// here; the commit is conditional on them still being the latest).
async fn announcement(app: &App, m: &Migration, now: Timestamp) -> Result<Outbox, Error> {
    let duplicate = m
        .duplicate_account_id
        .as_deref()
        .ok_or(Error::StateChanged)?;
    let sequences = app.store.sequences(&[&m.account_id, duplicate]).await?;
    Ok(Outbox::closure(
        m,
        duplicate,
        (sequences[0], sequences[1]),
        now,
        app.policy.withdrawal_hold,
    ))
}
