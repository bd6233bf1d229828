//! `GET /migrations/{id}` and `DELETE /migrations/{id}`.

use serde::Serialize;

use super::MigrationView;
use crate::app::App;
use crate::domain::{Error, MigrationState, Timestamp};

pub async fn get(
    app: &App,
    caller: &str,
    migration_id: &str,
    now: Timestamp,
) -> Result<MigrationView, Error> {
    let migration = app.owned_migration(caller, migration_id).await?;
    Ok(MigrationView::of(&migration, now, &app.policy))
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Cancelled {
    pub state: &'static str,
}

pub async fn cancel(
    app: &App,
    caller: &str,
    migration_id: &str,
    now: Timestamp,
) -> Result<Cancelled, Error> {
    let migration = app.owned_migration(caller, migration_id).await?;
    migration.check_cancellable(now, &app.policy)?;
    if migration.state != MigrationState::Cancelled && !app.store.cancel(&migration, now).await? {
        // Completed or cancelled by a concurrent request: answer from what it left.
        let stored = app.owned_migration(caller, migration_id).await?;
        stored.check_cancellable(now, &app.policy)?;
        if stored.state != MigrationState::Cancelled {
            return Err(Error::StateChanged);
        }
    }
    Ok(Cancelled {
        state: MigrationState::Cancelled.as_str(),
    })
}
