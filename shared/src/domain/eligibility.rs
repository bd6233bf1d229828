//! Whether a duplicate account may be migrated. One function, used by verify
//! (to tell the user), migrate (to gate the warnings) and close (on the facts
//! read right before the commit, and as the closing transaction's conditions).

use serde::Serialize;

use super::{Account, AccountStatus};
use crate::facts::AccountFacts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocker {
    /// Rule 1: only a duplicate without identity verification can be closed.
    DuplicateIdentityVerified,
    /// Rule 5: a closed account is never the target of another migration.
    DuplicateClosed,
    /// Rule 3: a contact migrates once, ever.
    ContactAlreadyMigrated,
    /// Rule 3: a main account receives one migration per channel, ever.
    AccountAlreadyMigrated,
    /// A withdrawal of the duplicate is in flight: closing the account under
    /// it would strand the funds ("check for pending withdrawals first").
    DuplicateHasPendingWithdrawals,
}

impl Blocker {
    pub fn as_str(self) -> &'static str {
        match self {
            Blocker::DuplicateIdentityVerified => "duplicate_identity_verified",
            Blocker::DuplicateClosed => "duplicate_closed",
            Blocker::ContactAlreadyMigrated => "contact_already_migrated",
            Blocker::AccountAlreadyMigrated => "account_already_migrated",
            Blocker::DuplicateHasPendingWithdrawals => "duplicate_has_pending_withdrawals",
        }
    }
}

/// What the store knows about a candidate migration, gathered in one read.
#[derive(Debug, Clone)]
pub struct EligibilityFacts {
    pub duplicate: Account,
    /// The once-only marker of the contact exists.
    pub contact_already_migrated: bool,
    /// The once-only marker of (main account, channel) exists.
    pub main_already_received: bool,
}

/// The blockers of a migration: what the store knows (`facts`) and what the
/// exchange says of the duplicate (`account`, through the facts port).
pub fn blockers(facts: &EligibilityFacts, account: &AccountFacts) -> Vec<Blocker> {
    let mut blockers = Vec::new();
    if account.kyc_verified {
        blockers.push(Blocker::DuplicateIdentityVerified);
    }
    if facts.duplicate.status == AccountStatus::Closed {
        blockers.push(Blocker::DuplicateClosed);
    }
    if facts.contact_already_migrated {
        blockers.push(Blocker::ContactAlreadyMigrated);
    }
    if facts.main_already_received {
        blockers.push(Blocker::AccountAlreadyMigrated);
    }
    if account.pending_withdrawals {
        blockers.push(Blocker::DuplicateHasPendingWithdrawals);
    }
    blockers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Contact};

    fn duplicate() -> Account {
        Account {
            account_id: "dup".into(),
            email: Some(Contact::from_canonical(Channel::Email, "old@example.com")),
            phone: None,
            status: AccountStatus::Active,
            kyc_verified: false,
            has_assets: true,
            referral_code: Some("OLD".into()),
            referral_code_active: true,
            totp_secret: None,
            totp_last_step: None,
            token_version: 0,
        }
    }

    fn account() -> AccountFacts {
        AccountFacts {
            kyc_verified: false,
            has_assets: true,
            pending_withdrawals: false,
        }
    }

    fn facts() -> EligibilityFacts {
        EligibilityFacts {
            duplicate: duplicate(),
            contact_already_migrated: false,
            main_already_received: false,
        }
    }

    #[test]
    fn duplicate_without_kyc_is_eligible_even_with_assets() {
        assert!(blockers(&facts(), &account()).is_empty());
    }

    #[test]
    fn duplicate_with_kyc_is_not_eligible() {
        let kyc = AccountFacts {
            kyc_verified: true,
            ..account()
        };
        assert_eq!(
            blockers(&facts(), &kyc),
            vec![Blocker::DuplicateIdentityVerified]
        );
    }

    #[test]
    fn duplicate_with_a_pending_withdrawal_is_not_eligible() {
        let pending = AccountFacts {
            pending_withdrawals: true,
            ..account()
        };
        assert_eq!(
            blockers(&facts(), &pending),
            vec![Blocker::DuplicateHasPendingWithdrawals]
        );
    }

    #[test]
    fn closed_duplicate_is_not_eligible() {
        let mut f = facts();
        f.duplicate.status = AccountStatus::Closed;
        assert_eq!(blockers(&f, &account()), vec![Blocker::DuplicateClosed]);
    }

    #[test]
    fn contact_migrates_once_and_account_receives_once() {
        let mut f = facts();
        f.contact_already_migrated = true;
        f.main_already_received = true;
        assert_eq!(
            blockers(&f, &account()),
            vec![
                Blocker::ContactAlreadyMigrated,
                Blocker::AccountAlreadyMigrated
            ]
        );
    }
}
