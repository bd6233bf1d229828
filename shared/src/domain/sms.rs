//! Where SMS may go (PRODUCT.md §4). Each SMS is paid at the destination's
//! rate, and SMS pumping turns a code form into revenue for whoever holds
//! premium-rate or high-rate numbers: so codes and notices go only to mobile
//! numbers (what a person carries) of the countries the operator chose.

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::Type;

use super::{Channel, Contact, Error};

/// Mobile numbers of the allowed countries, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRule {
    countries: Vec<Id>,
}

/// Why a number gets no SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsRefusal {
    NotAPhoneNumber,
    /// Fixed-line, premium-rate, shared-cost, VoIP, pager, ...: anything the
    /// numbering plan does not say is (or may be) a mobile.
    NotMobile,
    CountryNotAllowed,
}

impl SmsRule {
    /// The United Kingdom only. Fail closed: every country served is a
    /// deliberate choice made with its SMS cost and fraud exposure in view.
    /// The UK plan tells mobiles (07) from every other kind of number, so
    /// the mobile rule is fully effective there; in plans that cannot tell
    /// (the NANP of the US and Canada answers `FixedLineOrMobile`) only the
    /// country rule and the quotas stand between a landline and a code.
    pub const DEFAULT_COUNTRIES: &'static str = "GB";

    /// From a comma-separated list of ISO 3166 alpha-2 codes (`GB,US`);
    /// blanks around the codes and their case do not matter.
    pub fn parse(list: &str) -> Result<SmsRule, String> {
        let mut countries = Vec::new();
        for code in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let id: Id = code
                .to_ascii_uppercase()
                .parse()
                .map_err(|_| format!("{code:?} is not an ISO 3166 alpha-2 country code"))?;
            if !countries.contains(&id) {
                countries.push(id);
            }
        }
        if countries.is_empty() {
            return Err("it names no country".into());
        }
        Ok(SmsRule { countries })
    }

    /// `GB,US`: the allowed countries as configured.
    pub fn countries(&self) -> String {
        self.countries
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<&str>>()
            .join(",")
    }

    /// The country of the E.164 number `to` if an SMS may go to it.
    pub fn check(&self, to: &str) -> Result<Id, SmsRefusal> {
        let number = phonenumber::parse(None, to).map_err(|_| SmsRefusal::NotAPhoneNumber)?;
        if !matches!(
            number.number_type(&DATABASE),
            Type::Mobile | Type::FixedLineOrMobile
        ) {
            return Err(SmsRefusal::NotMobile);
        }
        match number.country().id() {
            Some(id) if self.countries.contains(&id) => Ok(id),
            _ => Err(SmsRefusal::CountryNotAllowed),
        }
    }

    /// Whether codes may be sent to `contact`: always for an email address;
    /// for a phone number, [`SmsRule::check`] as an `invalid_contact`.
    pub fn admits(&self, contact: &Contact) -> Result<(), Error> {
        if contact.channel() != Channel::Phone {
            return Ok(());
        }
        self.check(contact.value()).map(|_| ()).map_err(|refusal| {
            Error::InvalidContact(match refusal {
                SmsRefusal::NotAPhoneNumber => "not a valid phone number".into(),
                SmsRefusal::NotMobile => {
                    "codes are sent by SMS to mobile numbers only; this is not a mobile number"
                        .into()
                }
                SmsRefusal::CountryNotAllowed => format!(
                    "codes are sent by SMS only to mobile numbers of these countries: {}",
                    self.countries()
                ),
            })
        })
    }
}

impl Default for SmsRule {
    fn default() -> Self {
        SmsRule::parse(SmsRule::DEFAULT_COUNTRIES).expect("the default list is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(raw: &str) -> Contact {
        Contact::parse(Channel::Phone, raw).expect("a valid number")
    }

    #[test]
    fn sms_goes_to_mobile_numbers_only() {
        let rule = SmsRule::default();
        assert_eq!(
            rule.check("+447400123456").map(|id| id.as_ref().to_owned()),
            Ok("GB".into())
        );
        for (number, kind) in [
            ("+442079460123", "fixed line"),
            ("+449098790123", "premium rate"),
            ("+448001234567", "toll free"),
            ("+445612345678", "VoIP"),
        ] {
            assert_eq!(
                rule.check(number),
                Err(SmsRefusal::NotMobile),
                "{kind} {number}"
            );
            assert!(
                matches!(rule.admits(&phone(number)), Err(Error::InvalidContact(m)) if m.contains("mobile numbers only")),
                "{kind} {number}"
            );
        }
    }

    #[test]
    fn sms_goes_only_to_allowed_countries() {
        let rule = SmsRule::default();
        let french_mobile = phone("+33612345678");
        assert!(matches!(
            rule.admits(&french_mobile),
            Err(Error::InvalidContact(m)) if m.ends_with("countries: GB")
        ));
        let wider = SmsRule::parse(" gb, FR ,GB").unwrap();
        assert_eq!(wider.countries(), "GB,FR");
        assert_eq!(wider.admits(&french_mobile), Ok(()));
    }

    #[test]
    fn where_the_plan_cannot_tell_a_mobile_the_number_may_be_one() {
        let rule = SmsRule::parse("US").unwrap();
        assert!(rule.check("+12025550123").is_ok());
    }

    #[test]
    fn email_addresses_are_not_subject_to_the_sms_rule() {
        let email = Contact::parse(Channel::Email, "ana@example.com").unwrap();
        assert_eq!(SmsRule::default().admits(&email), Ok(()));
    }

    #[test]
    fn the_country_list_must_name_real_countries() {
        assert!(SmsRule::parse("GB,XX").is_err());
        assert!(SmsRule::parse("UK").is_err(), "the ISO code is GB");
        assert!(SmsRule::parse(" , ").is_err());
    }
}
