//! HMAC-SHA256 signatures of the facts endpoint's requests and answers.
//!
//! A request is signed over its timestamp, method, path and body; an answer
//! over its own timestamp, its status, the signature of the request it
//! answers and its body. Binding the answer to the request means a recorded
//! answer (another account's facts, an older "no KYC") cannot be replayed
//! for a new question, and the distinct first lines keep a request's
//! signature from ever passing as an answer's. Timestamps are unix seconds
//! and must be within [`MAX_SKEW`] of the reader's clock.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::Arc;

use crate::domain::Timestamp;

pub const TIMESTAMP_HEADER: &str = "x-facts-timestamp";
pub const SIGNATURE_HEADER: &str = "x-facts-signature";

/// How far a signed timestamp may be from the reader's clock, either way.
pub const MAX_SKEW: i64 = 30;

/// The secret both sides share. Its Debug form shows no byte of it.
#[derive(Clone)]
pub struct FactsKey(Arc<Vec<u8>>);

impl std::fmt::Debug for FactsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FactsKey(redacted)")
    }
}

impl FactsKey {
    /// A key of at least 32 bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Option<FactsKey> {
        let secret = secret.into();
        (secret.len() >= 32).then(|| FactsKey(Arc::new(secret)))
    }

    fn mac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                mac.update(b"\n");
            }
            mac.update(part);
        }
        mac
    }

    fn request_parts<'a>(
        ts: &'a str,
        method: &'a str,
        path: &'a str,
        body: &'a [u8],
    ) -> [&'a [u8]; 5] {
        [
            b"facts-request-v1",
            ts.as_bytes(),
            method.as_bytes(),
            path.as_bytes(),
            body,
        ]
    }

    fn answer_parts<'a>(
        ts: &'a str,
        status: &'a str,
        request_signature: &'a str,
        body: &'a [u8],
    ) -> [&'a [u8]; 5] {
        [
            b"facts-answer-v1",
            ts.as_bytes(),
            status.as_bytes(),
            request_signature.as_bytes(),
            body,
        ]
    }

    pub fn sign_request(&self, at: Timestamp, method: &str, path: &str, body: &[u8]) -> String {
        let ts = at.to_string();
        hex(&self
            .mac(&Self::request_parts(&ts, method, path, body))
            .finalize()
            .into_bytes())
    }

    /// Whether `signature` is this key's over the request (constant time).
    pub fn verifies_request(
        &self,
        ts: &str,
        method: &str,
        path: &str,
        body: &[u8],
        signature: &str,
    ) -> bool {
        let Some(signature) = unhex(signature) else {
            return false;
        };
        self.mac(&Self::request_parts(ts, method, path, body))
            .verify_slice(&signature)
            .is_ok()
    }

    pub fn sign_answer(
        &self,
        at: Timestamp,
        status: u16,
        request_signature: &str,
        body: &[u8],
    ) -> String {
        let (ts, status) = (at.to_string(), status.to_string());
        hex(&self
            .mac(&Self::answer_parts(&ts, &status, request_signature, body))
            .finalize()
            .into_bytes())
    }

    pub fn verifies_answer(
        &self,
        ts: &str,
        status: u16,
        request_signature: &str,
        body: &[u8],
        signature: &str,
    ) -> bool {
        let Some(signature) = unhex(signature) else {
            return false;
        };
        let status = status.to_string();
        self.mac(&Self::answer_parts(ts, &status, request_signature, body))
            .verify_slice(&signature)
            .is_ok()
    }
}

/// Whether a signed timestamp (`ts`, unix seconds) is fresh at `now`.
pub fn fresh(ts: &str, now: Timestamp) -> bool {
    ts.parse::<Timestamp>()
        .is_ok_and(|at| (now - at).abs() <= MAX_SKEW)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FactsKey {
        FactsKey::new(b"a facts key of thirty-two bytes or more".to_vec()).unwrap()
    }

    #[test]
    fn a_request_signature_covers_method_path_body_and_time() {
        let key = key();
        let signature = key.sign_request(1_000, "GET", "/accounts/a/facts", b"");
        assert!(key.verifies_request("1000", "GET", "/accounts/a/facts", b"", &signature));
        assert!(!key.verifies_request("1001", "GET", "/accounts/a/facts", b"", &signature));
        assert!(!key.verifies_request("1000", "PUT", "/accounts/a/facts", b"", &signature));
        assert!(!key.verifies_request("1000", "GET", "/accounts/b/facts", b"", &signature));
        assert!(!key.verifies_request("1000", "GET", "/accounts/a/facts", b"{}", &signature));
        let other = FactsKey::new(b"another key of thirty-two bytes or more".to_vec()).unwrap();
        assert!(!other.verifies_request("1000", "GET", "/accounts/a/facts", b"", &signature));
    }

    #[test]
    fn an_answer_is_bound_to_its_request_and_is_no_request() {
        let key = key();
        let asked = key.sign_request(1_000, "GET", "/accounts/a/facts", b"");
        let other = key.sign_request(1_000, "GET", "/accounts/b/facts", b"");
        let body = br#"{"kyc_verified":false}"#;
        let answer = key.sign_answer(1_001, 200, &asked, body);
        assert!(key.verifies_answer("1001", 200, &asked, body, &answer));
        assert!(!key.verifies_answer("1001", 200, &other, body, &answer));
        assert!(!key.verifies_answer("1001", 500, &asked, body, &answer));
        assert!(!key.verifies_answer("1001", 200, &asked, br#"{"kyc_verified":true}"#, &answer));
        assert!(!key.verifies_answer("1001", 200, &asked, body, "zz"));
        assert!(!key.verifies_request("1001", "200", &asked, body, &answer));
    }

    #[test]
    fn timestamps_are_fresh_within_the_skew_only() {
        assert!(fresh("1000", 1_000 + MAX_SKEW));
        assert!(fresh("1000", 1_000 - MAX_SKEW));
        assert!(!fresh("1000", 1_001 + MAX_SKEW));
        assert!(!fresh("", 1_000));
        assert!(!fresh("1e3", 1_000));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(FactsKey::new(b"short".to_vec()).is_none());
    }
}
