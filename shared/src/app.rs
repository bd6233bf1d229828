//! The service: the store, the courier, the code key, the TOTP vault, the
//! account facts port and the policy, built once per process and shared by
//! reference with every invocation.

use crate::domain::quota::{Hit, Quota, QuotaKind};
use crate::domain::{Account, CodeKey, Error, Migration, Policy, Sequence, Timestamp};
use crate::facts::Facts;
use crate::notify::Courier;
use crate::secrets::Codes;
use crate::store::{QuotaLog, Store};
use crate::vault::Vault;

#[derive(Clone, Debug)]
pub struct App {
    pub store: Store,
    /// Sends codes; only the functions that send them have one (and the
    /// SES and SNS clients and permissions that come with it).
    pub courier: Option<Courier>,
    /// The code key; see [`Codes`].
    pub codes: Codes,
    /// Opens TOTP secrets; only the functions that check TOTP codes have
    /// one (and the KMS client and permission that come with it).
    pub vault: Option<Vault>,
    /// The exchange's facts about accounts (KYC, assets, withdrawals) and
    /// the closure hold.
    pub facts: Facts,
    pub policy: Policy,
}

/// Quota events taken for a request, given back if what they paid for
/// (a delivery) did not happen.
#[derive(Debug, Default)]
#[must_use]
pub struct Reservation {
    taken: Vec<(QuotaKind, String, Hit, i64)>,
}

/// Migration ids are UUIDs; anything else is no migration, without a read.
fn ensure_migration_id(id: &str) -> Result<(), Error> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| Error::MigrationNotFound)
}

/// The migration if it exists and belongs to `caller`: one 404 either way.
fn owned(migration: Option<Migration>, caller: &str) -> Result<Migration, Error> {
    let migration = migration.ok_or(Error::MigrationNotFound)?;
    migration.ensure_owner(caller)?;
    Ok(migration)
}

impl App {
    /// The migration `id` if it exists and belongs to `caller`; otherwise the
    /// same 404 either way, so ids cannot be probed.
    pub async fn owned_migration(&self, caller: &str, id: &str) -> Result<Migration, Error> {
        ensure_migration_id(id)?;
        owned(self.store.migration(id).await?, caller)
    }

    /// [`App::owned_migration`] and the caller's account, in one round trip.
    /// Every step starts here: the account must be active, so a closed
    /// account's still-valid token does nothing.
    pub async fn active_caller_migration(
        &self,
        caller: &str,
        id: &str,
    ) -> Result<(Migration, Account), Error> {
        ensure_migration_id(id)?;
        let (migration, account) = self.store.migration_and_account(id, caller).await?;
        let account = account
            .filter(Account::is_active)
            .ok_or(Error::AccountNotActive)?;
        Ok((owned(migration, caller)?, account))
    }

    /// [`App::active_caller_migration`] for a verification, with what it
    /// needs besides in the same round trip: the account's failure log and
    /// its event head.
    pub async fn caller_verification(
        &self,
        caller: &str,
        id: &str,
    ) -> Result<(Migration, Account, QuotaLog, Sequence), Error> {
        ensure_migration_id(id)?;
        let read = self.store.verification_read(id, caller).await?;
        let account = read
            .account
            .filter(Account::is_active)
            .ok_or(Error::AccountNotActive)?;
        Ok((
            owned(read.migration, caller)?,
            account,
            read.failures,
            read.sequence,
        ))
    }

    /// The account's TOTP secret (base32) for checking a code; `None` when
    /// no authenticator app is enrolled. Only the steps that check TOTP codes
    /// (verify, close) ask for it; the others ask [`Account::has_totp`].
    /// A secret that does not open (sealed for another account, another
    /// key, KMS unreachable) is an internal error: nothing is checked.
    pub async fn totp_secret(&self, account: &Account) -> Result<Option<String>, Error> {
        let Some(sealed) = &account.totp_secret else {
            return Ok(None);
        };
        let vault = self.vault.as_ref().ok_or_else(|| {
            Error::Internal("this function has no TOTP key to open secrets with".into())
        })?;
        vault.open(&account.account_id, sealed).await.map(Some)
    }

    /// The code key, waiting for its read from SSM if it is not back yet.
    pub async fn code_key(&self) -> Result<&CodeKey, Error> {
        self.codes.key().await
    }

    /// The courier codes are sent with.
    pub fn courier(&self) -> Result<&Courier, Error> {
        self.courier
            .as_ref()
            .ok_or_else(|| Error::Internal("this function sends no codes".into()))
    }

    /// Takes one event from each quota, all or none (one conditional write):
    /// a refusal takes nothing and answers `rate_limited`.
    pub async fn reserve(
        &self,
        wants: Vec<(QuotaKind, String, Quota)>,
        now: Timestamp,
    ) -> Result<Reservation, Error> {
        match self.store.take_quotas(&wants, now).await? {
            Ok(hits) => Ok(Reservation {
                taken: wants
                    .into_iter()
                    .zip(hits)
                    .map(|((kind, subject, quota), hit)| (kind, subject, hit, quota.window))
                    .collect(),
            }),
            Err(retry_after) => Err(Error::RateLimited { retry_after }),
        }
    }

    /// Gives a reservation back. Best effort: a failed refund only leaves
    /// the quota stricter than it should be, never looser.
    pub async fn refund(&self, reservation: Reservation) {
        if reservation.taken.is_empty() {
            return;
        }
        if let Err(e) = self.store.refund_quotas(&reservation.taken).await {
            tracing::warn!(error = %e, "quota refund failed");
        }
    }
}
