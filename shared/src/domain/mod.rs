//! Pure types and rules of contact migration: no AWS, no I/O. Time arrives as
//! unix seconds and randomness as an RNG, so every rule is tested exactly.

pub mod account;
pub mod audit;
pub mod code;
pub mod contact;
pub mod eligibility;
pub mod error;
pub mod event;
pub mod migration;
pub mod outbox;
pub mod policy;
pub mod quota;
pub mod sms;
pub mod totp;
pub mod warning;

pub use account::{Account, AccountStatus, SealedSecret};
pub use audit::{AuditEvent, Caller, Step};
pub use code::{CodeKey, CodeSide, OneTimeCode};
pub use contact::{Channel, Contact};
pub use eligibility::Blocker;
pub use error::Error;
pub use event::{DomainEvent, EventType};
pub use migration::{Migration, MigrationState};
pub use outbox::{NoticeKind, Outbox, PendingNotice, Sequence};
pub use policy::Policy;
pub use sms::SmsRule;
pub use warning::Warning;

/// Seconds since the unix epoch, UTC. The only clock type in the crate.
pub type Timestamp = i64;

/// RFC 3339 UTC rendering used in every response.
pub fn rfc3339(at: Timestamp) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
