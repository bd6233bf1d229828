//! Email canonicalization: never panics; the canonical form is lowercase
//! ASCII, one `@`, at most 254 characters, and canonical again when parsed.
#![no_main]

use contact_migration::domain::contact::MAX_EMAIL_LENGTH;
use contact_migration::domain::{Channel, Contact};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(contact) = Contact::parse(Channel::Email, &raw) else {
        return;
    };
    let canonical = contact.value();
    assert!(canonical.is_ascii(), "{canonical:?}");
    assert!(
        !canonical.bytes().any(|b| b.is_ascii_uppercase()),
        "{canonical:?}"
    );
    assert!(canonical.len() <= MAX_EMAIL_LENGTH, "{canonical:?}");
    assert_eq!(canonical.matches('@').count(), 1, "{canonical:?}");
    assert!(
        !canonical.bytes().any(|b| b.is_ascii_control() || b == b' '),
        "{canonical:?}"
    );
    let again = Contact::parse(Channel::Email, canonical)
        .unwrap_or_else(|e| panic!("{canonical:?} from {raw:?} is refused: {e}"));
    assert_eq!(again.value(), canonical, "from {raw:?}");
    let _ = contact.masked();
});
