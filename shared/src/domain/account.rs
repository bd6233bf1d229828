use super::{Channel, Contact};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// Permanent: a closed account is never reopened.
    Closed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Closed => "closed",
        }
    }

    pub fn parse(value: &str) -> Option<AccountStatus> {
        match value {
            "active" => Some(AccountStatus::Active),
            "closed" => Some(AccountStatus::Closed),
            _ => None,
        }
    }
}

/// A TOTP secret as it is kept at rest: ciphertext that only the key's
/// holder can open, and only for the account it was sealed for. Its Debug
/// form shows no byte of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(Vec<u8>);

impl SealedSecret {
    pub fn from_ciphertext(ciphertext: Vec<u8>) -> SealedSecret {
        SealedSecret(ciphertext)
    }

    pub fn ciphertext(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

/// The slice of an exchange account this service reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub account_id: String,
    pub email: Option<Contact>,
    pub phone: Option<Contact>,
    pub status: AccountStatus,
    pub kyc_verified: bool,
    pub has_assets: bool,
    pub referral_code: Option<String>,
    pub referral_code_active: bool,
    /// The TOTP secret, sealed; `None` when no authenticator app is
    /// enrolled. Only [`crate::App::totp_secret`] opens it.
    pub totp_secret: Option<SealedSecret>,
    /// The last TOTP step accepted for this account (RFC 6238 §5.2).
    pub totp_last_step: Option<u64>,
    /// Bumped to revoke every token issued before it.
    pub token_version: u64,
}

impl Account {
    pub fn contact(&self, channel: Channel) -> Option<&Contact> {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Phone => self.phone.as_ref(),
        }
    }

    /// Where the current-contact code goes: the account's contact on the
    /// migration's channel, else its other channel.
    pub fn current_contact_for(&self, channel: Channel) -> Option<&Contact> {
        self.contact(channel)
            .or_else(|| self.contact(channel.other()))
    }

    /// Whether an authenticator app is enrolled (no secret is read for it).
    pub fn has_totp(&self) -> bool {
        self.totp_secret.is_some()
    }

    pub fn is_active(&self) -> bool {
        self.status == AccountStatus::Active
    }
}
