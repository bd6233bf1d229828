//! Accounts and the ownership of their contacts: creation, reads, the audit
//! trail, a TOTP step spent on its own, and releasing a contact.

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};

use super::item::{self, n, s, Item};
use super::{applied, build_error, names, sdk_error, values, Store, TOTP_STEP_UNUSED};
use crate::domain::{Account, Contact, Error};

impl Store {
    /// Creates an account and claims its contacts, all or nothing: a contact
    /// that already has an owner refuses the whole account.
    pub async fn create_account(&self, account: &Account) -> Result<bool, Error> {
        let mut items = vec![self.put(item::account_to_item(account), "attribute_not_exists(pk)")?];
        for contact in [&account.email, &account.phone].into_iter().flatten() {
            items.push(self.put(
                item::with_key(
                    item::contact_key(contact),
                    [("owner", s(&account.account_id))],
                ),
                "attribute_not_exists(pk)",
            )?);
        }
        Ok(self.transact(items).await?.is_ok())
    }

    /// Writes an account as it is, for operators and tests that change the
    /// world between two steps. Contact ownership items are not touched.
    pub async fn put_account_item(&self, account: &Account) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::account_to_item(account)))
            .send()
            .await
            .map_err(sdk_error("PutItem"))?;
        Ok(())
    }

    pub async fn account(&self, account_id: &str) -> Result<Option<Account>, Error> {
        self.get(item::account_key(account_id))
            .await?
            .map(|it| item::account_from_item(&it))
            .transpose()
    }

    pub async fn contact_owner(&self, contact: &Contact) -> Result<Option<String>, Error> {
        Ok(self
            .get(item::contact_key(contact))
            .await?
            .and_then(|it| item::get_s(&it, "owner").map(str::to_owned)))
    }

    /// Every audit record of an account, oldest first.
    pub async fn audit_trail(&self, account_id: &str) -> Result<Vec<Item>, Error> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :audit)")
                .expression_attribute_values(":pk", s(format!("ACCOUNT#{account_id}")))
                .expression_attribute_values(":audit", s("AUDIT#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error("Query"))?;
            records.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(records);
            }
        }
    }

    /// Records a TOTP step as used without any other change (a failed attempt
    /// whose TOTP was right), so the same code cannot be tried again.
    pub async fn consume_totp_step(&self, account_id: &str, step: u64) -> Result<bool, Error> {
        applied(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item::account_key(account_id)))
                .update_expression("SET totp_last_step = :step")
                .condition_expression(TOTP_STEP_UNUSED)
                .set_expression_attribute_values(values([(":step", n(step))]))
                .send()
                .await,
        )
    }

    pub(super) fn release_contact(
        &self,
        contact: &Contact,
        owner: &str,
    ) -> Result<TransactWriteItem, Error> {
        Ok(TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(item::contact_key(contact)))
                    .condition_expression("#owner = :owner")
                    .set_expression_attribute_names(names([("#owner", "owner")]))
                    .set_expression_attribute_values(values([(":owner", s(owner))]))
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }
}
