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
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            code_ttl: 600,
            max_failed_attempts: 5,
            resend_cooldown: 60,
            max_sends: 5,
            confirm_window: 900,
        }
    }
}
