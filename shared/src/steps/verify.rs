//! `POST /migrations/{id}/verify`: three factors at once. The attempt is
//! counted atomically before any code is checked (5 per migration, then
//! locked; 10 failures per account per day across migrations), so parallel
//! guesses cannot exceed either limit. Only after all three pass is the new
//! contact's owner looked up: a free contact completes as a plain change, a
//! bound one becomes `verified` with its eligibility.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::eligibility::{self, Blocker};
use crate::domain::quota::QuotaKind;
use crate::domain::totp;
use crate::domain::{
    AuditEvent, Caller, CodeSide, Contact, Error, Migration, Outbox, Step, Timestamp,
};
use crate::store::Verification;

use super::failed_attempt;

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
    caller: &Caller,
    migration_id: &str,
    request: VerifyRequest,
    now: Timestamp,
) -> Result<Verified, Error> {
    let account_id = caller.account_id.as_str();
    let (migration, main) = app
        .active_caller_migration(account_id, migration_id)
        .await?;
    migration.check_verifiable(now, &app.policy)?;
    // The current-contact code proves control of the account's own contact
    // only while it is still the account's: one it has given up since the
    // start proves nothing. The commit is conditional on it too.
    let current = &migration.current_contact;
    if main.contact(current.channel()) != Some(current) {
        return Err(Error::StateChanged);
    }
    // Codes made under a key the service no longer holds (rotated twice
    // since they were sent) cannot be checked: they are as good as expired,
    // and trying them must not cost an attempt.
    let codes = app.code_key().await?;
    let digests = [&migration.new_code_digest, &migration.current_code_digest];
    if digests
        .into_iter()
        .flatten()
        .any(|digest| !codes.holds_key_of(digest))
    {
        return Err(Error::CodesExpired);
    }
    let secret = app
        .totp_secret(&main)
        .await?
        .ok_or(Error::TwoFactorRequired)?;

    // Every attempt holds a slot of the account's failure quota until it is
    // known not to be a failure.
    let failure_slot = app
        .reserve(
            vec![(
                QuotaKind::Failures,
                account_id.to_owned(),
                app.policy.failures_per_account,
            )],
            now,
        )
        .await?;
    let migration = match app
        .store
        .count_attempt(
            migration_id,
            account_id,
            Step::Verify,
            app.policy.max_failed_attempts,
            now,
        )
        .await?
    {
        Some(counted) => counted,
        None => {
            app.refund(failure_slot).await;
            // Locked, expired or moved on by a concurrent request: say which.
            app.owned_migration(account_id, migration_id)
                .await?
                .check_verifiable(now, &app.policy)?;
            return Err(Error::StateChanged);
        }
    };

    let code_ok = |side, submitted: &str, stored: &Option<String>| {
        stored
            .as_deref()
            .is_some_and(|stored| codes.matches(migration_id, side, submitted, stored))
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
    let totp = totp::accept(&secret, &request.totp_code, now, main.totp_last_step);

    let step = match totp {
        Ok(step) if new_ok && current_ok => step,
        _ => {
            if let Ok(step) = totp {
                // A right TOTP code is spent even when another factor was
                // wrong, so an observed code cannot be tried again.
                app.store.consume_totp_step(account_id, step).await?;
            }
            let invalid = [
                (!new_ok).then_some("new_contact_code"),
                (!current_ok).then_some("current_contact_code"),
                totp.is_err().then_some("totp_code"),
            ];
            return Err(failed_attempt(
                app,
                caller,
                &migration,
                Step::Verify,
                invalid.into_iter().flatten().collect(),
                now,
            )
            .await);
        }
    };

    let owner = app.store.contact_owner(&migration.new_contact).await?;
    let (outcome, answer) = match owner.as_deref() {
        Some(owner) if owner == account_id => {
            // The right TOTP code is spent all the same: it was checked.
            app.store.consume_totp_step(account_id, step).await?;
            app.refund(failure_slot).await;
            return Err(Error::ContactAlreadyYours);
        }
        None => {
            let previous = main.contact(migration.channel);
            let event = AuditEvent::new(Step::Verify, "ok", &migration, caller, now);
            let outcome = plain_change(app, &migration, previous, step, now, &event).await?;
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
                .eligibility_facts(account_id, duplicate_id, &migration.new_contact)
                .await?
                .ok_or(Error::StateChanged)?;
            // Facts that cannot be read refuse the verification with
            // nothing spent: the attempt (the codes were right) and the
            // failure slot are given back, and the codes and the TOTP step
            // still work on a retry.
            let account = match app.facts.facts(duplicate_id).await {
                Ok(account) => account,
                Err(e) => {
                    app.store.give_back_attempt(migration_id).await?;
                    app.refund(failure_slot).await;
                    return Err(e);
                }
            };
            let blockers = eligibility::blockers(&facts, &account);
            let confirm_by = now + app.policy.confirm_window;
            let verified = Migration {
                duplicate_account_id: Some(duplicate_id.to_owned()),
                ..migration.clone()
            };
            let event = AuditEvent::new(Step::Verify, "ok", &verified, caller, now);
            let outcome = app
                .store
                .mark_verified(&migration, duplicate_id, step, now, confirm_by, &event)
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
        Verification::Committed => {
            app.refund(failure_slot).await;
            Ok(answer)
        }
        Verification::TotpReplayed => Err(failed_attempt(
            app,
            caller,
            &migration,
            Step::Verify,
            vec!["totp_code"],
            now,
        )
        .await),
        Verification::StateChanged => {
            app.refund(failure_slot).await;
            Err(Error::StateChanged)
        }
    }
}

/// Conflicts on the account's event sequence alone are retried this often.
const SEQUENCE_RETRIES: usize = 2;

/// A plain change, committed together with what it announces: the notices
/// and `contact.changed.v1` (the outbox). When only the account's event
/// sequence moved since it was read (another commit about the account
/// landed), it is tried again with the new one.
async fn plain_change(
    app: &App,
    migration: &Migration,
    previous: Option<&Contact>,
    step: u64,
    now: Timestamp,
    event: &AuditEvent,
) -> Result<Verification, Error> {
    let owner = migration.account_id.as_str();
    let mut sequence = app.store.sequences(&[owner]).await?[0];
    for _ in 0..=SEQUENCE_RETRIES {
        let outbox = Outbox::plain_change(
            migration,
            previous,
            sequence,
            now,
            app.policy.withdrawal_hold,
        );
        let outcome = app
            .store
            .complete_plain_change(migration, previous, step, now, event, &outbox)
            .await?;
        if outcome != Verification::StateChanged {
            return Ok(outcome);
        }
        let latest = app.store.sequences(&[owner]).await?[0];
        if latest == sequence {
            return Ok(outcome);
        }
        sequence = latest;
    }
    Ok(Verification::StateChanged)
}
