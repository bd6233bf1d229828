//! TOTP (RFC 6238): SHA-1, 6 digits, 30 s steps, ±1 step of clock skew. Each
//! step is accepted once per account (§5.2): the caller stores the step this
//! returns with a conditional update, so a replay of the same or an older step
//! is refused even across concurrent requests.

use rand::{CryptoRng, Rng};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::Timestamp;

pub const STEP_SECONDS: u64 = 30;
const DIGITS: u8 = 6;
const SKEW_STEPS: u16 = 1;
const SECRET_BYTES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpRejection {
    /// Not the code of any step in the window.
    Wrong,
    /// A code of a step already used (or older than the last one used).
    Replayed,
}

/// A fresh 160-bit secret (RFC 4226 §4 recommends 160), base32 for enrolment.
pub fn generate_secret(rng: &mut (impl Rng + CryptoRng)) -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rng.fill(&mut bytes);
    Secret::from(bytes.to_vec()).to_base32()
}

fn totp(secret_base32: &str, digits: u8) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret_base32).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret)
        .build()
        .ok()
}

/// The step whose code `submitted` is, if it lies within ±1 step of `now` and
/// after `last_used_step`.
pub fn accept(
    secret_base32: &str,
    submitted: &str,
    now: Timestamp,
    last_used_step: Option<u64>,
) -> Result<u64, TotpRejection> {
    let totp = totp(secret_base32, DIGITS).ok_or(TotpRejection::Wrong)?;
    let now = u64::try_from(now).map_err(|_| TotpRejection::Wrong)?;
    let step = totp.check(submitted, now).ok_or(TotpRejection::Wrong)?;
    match last_used_step {
        Some(last) if step <= last => Err(TotpRejection::Replayed),
        _ => Ok(step),
    }
}

/// The code an authenticator app shows at `at` (for demos, tests and tools).
pub fn code_at(secret_base32: &str, at: Timestamp) -> Option<String> {
    let at = u64::try_from(at).ok()?;
    Some(totp(secret_base32, DIGITS)?.generate(at).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 column; seed "12345678901234567890", 8 digits.
    #[test]
    fn rfc6238_sha1_test_vectors() {
        let secret = Secret::from(b"12345678901234567890".to_vec()).to_base32();
        let totp = totp(&secret, 8).unwrap();
        for (time, expected) in [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(totp.generate(time).to_string(), expected, "t={time}");
        }
    }

    fn secret() -> String {
        generate_secret(&mut rand::rng())
    }

    #[test]
    fn totp_accepts_the_current_step() {
        let s = secret();
        let now = 1_700_000_015;
        let code = code_at(&s, now).unwrap();
        assert_eq!(accept(&s, &code, now, None), Ok(now as u64 / 30));
    }

    #[test]
    fn totp_window_is_one_step_either_side() {
        let s = secret();
        let now: i64 = 1_700_000_015;
        for offset in [-30, 30] {
            let code = code_at(&s, now + offset).unwrap();
            assert_eq!(accept(&s, &code, now, None), Ok((now + offset) as u64 / 30));
        }
        for offset in [-60, 60] {
            let code = code_at(&s, now + offset).unwrap();
            // A code from two steps away may collide by chance with an in-window one.
            if [-30, 0, 30]
                .iter()
                .all(|o| code_at(&s, now + o).unwrap() != code)
            {
                assert_eq!(accept(&s, &code, now, None), Err(TotpRejection::Wrong));
            }
        }
    }

    #[test]
    fn totp_replay_of_the_same_or_an_older_step_is_refused() {
        let s = secret();
        let now: i64 = 1_700_000_015;
        let step = now as u64 / 30;
        let code = code_at(&s, now).unwrap();
        assert_eq!(
            accept(&s, &code, now, Some(step)),
            Err(TotpRejection::Replayed)
        );
        assert_eq!(
            accept(&s, &code, now, Some(step + 1)),
            Err(TotpRejection::Replayed)
        );
        assert_eq!(accept(&s, &code, now, Some(step - 1)), Ok(step));
    }

    #[test]
    fn totp_refuses_garbage() {
        let s = secret();
        for code in ["", "12345", "1234567", "abcdef"] {
            assert_eq!(
                accept(&s, code, 1_700_000_015, None),
                Err(TotpRejection::Wrong)
            );
        }
        assert_eq!(
            accept("not base32!", "123456", 1_700_000_015, None),
            Err(TotpRejection::Wrong)
        );
    }
}
