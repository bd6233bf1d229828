//! Phone canonicalization: never panics; the canonical form is E.164 (`+`
//! and at most 15 digits) and canonical again when parsed.
#![no_main]

use contact_migration::domain::{Channel, Contact};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(contact) = Contact::parse(Channel::Phone, &raw) else {
        return;
    };
    let canonical = contact.value();
    let digits = canonical
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("{canonical:?}"));
    assert!(
        (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        "{canonical:?} from {raw:?}"
    );
    let again = Contact::parse(Channel::Phone, canonical)
        .unwrap_or_else(|e| panic!("{canonical:?} from {raw:?} is refused: {e}"));
    assert_eq!(again.value(), canonical, "from {raw:?}");
    let _ = contact.masked();
});
