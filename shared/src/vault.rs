//! TOTP secrets at rest: sealed with AWS KMS under a key of their own.
//!
//! Each secret is encrypted directly by KMS (`Encrypt`/`Decrypt`, no data key
//! held by the service) with an encryption context naming the account it
//! belongs to. KMS binds the context to the ciphertext (it is authenticated
//! data), so a ciphertext copied onto another account's item does not open
//! for that account, and each `Decrypt` is one CloudTrail entry that names
//! the account. Only the functions that check TOTP codes (verify, close) are
//! allowed `kms:Decrypt`, and only with this context (template.yaml).

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;

use crate::domain::{Error, SealedSecret};

/// The `purpose` of every TOTP secret's encryption context; the key policy
/// and the roles' conditions require it.
pub const PURPOSE: &str = "totp";

#[derive(Clone, Debug)]
pub struct Vault {
    kms: aws_sdk_kms::Client,
    /// Key id, key ARN or alias of the TOTP key (`TOTP_KEY_ID`).
    key_id: String,
}

impl Vault {
    pub fn new(kms: aws_sdk_kms::Client, key_id: impl Into<String>) -> Vault {
        Vault {
            kms,
            key_id: key_id.into(),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `secret` (base32) for `account_id`. Enrolment's half: the
    /// functions never call it.
    pub async fn seal(&self, account_id: &str, secret: &str) -> Result<SealedSecret, Error> {
        let out = self
            .kms
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(secret.as_bytes()))
            .set_encryption_context(Some(context(account_id)))
            .send()
            .await
            .map_err(|e| failed("sealing", account_id, &e))?;
        out.ciphertext_blob
            .map(|blob| SealedSecret::from_ciphertext(blob.into_inner()))
            .ok_or_else(|| Error::Internal("KMS Encrypt returned no ciphertext".into()))
    }

    /// Opens `sealed` as `account_id`'s secret. A ciphertext sealed for
    /// another account, under another key, or altered fails here; the
    /// error says which account and what KMS answered, never the ciphertext.
    pub async fn open(&self, account_id: &str, sealed: &SealedSecret) -> Result<String, Error> {
        let out = self
            .kms
            .decrypt()
            // Named, so a ciphertext from another key is refused rather than
            // opened with whatever key it names.
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(sealed.ciphertext()))
            .set_encryption_context(Some(context(account_id)))
            .send()
            .await
            .map_err(|e| failed("opening", account_id, &e))?;
        out.plaintext
            .map(Blob::into_inner)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                Error::Internal(format!(
                    "the TOTP secret of account {account_id} is not text"
                ))
            })
    }
}

/// The encryption context of an account's TOTP secret.
fn context(account_id: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("account_id".to_owned(), account_id.to_owned()),
        ("purpose".to_owned(), PURPOSE.to_owned()),
    ])
}

/// KMS's error code and message (neither carries the request), or the
/// failure to reach it.
fn failed<E, R>(doing: &str, account_id: &str, e: &aws_sdk_kms::error::SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let cause = match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown"),
            service.message().unwrap_or("")
        ),
        None => aws_sdk_kms::error::DisplayErrorContext(e).to_string(),
    };
    Error::Internal(format!(
        "{doing} the TOTP secret of account {account_id}: {cause}"
    ))
}
