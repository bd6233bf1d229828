//! Checks the three factors of a migration.

use contact_migration::http::Endpoint;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    contact_migration::lambda::run(&[Endpoint::Verify]).await
}
