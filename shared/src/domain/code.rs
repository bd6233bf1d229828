//! One-time codes: 6 digits from a CSPRNG, stored only as an HMAC-SHA256 under
//! a server secret, bound to the migration and the side it was sent to, so a
//! leaked table row reveals nothing and a code cannot be replayed elsewhere.
//!
//! The key is versioned: each digest names the key it was made with (a
//! fingerprint of the key, never the key), and the service holds the current
//! key and the one before it, so rotating the key does not turn codes already
//! sent into failed attempts. A digest under a key the service no longer
//! holds is unverifiable: the codes are treated as expired, and no attempt
//! is counted.

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

/// The server secret codes are keyed with, and the one it replaced.
#[derive(Clone)]
pub struct CodeKey {
    secret: Vec<u8>,
    /// Names the key in the digests it makes.
    id: String,
    previous: Option<Box<CodeKey>>,
}

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
        if secret.len() < MIN_KEY_BYTES {
            return None;
        }
        // A fingerprint: an HMAC of a constant, so it reveals nothing of the key.
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(b"code-key-id-v1");
        let id = hex(&mac.finalize().into_bytes()[..4]);
        Some(CodeKey {
            secret,
            id,
            previous: None,
        })
    }

    /// This key, still accepting digests made with `previous` (the key it
    /// replaces); one generation back only.
    pub fn replacing(self, previous: CodeKey) -> CodeKey {
        CodeKey {
            previous: Some(Box::new(CodeKey {
                previous: None,
                ..previous
            })),
            ..self
        }
    }

    /// The key a stored digest was made with, if this service still holds
    /// it. A digest without a key id predates versioning: the current key.
    fn for_digest<'a>(&'a self, stored: &'a str) -> Option<(&'a CodeKey, &'a str)> {
        let Some((id, digest)) = stored.split_once(':') else {
            return Some((self, stored));
        };
        std::iter::once(self)
            .chain(self.previous.as_deref())
            .find(|key| key.id == id)
            .map(|key| (key, digest))
    }

    /// Whether a stored digest can still be checked (its key is held).
    pub fn holds_key_of(&self, stored: &str) -> bool {
        self.for_digest(stored).is_some()
    }

    fn mac(&self, migration_id: &str, side: CodeSide, code: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .expect("HMAC-SHA256 accepts keys of any length");
        // Length-prefixed fields: no two (id, side, code) triples share an input.
        for part in ["code-v1", migration_id, side.label(), code] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The stored form of a code: the key's id, `:`, and lowercase hex of
    /// the HMAC under the current key.
    pub fn digest(&self, migration_id: &str, side: CodeSide, code: &OneTimeCode) -> String {
        let tag = self
            .mac(migration_id, side, code.as_str())
            .finalize()
            .into_bytes();
        format!("{}:{}", self.id, hex(&tag))
    }

    /// Constant-time comparison of a submitted code against its stored digest.
    pub fn matches(
        &self,
        migration_id: &str,
        side: CodeSide,
        submitted: &str,
        stored: &str,
    ) -> bool {
        let Some((key, digest)) = self.for_digest(stored) else {
            return false;
        };
        let Some(expected) = decode_hex(digest) else {
            return false;
        };
        key.mac(migration_id, side, submitted)
            .verify_slice(&expected)
            .is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        assert_eq!(stored.len(), 8 + 1 + 64);
        assert!(!stored.contains("424242"));
    }

    #[test]
    fn code_key_rotation_keeps_codes_made_with_the_previous_key() {
        let code = OneTimeCode("123456".into());
        let old = key();
        let stored = old.digest("m1", CodeSide::NewContact, &code);
        let rotated = CodeKey::new(vec![7u8; 32]).unwrap().replacing(old);
        assert!(rotated.holds_key_of(&stored));
        assert!(rotated.matches("m1", CodeSide::NewContact, "123456", &stored));
        assert!(!rotated.matches("m1", CodeSide::NewContact, "123457", &stored));
        // New codes are made with the new key.
        let fresh = rotated.digest("m1", CodeSide::NewContact, &code);
        assert!(!key().holds_key_of(&fresh));
    }

    #[test]
    fn code_key_rotated_twice_no_longer_holds_the_oldest_key() {
        let code = OneTimeCode("123456".into());
        let stored = key().digest("m1", CodeSide::NewContact, &code);
        let second = CodeKey::new(vec![7u8; 32]).unwrap().replacing(key());
        let third = CodeKey::new(vec![9u8; 32]).unwrap().replacing(second);
        assert!(!third.holds_key_of(&stored));
        assert!(!third.matches("m1", CodeSide::NewContact, "123456", &stored));
    }

    #[test]
    fn the_key_id_reveals_nothing_of_the_key() {
        let k = key();
        assert_eq!(k.id.len(), 8);
        assert!(!hex(&k.secret).contains(&k.id));
    }

    #[test]
    fn digests_from_before_key_versioning_are_checked_with_the_current_key() {
        let code = OneTimeCode("123456".into());
        let stored = key().digest("m1", CodeSide::NewContact, &code);
        let (_, legacy) = stored.split_once(':').unwrap();
        assert!(key().matches("m1", CodeSide::NewContact, "123456", legacy));
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
