//! What init costs, piece by piece: the driver re-runs itself as
//! `bench phases <mode>` in a fresh process (caches such as the loaded root
//! certificates are per process), with the environment a function gets, and
//! reads back one JSON line of microseconds.
//!
//! Modes: `default-chain` is `aws_config`'s default provider chains (with the
//! functions' HTTP client) and a client per service built from it (how the
//! functions used to start); `lambda` is what `contact_migration::lambda`
//! does now.

use contact_migration::config::Config;
use serde_json::{json, Map, Value};
use std::time::Instant;

pub const MODES: [&str; 3] = ["default-chain", "lambda", "lambda, no log subscriber"];

/// The phases, in the order they run, as (key, label).
pub const PHASES: [(&str, &str); 10] = [
    ("runtime", "tokio runtime (current_thread)"),
    ("logging", "JSON log subscriber"),
    ("config", "Config::from_env"),
    ("sdk_config", "SdkConfig"),
    ("dynamodb_client", "DynamoDB client"),
    ("sesv2_client", "SESv2 client"),
    ("sns_client", "SNS client"),
    ("dynamodb_client_again", "another DynamoDB client"),
    ("first_request", "first DynamoDB request (cold)"),
    ("second_request", "second DynamoDB request"),
];

/// Runs one mode and prints its timings as JSON. Exits non-zero on failure.
pub fn main(mode: &str) {
    let mut timings = Map::new();
    let mut lap = Instant::now();
    let mut record = |key: &str| {
        let now = Instant::now();
        timings.insert(key.to_owned(), json!((now - lap).as_micros() as u64));
        lap = now;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    record("runtime");
    let outcome: Result<(), String> = runtime.block_on(async {
        if !mode.contains("no log subscriber") {
            contact_migration::lambda::init_logging();
        }
        record("logging");
        let config = Config::from_env().map_err(|e| e.to_string())?;
        record("config");
        let aws = match mode {
            "default-chain" => {
                // The functions' HTTP client: the bench, built with the functions,
                // must not bring the SDK's own into their binaries.
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(contact_migration::aws::https_client(config.tls_roots))
                    .load()
                    .await
            }
            m if m.starts_with("lambda") => {
                contact_migration::aws::sdk_config(config.tls_roots).map_err(|e| e.to_string())?
            }
            other => return Err(format!("unknown mode {other}")),
        };
        record("sdk_config");
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        record("dynamodb_client");
        let _sesv2 = aws_sdk_sesv2::Client::new(&aws);
        record("sesv2_client");
        let _sns = aws_sdk_sns::Client::new(&aws);
        record("sns_client");
        let _again = aws_sdk_dynamodb::Client::new(&aws);
        record("dynamodb_client_again");
        for phase in ["first_request", "second_request"] {
            // Any answer from DynamoDB is a complete round trip, an error included.
            let sent = dynamodb
                .get_item()
                .table_name(&config.table_name)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S("BENCH#absent".into()),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S("BENCH".into()),
                )
                .send()
                .await;
            if let Err(e) = sent {
                if e.raw_response().is_none() {
                    return Err(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string());
                }
            }
            record(phase);
        }
        Ok(())
    });
    match outcome {
        Ok(()) => println!("{}", Value::Object(timings)),
        Err(e) => {
            eprintln!("phases {mode}: {e}");
            std::process::exit(1);
        }
    }
}
