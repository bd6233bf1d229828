//! Re-checks eligibility and returns the warnings to acknowledge.

use contact_migration::http::Endpoint;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    contact_migration::lambda::run(&[Endpoint::Migrate]).await
}
