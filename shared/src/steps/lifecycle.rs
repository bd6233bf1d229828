//! `GET /migrations/{id}` and `DELETE /migrations/{id}`.

use serde::Serialize;

use super::MigrationView;
use crate::app::App;
use crate::domain::{AuditEvent, Caller, Error, MigrationState, Step, Timestamp};

pub async fn get(
    app: &App,
    caller: &Caller,
    migration_id: &str,
    now: Timestamp,
) -> Result<MigrationView, Error> {
    let (migration, _) = app
        .active_caller_migration(&caller.account_id, migration_id)
        .await?;
    Ok(MigrationView::of(&migration, now, &app.policy))
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Cancelled {
    pub state: &'static str,
}

pub async fn cancel(
    app: &App,
    caller: &Caller,
    migration_id: &str,
    now: Timestamp,
) -> Result<Cancelled, Error> {
    let (migration, _) = app
        .active_caller_migration(&caller.account_id, migration_id)
        .await?;
    migration.check_cancellable(now, &app.policy)?;
    let event = AuditEvent::new(Step::Cancel, "ok", &migration, caller, now);
    if migration.state != MigrationState::Cancelled
        && !app.store.cancel(&migration, now, &event).await?
    {
        // Completed or cancelled by a concurrent request: answer from what it left.
        let stored = app
            .owned_migration(&caller.account_id, migration_id)
            .await?;
        stored.check_cancellable(now, &app.policy)?;
        if stored.state != MigrationState::Cancelled {
            return Err(Error::StateChanged);
        }
    }
    Ok(Cancelled {
        state: MigrationState::Cancelled.as_str(),
    })
}
