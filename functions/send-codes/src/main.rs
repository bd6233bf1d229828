//! Starts migrations and resends their codes; also answers GET and DELETE of a migration.

use contact_migration::http::Endpoint;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    contact_migration::lambda::run(&[
        Endpoint::Start,
        Endpoint::Resend,
        Endpoint::Get,
        Endpoint::Cancel,
    ])
    .await
}
