//! Starts migrations and resends their codes; also answers GET and DELETE of a migration.

use contact_migration::http::{endpoints, Endpoint};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    contact_migration::lambda::run::<
        {
            endpoints(&[
                Endpoint::Start,
                Endpoint::Resend,
                Endpoint::Get,
                Endpoint::Cancel,
            ])
        },
    >()
    .await
}
