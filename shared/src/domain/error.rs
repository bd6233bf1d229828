use super::eligibility::Blocker;

/// Every way a request can fail. Each variant is one code of the HTTP contract;
/// the mapping to status and JSON lives in `http::error`, nowhere else.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidContact(String),
    #[error("authentication is required")]
    Unauthenticated,
    #[error("the main account must have an authenticator app enrolled")]
    TwoFactorRequired,
    #[error("the main account is not active")]
    AccountNotActive,
    #[error("no such migration")]
    MigrationNotFound,
    #[error("no such route")]
    RouteNotFound,
    #[error("this contact is already bound to your account")]
    ContactAlreadyYours,
    #[error("the migration is {0} and cannot take this step")]
    InvalidState(&'static str),
    #[error("the duplicate account cannot be migrated")]
    NotEligible(Vec<Blocker>),
    #[error("this contact has already been migrated once")]
    ContactAlreadyMigrated,
    #[error("this account has already received a migration on this channel")]
    AccountAlreadyMigrated,
    #[error("the duplicate account has verified identity")]
    DuplicateIdentityVerified,
    #[error("the duplicate account is closed")]
    DuplicateClosed,
    #[error("the accounts changed since this migration was checked; start again")]
    StateChanged,
    #[error("the codes have expired; request new ones")]
    CodesExpired,
    #[error("the migration has expired; start again")]
    MigrationExpired,
    #[error("one or more codes are wrong")]
    InvalidCodes {
        invalid: Vec<&'static str>,
        attempts_remaining: u32,
    },
    #[error("every warning must be acknowledged and the closure confirmed")]
    ConfirmationRequired { missing: Vec<String> },
    #[error("too many failed attempts; the migration is locked")]
    MigrationLocked,
    #[error("too many requests; retry later")]
    RateLimited { retry_after: u64 },
    #[error("this migration has sent all the codes it may; start a new migration")]
    SendsExhausted,
    #[error("a code could not be delivered; try resending")]
    DeliveryFailed,
    /// The exchange's account facts could not be read (unreachable, slow,
    /// failed, malformed or unsigned answer): the step is refused, fail
    /// closed. The detail is for logs only.
    #[error("the account's facts are unavailable right now; try again shortly")]
    FactsUnavailable(String),
    /// The detail is for logs only; responses never carry it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The blocker that a failed closure condition maps to, as its own 409 code.
    pub fn from_blocker(blocker: Blocker) -> Self {
        match blocker {
            Blocker::DuplicateIdentityVerified => Error::DuplicateIdentityVerified,
            Blocker::DuplicateClosed => Error::DuplicateClosed,
            Blocker::ContactAlreadyMigrated => Error::ContactAlreadyMigrated,
            Blocker::AccountAlreadyMigrated => Error::AccountAlreadyMigrated,
            // No 409 code of its own in the contract: the blocker list says it.
            Blocker::DuplicateHasPendingWithdrawals => Error::NotEligible(vec![blocker]),
        }
    }
}
