//! `POST /migrations/{id}/verify`: three factors at once. The attempt is
//! counted atomically before any code is checked (5 per migration, then
//! locked), so parallel guesses cannot exceed the limit. Only after all three
//! pass is the new contact's owner looked up: a free contact completes as a
//! plain change, a bound one becomes `verified` with its eligibility.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::eligibility::{self, Blocker};
use crate::domain::totp;
use crate::domain::{CodeSide, Error, Migration, Timestamp};
use crate::notify::Notice;
use crate::store::Verification;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub new_contact_code: String,
    pub current_contact_code: String,
    pub totp_code: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Verified {
    pub state: &'static str,
    pub migration_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eligible: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blockers: Option<Vec<Blocker>>,
}

pub async fn verify(
    app: &App,
    caller: &str,
    migration_id: &str,
    request: VerifyRequest,
    now: Timestamp,
) -> Result<Verified, Error> {
    let migration = app.owned_migration(caller, migration_id).await?;
    migration.check_verifiable(now, &app.policy)?;
    let main = app
        .store
        .account(caller)
        .await?
        .filter(|a| a.is_active())
        .ok_or(Error::AccountNotActive)?;
    let secret = main
        .totp_secret
        .as_deref()
        .ok_or(Error::TwoFactorRequired)?;

    let migration = match app
        .store
        .count_attempt(migration_id, caller, app.policy.max_failed_attempts, now)
        .await?
    {
        Some(counted) => counted,
        None => {
            // Locked, expired or moved on by a concurrent request: say which.
            app.owned_migration(caller, migration_id)
                .await?
                .check_verifiable(now, &app.policy)?;
            return Err(Error::StateChanged);
        }
    };

    let code_ok = |side, submitted: &str, stored: &Option<String>| {
        stored
            .as_deref()
            .is_some_and(|stored| app.codes.matches(migration_id, side, submitted, stored))
    };
    let new_ok = code_ok(
        CodeSide::NewContact,
        &request.new_contact_code,
        &migration.new_code_digest,
    );
    let current_ok = code_ok(
        CodeSide::CurrentContact,
        &request.current_contact_code,
        &migration.current_code_digest,
    );
    let totp = totp::accept(secret, &request.totp_code, now, main.totp_last_step);

    let step = match totp {
        Ok(step) if new_ok && current_ok => step,
        _ => {
            if let Ok(step) = totp {
                // A right TOTP code is spent even when another factor was
                // wrong, so an observed code cannot be tried again.
                app.store.consume_totp_step(caller, step).await?;
            }
            let invalid = [
                (!new_ok).then_some("new_contact_code"),
                (!current_ok).then_some("current_contact_code"),
                totp.is_err().then_some("totp_code"),
            ];
            return Err(
                failed_attempt(app, &migration, invalid.into_iter().flatten().collect()).await,
            );
        }
    };

    let owner = app.store.contact_owner(&migration.new_contact).await?;
    let outcome = match owner.as_deref() {
        Some(owner) if owner == caller => return Err(Error::ContactAlreadyYours),
        None => {
            let previous = main.contact(migration.channel);
            let outcome = app
                .store
                .complete_plain_change(&migration, previous, step, now)
                .await?;
            if outcome == Verification::Committed {
                let to: Vec<_> = previous
                    .into_iter()
                    .chain([&migration.new_contact])
                    .collect();
                let notice = Notice::ContactChanged {
                    new_contact: migration.new_contact.clone(),
                    migration_id: migration.migration_id.clone(),
                };
                app.send_notices(migration_id, &to, notice).await;
            }
            (
                outcome,
                Verified {
                    state: "completed",
                    migration_required: false,
                    eligible: None,
                    blockers: None,
                },
            )
        }
        Some(duplicate_id) => {
            let facts = app
                .store
                .eligibility_facts(caller, duplicate_id, &migration.new_contact)
                .await?
                .ok_or(Error::StateChanged)?;
            let blockers = eligibility::blockers(&facts);
            let confirm_by = now + app.policy.confirm_window;
            let outcome = app
                .store
                .mark_verified(&migration, duplicate_id, step, now, confirm_by)
                .await?;
            (
                outcome,
                Verified {
                    state: "verified",
                    migration_required: true,
                    eligible: Some(blockers.is_empty()),
                    blockers: Some(blockers),
                },
            )
        }
    };
    match outcome {
        (Verification::Committed, answer) => Ok(answer),
        (Verification::TotpReplayed, _) => {
            Err(failed_attempt(app, &migration, vec!["totp_code"]).await)
        }
        (Verification::StateChanged, _) => Err(Error::StateChanged),
    }
}

/// The answer to a counted attempt that failed; the last allowed failure
/// locks the migration.
async fn failed_attempt(app: &App, migration: &Migration, invalid: Vec<&'static str>) -> Error {
    let attempts_remaining = migration.attempts_remaining(&app.policy);
    if attempts_remaining == 0 {
        if let Err(e) = app.store.lock(&migration.migration_id).await {
            // The attempt count alone already refuses further checks.
            tracing::error!(migration_id = %migration.migration_id, error = %e, "lock not recorded");
        }
        tracing::warn!(migration_id = %migration.migration_id, "migration locked after too many failed attempts");
    }
    Error::InvalidCodes {
        invalid,
        attempts_remaining,
    }
}
