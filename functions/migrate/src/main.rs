//! Re-checks eligibility and returns the warnings to acknowledge.

use contact_migration::http::{endpoints, Endpoint};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    contact_migration::lambda::run::<{ endpoints(&[Endpoint::Migrate]) }>().await
}
