//! Configuration from the environment, read once at init.

use std::env;

use crate::domain::quota::Quota;
use crate::domain::{CodeKey, Policy, SmsRule};
use crate::facts::FactsKey;
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
    /// `FACTS_ADAPTER` and what it needs: where account facts come from.
    pub facts: FactsSource,
}

/// Where the account facts port reads (PRODUCT.md §7).
#[derive(Debug, Clone)]
pub enum FactsSource {
    /// `table` (the default): attributes of the account items.
    Table,
    /// `http`: the exchange's endpoint at `FACTS_URL`.
    Http {
        url: String,
        key: FactsKeySource,
        /// `FACTS_TIMEOUT_MS` (default 1000): for the whole exchange.
        timeout: std::time::Duration,
        /// `FACTS_HOLD_SECONDS` (default 60): a closure hold's lifetime
        /// unless released or ended by `account.closed.v1`.
        hold_seconds: u64,
    },
}

/// Where the facts endpoint's signing key comes from.
#[derive(Clone)]
pub enum FactsKeySource {
    /// `FACTS_HMAC_SECRET`: the key itself (local stack, tests).
    Env(FactsKey),
    /// `FACTS_HMAC_SECRET_PARAMETER`: an SSM SecureString, read at init.
    Ssm(String),
}

impl std::fmt::Debug for FactsKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FactsKeySource::Env(_) => f.write_str("Env(redacted)"),
            FactsKeySource::Ssm(name) => write!(f, "Ssm({name})"),
        }
    }
}

/// The facts key from its text form; 32 bytes at least.
pub fn facts_key(secret: &str, source: &'static str) -> Result<FactsKey, ConfigError> {
    FactsKey::new(secret.as_bytes().to_vec()).ok_or(ConfigError::Invalid(
        source,
        "it must be at least 32 bytes".into(),
    ))
}

/// The facts port's configuration alone (`FACTS_ADAPTER`, `FACTS_URL`,
/// `FACTS_HMAC_SECRET` or `FACTS_HMAC_SECRET_PARAMETER`, `FACTS_TIMEOUT_MS`,
/// `FACTS_HOLD_SECONDS`), for `admin` too.
pub fn facts_source() -> Result<FactsSource, ConfigError> {
    match env::var("FACTS_ADAPTER").as_deref() {
        Err(_) | Ok("" | "table") => Ok(FactsSource::Table),
        Ok("http") => Ok(FactsSource::Http {
            url: {
                let url = required("FACTS_URL")?;
                // Signed either way, but facts are personal data: TLS except
                // to the local stand-in.
                if !url.starts_with("https://") && !is_loopback_url(&url) {
                    return Err(ConfigError::Invalid(
                        "FACTS_URL",
                        "it must be https (plain http only on a loopback address)".into(),
                    ));
                }
                url
            },
            key: match env::var("FACTS_HMAC_SECRET_PARAMETER")
                .ok()
                .filter(|v| !v.is_empty())
            {
                Some(name) => FactsKeySource::Ssm(name),
                None => FactsKeySource::Env(facts_key(
                    &required("FACTS_HMAC_SECRET")?,
                    "FACTS_HMAC_SECRET",
                )?),
            },
            timeout: std::time::Duration::from_millis(number("FACTS_TIMEOUT_MS", 1000)?),
            hold_seconds: number("FACTS_HOLD_SECONDS", 60)?,
        }),
        Ok(other) => Err(ConfigError::Invalid(
            "FACTS_ADAPTER",
            format!("{other:?} is neither \"table\" nor \"http\""),
        )),
    }
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

/// Where the key one-time codes are hashed with comes from, with the key it
/// replaced (so codes already sent survive a rotation).
#[derive(Clone)]
pub enum CodeKeySource {
    /// `CODE_HMAC_SECRET` (and `CODE_HMAC_SECRET_PREVIOUS` during a
    /// rotation): the keys themselves, for local development and tests.
    Env(CodeKey),
    /// `CODE_HMAC_SECRET_PARAMETER`: the name of an SSM SecureString holding
    /// it, read once at init (production; the template never holds the key).
    /// Its latest version is the key; the version before, the previous key.
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

/// `AUTH_MODE=dev` lets a header name the caller: never in a real Lambda.
/// Inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) it is refused, so init
/// fails, unless DynamoDB is a loopback endpoint: `cargo lambda watch` sets
/// the Lambda variables too, and a function whose table is on 127.0.0.1 can
/// only be the local stack.
fn auth_mode() -> Result<AuthMode, ConfigError> {
    auth_mode_of(
        env::var("AUTH_MODE").ok().as_deref(),
        env::var("AWS_LAMBDA_FUNCTION_NAME").ok().as_deref(),
        env::var("AWS_ENDPOINT_URL_DYNAMODB").ok().as_deref(),
    )
}

/// [`auth_mode`] from the values of `AUTH_MODE`, `AWS_LAMBDA_FUNCTION_NAME`
/// and `AWS_ENDPOINT_URL_DYNAMODB`.
fn auth_mode_of(
    auth_mode: Option<&str>,
    lambda_function: Option<&str>,
    dynamodb_endpoint: Option<&str>,
) -> Result<AuthMode, ConfigError> {
    if auth_mode != Some("dev") {
        return Ok(AuthMode::Jwt);
    }
    let in_lambda = lambda_function.is_some_and(|name| !name.is_empty());
    let local_table = dynamodb_endpoint.is_some_and(is_loopback_url);
    if in_lambda && !local_table {
        return Err(ConfigError::Invalid(
            "AUTH_MODE",
            "\"dev\" is for the local stack only and is refused inside Lambda".into(),
        ));
    }
    Ok(AuthMode::Dev)
}

/// `http://127.0.0.1:8000`, `http://localhost:8000/`, `http://[::1]:8000`.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn tls_roots() -> Result<TlsRoots, ConfigError> {
    match env::var("TLS_ROOTS").as_deref() {
        Err(_) | Ok("" | "amazon") => Ok(TlsRoots::Amazon),
        Ok("system") => Ok(TlsRoots::System),
        Ok(other) => Err(ConfigError::Invalid(
            "TLS_ROOTS",
            format!("{other:?} is neither \"amazon\" nor \"system\""),
        )),
    }
}

fn sms_rule(default: SmsRule) -> Result<SmsRule, ConfigError> {
    match env::var("SMS_ALLOWED_COUNTRIES") {
        Ok(list) if !list.trim().is_empty() => {
            SmsRule::parse(&list).map_err(|e| ConfigError::Invalid("SMS_ALLOWED_COUNTRIES", e))
        }
        _ => Ok(default),
    }
}

/// The relay's configuration: it delivers what commits announced, so it
/// needs the table, the courier's settings and the event bus, and neither
/// the code key nor the policy of the steps.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub table_name: String,
    pub sender_email: String,
    pub sms_sender_id: Option<String>,
    pub sms: SmsRule,
    pub event_bus_name: String,
    pub tls_roots: TlsRoots,
}

impl RelayConfig {
    pub fn from_env() -> Result<RelayConfig, ConfigError> {
        Ok(RelayConfig {
            table_name: required("TABLE_NAME")?,
            sender_email: required("SENDER_EMAIL")?,
            sms_sender_id: env::var("SMS_SENDER_ID").ok().filter(|v| !v.is_empty()),
            sms: sms_rule(SmsRule::default())?,
            event_bus_name: required("EVENT_BUS_NAME")?,
            tls_roots: tls_roots()?,
        })
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
            None => {
                let key = code_key(&required("CODE_HMAC_SECRET")?, "CODE_HMAC_SECRET")?;
                CodeKeySource::Env(
                    match env::var("CODE_HMAC_SECRET_PREVIOUS")
                        .ok()
                        .filter(|v| !v.is_empty())
                    {
                        Some(previous) => {
                            key.replacing(code_key(&previous, "CODE_HMAC_SECRET_PREVIOUS")?)
                        }
                        None => key,
                    },
                )
            }
        };
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            sender_email: required("SENDER_EMAIL")?,
            sms_sender_id: env::var("SMS_SENDER_ID").ok().filter(|v| !v.is_empty()),
            auth: auth_mode()?,
            code_key,
            totp_key_id: env::var("TOTP_KEY_ID").ok().filter(|v| !v.is_empty()),
            facts: facts_source()?,
            tls_roots: tls_roots()?,
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
                sends_per_contact_per_requester: Quota {
                    limit: number(
                        "SENDS_PER_CONTACT_PER_REQUESTER_PER_DAY",
                        defaults.sends_per_contact_per_requester.limit,
                    )?,
                    ..defaults.sends_per_contact_per_requester
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
                sms: sms_rule(defaults.sms)?,
                withdrawal_hold: number("WITHDRAWAL_HOLD_SECONDS", defaults.withdrawal_hold)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_mode_dev_is_refused_inside_lambda() {
        for endpoint in [None, Some("https://dynamodb.eu-west-1.amazonaws.com")] {
            assert!(matches!(
                auth_mode_of(Some("dev"), Some("verify"), endpoint),
                Err(ConfigError::Invalid("AUTH_MODE", _))
            ));
        }
    }

    #[test]
    fn auth_mode_dev_serves_the_local_stack_and_jwt_is_the_default() {
        let local = Some("http://127.0.0.1:8000");
        // `cargo lambda watch` sets the Lambda variables too.
        assert_eq!(
            auth_mode_of(Some("dev"), Some("verify"), local).unwrap(),
            AuthMode::Dev
        );
        assert_eq!(
            auth_mode_of(Some("dev"), None, None).unwrap(),
            AuthMode::Dev
        );
        for other in [None, Some(""), Some("jwt"), Some("DEV")] {
            assert_eq!(
                auth_mode_of(other, Some("verify"), None).unwrap(),
                AuthMode::Jwt
            );
        }
    }

    #[test]
    fn only_loopback_endpoints_count_as_the_local_stack() {
        for local in [
            "http://127.0.0.1:8000",
            "http://localhost:8000/",
            "http://[::1]:8000",
            "http://127.0.0.2",
        ] {
            assert!(is_loopback_url(local), "{local}");
        }
        for remote in [
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://10.0.0.1:8000",
            "http://127.0.0.1.example.com:8000",
            "http://localhost.example.com",
            "https://127.0.0.1:8000",
            "",
        ] {
            assert!(!is_loopback_url(remote), "{remote}");
        }
    }
}
