//! What every function's `main` does: structured logs, configuration and
//! clients once at init, then one handler for the endpoints it serves.
//!
//! Init is kept close to a bare `lambda_http` binary's (`make bench` measures
//! both): the SDK configuration is the environment Lambda provides, read
//! without the default provider chains, and every SDK client shares one
//! HTTPS client whose TLS set-up waits for the first request ([`crate::aws`]).

use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{lambda_runtime, service_fn, Adapter, Body, LambdaEvent, Request, Response};
use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::app::App;
use crate::aws::{sdk_config, SdkConfig};
use crate::config::{Config, ConfigError, FactsSource, RelayConfig};
use crate::domain::Timestamp;
use crate::facts::{Facts, FactsKey, HttpFacts};
use crate::http::{self, Served, CHECK_TOTP, DELIVER_CODES, READ_FACTS, USE_CODE_KEY};
use crate::notify::Courier;
use crate::relay::{EventBus, Relay, StreamEvent};
pub use crate::secrets::{resolve_code_key, resolve_facts_key, Codes};
use crate::store::Store;
use crate::vault::Vault;

/// The log format: one JSON object a line (CloudWatch parses them), event
/// fields flattened. Tests install the same subscriber over a buffer.
pub fn json_logs<W>(writer: W, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_max_level(level)
        .with_current_span(false)
        .with_target(false)
        .flatten_event(true)
        .finish()
}

/// JSON logs to stdout at `LOG_LEVEL` (default `INFO`).
pub fn init_logging() {
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(tracing::Level::INFO);
    // Only fails if a subscriber is already set, which then keeps logging.
    let _ = tracing::subscriber::set_global_default(json_logs(std::io::stdout, level));
}

pub fn now() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as Timestamp)
        .unwrap_or_default()
}

/// The facts port the configuration names; `facts_key` is the resolved key
/// of the `http` adapter (a function that reads no facts has none and gets
/// the `table` adapter, which it never asks).
pub fn facts(store: &Store, source: &FactsSource, facts_key: Option<FactsKey>) -> Facts {
    match (source, facts_key) {
        (
            FactsSource::Http {
                url,
                timeout,
                hold_seconds,
                ..
            },
            Some(key),
        ) => Facts::Http(Box::new(HttpFacts::new(url, key, *timeout, *hold_seconds))),
        _ => Facts::Table(store.clone()),
    }
}

/// The service's clients, from the SDK configuration (the
/// `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SESV2`,
/// `AWS_ENDPOINT_URL_SNS` and `AWS_ENDPOINT_URL_KMS` variables point them at
/// local emulators), for a function serving `SERVED`. SES and SNS clients
/// only where codes are sent; a KMS client only with a TOTP key: the
/// functions that check no TOTP code neither build one nor may use the key;
/// the facts over HTTP only where facts are read. The conditions are
/// evaluated at compile time, so what a function does not build is not in
/// its binary.
pub fn app<const SERVED: Served>(
    aws: &SdkConfig,
    config: &Config,
    codes: Codes,
    totp_key: Option<String>,
    facts_key: Option<FactsKey>,
) -> App {
    let store = Store::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name);
    App {
        facts: if const { SERVED & READ_FACTS != 0 } {
            facts(&store, &config.facts, facts_key)
        } else {
            Facts::Table(store.clone())
        },
        store,
        courier: if const { SERVED & DELIVER_CODES != 0 } {
            Some(
                Courier::new(
                    aws_sdk_sesv2::Client::new(aws),
                    &config.sender_email,
                    aws_sdk_sns::Client::new(aws),
                    config.sms_sender_id.clone(),
                )
                .with_sms_rule(config.policy.sms.clone()),
            )
        } else {
            None
        },
        codes,
        vault: match totp_key {
            Some(key) if const { SERVED & CHECK_TOTP != 0 } => {
                Some(Vault::new(aws_sdk_kms::Client::new(aws), key))
            }
            _ => None,
        },
        policy: config.policy.clone(),
    }
}

/// Runs a Lambda function that serves the endpoints `SERVED`
/// (`run::<{ http::endpoints(&[...]) }>()`).
///
/// Init reads the configuration and (where an endpoint reads account facts
/// over HTTP) the facts key, so a bad one fails init (as does a missing
/// `TOTP_KEY_ID` where an endpoint checks TOTP codes), starts reading the
/// code key where an endpoint makes or checks codes ([`Codes::read`]), and
/// asks for the first event. The SDK clients are built when that event
/// arrives, once: each costs a tenth of a millisecond or more of CPU (every
/// service crate parses its endpoint rules when its first client is made),
/// and building them on another thread during init cost more CPU in all
/// (BENCHMARKS.md) for no gain where a function has less than one CPU, as
/// Lambda functions below 1,769 MB do.
pub async fn run<const SERVED: Served>() -> Result<(), lambda_http::Error> {
    init_logging();
    let config = Config::from_env()?;
    let aws = sdk_config(config.tls_roots)?;
    let codes = if const { SERVED & USE_CODE_KEY != 0 } {
        Codes::read(&aws, &config.code_key)
    } else {
        Codes::Absent
    };
    let totp_key = if const { SERVED & CHECK_TOTP != 0 } {
        Some(
            config
                .totp_key_id
                .clone()
                .ok_or(ConfigError::Missing("TOTP_KEY_ID"))?,
        )
    } else {
        None
    };
    let facts_key = if const { SERVED & READ_FACTS != 0 } {
        resolve_facts_key(&aws, &config.facts).await?
    } else {
        None
    };
    let auth = config.auth;
    let app = LazyLock::new(move || app::<SERVED>(&aws, &config, codes, totp_key, facts_key));
    let app = &app;
    let handler = service_fn(move |request: Request| async move {
        let app: &App = app;
        Ok::<Response<Body>, Infallible>(http::serve::<SERVED>(app, auth, request, now()).await)
    });
    // What `lambda_http::run` does, with the event sanitised before
    // lambda_http converts it to a request (see `http::event`).
    let handler = Adapter::from(handler).map_request(|event: LambdaEvent<LambdaRequest>| {
        LambdaEvent::new(http::sanitize(event.payload), event.context)
    });
    lambda_runtime::run(handler).await
}

/// The relay's clients: the table, the courier and the event bus.
pub fn relay(aws: &SdkConfig, config: &RelayConfig) -> Relay {
    Relay {
        store: Store::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name),
        courier: Courier::new(
            aws_sdk_sesv2::Client::new(aws),
            &config.sender_email,
            aws_sdk_sns::Client::new(aws),
            config.sms_sender_id.clone(),
        )
        .with_sms_rule(config.sms.clone()),
        bus: EventBus::new(
            aws_sdk_eventbridge::Client::new(aws),
            &config.event_bus_name,
        ),
    }
}

/// Runs the relay function: batches of the table's stream (filtered to the
/// insertion of outbox items), answered with `ReportBatchItemFailures`.
pub async fn run_relay() -> Result<(), lambda_http::Error> {
    init_logging();
    let config = RelayConfig::from_env()?;
    let aws = sdk_config(config.tls_roots)?;
    let relay = LazyLock::new(move || relay(&aws, &config));
    let relay = &relay;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamEvent>| async move {
            let relay: &Relay = relay;
            // Boxed: the handler's future nests the delivery's bounded
            // concurrency deeply enough to exceed the compiler's layout
            // depth when inlined into the runtime's.
            Ok::<_, Infallible>(Box::pin(relay.handle(event.payload)).await)
        },
    ))
    .await
}
