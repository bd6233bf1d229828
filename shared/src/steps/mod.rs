//! The steps of the flow (PRODUCT.md §2), one module each. A step reads what
//! it needs, applies the domain rules, and makes one conditional write or one
//! transaction. Each takes the caller's account id and the current time.

pub mod close;
pub mod lifecycle;
pub mod migrate;
pub mod start;
pub mod verify;

use serde::Serialize;

use crate::app::App;
use crate::domain::{
    rfc3339, AuditEvent, Caller, Error, Migration, MigrationState, Outbox, Policy, Step, Timestamp,
};
use crate::store::Lock;

/// A migration as the owner sees it: the answer of start, resend and GET.
#[derive(Debug, Serialize)]
pub struct MigrationView {
    pub migration_id: String,
    pub state: &'static str,
    pub channel: &'static str,
    pub new_contact: String,
    pub current_contact: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resend_available_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_account_id: Option<String>,
}

impl MigrationView {
    pub fn of(m: &Migration, now: Timestamp, policy: &Policy) -> MigrationView {
        let state = m.state_at(now, policy);
        let open = state == MigrationState::CodesSent;
        let verified = m.verified_at.is_some();
        MigrationView {
            migration_id: m.migration_id.clone(),
            state: state.as_str(),
            channel: m.channel.as_str(),
            new_contact: m.new_contact.masked(),
            current_contact: m.current_contact.masked(),
            created_at: rfc3339(m.created_at),
            expires_at: open.then(|| rfc3339(m.codes_expire_at)),
            // Absent once the migration's sends are used up: no resend will succeed.
            resend_available_at: (open && m.sends < policy.max_sends)
                .then(|| rfc3339(m.resend_available_at(policy))),
            attempts_remaining: open.then(|| m.attempts_remaining(policy)),
            migration_required: (verified || m.completed_at.is_some())
                .then(|| m.migration_required()),
            confirm_by: m.confirm_by.map(rfc3339),
            completed_at: m.completed_at.map(rfc3339),
            closed_account_id: m.closed_account_id.clone(),
        }
    }
}

/// The answer to a counted attempt of the duplicate's authenticator code
/// that failed at the closure: audited, and the last allowed failure locks
/// the migration. (A failed verification does all of it in one transaction.)
async fn failed_attempt(
    app: &App,
    caller: &Caller,
    migration: &Migration,
    step: Step,
    invalid: Vec<&'static str>,
    now: Timestamp,
) -> Error {
    let attempts_remaining = migration.attempts_remaining(&app.policy);
    let failure = AuditEvent::new(step, "invalid_codes", migration, caller, now);
    if let Err(e) = app.store.append_audit(&failure).await {
        tracing::error!(migration_id = %migration.migration_id, error = %e, "audit record not written");
    }
    if attempts_remaining == 0 {
        lock(app, caller, migration, now).await;
    }
    Error::InvalidCodes {
        invalid,
        attempts_remaining,
    }
}

/// Conflicts on the owner's event sequence alone are retried this often.
const LOCK_RETRIES: usize = 3;

/// Locks a migration whose last allowed attempt failed, together with its
/// `migration.locked.v1` at the owner's next event sequence. The attempt
/// count alone already refuses further checks, so a lock that cannot be
/// recorded is logged, not answered.
async fn lock(app: &App, caller: &Caller, migration: &Migration, now: Timestamp) {
    let id = migration.migration_id.as_str();
    let event = AuditEvent::new(Step::Lock, "ok", migration, caller, now);
    for _ in 0..=LOCK_RETRIES {
        let locked = async {
            let sequence = app.store.sequences(&[&migration.account_id]).await?[0];
            let outbox = Outbox::lock(migration, sequence, migration.failed_attempts, now);
            app.store.lock(id, &event, &outbox).await
        };
        match locked.await {
            Ok(Lock::Locked) => {
                tracing::warn!(migration_id = %id, "migration locked after too many failed attempts");
                return;
            }
            Ok(Lock::NotLockable) => return,
            Ok(Lock::Conflict) => continue,
            Err(e) => {
                tracing::error!(migration_id = %id, error = %e, "lock not recorded");
                return;
            }
        }
    }
    tracing::error!(migration_id = %id, "lock not recorded: the owner's events kept moving");
}
