//! `POST /migrations/{id}/migrate`: eligibility re-checked, with the
//! duplicate's facts read again through the facts port, warnings shown.
//! The first answer's snapshot (assets, the duplicate's authenticator) is
//! kept, so calling again answers the same, and the closure is conditional
//! on it still being true.

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
    /// The closure needs a code of the duplicate's authenticator too.
    pub duplicate_two_factor_required: bool,
}

/// The answer from a migration's snapshot, once it has one.
fn answer(m: &Migration) -> Option<AwaitingConfirmation> {
    match (m.state, m.duplicate_has_assets) {
        (MigrationState::AwaitingConfirmation, Some(assets)) => Some(AwaitingConfirmation {
            state: MigrationState::AwaitingConfirmation.as_str(),
            warnings: warnings(assets),
            confirm_by: m.confirm_by.map(rfc3339).unwrap_or_default(),
            duplicate_two_factor_required: m.needs_duplicate_totp(),
        }),
        _ => None,
    }
}

pub async fn migrate(
    app: &App,
    caller: &Caller,
    migration_id: &str,
    now: Timestamp,
) -> Result<AwaitingConfirmation, Error> {
    let (migration, _) = app
        .active_caller_migration(&caller.account_id, migration_id)
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
    let duplicate_id = migration
        .duplicate_account_id
        .as_deref()
        .ok_or(Error::StateChanged)?;
    let account = app.facts.facts(duplicate_id).await?;
    let blockers = eligibility::blockers(&facts.eligibility, &account);
    if !blockers.is_empty() {
        return Err(Error::NotEligible(blockers));
    }
    if facts.contact_owner != migration.duplicate_account_id {
        return Err(Error::StateChanged);
    }
    if let Some(same) = answer(&migration) {
        return Ok(same);
    }

    let duplicate = &facts.eligibility.duplicate;
    let prepared = Migration {
        state: MigrationState::AwaitingConfirmation,
        duplicate_has_assets: Some(account.has_assets),
        duplicate_two_factor_required: Some(duplicate.has_totp()),
        previous_contact: facts.main.contact(migration.channel).cloned(),
        duplicate_other_contact: duplicate.contact(migration.channel.other()).cloned(),
        ..migration.clone()
    };
    let event = AuditEvent::new(Step::Migrate, "ok", &prepared, caller, now);
    if app.store.await_confirmation(&prepared, now, &event).await? {
        return answer(&prepared).ok_or_else(|| Error::Internal("migrate without answer".into()));
    }
    // A concurrent migrate got there first: answer as it did.
    let stored = app
        .owned_migration(&caller.account_id, migration_id)
        .await?;
    if let Some(same) = answer(&stored) {
        return Ok(same);
    }
    stored.check_migratable(now, &app.policy)?;
    Err(Error::StateChanged)
}
