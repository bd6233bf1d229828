//! One-time codes: 6 digits from a CSPRNG, stored only as an HMAC-SHA256 under
//! a server secret, bound to the migration and the side it was sent to, so a
//! leaked table row reveals nothing and a code cannot be replayed elsewhere.

use hmac::{Hmac, KeyInit, Mac};
use rand::{CryptoRng, Rng};
use sha2::Sha256;
use std::fmt;

pub const CODE_DIGITS: usize = 6;

/// A plaintext code. Lives only between generation and delivery, or between
/// the request body and the check; Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeCode(String);

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(******)")
    }
}

impl OneTimeCode {
    pub fn generate(rng: &mut (impl Rng + CryptoRng)) -> OneTimeCode {
        OneTimeCode(format!("{:06}", rng.random_range(0..1_000_000u32)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which side of the migration a code proves control of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSide {
    /// The contact being moved to the main account.
    NewContact,
    /// The main account's current contact.
    CurrentContact,
}

impl CodeSide {
    fn label(self) -> &'static str {
        match self {
            CodeSide::NewContact => "new_contact",
            CodeSide::CurrentContact => "current_contact",
        }
    }
}

/// The server secret codes are keyed with.
#[derive(Clone)]
pub struct CodeKey(Vec<u8>);

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey(redacted)")
    }
}

pub const MIN_KEY_BYTES: usize = 32;

impl CodeKey {
    /// Refuses keys shorter than 256 bits: the HMAC is only as strong as its key.
    pub fn new(secret: impl Into<Vec<u8>>) -> Option<CodeKey> {
        let secret = secret.into();
        (secret.len() >= MIN_KEY_BYTES).then_some(CodeKey(secret))
    }

    fn mac(&self, migration_id: &str, side: CodeSide, code: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0)
            .expect("HMAC-SHA256 accepts keys of any length");
        // Length-prefixed fields: no two (id, side, code) triples share an input.
        for part in ["code-v1", migration_id, side.label(), code] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The stored form of a code: lowercase hex of the HMAC.
    pub fn digest(&self, migration_id: &str, side: CodeSide, code: &OneTimeCode) -> String {
        let tag = self
            .mac(migration_id, side, code.as_str())
            .finalize()
            .into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Constant-time comparison of a submitted code against its stored digest.
    pub fn matches(
        &self,
        migration_id: &str,
        side: CodeSide,
        submitted: &str,
        stored: &str,
    ) -> bool {
        let Some(expected) = decode_hex(stored) else {
            return false;
        };
        self.mac(migration_id, side, submitted)
            .verify_slice(&expected)
            .is_ok()
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CodeKey {
        CodeKey::new(*b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn codes_are_six_digits() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let code = OneTimeCode::generate(&mut rng);
            assert_eq!(code.as_str().len(), CODE_DIGITS);
            assert!(code.as_str().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn codes_are_not_shown_by_debug() {
        let code = OneTimeCode::generate(&mut rand::rng());
        assert!(!format!("{code:?}").contains(code.as_str()));
    }

    #[test]
    fn code_matches_its_own_digest() {
        let code = OneTimeCode("123456".into());
        let stored = key().digest("m1", CodeSide::NewContact, &code);
        assert!(key().matches("m1", CodeSide::NewContact, "123456", &stored));
        assert!(!key().matches("m1", CodeSide::NewContact, "123457", &stored));
    }

    #[test]
    fn code_digest_is_bound_to_migration_and_side() {
        let code = OneTimeCode("123456".into());
        let stored = key().digest("m1", CodeSide::NewContact, &code);
        assert!(!key().matches("m2", CodeSide::NewContact, "123456", &stored));
        assert!(!key().matches("m1", CodeSide::CurrentContact, "123456", &stored));
        let other_key = CodeKey::new(vec![7u8; 32]).unwrap();
        assert!(!other_key.matches("m1", CodeSide::NewContact, "123456", &stored));
    }

    #[test]
    fn code_digest_does_not_contain_the_code() {
        let code = OneTimeCode("424242".into());
        let stored = key().digest("m1", CodeSide::NewContact, &code);
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains("424242"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(CodeKey::new(vec![1u8; 31]).is_none());
    }

    #[test]
    fn corrupt_digest_never_matches() {
        assert!(!key().matches("m1", CodeSide::NewContact, "123456", "zz"));
        assert!(!key().matches("m1", CodeSide::NewContact, "123456", "abc"));
    }
}
