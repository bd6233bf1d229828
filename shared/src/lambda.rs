//! What every function's `main` does: structured logs, configuration and
//! clients once at init, then one handler for the endpoints it serves.
//!
//! Init is kept close to a bare `lambda_http` binary's (`make bench` measures
//! both): the SDK configuration takes the region and credentials straight
//! from the environment Lambda provides instead of walking the default
//! provider chains, and every SDK client shares one HTTPS client whose TLS
//! set-up (loading and parsing the root certificates) happens once, on the
//! first request, instead of once per client at construction and again on
//! the first request of each. That set-up trusts the Amazon Trust Services
//! roots built into the binary rather than parsing the system's CA bundle
//! (`TLS_ROOTS`, see [`TlsRoots`]).

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{lambda_runtime, service_fn, Adapter, Body, LambdaEvent, Request, Response};
use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::app::App;
use crate::config::{Config, ConfigError, FactsSource, RelayConfig, TlsRoots};
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

/// The SDK's HTTPS client (rustls, native root certificates), deferring all
/// of its set-up to the first request. The SDK's own client builds a TLS
/// connector when each SDK client is constructed, only to check that it can,
/// and builds it again for the first request; one per service client, all at
/// init. Sharing this one, the connector is built once per process and its
/// connection pool is shared as well.
#[derive(Debug, Clone)]
struct DeferredHttpClient(SharedHttpClient);

impl HttpClient for DeferredHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        // Cached by the inner client per settings (timeouts), so every SDK
        // client with the same settings gets the same connector.
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The Amazon Trust Services root certificates (see the file's header).
const AMAZON_ROOTS_PEM: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

fn trust_store(roots: TlsRoots) -> TrustStore {
    match roots {
        TlsRoots::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM),
        TlsRoots::System => TrustStore::default(),
    }
}

fn http_client(roots: TlsRoots) -> SharedHttpClient {
    let tls = TlsContext::builder()
        .with_trust_store(trust_store(roots))
        .build()
        .expect("a TLS context needs nothing that can fail");
    SharedHttpClient::new(DeferredHttpClient(
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls)
            .build_https(),
    ))
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The SDK configuration of the functions. In Lambda the region and the
/// execution role's credentials are environment variables, so they are
/// taken from there directly; without them (a developer's machine) the
/// default provider chains find them as usual. Everything else is the SDK's
/// default loading, which keeps the `AWS_ENDPOINT_URL_<SERVICE>` variables
/// the local stack relies on working.
pub async fn sdk_config(roots: TlsRoots) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).http_client(http_client(roots));
    if let Some(region) = env_value("AWS_REGION") {
        loader = loader.region(Region::new(region));
    }
    if env_value("AWS_ACCESS_KEY_ID").is_some() && env_value("AWS_SECRET_ACCESS_KEY").is_some() {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    loader.load().await
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
    let aws = sdk_config(config.tls_roots).await;
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
    let aws = sdk_config(config.tls_roots).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn the_built_in_roots_are_the_five_amazon_trust_services_anchors() {
        let certs = CertificateDer::pem_slice_iter(AMAZON_ROOTS_PEM)
            .collect::<Result<Vec<_>, _>>()
            .expect("the bundle is PEM, comments and all");
        let mut roots = rustls::RootCertStore::empty();
        let (valid, invalid) = roots.add_parsable_certificates(certs);
        assert_eq!((valid, invalid), (5, 0));
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(
                roots
                    .roots
                    .iter()
                    .any(|anchor| contains(anchor.subject.as_ref(), name.as_bytes())),
                "{name} is one of the anchors"
            );
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}
