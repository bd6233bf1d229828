//! The migration state machine. Every transition the store performs is
//! conditional on the state these rules expect, so a rule checked here on a
//! read still holds when the write lands.

use super::{Channel, Contact, Error, Policy, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    CodesSent,
    Verified,
    AwaitingConfirmation,
    Completed,
    Cancelled,
    Expired,
    Locked,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::CodesSent => "codes_sent",
            MigrationState::Verified => "verified",
            MigrationState::AwaitingConfirmation => "awaiting_confirmation",
            MigrationState::Completed => "completed",
            MigrationState::Cancelled => "cancelled",
            MigrationState::Expired => "expired",
            MigrationState::Locked => "locked",
        }
    }

    pub fn parse(value: &str) -> Option<MigrationState> {
        [
            MigrationState::CodesSent,
            MigrationState::Verified,
            MigrationState::AwaitingConfirmation,
            MigrationState::Completed,
            MigrationState::Cancelled,
            MigrationState::Expired,
            MigrationState::Locked,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            MigrationState::Completed
                | MigrationState::Cancelled
                | MigrationState::Expired
                | MigrationState::Locked
        )
    }

    /// The answer for a step attempted in a state that does not allow it.
    fn refusal(self) -> Error {
        match self {
            MigrationState::Locked => Error::MigrationLocked,
            MigrationState::Expired => Error::MigrationExpired,
            other => Error::InvalidState(other.as_str()),
        }
    }
}

/// One migration (or plain change of contact) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub migration_id: String,
    /// The main account: the caller who started it and the only one who sees it.
    pub account_id: String,
    pub channel: Channel,
    pub new_contact: Contact,
    /// Where the current-contact code was sent.
    pub current_contact: Contact,
    /// The state as last written; [`Migration::state_at`] adds the clock.
    pub state: MigrationState,
    pub created_at: Timestamp,
    pub codes_expire_at: Timestamp,
    pub new_code_digest: Option<String>,
    pub current_code_digest: Option<String>,
    pub sends: u32,
    pub last_sent_at: Timestamp,
    pub failed_attempts: u32,
    /// Set at verification when the contact is bound to another account.
    pub duplicate_account_id: Option<String>,
    pub verified_at: Option<Timestamp>,
    pub confirm_by: Option<Timestamp>,
    /// Snapshot taken by `migrate` for the assets warning; the closure is
    /// conditional on it being unchanged.
    pub duplicate_has_assets: Option<bool>,
    /// Snapshot taken by `migrate`: the duplicate has an authenticator
    /// enrolled, so the closure needs a code from it (PRODUCT.md §3). The
    /// closure is conditional on enrolment being unchanged.
    pub duplicate_two_factor_required: Option<bool>,
    /// The main account's contact on the channel when `migrate` ran; the
    /// closure releases it and is conditional on it being unchanged.
    pub previous_contact: Option<Contact>,
    /// The duplicate's contact on the other channel when `migrate` ran; the
    /// closure releases it too (a closed account owns no contact) and tells it.
    pub duplicate_other_contact: Option<Contact>,
    pub completed_at: Option<Timestamp>,
    pub closed_account_id: Option<String>,
}

impl Migration {
    /// The state with the clock applied. Expiry is derived, never left to TTL:
    /// a verified migration past its confirmation window, or one whose codes
    /// are spent with no send left, is expired whatever the table says.
    pub fn state_at(&self, now: Timestamp, policy: &Policy) -> MigrationState {
        match self.state {
            MigrationState::Verified | MigrationState::AwaitingConfirmation
                if self.confirm_by.is_some_and(|by| now >= by) =>
            {
                MigrationState::Expired
            }
            MigrationState::CodesSent
                if now >= self.codes_expire_at && self.sends >= policy.max_sends =>
            {
                MigrationState::Expired
            }
            state => state,
        }
    }

    /// Another account's migration is indistinguishable from a missing one.
    pub fn ensure_owner(&self, caller: &str) -> Result<(), Error> {
        if self.account_id == caller {
            Ok(())
        } else {
            Err(Error::MigrationNotFound)
        }
    }

    pub fn migration_required(&self) -> bool {
        self.duplicate_account_id.is_some()
    }

    pub fn resend_available_at(&self, policy: &Policy) -> Timestamp {
        self.last_sent_at + policy.resend_cooldown
    }

    /// Resend: only while codes are outstanding, after the cooldown, within
    /// the send limit.
    pub fn check_resend(&self, now: Timestamp, policy: &Policy) -> Result<(), Error> {
        let state = self.state_at(now, policy);
        if state != MigrationState::CodesSent {
            return Err(state.refusal());
        }
        if self.sends >= policy.max_sends {
            // No later resend of this migration can succeed: no Retry-After
            // that would invite one.
            return Err(Error::SendsExhausted);
        }
        let available_at = self.resend_available_at(policy);
        if now < available_at {
            return Err(Error::RateLimited {
                retry_after: (available_at - now) as u64,
            });
        }
        Ok(())
    }

    /// Verify: codes outstanding and not past their lifetime.
    pub fn check_verifiable(&self, now: Timestamp, policy: &Policy) -> Result<(), Error> {
        let state = self.state_at(now, policy);
        if state != MigrationState::CodesSent {
            return Err(state.refusal());
        }
        if self.failed_attempts >= policy.max_failed_attempts {
            return Err(Error::MigrationLocked);
        }
        if now >= self.codes_expire_at {
            return Err(Error::CodesExpired);
        }
        Ok(())
    }

    /// Migrate: verified against a bound contact, inside the window. Repeating
    /// it once it has answered is allowed and answers the same.
    pub fn check_migratable(&self, now: Timestamp, policy: &Policy) -> Result<(), Error> {
        match self.state_at(now, policy) {
            MigrationState::Verified | MigrationState::AwaitingConfirmation
                if self.migration_required() =>
            {
                Ok(())
            }
            state @ (MigrationState::Verified | MigrationState::AwaitingConfirmation) => {
                Err(Error::InvalidState(state.as_str()))
            }
            state => Err(state.refusal()),
        }
    }

    /// Close: after migrate, inside the window. A completed migration is not
    /// an error here; the caller answers with the stored result.
    pub fn check_closable(&self, now: Timestamp, policy: &Policy) -> Result<(), Error> {
        match self.state_at(now, policy) {
            MigrationState::AwaitingConfirmation => Ok(()),
            state => Err(state.refusal()),
        }
    }

    /// Whether the closure must check a code of the duplicate's authenticator.
    pub fn needs_duplicate_totp(&self) -> bool {
        self.duplicate_two_factor_required == Some(true)
    }

    /// Cancel: anything not yet terminal; cancelling twice is harmless.
    pub fn check_cancellable(&self, now: Timestamp, policy: &Policy) -> Result<(), Error> {
        match self.state_at(now, policy) {
            MigrationState::Cancelled => Ok(()),
            state if state.is_terminal() => Err(state.refusal()),
            _ => Ok(()),
        }
    }

    pub fn attempts_remaining(&self, policy: &Policy) -> u32 {
        policy
            .max_failed_attempts
            .saturating_sub(self.failed_attempts)
    }
}

/// A migration whose codes were just sent at `t0`: a fixture for tests.
#[cfg(test)]
pub(crate) fn started_at(t0: Timestamp) -> Migration {
    Migration {
        migration_id: "m".into(),
        account_id: "main".into(),
        channel: Channel::Email,
        new_contact: Contact::from_canonical(Channel::Email, "new@example.com"),
        current_contact: Contact::from_canonical(Channel::Email, "cur@example.com"),
        state: MigrationState::CodesSent,
        created_at: t0,
        codes_expire_at: t0 + 600,
        new_code_digest: Some("a".into()),
        current_code_digest: Some("b".into()),
        sends: 1,
        last_sent_at: t0,
        failed_attempts: 0,
        duplicate_account_id: None,
        verified_at: None,
        confirm_by: None,
        duplicate_has_assets: None,
        duplicate_two_factor_required: None,
        previous_contact: None,
        duplicate_other_contact: None,
        completed_at: None,
        closed_account_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = 1_700_000_000;

    fn started() -> Migration {
        started_at(T0)
    }

    fn verified() -> Migration {
        Migration {
            state: MigrationState::Verified,
            duplicate_account_id: Some("dup".into()),
            verified_at: Some(T0 + 60),
            confirm_by: Some(T0 + 60 + 900),
            ..started()
        }
    }

    fn policy() -> Policy {
        Policy::default()
    }

    #[test]
    fn another_accounts_migration_is_not_found() {
        assert_eq!(
            started().ensure_owner("intruder"),
            Err(Error::MigrationNotFound)
        );
        assert_eq!(started().ensure_owner("main"), Ok(()));
    }

    #[test]
    fn codes_expire_after_their_lifetime() {
        let m = started();
        assert_eq!(m.check_verifiable(T0 + 599, &policy()), Ok(()));
        assert_eq!(
            m.check_verifiable(T0 + 600, &policy()),
            Err(Error::CodesExpired)
        );
    }

    #[test]
    fn resend_waits_for_the_cooldown() {
        let m = started();
        assert_eq!(
            m.check_resend(T0 + 10, &policy()),
            Err(Error::RateLimited { retry_after: 50 })
        );
        assert_eq!(m.check_resend(T0 + 60, &policy()), Ok(()));
    }

    #[test]
    fn resend_stops_at_the_send_limit() {
        let m = Migration {
            sends: 5,
            ..started()
        };
        assert_eq!(
            m.check_resend(T0 + 120, &policy()),
            Err(Error::SendsExhausted)
        );
    }

    #[test]
    fn spent_codes_with_no_send_left_expire_the_migration() {
        let m = Migration {
            sends: 5,
            ..started()
        };
        assert_eq!(m.state_at(T0 + 600, &policy()), MigrationState::Expired);
        assert_eq!(
            m.check_verifiable(T0 + 600, &policy()),
            Err(Error::MigrationExpired)
        );
        let m = Migration {
            sends: 4,
            ..started()
        };
        assert_eq!(m.state_at(T0 + 600, &policy()), MigrationState::CodesSent);
    }

    #[test]
    fn too_many_failures_lock_the_migration() {
        let m = Migration {
            failed_attempts: 5,
            ..started()
        };
        assert_eq!(
            m.check_verifiable(T0, &policy()),
            Err(Error::MigrationLocked)
        );
        let m = Migration {
            state: MigrationState::Locked,
            ..started()
        };
        assert_eq!(
            m.check_verifiable(T0, &policy()),
            Err(Error::MigrationLocked)
        );
        assert_eq!(
            m.check_resend(T0 + 120, &policy()),
            Err(Error::MigrationLocked)
        );
    }

    #[test]
    fn verified_migration_expires_after_the_confirmation_window() {
        let m = verified();
        assert_eq!(m.check_migratable(T0 + 959, &policy()), Ok(()));
        assert_eq!(
            m.check_migratable(T0 + 960, &policy()),
            Err(Error::MigrationExpired)
        );
        let m = Migration {
            state: MigrationState::AwaitingConfirmation,
            ..verified()
        };
        assert_eq!(m.check_closable(T0 + 959, &policy()), Ok(()));
        assert_eq!(
            m.check_closable(T0 + 960, &policy()),
            Err(Error::MigrationExpired)
        );
    }

    #[test]
    fn close_needs_migrate_first() {
        assert_eq!(
            verified().check_closable(T0 + 100, &policy()),
            Err(Error::InvalidState("verified"))
        );
        assert_eq!(
            started().check_closable(T0 + 100, &policy()),
            Err(Error::InvalidState("codes_sent"))
        );
    }

    #[test]
    fn migrate_needs_a_bound_contact() {
        let plain = Migration {
            duplicate_account_id: None,
            ..verified()
        };
        assert_eq!(
            plain.check_migratable(T0 + 100, &policy()),
            Err(Error::InvalidState("verified"))
        );
        let done = Migration {
            state: MigrationState::Completed,
            ..verified()
        };
        assert_eq!(
            done.check_migratable(T0 + 100, &policy()),
            Err(Error::InvalidState("completed"))
        );
    }

    #[test]
    fn verify_happens_once() {
        assert_eq!(
            verified().check_verifiable(T0 + 100, &policy()),
            Err(Error::InvalidState("verified"))
        );
    }

    #[test]
    fn cancel_is_refused_once_completed_and_repeatable_once_cancelled() {
        let done = Migration {
            state: MigrationState::Completed,
            ..verified()
        };
        assert_eq!(
            done.check_cancellable(T0, &policy()),
            Err(Error::InvalidState("completed"))
        );
        let cancelled = Migration {
            state: MigrationState::Cancelled,
            ..started()
        };
        assert_eq!(cancelled.check_cancellable(T0, &policy()), Ok(()));
        assert_eq!(started().check_cancellable(T0, &policy()), Ok(()));
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in [
            "codes_sent",
            "verified",
            "awaiting_confirmation",
            "completed",
            "cancelled",
            "expired",
            "locked",
        ] {
            assert_eq!(MigrationState::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(MigrationState::parse("open"), None);
    }
}
