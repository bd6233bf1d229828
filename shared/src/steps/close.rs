//! `POST /migrations/{id}/close`: the one atomic commit. Nothing changes
//! unless every condition holds; repeating a successful close answers the
//! same 200, including for the losers of a race on the same migration.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::warning::missing_acknowledgements;
use crate::domain::{
    rfc3339, AuditEvent, Caller, Contact, Error, Migration, MigrationState, Step, Timestamp,
};
use crate::notify::Notice;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    #[serde(default)]
    pub acknowledged_warnings: Vec<String>,
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Closed {
    pub state: &'static str,
    pub channel: &'static str,
    pub contact: String,
    pub closed_account_id: String,
    pub completed_at: String,
}

/// Transaction conflicts with a concurrent request are retried this often.
const CONFLICT_RETRIES: usize = 2;

fn closed(m: &Migration) -> Option<Closed> {
    match (m.state, &m.closed_account_id, m.completed_at) {
        (MigrationState::Completed, Some(closed_account_id), Some(at)) => Some(Closed {
            state: MigrationState::Completed.as_str(),
            channel: m.channel.as_str(),
            contact: m.new_contact.masked(),
            closed_account_id: closed_account_id.clone(),
            completed_at: rfc3339(at),
        }),
        _ => None,
    }
}

pub async fn close(
    app: &App,
    caller: &Caller,
    migration_id: &str,
    request: CloseRequest,
    now: Timestamp,
) -> Result<Closed, Error> {
    let missing = missing_acknowledgements(&request.acknowledged_warnings, request.confirm);
    if !missing.is_empty() {
        return Err(Error::ConfirmationRequired { missing });
    }
    let mut migration = app
        .owned_migration(&caller.account_id, migration_id)
        .await?;
    for attempt in 0..=CONFLICT_RETRIES {
        if let Some(done) = closed(&migration) {
            return Ok(done);
        }
        migration.check_closable(now, &app.policy)?;
        let event = AuditEvent::new(Step::Close, "ok", &migration, caller, now);
        match app.store.commit_closure(&migration, now, &event).await {
            Ok(()) => {
                migration.state = MigrationState::Completed;
                migration.completed_at = Some(now);
                migration.closed_account_id = migration.duplicate_account_id.clone();
                notify(app, &migration).await;
                return closed(&migration)
                    .ok_or_else(|| Error::Internal("closure without result".into()));
            }
            Err(refusal) => {
                // Perhaps a concurrent close of this same migration won: then
                // its result is this call's result too.
                migration = app
                    .owned_migration(&caller.account_id, migration_id)
                    .await?;
                if closed(&migration).is_some()
                    || (refusal == Error::StateChanged && attempt < CONFLICT_RETRIES)
                {
                    continue;
                }
                migration.check_closable(now, &app.policy)?;
                return Err(refusal);
            }
        }
    }
    closed(&migration).ok_or(Error::StateChanged)
}

/// Notices to the main account's previous contact, the moved contact, and
/// the closed duplicate's other contact, if it had one.
async fn notify(app: &App, m: &Migration) {
    let to: Vec<&Contact> = m
        .previous_contact
        .iter()
        .chain([&m.new_contact])
        .chain(m.duplicate_other_contact.iter())
        .collect();
    let notice = Notice::ContactMigrated {
        new_contact: m.new_contact.clone(),
        migration_id: m.migration_id.clone(),
    };
    app.send_notices(&m.migration_id, &to, notice).await;
}
