//! What every function's `main` does: structured logs, configuration and
//! clients once at init, then one handler for the endpoints it serves.

use lambda_http::{service_fn, Body, Request, Response};
use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::app::App;
use crate::config::{code_key, CodeKeySource, Config};
use crate::domain::{CodeKey, Timestamp};
use crate::http::{self, Endpoint};
use crate::notify::Courier;
use crate::store::Store;

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

/// The code key from its source: as given, or read from SSM Parameter Store
/// with decryption.
pub async fn resolve_code_key(
    aws: &aws_config::SdkConfig,
    source: &CodeKeySource,
) -> Result<CodeKey, lambda_http::Error> {
    match source {
        CodeKeySource::Env(key) => Ok(key.clone()),
        CodeKeySource::Ssm(name) => {
            let out = aws_sdk_ssm::Client::new(aws)
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "reading the code key parameter {name}: {}",
                        aws_sdk_ssm::error::DisplayErrorContext(&e)
                    )
                })?;
            let value = out
                .parameter
                .and_then(|p| p.value)
                .ok_or_else(|| format!("the code key parameter {name} has no value"))?;
            Ok(code_key(&value, "CODE_HMAC_SECRET_PARAMETER")?)
        }
    }
}

/// The service from configuration and the standard AWS environment
/// (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SESV2`,
/// `AWS_ENDPOINT_URL_SNS` and `AWS_ENDPOINT_URL_SSM` point it at local
/// emulators).
pub async fn app_from_env(config: &Config) -> Result<App, lambda_http::Error> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok(App {
        store: Store::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name),
        courier: Courier::new(
            aws_sdk_sesv2::Client::new(&aws),
            &config.sender_email,
            aws_sdk_sns::Client::new(&aws),
            config.sms_sender_id.clone(),
        ),
        codes: resolve_code_key(&aws, &config.code_key).await?,
        policy: config.policy.clone(),
    })
}

/// Runs a Lambda function that serves `endpoints`.
pub async fn run(endpoints: &'static [Endpoint]) -> Result<(), lambda_http::Error> {
    init_logging();
    let config = Config::from_env()?;
    let app = app_from_env(&config).await?;
    let (app, auth) = (&app, config.auth);
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<Response<Body>, Infallible>(http::serve(app, auth, endpoints, request, now()).await)
    }))
    .await
}
