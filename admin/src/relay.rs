//! `admin relay` and `admin redeliver`: the relay function's handler run
//! locally against the table's stream, and an operator's redelivery of
//! chosen outboxes.

use contact_migration::config::RelayConfig;
use contact_migration::relay::local::StreamPoller;
use contact_migration::relay::Relay;
use serde_json::json;
use std::time::Duration;

/// Records per handler call, as the template's `BatchSize`.
const BATCH_SIZE: i32 = 100;
const POLL_EVERY: Duration = Duration::from_millis(200);

async fn relay() -> Result<(Relay, aws_config::SdkConfig), String> {
    let config = RelayConfig::from_env().map_err(|e| e.to_string())?;
    let aws = super::aws().await;
    Ok((contact_migration::lambda::relay(&aws, &config), aws))
}

/// Polls the stream until interrupted, printing a line for each poll that
/// delivered or failed something.
pub async fn run() -> Result<(), String> {
    contact_migration::lambda::init_logging();
    let (relay, aws) = relay().await?;
    let mut poller = StreamPoller::new(
        &aws_sdk_dynamodb::Client::new(&aws),
        aws_sdk_dynamodbstreams::Client::new(&aws),
        relay.store.table(),
        BATCH_SIZE,
    )
    .await?;
    println!(
        "{}",
        json!({"relay": "started", "stream": poller.stream_arn(), "event_bus": relay.bus.name()})
    );
    loop {
        match poller.poll(&relay).await {
            Ok(poll) if poll.delivered + poll.failed > 0 => println!(
                "{}",
                json!({"delivered": poll.delivered, "failed": poll.failed})
            ),
            Ok(_) => {}
            Err(e) => eprintln!("admin relay: {e}"),
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Delivers the outboxes of the given migrations again; what was delivered
/// is skipped.
pub async fn redeliver(migration_ids: &[String]) -> Result<(), String> {
    if migration_ids.is_empty() {
        return Err("usage: admin redeliver MIGRATION_ID...".into());
    }
    let (relay, _) = relay().await?;
    let undelivered = relay.redeliver(migration_ids).await?;
    println!("{}", json!({"undelivered": undelivered}));
    if undelivered.is_empty() {
        Ok(())
    } else {
        Err("some notices or events are still undelivered; see the log".into())
    }
}
