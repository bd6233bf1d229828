//! `POST /migrations/{id}/verify`: three factors at once. One read gives the
//! migration, the account, the account's failure log and its event head; the
//! factors are checked in process; then one write, conditional on the
//! attempt limits as read (5 per migration, then locked; 10 failures per
//! account per day across migrations), carries the answer. No answer that
//! depends on the codes is given before that write has landed, so parallel
//! guesses cannot exceed either limit, and a right guess cannot pass limits
//! that concurrent failures used up. Only after all three factors pass is
//! the new contact's owner looked up: a free contact completes as a plain
//! change, a bound one becomes `verified` with its eligibility.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::eligibility::{self, Blocker};
use crate::domain::quota::{Hit, QuotaKind};
use crate::domain::totp;
use crate::domain::{
    Account, AuditEvent, Caller, CodeSide, Error, Migration, Outbox, SealedSecret, Sequence, Step,
    Timestamp,
};
use crate::store::{self, Failure, Limits, RightAttempt, Verification};

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

/// Rounds of read, check and write, when what was read keeps moving before
/// the write lands (parallel attempts of one account); then the caller is
/// told to come back a second later.
const ROUNDS: u32 = 12;

/// How one round ended.
enum Round {
    Answered(Result<Verified, Error>),
    /// Something read moved before the write landed (a concurrent failure,
    /// the account's event sequence, a TOTP step spent concurrently): read
    /// again and decide again.
    ReadAgain,
    /// The migration moved on before a right attempt's write landed: read
    /// it again and answer what stops it now, else `state_changed`.
    MigrationMoved,
}

pub async fn verify(
    app: &App,
    caller: &Caller,
    migration_id: &str,
    request: VerifyRequest,
    now: Timestamp,
) -> Result<Verified, Error> {
    let account_id = caller.account_id.as_str();
    // The TOTP secret, opened once (a KMS round trip) for every round.
    let mut opened: Option<(SealedSecret, String)> = None;
    let mut moved = false;
    for round in 0..ROUNDS {
        if round > 0 {
            store::backoff(round - 1).await;
        }
        let (migration, main, failures, sequence) =
            app.caller_verification(account_id, migration_id).await?;
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
        let sealed = main.totp_secret.clone().ok_or(Error::TwoFactorRequired)?;
        if opened.as_ref().map(|(s, _)| s) != Some(&sealed) {
            let secret = app
                .totp_secret(&main)
                .await?
                .ok_or(Error::TwoFactorRequired)?;
            opened = Some((sealed, secret));
        }
        let secret = opened.as_ref().map_or("", |(_, secret)| secret.as_str());
        // An account whose failures fill its quota is refused before any
        // code is checked, a right guess as much as a wrong one.
        let quota = app.policy.failures_per_account;
        let admitted = failures.admit(quota, now).map_err(|retry_after| {
            tracing::warn!(
                quota = QuotaKind::Failures.as_str(),
                retry_after,
                "quota exhausted"
            );
            Error::RateLimited { retry_after }
        })?;
        // A right attempt's commit refused by the migration, which still
        // awaits verification as far as the checks above tell: it changed
        // under the attempt (new codes, say), so the answer is `state_changed`.
        if moved {
            return Err(Error::StateChanged);
        }

        // The factors are checked before any write: no answer depends on
        // them until a write conditional on the limits read has landed.
        // The codes are compared in constant time.
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
        let totp = totp::accept(secret, &request.totp_code, now, main.totp_last_step);

        let attempt = Attempt {
            app,
            caller,
            limits: Limits {
                max_attempts: app.policy.max_failed_attempts,
                failures_version: failures.version,
            },
            migration,
            main,
            sequence,
            now,
        };
        let ended = match totp {
            Ok(step) if new_ok && current_ok => attempt.right(step).await?,
            _ => {
                let invalid = [
                    (!new_ok).then_some("new_contact_code"),
                    (!current_ok).then_some("current_contact_code"),
                    totp.is_err().then_some("totp_code"),
                ];
                let invalid = invalid.into_iter().flatten().collect();
                attempt.wrong(invalid, totp.ok(), admitted).await?
            }
        };
        match ended {
            Round::Answered(answer) => return answer,
            Round::ReadAgain => {}
            Round::MigrationMoved => moved = true,
        }
    }
    tracing::warn!(
        migration_id,
        "verification lost every round to concurrent attempts"
    );
    Err(Error::RateLimited { retry_after: 1 })
}

/// One round's attempt: what was read, and the limits its write is
/// conditional on.
struct Attempt<'a> {
    app: &'a App,
    caller: &'a Caller,
    limits: Limits,
    migration: Migration,
    main: Account,
    sequence: Sequence,
    now: Timestamp,
}

impl Attempt<'_> {
    /// A failure: counted, appended to the account's failure log, a right
    /// TOTP code spent, audited, and the last allowed one locks the
    /// migration, all in one write.
    async fn wrong(
        &self,
        invalid: Vec<&'static str>,
        totp_step: Option<u64>,
        admitted: Vec<Hit>,
    ) -> Result<Round, Error> {
        let (app, now) = (self.app, self.now);
        let counted = Migration {
            failed_attempts: self.migration.failed_attempts + 1,
            ..self.migration.clone()
        };
        let attempts_remaining = counted.attempts_remaining(&app.policy);
        let event = AuditEvent::new(Step::Verify, "invalid_codes", &counted, self.caller, now);
        let lock = (attempts_remaining == 0).then(|| {
            (
                AuditEvent::new(Step::Lock, "ok", &counted, self.caller, now),
                Outbox::lock(&counted, self.sequence, counted.failed_attempts, now),
            )
        });
        let failure = Failure {
            migration: &self.migration,
            limits: self.limits,
            failures: &admitted,
            failures_expire_at: now + app.policy.failures_per_account.window,
            totp_step,
            event: &event,
            lock: lock.as_ref().map(|(event, outbox)| (event, outbox)),
            now,
        };
        if !app.store.record_failure(&failure).await? {
            return Ok(Round::ReadAgain);
        }
        if lock.is_some() {
            tracing::warn!(migration_id = %counted.migration_id, "migration locked after too many failed attempts");
        }
        Ok(Round::Answered(Err(Error::InvalidCodes {
            invalid,
            attempts_remaining,
        })))
    }

    /// All three factors right: what the new contact's owner makes of it.
    async fn right(&self, step: u64) -> Result<Round, Error> {
        let (app, now) = (self.app, self.now);
        let migration = &self.migration;
        let attempt = RightAttempt {
            migration,
            totp_step: step,
            limits: self.limits,
            now,
        };
        let owner = app.store.contact_owner(&migration.new_contact).await?;
        match owner.as_deref() {
            Some(owner) if owner == self.caller.account_id => {
                // The attempt counts, and the right TOTP code is spent all
                // the same: it was checked.
                let outcome = app.store.record_right_attempt(&attempt).await?;
                Ok(settle(outcome, Err(Error::ContactAlreadyYours)))
            }
            None => {
                let previous = self.main.contact(migration.channel);
                let event = AuditEvent::new(Step::Verify, "ok", migration, self.caller, now);
                let outbox = Outbox::plain_change(
                    migration,
                    previous,
                    self.sequence,
                    now,
                    app.policy.withdrawal_hold,
                );
                let outcome = app
                    .store
                    .complete_plain_change(&attempt, previous, &event, &outbox)
                    .await?;
                Ok(settle(
                    outcome,
                    Ok(Verified {
                        state: "completed",
                        migration_required: false,
                        eligible: None,
                        blockers: None,
                    }),
                ))
            }
            Some(duplicate_id) => {
                let Some(read) = app
                    .store
                    .eligibility_facts(&migration.account_id, duplicate_id, &migration.new_contact)
                    .await?
                else {
                    return self.refuse(Error::StateChanged).await;
                };
                // Facts that cannot be read refuse the verification with
                // nothing spent: the attempt, the codes and the TOTP step
                // still work on a retry.
                let account = match app.facts.facts_read_with(duplicate_id, read.stored).await {
                    Ok(account) => account,
                    Err(e) => return self.refuse(e).await,
                };
                let blockers = eligibility::blockers(&read.eligibility, &account);
                let confirm_by = now + app.policy.confirm_window;
                let verified = Migration {
                    duplicate_account_id: Some(duplicate_id.to_owned()),
                    ..migration.clone()
                };
                let event = AuditEvent::new(Step::Verify, "ok", &verified, self.caller, now);
                let outcome = app
                    .store
                    .mark_verified(&attempt, duplicate_id, confirm_by, &event)
                    .await?;
                Ok(settle(
                    outcome,
                    Ok(Verified {
                        state: "verified",
                        migration_required: true,
                        eligible: Some(blockers.is_empty()),
                        blockers: Some(blockers),
                    }),
                ))
            }
        }
    }

    /// A right attempt refused for a reason of its own, with nothing
    /// written: answered only while the limits still admit the attempt,
    /// so the refusal is no answer past them either.
    async fn refuse(&self, refusal: Error) -> Result<Round, Error> {
        let checked = self
            .app
            .store
            .check_limits(&self.migration, self.limits, self.now)
            .await?;
        Ok(settle(checked, Err(refusal)))
    }
}

/// The round's end, from how a right attempt's write ended.
fn settle(outcome: Verification, answer: Result<Verified, Error>) -> Round {
    match outcome {
        Verification::Committed => Round::Answered(answer),
        // Read again: a replayed TOTP code is a wrong one, and a failure
        // that landed may have used up the limits.
        Verification::TotpReplayed | Verification::Outdated => Round::ReadAgain,
        Verification::MigrationChanged => Round::MigrationMoved,
        Verification::StateChanged => Round::Answered(Err(Error::StateChanged)),
    }
}
