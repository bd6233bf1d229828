use super::quota::Quota;

const DAY: i64 = 24 * 3600;

/// Security parameters (PRODUCT.md §4). Defaults are the contract; each can be
/// overridden by configuration for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How long a pair of one-time codes stays valid, seconds.
    pub code_ttl: i64,
    /// Failed verifications before the migration locks.
    pub max_failed_attempts: u32,
    /// Minimum seconds between two sends of one migration.
    pub resend_cooldown: i64,
    /// Sends per migration, the first one included.
    pub max_sends: u32,
    /// Seconds after verification in which migrate and close must happen.
    pub confirm_window: i64,
    /// Migrations one main account may start per window.
    pub starts_per_account: Quota,
    /// Code messages one contact may receive per window.
    pub sends_per_contact: Quota,
    /// Failed verifications one main account may make per window.
    pub failures_per_account: Quota,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            code_ttl: 600,
            max_failed_attempts: 5,
            resend_cooldown: 60,
            max_sends: 5,
            confirm_window: 900,
            starts_per_account: Quota {
                limit: 5,
                window: DAY,
            },
            sends_per_contact: Quota {
                limit: 10,
                window: DAY,
            },
            failures_per_account: Quota {
                limit: 10,
                window: DAY,
            },
        }
    }
}
