//! Configuration from the environment, read once at init.

use std::env;

use crate::domain::quota::Quota;
use crate::domain::{CodeKey, Policy};
use crate::http::AuthMode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{0} is not valid: {1}")]
    Invalid(&'static str, String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub sender_email: String,
    /// Alphanumeric SMS sender id, where the destination country allows one.
    pub sms_sender_id: Option<String>,
    pub auth: AuthMode,
    pub code_key: CodeKeySource,
    /// `TOTP_KEY_ID`: the KMS key (id, ARN or alias) TOTP secrets are sealed
    /// under. Required by the functions that check TOTP codes.
    pub totp_key_id: Option<String>,
    pub policy: Policy,
    pub tls_roots: TlsRoots,
}

/// Which certificate authorities the functions trust for their HTTPS calls
/// to AWS (`TLS_ROOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// `amazon` (the default): the Amazon Trust Services roots built into
    /// the binary, which issue every AWS service endpoint's certificate. A
    /// CA outside Amazon's cannot vouch for a fake endpoint, and there is no
    /// system bundle to load (about 3 ms of CPU per cold start).
    Amazon,
    /// `system`: the system's CA bundle, for a network that re-signs TLS
    /// (an inspecting proxy).
    System,
}

/// Where the key one-time codes are hashed with comes from.
#[derive(Clone)]
pub enum CodeKeySource {
    /// `CODE_HMAC_SECRET`: the key itself, for local development and tests.
    Env(CodeKey),
    /// `CODE_HMAC_SECRET_PARAMETER`: the name of an SSM SecureString holding
    /// it, read once at init (production; the template never holds the key).
    Ssm(String),
}

impl std::fmt::Debug for CodeKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodeKeySource::Env(_) => f.write_str("Env(redacted)"),
            CodeKeySource::Ssm(name) => write!(f, "Ssm({name})"),
        }
    }
}

/// The key from its text form; 32 bytes at least.
pub fn code_key(secret: &str, source: &'static str) -> Result<CodeKey, ConfigError> {
    CodeKey::new(secret.as_bytes().to_vec()).ok_or(ConfigError::Invalid(
        source,
        "it must be at least 32 bytes".into(),
    ))
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

fn number<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| ConfigError::Invalid(name, v)),
        _ => Ok(default),
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let defaults = Policy::default();
        let code_key = match env::var("CODE_HMAC_SECRET_PARAMETER")
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(name) => CodeKeySource::Ssm(name),
            None => CodeKeySource::Env(code_key(
                &required("CODE_HMAC_SECRET")?,
                "CODE_HMAC_SECRET",
            )?),
        };
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            sender_email: required("SENDER_EMAIL")?,
            sms_sender_id: env::var("SMS_SENDER_ID").ok().filter(|v| !v.is_empty()),
            auth: match env::var("AUTH_MODE").as_deref() {
                Ok("dev") => AuthMode::Dev,
                _ => AuthMode::Jwt,
            },
            code_key,
            totp_key_id: env::var("TOTP_KEY_ID").ok().filter(|v| !v.is_empty()),
            tls_roots: match env::var("TLS_ROOTS").as_deref() {
                Err(_) | Ok("" | "amazon") => TlsRoots::Amazon,
                Ok("system") => TlsRoots::System,
                Ok(other) => {
                    return Err(ConfigError::Invalid(
                        "TLS_ROOTS",
                        format!("{other:?} is neither \"amazon\" nor \"system\""),
                    ))
                }
            },
            policy: Policy {
                code_ttl: number("CODE_TTL_SECONDS", defaults.code_ttl)?,
                max_failed_attempts: number("MAX_FAILED_ATTEMPTS", defaults.max_failed_attempts)?,
                resend_cooldown: number("RESEND_COOLDOWN_SECONDS", defaults.resend_cooldown)?,
                max_sends: number("MAX_SENDS_PER_MIGRATION", defaults.max_sends)?,
                confirm_window: number("CONFIRM_WINDOW_SECONDS", defaults.confirm_window)?,
                starts_per_account: Quota {
                    limit: number(
                        "STARTS_PER_ACCOUNT_PER_DAY",
                        defaults.starts_per_account.limit,
                    )?,
                    ..defaults.starts_per_account
                },
                sends_per_contact: Quota {
                    limit: number(
                        "SENDS_PER_CONTACT_PER_DAY",
                        defaults.sends_per_contact.limit,
                    )?,
                    ..defaults.sends_per_contact
                },
                failures_per_account: Quota {
                    limit: number(
                        "FAILURES_PER_ACCOUNT_PER_DAY",
                        defaults.failures_per_account.limit,
                    )?,
                    ..defaults.failures_per_account
                },
            },
        })
    }
}
