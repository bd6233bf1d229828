//! Sliding-window quotas (PRODUCT.md §4): at most `limit` events in any
//! `window` seconds. The log of recent events is stored per subject and
//! replaced with a conditional write, so parallel requests cannot exceed it.

use super::{Contact, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Migrations started by one main account.
    Starts,
    /// Code messages sent to one contact by all requesters together.
    Sends,
    /// Code messages sent to one contact at the request of one account.
    RequesterSends,
    /// Failed verifications of one main account, across migrations.
    Failures,
}

impl QuotaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Starts => "starts",
            QuotaKind::Sends => "sends",
            QuotaKind::RequesterSends => "requester_sends",
            QuotaKind::Failures => "failures",
        }
    }
}

/// The subject of a contact's quota ([`QuotaKind::Sends`]).
pub fn contact_subject(contact: &Contact) -> String {
    format!("{}#{}", contact.channel(), contact.value())
}

/// The subject of one account's sends to a contact
/// ([`QuotaKind::RequesterSends`]).
pub fn requester_subject(account_id: &str, contact: &Contact) -> String {
    format!("{account_id}#{}", contact_subject(contact))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub window: i64,
}

/// One event in a quota log: when, plus a nonce so two events of the same
/// second stay two, and so one can be refunded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub at: Timestamp,
    pub nonce: String,
}

impl Hit {
    pub fn encode(&self) -> String {
        format!("{}#{}", self.at, self.nonce)
    }

    pub fn decode(value: &str) -> Option<Hit> {
        let (at, nonce) = value.split_once('#')?;
        Some(Hit {
            at: at.parse().ok()?,
            nonce: nonce.to_owned(),
        })
    }
}

impl Quota {
    /// The log without events that left the window, plus `hit` if the quota
    /// admits it; otherwise the seconds until it will.
    pub fn admit(&self, log: &[Hit], hit: Hit) -> Result<Vec<Hit>, u64> {
        let mut live: Vec<Hit> = log
            .iter()
            .filter(|h| h.at > hit.at - self.window)
            .cloned()
            .collect();
        live.sort_by_key(|h| h.at);
        if live.len() >= self.limit as usize {
            let frees_at = live[live.len() - self.limit as usize].at + self.window;
            return Err((frees_at - hit.at).max(1) as u64);
        }
        live.push(hit);
        Ok(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(at: Timestamp) -> Hit {
        Hit {
            at,
            nonce: format!("n{at}"),
        }
    }

    const DAY: Quota = Quota {
        limit: 5,
        window: 86_400,
    };

    #[test]
    fn quota_admits_up_to_its_limit_in_the_window() {
        let mut log = Vec::new();
        for t in 0..5 {
            log = DAY.admit(&log, hit(1000 + t)).unwrap();
        }
        assert_eq!(DAY.admit(&log, hit(1010)), Err(86_400 - 10));
    }

    #[test]
    fn quota_frees_a_slot_when_the_oldest_event_leaves_the_window() {
        let log: Vec<Hit> = (0..5).map(|t| hit(1000 + t * 100)).collect();
        assert!(DAY.admit(&log, hit(1000 + 86_399)).is_err());
        let admitted = DAY.admit(&log, hit(1000 + 86_400)).unwrap();
        assert_eq!(admitted.len(), 5, "the expired event is dropped");
    }

    #[test]
    fn hits_round_trip_through_their_encoding() {
        let h = Hit {
            at: 1_700_000_000,
            nonce: "ab12".into(),
        };
        assert_eq!(Hit::decode(&h.encode()), Some(h));
        assert_eq!(Hit::decode("garbage"), None);
    }
}
