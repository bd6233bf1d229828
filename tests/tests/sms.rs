//! Where SMS go (PRODUCT.md §4): mobile numbers of the allowed countries
//! only. Start refuses any other number with `invalid_contact` before
//! anything is taken or sent, and the courier refuses it too.

use contact_migration::domain::{Channel, Contact, Policy, SmsRule};
use contact_migration::notify::{DeliveryError, Message, Notice};
use end_to_end::{unique_phone, unix_now, Stack, TestAccount};

/// Three random digits, so parallel tests never share a number.
fn tail(digits: usize) -> String {
    let n = u64::from_be_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    format!("{:0digits$}", n % 10u64.pow(digits as u32))
}

/// A refused start to `to` took nothing from `main`'s quotas or `to`'s,
/// and `to` received nothing.
async fn nothing_taken_or_sent(stack: &Stack, main: &TestAccount, to: &str) {
    let own = main.phone.as_deref().expect("a phone account");
    assert_eq!(stack.quota_events("starts", &main.id).await, 0);
    for (kind, subject) in [
        ("requester_sends", format!("{}#phone#{own}", main.id)),
        ("requester_sends", format!("{}#phone#{to}", main.id)),
        ("sends", format!("phone#{to}")),
    ] {
        assert_eq!(
            stack.quota_events(kind, &subject).await,
            0,
            "{kind} {subject}"
        );
    }
    assert!(stack.sms_to(to).await.is_empty(), "no SMS to {to}");
    assert!(stack.sms_to(own).await.is_empty(), "no SMS to {own}");
}

#[tokio::test]
async fn sms_goes_to_mobile_numbers_only() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Phone).await;
    let now = unix_now();
    for not_mobile in [
        format!("+4420794600{}", tail(2)), // London fixed line
        format!("+449098790{}", tail(3)),  // premium rate
    ] {
        let refused = stack.start(&main, &not_mobile, now).await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (400, "invalid_contact"),
            "{not_mobile}: {refused:?}"
        );
        let message = refused.body["error"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("mobile numbers only"), "{message}");
        nothing_taken_or_sent(&stack, &main, &not_mobile).await;
    }
    let mobile = unique_phone();
    let started = stack.start(&main, &mobile, now).await;
    assert_eq!(started.status, 201, "{started:?}");
    assert_eq!(stack.sms_to(&mobile).await.len(), 1);
}

#[tokio::test]
async fn sms_goes_only_to_allowed_countries() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Phone).await;
    let french_mobile = format!("+3361{}", tail(7));
    let now = unix_now();
    let refused = stack.start(&main, &french_mobile, now).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (400, "invalid_contact"),
        "{refused:?}"
    );
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.ends_with("countries: GB"), "{message}");
    nothing_taken_or_sent(&stack, &main, &french_mobile).await;

    // The operator's list decides.
    let policy = Policy {
        sms: SmsRule::parse("GB,FR").unwrap(),
        ..Policy::default()
    };
    let wider = Stack::with_policy(policy).await;
    let main = wider.main_account(Channel::Phone).await;
    let started = wider.start(&main, &french_mobile, now).await;
    assert_eq!(started.status, 201, "{started:?}");
    assert_eq!(wider.sms_to(&french_mobile).await.len(), 1);
}

#[tokio::test]
async fn the_courier_sends_no_sms_outside_the_rule_whoever_asks() {
    let stack = Stack::new().await;
    let fixed_line = format!("+4420794600{}", tail(2));
    let to = Contact::parse(Channel::Phone, &fixed_line).unwrap();
    let notice = Message::Notice(Notice::ContactChanged {
        new_contact: to.clone(),
        migration_id: uuid::Uuid::new_v4().to_string(),
    });
    let sent = stack.courier().deliver(&to, &notice).await;
    assert!(matches!(sent, Err(DeliveryError::Refused(_))), "{sent:?}");
    assert!(stack.sms_to(&fixed_line).await.is_empty());
}
