use super::quota::{contact_subject, requester_subject, Quota, QuotaKind};
use super::{Contact, SmsRule};

const DAY: i64 = 24 * 3600;

/// Security parameters (PRODUCT.md §4). Defaults are the contract; each can be
/// overridden by configuration for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How long a pair of one-time codes stays valid, seconds.
    pub code_ttl: i64,
    /// Failed verifications before the migration locks.
    pub max_failed_attempts: u32,
    /// Minimum seconds between two sends of one migration.
    pub resend_cooldown: i64,
    /// Sends per migration, the first one included.
    pub max_sends: u32,
    /// Seconds after verification in which migrate and close must happen.
    pub confirm_window: i64,
    /// Migrations one main account may start per window.
    pub starts_per_account: Quota,
    /// Code messages one account may have sent to one contact per window.
    pub sends_per_contact_per_requester: Quota,
    /// Code messages one contact may receive per window as the new contact
    /// of migrations, from all requesters together.
    pub sends_per_contact: Quota,
    /// Failed verifications one main account may make per window.
    pub failures_per_account: Quota,
    /// Which numbers SMS may go to.
    pub sms: SmsRule,
    /// Seconds after a contact change or migration during which the wallet
    /// must hold the main account's withdrawals (`withdrawal_hold_until` in
    /// the events).
    pub withdrawal_hold: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            code_ttl: 600,
            max_failed_attempts: 5,
            resend_cooldown: 60,
            max_sends: 5,
            confirm_window: 900,
            starts_per_account: Quota {
                limit: 5,
                window: DAY,
            },
            sends_per_contact_per_requester: Quota {
                limit: 5,
                window: DAY,
            },
            // Four requesters' worth: enough for a contact sought by a few
            // people at once, while bounding what any number of accounts
            // can make one contact receive (or cost) in a day.
            sends_per_contact: Quota {
                limit: 20,
                window: DAY,
            },
            failures_per_account: Quota {
                limit: 10,
                window: DAY,
            },
            sms: SmsRule::default(),
            withdrawal_hold: DAY,
        }
    }
}

impl Policy {
    /// The quotas one pair of codes takes (PRODUCT.md §4).
    ///
    /// Both codes count against what `requester` may have sent to each
    /// recipient. Only the new contact's code counts against the cap of all
    /// requesters together: the current contact is the requester's own, so
    /// other accounts' requests can fill that cap for a contact and never
    /// keep its own account from receiving its codes.
    pub fn code_send_quotas(
        &self,
        requester: &str,
        new_contact: &Contact,
        current_contact: &Contact,
    ) -> Vec<(QuotaKind, String, Quota)> {
        vec![
            (
                QuotaKind::RequesterSends,
                requester_subject(requester, new_contact),
                self.sends_per_contact_per_requester,
            ),
            (
                QuotaKind::Sends,
                contact_subject(new_contact),
                self.sends_per_contact,
            ),
            (
                QuotaKind::RequesterSends,
                requester_subject(requester, current_contact),
                self.sends_per_contact_per_requester,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;

    fn email(value: &str) -> Contact {
        Contact::parse(Channel::Email, value).unwrap()
    }

    #[test]
    fn the_current_contacts_code_is_never_counted_against_the_global_cap() {
        let policy = Policy::default();
        let quotas = policy.code_send_quotas(
            "acct-1",
            &email("new@example.com"),
            &email("own@example.com"),
        );
        let global: Vec<&String> = quotas
            .iter()
            .filter(|(kind, _, _)| *kind == QuotaKind::Sends)
            .map(|(_, subject, _)| subject)
            .collect();
        assert_eq!(global, ["email#new@example.com"]);
        assert!(quotas.contains(&(
            QuotaKind::RequesterSends,
            "acct-1#email#own@example.com".into(),
            policy.sends_per_contact_per_requester
        )));
    }

    #[test]
    fn the_new_contacts_code_is_counted_per_requester_and_globally() {
        let policy = Policy::default();
        let quotas = policy.code_send_quotas(
            "acct-1",
            &email("new@example.com"),
            &email("own@example.com"),
        );
        assert!(quotas.contains(&(
            QuotaKind::RequesterSends,
            "acct-1#email#new@example.com".into(),
            policy.sends_per_contact_per_requester
        )));
        assert!(quotas.contains(&(
            QuotaKind::Sends,
            "email#new@example.com".into(),
            policy.sends_per_contact
        )));
    }

    #[test]
    fn two_requesters_have_separate_quotas_for_one_contact() {
        let policy = Policy::default();
        let new = email("new@example.com");
        let a = policy.code_send_quotas("acct-a", &new, &email("a@example.com"));
        let b = policy.code_send_quotas("acct-b", &new, &email("b@example.com"));
        assert_ne!(a[0].1, b[0].1, "per-requester subjects differ");
        assert_eq!(a[1].1, b[1].1, "the global subject is shared");
    }

    #[test]
    fn the_global_cap_is_above_the_per_requester_quota() {
        let policy = Policy::default();
        assert_eq!(policy.sends_per_contact_per_requester.limit, 5);
        assert!(policy.sends_per_contact.limit > policy.sends_per_contact_per_requester.limit);
    }
}
