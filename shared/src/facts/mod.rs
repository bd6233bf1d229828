//! The account facts port: what the exchange knows of an account that this
//! service only reads (identity verification, assets held, withdrawals in
//! flight), and the closure hold that keeps those facts still from the last
//! read to the closing commit (PRODUCT.md §7).
//!
//! Two adapters, chosen by configuration (`FACTS_ADAPTER`):
//! - `table`: the facts are attributes of the account's own item in the
//!   service's table, set by `admin`; the closing transaction's conditions
//!   guard them, so the commit itself is the hold.
//! - `http`: the exchange's internal endpoint (docs/facts-openapi.yaml),
//!   signed both ways ([`signing`]), with a short timeout; the closure asks
//!   it for a hold before its last read.
//!
//! Either way an answer that cannot be trusted is [`Error::FactsUnavailable`]
//! (503 `facts_unavailable`) and the step changes nothing. The steps ask what
//! the duplicate's facts are now, never which adapter answered.

mod http;
pub mod signing;

use serde::{Deserialize, Serialize};

use crate::domain::{Error, Timestamp};
use crate::store::Store;

pub use http::HttpFacts;
pub use signing::FactsKey;

/// The exchange's facts about one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFacts {
    /// Rule 1: an identity-verified account is never closed here.
    pub kyc_verified: bool,
    /// Rule 2: shown to the user, and acknowledged, before the closure.
    pub has_assets: bool,
    /// A withdrawal in flight blocks the closure.
    pub pending_withdrawals: bool,
}

/// A change of some of an account's facts (the fields given), as an operator
/// or the exchange's stand-in makes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactsChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyc_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_assets: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_withdrawals: Option<bool>,
}

/// How a change of facts ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Done(AccountFacts),
    UnknownAccount,
    /// A closed account's facts no longer change: what happened to it was
    /// decided on the facts it had when it closed.
    AccountClosed,
    /// A closure hold is in force: the change waits for its end.
    Held,
}

/// A closure hold, as the closing commit needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The facts live in the table: the closing transaction's conditions
    /// guard them (the atomic commit is the hold).
    InCommit,
    /// The exchange holds the account: no deposit, withdrawal or identity
    /// verification lands until the hold ends (`account.closed.v1`, release,
    /// or expiry).
    Granted,
}

impl Hold {
    /// Whether the closing transaction must condition on the facts itself.
    pub fn guards_in_commit(self) -> bool {
        self == Hold::InCommit
    }
}

/// The port, one variant per adapter.
#[derive(Debug, Clone)]
pub enum Facts {
    Table(Store),
    // Boxed: the client and its connection pool are ten times a store's size.
    Http(Box<HttpFacts>),
}

impl Facts {
    /// The account's facts now. An account the exchange does not know is
    /// unavailable facts: nothing is decided on a guess.
    pub async fn facts(&self, account_id: &str) -> Result<AccountFacts, Error> {
        match self {
            Facts::Table(store) => store
                .account_facts(account_id)
                .await?
                .ok_or_else(|| Error::FactsUnavailable(format!("no account {account_id}"))),
            Facts::Http(http) => http.facts(account_id).await,
        }
    }

    /// The account's facts now, when the step has just read the account's
    /// own item (strongly consistent) and found `on_item` there: the `table`
    /// adapter's facts are those, so asking costs no request of its own.
    pub async fn facts_read_with(
        &self,
        account_id: &str,
        on_item: AccountFacts,
    ) -> Result<AccountFacts, Error> {
        match self {
            Facts::Table(_) => Ok(on_item),
            Facts::Http(http) => http.facts(account_id).await,
        }
    }

    /// Asks that the account's facts stay as they are while `migration_id`
    /// closes it. A closed account is [`Error::DuplicateClosed`].
    pub async fn hold(&self, account_id: &str, migration_id: &str) -> Result<Hold, Error> {
        match self {
            Facts::Table(_) => Ok(Hold::InCommit),
            Facts::Http(http) => http
                .hold(account_id, migration_id)
                .await
                .map(|()| Hold::Granted),
        }
    }

    /// Ends a hold whose closure was refused, so the account's life goes on
    /// at once rather than at the hold's expiry. Best effort: a failure only
    /// leaves the hold to expire.
    pub async fn release(&self, account_id: &str, migration_id: &str) {
        let Facts::Http(http) = self else {
            return;
        };
        if let Err(e) = http.release(account_id, migration_id).await {
            tracing::warn!(migration_id, error = %e, "closure hold not released; it will expire");
        }
    }

    /// Changes some of an account's facts (operators, tests; on the `http`
    /// adapter through the stand-in's operator endpoint). Refused for a
    /// closed account and while a closure hold is in force.
    pub async fn set(
        &self,
        account_id: &str,
        change: FactsChange,
        now: Timestamp,
    ) -> Result<Changed, Error> {
        match self {
            Facts::Table(store) => store.set_account_facts(account_id, change, now).await,
            Facts::Http(http) => http.set(account_id, change).await,
        }
    }
}
