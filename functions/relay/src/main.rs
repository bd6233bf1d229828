//! Delivers what commits announced: the table's stream, filtered to the
//! insertion of outbox items, to security notices (SES, SNS) and domain
//! events (EventBridge).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    contact_migration::lambda::run_relay().await
}
