//! Item <-> struct mapping, and the table's key layout. The only place that
//! knows attribute names.
//!
//! | pk                          | sk                         | what                              |
//! |-----------------------------|----------------------------|-----------------------------------|
//! | `ACCOUNT#<id>`              | `ACCOUNT`                  | the account                       |
//! | `ACCOUNT#<id>`              | `RECEIVED#<channel>`       | once-only: it received a migration|
//! | `ACCOUNT#<id>`              | `AUDIT#<time>#<migration>#<step>` | audit record               |
//! | `CONTACT#<channel>#<value>` | `CONTACT`                  | who owns the contact              |
//! | `MIGRATED#<channel>#<value>`| `MIGRATED`                 | once-only: the contact migrated   |
//! | `MIGRATION#<id>`            | `MIGRATION`                | the migration                     |

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

use crate::domain::{
    Account, AccountStatus, AuditEvent, Channel, Contact, Error, Migration, MigrationState,
    SealedSecret,
};

pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// Epoch seconds after which DynamoDB may delete the item. Housekeeping only:
/// no rule relies on it.
pub const TTL: &str = "expires_at";

pub fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.into(), s(pk)), (SK.into(), s(sk))])
}

pub fn account_key(account_id: &str) -> Item {
    key(format!("ACCOUNT#{account_id}"), "ACCOUNT")
}

pub fn received_marker_key(account_id: &str, channel: Channel) -> Item {
    key(
        format!("ACCOUNT#{account_id}"),
        &format!("RECEIVED#{channel}"),
    )
}

/// Sorted by time within the account; the nonce keeps two events of one
/// second apart, so appending never overwrites.
pub fn audit_key(account_id: &str, at: i64, migration_id: &str, step: &str) -> Item {
    let nonce = &uuid::Uuid::new_v4().simple().to_string()[..8];
    key(
        format!("ACCOUNT#{account_id}"),
        &format!(
            "AUDIT#{}#{migration_id}#{step}#{nonce}",
            crate::domain::rfc3339(at)
        ),
    )
}

pub fn audit_to_item(e: &AuditEvent) -> Item {
    let mut item = with_key(
        audit_key(&e.account_id, e.at, &e.migration_id, e.step.as_str()),
        [
            ("account_id", s(&e.account_id)),
            ("main_account_id", s(&e.main_account_id)),
            ("migration_id", s(&e.migration_id)),
            ("step", s(e.step.as_str())),
            ("outcome", s(&e.outcome)),
            ("channel", s(e.channel.as_str())),
            ("new_contact", s(&e.new_contact)),
            ("current_contact", s(&e.current_contact)),
            ("at", n(e.at)),
            ("time", s(crate::domain::rfc3339(e.at))),
        ],
    );
    let optional = [
        (
            "duplicate_account_id",
            e.duplicate_account_id.as_ref().map(s),
        ),
        ("source_ip", e.source_ip.as_ref().map(s)),
        ("user_agent", e.user_agent.as_ref().map(s)),
    ];
    item.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))),
    );
    item
}

pub fn contact_key(contact: &Contact) -> Item {
    key(
        format!("CONTACT#{}#{}", contact.channel(), contact.value()),
        "CONTACT",
    )
}

pub fn migrated_marker_key(contact: &Contact) -> Item {
    key(
        format!("MIGRATED#{}#{}", contact.channel(), contact.value()),
        "MIGRATED",
    )
}

pub fn migration_key(migration_id: &str) -> Item {
    key(format!("MIGRATION#{migration_id}"), "MIGRATION")
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn b(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

pub fn bytes(value: &[u8]) -> AttributeValue {
    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(value))
}

/// An item with the given key plus attributes.
pub fn with_key(
    key: Item,
    attributes: impl IntoIterator<Item = (&'static str, AttributeValue)>,
) -> Item {
    let mut item = key;
    item.extend(attributes.into_iter().map(|(k, v)| (k.to_owned(), v)));
    item
}

fn corrupt(what: &str) -> Error {
    Error::Internal(format!("stored item has a missing or malformed {what}"))
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn req_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, Error> {
    get_s(item, name).ok_or_else(|| corrupt(name))
}

pub fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn req_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, Error> {
    get_n(item, name).ok_or_else(|| corrupt(name))
}

pub fn get_bool(item: &Item, name: &str) -> bool {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

fn get_optional_bool(item: &Item, name: &str) -> Option<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied()
}

fn channel_of(item: &Item, name: &str) -> Result<Channel, Error> {
    Channel::parse(req_s(item, name)?).ok_or_else(|| corrupt(name))
}

fn optional_contact(item: &Item, channel: Channel, name: &str) -> Option<Contact> {
    get_s(item, name).map(|v| Contact::from_canonical(channel, v))
}

/// The sealed TOTP secret (binary): the table never holds it in the clear,
/// so neither do its stream, backups or exports.
pub const TOTP_SECRET_CIPHERTEXT: &str = "totp_secret_ciphertext";

pub fn account_to_item(account: &Account) -> Item {
    let mut item = with_key(
        account_key(&account.account_id),
        [
            ("account_id", s(&account.account_id)),
            ("status", s(account.status.as_str())),
            ("kyc_verified", b(account.kyc_verified)),
            ("has_assets", b(account.has_assets)),
            ("referral_code_active", b(account.referral_code_active)),
            ("token_version", n(account.token_version)),
        ],
    );
    let optional = [
        ("email", account.email.as_ref().map(|c| s(c.value()))),
        ("phone", account.phone.as_ref().map(|c| s(c.value()))),
        ("referral_code", account.referral_code.as_ref().map(s)),
        (
            TOTP_SECRET_CIPHERTEXT,
            account.totp_secret.as_ref().map(|t| bytes(t.ciphertext())),
        ),
        ("totp_last_step", account.totp_last_step.map(n)),
    ];
    item.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))),
    );
    item
}

pub fn account_from_item(item: &Item) -> Result<Account, Error> {
    Ok(Account {
        account_id: req_s(item, "account_id")?.to_owned(),
        email: optional_contact(item, Channel::Email, "email"),
        phone: optional_contact(item, Channel::Phone, "phone"),
        status: AccountStatus::parse(req_s(item, "status")?).ok_or_else(|| corrupt("status"))?,
        kyc_verified: get_bool(item, "kyc_verified"),
        has_assets: get_bool(item, "has_assets"),
        referral_code: get_s(item, "referral_code").map(str::to_owned),
        referral_code_active: get_bool(item, "referral_code_active"),
        // Only the ciphertext is read: an item still holding a secret in the
        // clear (`totp_secret`) reads as not enrolled, so it fails closed.
        totp_secret: item
            .get(TOTP_SECRET_CIPHERTEXT)
            .and_then(|v| v.as_b().ok())
            .map(|blob| SealedSecret::from_ciphertext(blob.as_ref().to_vec())),
        totp_last_step: get_n(item, "totp_last_step"),
        token_version: get_n(item, "token_version").unwrap_or(0),
    })
}

/// How long a migration item is kept after its last possible step.
const MIGRATION_RETENTION_SECONDS: i64 = 30 * 24 * 3600;

pub fn migration_to_item(m: &Migration) -> Item {
    let mut item = with_key(
        migration_key(&m.migration_id),
        [
            ("migration_id", s(&m.migration_id)),
            ("account_id", s(&m.account_id)),
            ("channel", s(m.channel.as_str())),
            ("new_contact", s(m.new_contact.value())),
            (
                "current_contact_channel",
                s(m.current_contact.channel().as_str()),
            ),
            ("current_contact", s(m.current_contact.value())),
            ("state", s(m.state.as_str())),
            ("created_at", n(m.created_at)),
            ("codes_expire_at", n(m.codes_expire_at)),
            ("sends", n(m.sends)),
            ("last_sent_at", n(m.last_sent_at)),
            ("failed_attempts", n(m.failed_attempts)),
            (TTL, n(m.created_at + MIGRATION_RETENTION_SECONDS)),
        ],
    );
    let optional = [
        ("new_code_digest", m.new_code_digest.as_ref().map(s)),
        ("current_code_digest", m.current_code_digest.as_ref().map(s)),
        (
            "duplicate_account_id",
            m.duplicate_account_id.as_ref().map(s),
        ),
        ("verified_at", m.verified_at.map(n)),
        ("confirm_by", m.confirm_by.map(n)),
        ("duplicate_has_assets", m.duplicate_has_assets.map(b)),
        (
            "duplicate_two_factor_required",
            m.duplicate_two_factor_required.map(b),
        ),
        (
            "previous_contact",
            m.previous_contact.as_ref().map(|c| s(c.value())),
        ),
        (
            "duplicate_other_contact",
            m.duplicate_other_contact.as_ref().map(|c| s(c.value())),
        ),
        ("completed_at", m.completed_at.map(n)),
        ("closed_account_id", m.closed_account_id.as_ref().map(s)),
    ];
    item.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))),
    );
    item
}

pub fn migration_from_item(item: &Item) -> Result<Migration, Error> {
    let channel = channel_of(item, "channel")?;
    let current_channel = channel_of(item, "current_contact_channel")?;
    Ok(Migration {
        migration_id: req_s(item, "migration_id")?.to_owned(),
        account_id: req_s(item, "account_id")?.to_owned(),
        channel,
        new_contact: Contact::from_canonical(channel, req_s(item, "new_contact")?),
        current_contact: Contact::from_canonical(current_channel, req_s(item, "current_contact")?),
        state: MigrationState::parse(req_s(item, "state")?).ok_or_else(|| corrupt("state"))?,
        created_at: req_n(item, "created_at")?,
        codes_expire_at: req_n(item, "codes_expire_at")?,
        new_code_digest: get_s(item, "new_code_digest").map(str::to_owned),
        current_code_digest: get_s(item, "current_code_digest").map(str::to_owned),
        sends: req_n(item, "sends")?,
        last_sent_at: req_n(item, "last_sent_at")?,
        failed_attempts: req_n(item, "failed_attempts")?,
        duplicate_account_id: get_s(item, "duplicate_account_id").map(str::to_owned),
        verified_at: get_n(item, "verified_at"),
        confirm_by: get_n(item, "confirm_by"),
        duplicate_has_assets: get_optional_bool(item, "duplicate_has_assets"),
        duplicate_two_factor_required: get_optional_bool(item, "duplicate_two_factor_required"),
        previous_contact: optional_contact(item, channel, "previous_contact"),
        duplicate_other_contact: optional_contact(item, channel.other(), "duplicate_other_contact"),
        completed_at: get_n(item, "completed_at"),
        closed_account_id: get_s(item, "closed_account_id").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_round_trips_through_its_item() {
        let account = Account {
            account_id: "a1".into(),
            email: Some(Contact::from_canonical(Channel::Email, "a@example.com")),
            phone: None,
            status: AccountStatus::Active,
            kyc_verified: true,
            has_assets: false,
            referral_code: Some("REF".into()),
            referral_code_active: true,
            totp_secret: Some(SealedSecret::from_ciphertext(vec![1, 2, 3, 0xff])),
            totp_last_step: Some(42),
            token_version: 3,
        };
        assert_eq!(
            account_from_item(&account_to_item(&account)).unwrap(),
            account
        );
    }

    #[test]
    fn an_account_item_holds_its_totp_secret_only_as_ciphertext() {
        let ciphertext = vec![0x01, 0x02, 0xfe, 0x00];
        let account = Account {
            account_id: "a1".into(),
            email: None,
            phone: None,
            status: AccountStatus::Active,
            kyc_verified: false,
            has_assets: false,
            referral_code: None,
            referral_code_active: false,
            totp_secret: Some(SealedSecret::from_ciphertext(ciphertext.clone())),
            totp_last_step: None,
            token_version: 0,
        };
        let item = account_to_item(&account);
        assert_eq!(
            item.get("totp_secret_ciphertext")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec()),
            Some(ciphertext)
        );
        assert!(!item.contains_key("totp_secret"));
        assert!(account_from_item(&item).unwrap().has_totp());

        // A secret left in the clear by an older writer is not used.
        let mut legacy = item;
        legacy.remove("totp_secret_ciphertext");
        legacy.insert("totp_secret".into(), s("JBSWY3DPEHPK3PXP"));
        assert!(!account_from_item(&legacy).unwrap().has_totp());
    }

    #[test]
    fn migration_round_trips_through_its_item() {
        let m = Migration {
            migration_id: "m1".into(),
            account_id: "a1".into(),
            channel: Channel::Email,
            new_contact: Contact::from_canonical(Channel::Email, "new@example.com"),
            current_contact: Contact::from_canonical(Channel::Phone, "+447700900123"),
            state: MigrationState::AwaitingConfirmation,
            created_at: 10,
            codes_expire_at: 610,
            new_code_digest: None,
            current_code_digest: None,
            sends: 2,
            last_sent_at: 70,
            failed_attempts: 1,
            duplicate_account_id: Some("d1".into()),
            verified_at: Some(100),
            confirm_by: Some(1000),
            duplicate_has_assets: Some(false),
            duplicate_two_factor_required: Some(true),
            previous_contact: None,
            duplicate_other_contact: Some(Contact::from_canonical(Channel::Phone, "+447400000001")),
            completed_at: None,
            closed_account_id: None,
        };
        assert_eq!(migration_from_item(&migration_to_item(&m)).unwrap(), m);
    }

    #[test]
    fn a_malformed_item_is_an_internal_error() {
        let mut item = account_to_item(&Account {
            account_id: "a1".into(),
            email: None,
            phone: None,
            status: AccountStatus::Active,
            kyc_verified: false,
            has_assets: false,
            referral_code: None,
            referral_code_active: false,
            totp_secret: None,
            totp_last_step: None,
            token_version: 0,
        });
        item.insert("status".into(), s("frozen"));
        assert!(matches!(account_from_item(&item), Err(Error::Internal(_))));
    }
}
