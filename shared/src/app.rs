//! The service: the store, the courier, the code key and the policy, built
//! once per process and shared by reference with every invocation.

use crate::domain::{CodeKey, Contact, Error, Migration, Policy};
use crate::notify::{Courier, Message, Notice};
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct App {
    pub store: Store,
    pub courier: Courier,
    pub codes: CodeKey,
    pub policy: Policy,
}

impl App {
    /// The migration `id` if it exists and belongs to `caller`; otherwise the
    /// same 404 either way, so ids cannot be probed.
    pub async fn owned_migration(&self, caller: &str, id: &str) -> Result<Migration, Error> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Error::MigrationNotFound);
        }
        let migration = self
            .store
            .migration(id)
            .await?
            .ok_or(Error::MigrationNotFound)?;
        migration.ensure_owner(caller)?;
        Ok(migration)
    }

    /// Security notices after a commit. A failure is logged and never undoes
    /// what was committed.
    pub async fn send_notices(&self, migration_id: &str, to: &[&Contact], notice: Notice) {
        let message = Message::Notice(notice);
        for contact in to {
            if let Err(e) = self.courier.deliver(contact, &message).await {
                tracing::warn!(
                    migration_id,
                    channel = %contact.channel(),
                    error = %e,
                    "security notice not delivered; queued for retry by operators"
                );
            }
        }
    }
}
