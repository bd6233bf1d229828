//! The audit trail: one append-only record per step, with who, from where,
//! what and how it ended. Contacts appear masked; codes and secrets never.

use super::{Channel, Migration, Timestamp};

/// Who is calling: the account the verified JWT names, and what API Gateway
/// saw of the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub account_id: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Caller {
    pub fn account(account_id: impl Into<String>) -> Caller {
        Caller {
            account_id: account_id.into(),
            ..Caller::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Start,
    Resend,
    Verify,
    Lock,
    Migrate,
    Close,
    Cancel,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Start => "start",
            Step::Resend => "resend",
            Step::Verify => "verify",
            Step::Lock => "lock",
            Step::Migrate => "migrate",
            Step::Close => "close",
            Step::Cancel => "cancel",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The account whose trail this record belongs to.
    pub account_id: String,
    /// The caller, when not the account itself (a closed duplicate's trail).
    pub main_account_id: String,
    pub duplicate_account_id: Option<String>,
    pub migration_id: String,
    pub step: Step,
    /// `ok`, or the error code the step answered with.
    pub outcome: String,
    pub channel: Channel,
    pub new_contact: String,
    pub current_contact: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub at: Timestamp,
}

/// Long enough for any real browser; bounded so a hostile header cannot bloat
/// the trail.
const MAX_USER_AGENT: usize = 256;

impl AuditEvent {
    pub fn new(
        step: Step,
        outcome: &str,
        m: &Migration,
        caller: &Caller,
        at: Timestamp,
    ) -> AuditEvent {
        AuditEvent {
            account_id: m.account_id.clone(),
            main_account_id: m.account_id.clone(),
            duplicate_account_id: m.duplicate_account_id.clone(),
            migration_id: m.migration_id.clone(),
            step,
            outcome: outcome.to_owned(),
            channel: m.channel,
            new_contact: m.new_contact.masked(),
            current_contact: m.current_contact.masked(),
            source_ip: caller.source_ip.clone(),
            user_agent: caller
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
            at,
        }
    }

    /// The same event in another account's trail.
    pub fn for_account(&self, account_id: &str) -> AuditEvent {
        AuditEvent {
            account_id: account_id.to_owned(),
            ..self.clone()
        }
    }
}
