//! The warnings a person must acknowledge before the duplicate is closed.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningId {
    AccountClosurePermanent,
    AssetsNotTransferred,
    InvitationRelationshipsLost,
}

impl WarningId {
    pub const ALL: [WarningId; 3] = [
        WarningId::AccountClosurePermanent,
        WarningId::AssetsNotTransferred,
        WarningId::InvitationRelationshipsLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WarningId::AccountClosurePermanent => "account_closure_permanent",
            WarningId::AssetsNotTransferred => "assets_not_transferred",
            WarningId::InvitationRelationshipsLost => "invitation_relationships_lost",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub id: WarningId,
    pub message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_has_assets: Option<bool>,
}

/// The warnings of rules 2, 4 and 5, in the order they are shown.
pub fn warnings(duplicate_has_assets: bool) -> Vec<Warning> {
    WarningId::ALL
        .into_iter()
        .map(|id| Warning {
            id,
            message: match id {
                WarningId::AccountClosurePermanent => {
                    "The duplicate account will be closed permanently. It can never be reopened or signed in to again."
                }
                WarningId::AssetsNotTransferred => {
                    "Assets are not transferred. Any balance left on the duplicate account stays there and will no longer be reachable."
                }
                WarningId::InvitationRelationshipsLost => {
                    "Invitation relationships are lost. The duplicate's referral code stops working and its inviter and invitee links are not carried over."
                }
            },
            duplicate_has_assets: (id == WarningId::AssetsNotTransferred)
                .then_some(duplicate_has_assets),
        })
        .collect()
}

/// What is missing from a closure request: unacknowledged warning ids, and
/// `confirm` unless it is exactly `true`.
pub fn missing_acknowledgements(acknowledged: &[String], confirm: bool) -> Vec<String> {
    let mut missing: Vec<String> = WarningId::ALL
        .iter()
        .map(|id| id.as_str())
        .filter(|id| !acknowledged.iter().any(|a| a == id))
        .map(str::to_owned)
        .collect();
    if !confirm {
        missing.push("confirm".into());
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_warning_says_whether_the_duplicate_holds_assets() {
        let w = warnings(true);
        assert_eq!(w.len(), 3);
        assert_eq!(w[1].id, WarningId::AssetsNotTransferred);
        assert_eq!(w[1].duplicate_has_assets, Some(true));
        assert_eq!(w[0].duplicate_has_assets, None);
        assert_eq!(warnings(false)[1].duplicate_has_assets, Some(false));
    }

    #[test]
    fn closure_requires_every_acknowledgement_and_confirm() {
        let all: Vec<String> = WarningId::ALL
            .iter()
            .map(|w| w.as_str().to_owned())
            .collect();
        assert!(missing_acknowledgements(&all, true).is_empty());
        assert_eq!(missing_acknowledgements(&all, false), vec!["confirm"]);
        assert_eq!(
            missing_acknowledgements(&all[..2], true),
            vec!["invitation_relationships_lost"]
        );
        assert_eq!(missing_acknowledgements(&[], false).len(), 4);
    }
}
