//! The web front end (web/) in Debian's Chromium, headless, against the
//! local stack: every screen of the seed for both channels and the plain
//! change, the API's refusals as the page shows them, the keyboard alone,
//! and an axe-core scan of each screen. Codes come from the SES and SMS
//! emulators and the authenticator codes from the seeded secrets, as a
//! person would read them.

mod web;

use std::sync::Arc;

use contact_migration::domain::{AccountStatus, Channel, Policy};
use end_to_end::{unique_email, unix_now, AccountSpec, Stack, TestAccount};
use web::keyboard::{ENTER, SPACE};
use web::{server, with_page, Page};

/// A stack and the page's origin in front of it.
async fn stack_and_origin(policy: Policy) -> (Arc<Stack>, String) {
    let stack = Arc::new(Stack::with_policy(policy).await);
    let origin = server::serve(stack.app.clone()).await;
    (stack, origin)
}

/// "123456" as a person might paste it: "123 456".
fn spaced(code: &str) -> String {
    format!("{} {}", &code[..3], &code[3..])
}

fn contact_of(account: &contact_migration::domain::Account, channel: Channel) -> Option<String> {
    let contact = match channel {
        Channel::Email => account.email.as_ref(),
        Channel::Phone => account.phone.as_ref(),
    };
    contact.map(|c| c.value().to_owned())
}

/// Signs in, asks to change the contact on `channel` to `new_contact`, and
/// enters the three codes. `screens` scans and photographs each screen.
async fn start_and_enter_codes(
    page: &Page,
    stack: &Stack,
    main: &TestAccount,
    channel: Channel,
    new_contact: &str,
    screens: bool,
) {
    if screens {
        page.heading("Sign in").await;
        page.assert_accessible("sign-in").await;
        page.screen("01-sign-in").await;
    }
    page.sign_in(&main.id).await;
    if screens {
        page.assert_accessible("Security Center").await;
        page.screen("02-security-center").await;
    }
    let (change, label) = match channel {
        Channel::Email => ("Change Email Address", "New email address"),
        Channel::Phone => ("Change Phone Number", "New phone number"),
    };
    page.click(change).await;
    page.fill(label, new_contact).await;
    if screens {
        page.assert_accessible("new contact").await;
        page.screen(&format!("03-new-{}", channel.as_str())).await;
    }
    page.click("Send codes").await;
    page.heading("Enter the codes").await;
    let current = end_to_end::current_contact_of(main, new_contact);
    let (new_code, current_code) = stack.codes(new_contact, current).await;
    page.fill("Code sent to the new", &spaced(&new_code)).await;
    page.fill("Code sent to your current", &current_code).await;
    page.fill("Google Authenticator code", &main.totp_at(unix_now()))
        .await;
    if screens {
        page.assert_accessible("codes").await;
        page.screen(&format!("04-codes-{}", channel.as_str())).await;
    }
    page.click("Confirm").await;
}

/// From the codes to the warnings of a contact bound to another account.
async fn migrate_to_warnings(page: &Page, screens: bool, name: &str) {
    page.heading("belongs to another account").await;
    if screens {
        page.assert_accessible("Migrate Account").await;
        page.screen(&format!("05-migrate-{name}")).await;
    }
    page.click("Migrate Account").await;
    page.heading("Close the other account").await;
}

#[tokio::test]
async fn an_email_migration_goes_through_every_screen() {
    let (stack, origin) = stack_and_origin(Policy::default()).await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    with_page(origin, move |page| async move {
        start_and_enter_codes(&page, &stack, &main, Channel::Email, &duplicate.email, true).await;
        migrate_to_warnings(&page, true, "email").await;
        page.shows("The account being closed still holds assets")
            .await;
        page.field("I understand")
            .await
            .click()
            .await
            .expect("tick");
        page.assert_accessible("warnings").await;
        page.screen("06-warnings-email").await;
        page.click("Close Account").await;
        assert!(page.dialog_open().await, "Close Account opens the dialog");
        page.assert_accessible("confirmation dialog").await;
        page.screen("07-dialog").await;
        page.click("Yes, Confirm").await;
        let heading = page.heading("complete").await;
        assert_eq!(heading, "Migration complete");
        page.shows(&format!("The account {} is closed.", duplicate.id))
            .await;
        page.assert_accessible("completion").await;
        page.screen("08-complete-email").await;

        let closed = stack.stored_account(&duplicate.id).await;
        assert_eq!(closed.status, AccountStatus::Closed);
        let main_now = stack.stored_account(&main.id).await;
        assert_eq!(
            contact_of(&main_now, Channel::Email),
            Some(duplicate.email.clone())
        );
    })
    .await;
}

#[tokio::test]
async fn a_phone_migration_asks_for_the_closed_accounts_authenticator_code() {
    let (stack, origin) = stack_and_origin(Policy::default()).await;
    let main = stack.main_account(Channel::Phone).await;
    // An authenticator on the duplicate: the close must prove control of it too.
    let duplicate = stack
        .account(AccountSpec {
            phone: true,
            ..AccountSpec::default()
        })
        .await;
    let new_phone = duplicate.phone.clone().expect("a phone");
    with_page(origin, move |page| async move {
        start_and_enter_codes(&page, &stack, &main, Channel::Phone, &new_phone, true).await;
        migrate_to_warnings(&page, true, "phone").await;
        page.shows("The account being closed holds no assets.")
            .await;
        page.field("I understand")
            .await
            .click()
            .await
            .expect("tick");
        page.fill(
            "Authenticator code of the account being closed",
            &duplicate.totp_at(unix_now()),
        )
        .await;
        page.assert_accessible("warnings with the duplicate's code")
            .await;
        page.screen("06-warnings-phone").await;
        page.click("Close Account").await;
        page.click("Yes, Confirm").await;
        page.heading("complete").await;
        page.screen("08-complete-phone").await;

        let closed = stack.stored_account(&duplicate.id).await;
        assert_eq!(closed.status, AccountStatus::Closed);
        let main_now = stack.stored_account(&main.id).await;
        assert_eq!(
            contact_of(&main_now, Channel::Phone),
            Some(new_phone.clone())
        );
    })
    .await;
}

#[tokio::test]
async fn a_free_email_address_is_a_plain_change_complete_at_confirm() {
    let (stack, origin) = stack_and_origin(Policy::default()).await;
    let main = stack.main_account(Channel::Email).await;
    let new_email = unique_email("plain");
    with_page(origin, move |page| async move {
        start_and_enter_codes(&page, &stack, &main, Channel::Email, &new_email, false).await;
        let heading = page.heading("complete").await;
        assert_eq!(heading, "Change of email address complete");
        // Contacts in the API's answers are masked: p***@example.com.
        page.shows("p***@example.com is now this account's email address.")
            .await;
        page.assert_accessible("plain change complete").await;
        page.screen("08-complete-plain").await;
        let main_now = stack.stored_account(&main.id).await;
        assert_eq!(
            contact_of(&main_now, Channel::Email),
            Some(new_email.clone())
        );
    })
    .await;
}

#[path = "browser/refusals.rs"]
mod refusals;

#[path = "browser/keyboard.rs"]
mod keyboard;
