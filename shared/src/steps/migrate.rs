//! `POST /migrations/{id}/migrate`: eligibility re-checked, warnings shown.
//! The first answer's asset snapshot is kept, so calling again answers the same.

use serde::Serialize;

use crate::app::App;
use crate::domain::eligibility;
use crate::domain::warning::{warnings, Warning};
use crate::domain::{
    rfc3339, AuditEvent, Caller, Error, Migration, MigrationState, Step, Timestamp,
};

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct AwaitingConfirmation {
    pub state: &'static str,
    pub warnings: Vec<Warning>,
    pub confirm_by: String,
}

fn answer(m: &Migration, duplicate_has_assets: bool) -> AwaitingConfirmation {
    AwaitingConfirmation {
        state: MigrationState::AwaitingConfirmation.as_str(),
        warnings: warnings(duplicate_has_assets),
        confirm_by: m.confirm_by.map(rfc3339).unwrap_or_default(),
    }
}

pub async fn migrate(
    app: &App,
    caller: &Caller,
    migration_id: &str,
    now: Timestamp,
) -> Result<AwaitingConfirmation, Error> {
    let migration = app
        .owned_migration(&caller.account_id, migration_id)
        .await?;
    migration.check_migratable(now, &app.policy)?;
    let facts = app
        .store
        .migrate_facts(&migration)
        .await?
        .ok_or(Error::StateChanged)?;
    if !facts.main.is_active() {
        return Err(Error::AccountNotActive);
    }
    let blockers = eligibility::blockers(&facts.eligibility);
    if !blockers.is_empty() {
        return Err(Error::NotEligible(blockers));
    }
    if facts.contact_owner != migration.duplicate_account_id {
        return Err(Error::StateChanged);
    }
    if let (MigrationState::AwaitingConfirmation, Some(assets)) =
        (migration.state, migration.duplicate_has_assets)
    {
        return Ok(answer(&migration, assets));
    }

    let has_assets = facts.eligibility.duplicate.has_assets;
    let prepared = Migration {
        duplicate_has_assets: Some(has_assets),
        previous_contact: facts.main.contact(migration.channel).cloned(),
        duplicate_other_contact: facts
            .eligibility
            .duplicate
            .contact(migration.channel.other())
            .cloned(),
        ..migration.clone()
    };
    let event = AuditEvent::new(Step::Migrate, "ok", &prepared, caller, now);
    if app.store.await_confirmation(&prepared, now, &event).await? {
        return Ok(answer(&prepared, has_assets));
    }
    // A concurrent migrate got there first: answer as it did.
    let stored = app
        .owned_migration(&caller.account_id, migration_id)
        .await?;
    match (stored.state, stored.duplicate_has_assets) {
        (MigrationState::AwaitingConfirmation, Some(assets)) => Ok(answer(&stored, assets)),
        _ => {
            stored.check_migratable(now, &app.policy)?;
            Err(Error::StateChanged)
        }
    }
}
