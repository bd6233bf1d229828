//! Commits the migration and closes the duplicate account, atomically.

use contact_migration::http::{endpoints, Endpoint};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    contact_migration::lambda::run::<{ endpoints(&[Endpoint::Close]) }>().await
}
