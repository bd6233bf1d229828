//! Contacts (email addresses and phone numbers) in canonical form. Uniqueness,
//! the once-only markers and ownership are all keyed by the canonical value, so
//! two spellings of one address can never be two contacts.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Phone,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Phone => "phone",
        }
    }

    pub fn other(self) -> Channel {
        match self {
            Channel::Email => Channel::Phone,
            Channel::Phone => Channel::Email,
        }
    }

    pub fn parse(value: &str) -> Option<Channel> {
        match value {
            "email" => Some(Channel::Email),
            "phone" => Some(Channel::Phone),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A contact in canonical form. Constructed only through [`Contact::parse`] or
/// [`Contact::from_canonical`] (for values read back from the table).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Contact {
    channel: Channel,
    value: String,
}

// Contacts are personal data: Debug shows the masked form so a stray `{:?}` in
// a log line cannot leak one.
impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Contact({}, {})", self.channel, self.masked())
    }
}

pub const MAX_EMAIL_LENGTH: usize = 254;
const MAX_LOCAL_PART_LENGTH: usize = 64;
const MAX_LABEL_LENGTH: usize = 63;
/// E.164: country code and number together.
const MAX_PHONE_DIGITS: usize = 15;

impl Contact {
    pub fn parse(channel: Channel, raw: &str) -> Result<Contact, Error> {
        match channel {
            Channel::Email => canonical_email(raw).map(|value| Contact { channel, value }),
            Channel::Phone => canonical_phone(raw).map(|value| Contact { channel, value }),
        }
    }

    /// Rebuilds a contact from a value that was canonical when it was stored.
    pub fn from_canonical(channel: Channel, value: impl Into<String>) -> Contact {
        Contact {
            channel,
            value: value.into(),
        }
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// `j***@example.com`, `+44*******123`: enough for the owner to recognise,
    /// not enough to harvest.
    pub fn masked(&self) -> String {
        match self.channel {
            Channel::Email => match self.value.split_once('@') {
                Some((local, domain)) => {
                    let first: String = local.chars().take(1).collect();
                    format!("{first}***@{domain}")
                }
                None => "***".into(),
            },
            Channel::Phone => {
                let chars: Vec<char> = self.value.chars().collect();
                if chars.len() <= 6 {
                    return "*".repeat(chars.len());
                }
                let head: String = chars[..3].iter().collect();
                let tail: String = chars[chars.len() - 3..].iter().collect();
                format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
            }
        }
    }
}

fn invalid(reason: &str) -> Error {
    Error::InvalidContact(format!("not a valid email address: {reason}"))
}

/// Trimmed; local part ASCII only and lower-cased; domain through UTS 46 to
/// its ASCII (punycode) form and lower-cased; at most 254 characters in all.
/// Quoted local parts and address literals are refused: no exchange needs them
/// and each is a path to two spellings of one mailbox.
fn canonical_email(raw: &str) -> Result<String, Error> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if trimmed.len() > 4 * MAX_EMAIL_LENGTH {
        return Err(invalid("it is too long"));
    }
    let (local, domain) = trimmed
        .rsplit_once('@')
        .ok_or_else(|| invalid("it has no @"))?;
    if local.is_empty() || domain.is_empty() {
        return Err(invalid("it needs a local part and a domain"));
    }
    if !local.is_ascii() {
        return Err(invalid("the part before @ must be ASCII"));
    }
    if local.len() > MAX_LOCAL_PART_LENGTH {
        return Err(invalid("the part before @ is longer than 64 characters"));
    }
    if !local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
    {
        return Err(invalid(
            "the part before @ has a character or dot that is not allowed",
        ));
    }
    let domain = canonical_domain(domain)?;
    let email = format!("{}@{domain}", local.to_ascii_lowercase());
    if email.len() > MAX_EMAIL_LENGTH {
        return Err(invalid("it is longer than 254 characters"));
    }
    Ok(email)
}

/// E.164 (`+` and at most 15 digits) through libphonenumber's metadata: the
/// number must be a valid number of the country its calling code names, so
/// formatting differences (`+44 7700 900123`, `+44 (0)7700-900123`) are one
/// contact and impossible numbers are refused. No default region is assumed:
/// a number without `+` and its country code is refused.
fn canonical_phone(raw: &str) -> Result<String, Error> {
    let invalid =
        |reason: &str| Error::InvalidContact(format!("not a valid phone number: {reason}"));
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if trimmed.len() > 64 {
        return Err(invalid("it is too long"));
    }
    if !trimmed.starts_with('+') {
        return Err(invalid("it must start with + and the country code"));
    }
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
    {
        return Err(invalid(
            "it may hold only digits, spaces, dashes, dots and brackets",
        ));
    }
    let number = phonenumber::parse(None, trimmed).map_err(|_| invalid("it cannot be parsed"))?;
    if !phonenumber::is_valid(&number) {
        return Err(invalid(
            "no such number exists in that country's numbering plan",
        ));
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    // libphonenumber's metadata accepts some national numbers (German ones
    // among them) that make more digits than E.164 allows in all.
    if e164.len() > 1 + MAX_PHONE_DIGITS {
        return Err(invalid("it has more than 15 digits"));
    }
    Ok(e164)
}

/// RFC 5322 `atext`: the characters of an unquoted local part, dots aside.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn canonical_domain(domain: &str) -> Result<String, Error> {
    let ascii = idna::domain_to_ascii(domain).map_err(|_| invalid("the domain is not valid"))?;
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(invalid("the domain needs a dot"));
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= MAX_LABEL_LENGTH
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(invalid("the domain is not valid"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid("the domain is not valid"));
    }
    Ok(ascii.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(raw: &str) -> Result<String, Error> {
        Contact::parse(Channel::Email, raw).map(|c| c.value().to_owned())
    }

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        assert_eq!(
            email("  John.Doe@Example.COM \n").unwrap(),
            "john.doe@example.com"
        );
    }

    #[test]
    fn email_domain_becomes_punycode() {
        assert_eq!(
            email("ana@Bücher.example").unwrap(),
            "ana@xn--bcher-kva.example"
        );
        assert_eq!(
            email("ana@xn--bcher-kva.example").unwrap(),
            "ana@xn--bcher-kva.example"
        );
    }

    #[test]
    fn email_spellings_of_one_mailbox_are_one_contact() {
        assert_eq!(
            email("ANA@BÜCHER.example").unwrap(),
            email("ana@bücher.example").unwrap()
        );
    }

    #[test]
    fn email_length_limits_are_enforced() {
        let local = "a".repeat(64);
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        let at_limit = format!("{local}@{domain}");
        assert_eq!(at_limit.len(), 254);
        assert!(email(&at_limit).is_ok());
        let over = format!(
            "{local}@{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(58)
        );
        assert!(matches!(email(&over), Err(Error::InvalidContact(_))));
        assert!(matches!(
            email(&format!("{}@example.com", "a".repeat(65))),
            Err(Error::InvalidContact(_))
        ));
        assert!(matches!(
            email(&format!("a@{}.com", "b".repeat(64))),
            Err(Error::InvalidContact(_))
        ));
    }

    #[test]
    fn malformed_emails_are_invalid_contacts() {
        for raw in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "ana@",
            "ana@localhost",
            "ana@@example.com",
            "an a@example.com",
            ".ana@example.com",
            "ana.@example.com",
            "a..na@example.com",
            "\"ana\"@example.com",
            "ana@[127.0.0.1]",
            "ana@exa_mple.com",
            "ana@-example.com",
            "ana@example.123",
            "ánä@example.com",
            "ana@exam ple.com",
        ] {
            assert!(
                matches!(email(raw), Err(Error::InvalidContact(_))),
                "{raw:?} should be refused"
            );
        }
    }

    #[test]
    fn unicode_confusables_in_the_local_part_are_refused() {
        // Cyrillic "а" (U+0430) looks like Latin "a".
        assert!(matches!(
            email("\u{0430}na@example.com"),
            Err(Error::InvalidContact(_))
        ));
    }

    #[test]
    fn email_is_masked_for_responses() {
        let c = Contact::parse(Channel::Email, "john@example.com").unwrap();
        assert_eq!(c.masked(), "j***@example.com");
        assert_eq!(format!("{c:?}"), "Contact(email, j***@example.com)");
    }

    fn phone(raw: &str) -> Result<String, Error> {
        Contact::parse(Channel::Phone, raw).map(|c| c.value().to_owned())
    }

    #[test]
    fn phone_becomes_e164() {
        assert_eq!(phone("+44 7911 123456").unwrap(), "+447911123456");
        assert_eq!(phone(" +44 (0)7911-123456 ").unwrap(), "+447911123456");
        assert_eq!(phone("+1 (202) 555-0123").unwrap(), "+12025550123");
        assert_eq!(phone("+33 6 12 34 56 78").unwrap(), "+33612345678");
    }

    #[test]
    fn malformed_phones_are_invalid_contacts() {
        for raw in [
            "",
            "07911123456",
            "+44",
            "+44 12",
            "+999 123456789",
            "+44 7911 123456 ext 5",
            "+４４7911123456",
            "+44 7911 1234567890",
            "tel:+447911123456",
            "+1 202 555 01x3",
            "+44 7700 900123",
        ] {
            assert!(
                matches!(phone(raw), Err(Error::InvalidContact(_))),
                "{raw:?} should be refused"
            );
        }
    }

    #[test]
    fn phone_longer_than_e164_is_refused() {
        // Found by fuzz/contact_phone: valid by libphonenumber, 17 digits.
        for raw in ["++4 9600750225101203", "+49600750225101203"] {
            assert!(
                matches!(phone(raw), Err(Error::InvalidContact(_))),
                "{raw:?} should be refused"
            );
        }
    }

    #[test]
    fn phone_is_masked_for_responses() {
        let c = Contact::from_canonical(Channel::Phone, "+447700900123");
        assert_eq!(c.masked(), "+44*******123");
    }
}
