//! The API's refusals as the page shows them: wrong codes field by field
//! with the attempts left, then the lock; the resend cooldown; the blockers
//! of a KYC'd duplicate; and the dialog's Cancel, which changes nothing.

use super::*;

#[tokio::test]
async fn wrong_codes_are_shown_at_their_fields_with_the_attempts_left_then_the_lock() {
    let (stack, origin) = stack_and_origin(Policy::default()).await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    with_page(origin, move |page| async move {
        page.sign_in(&main.id).await;
        page.click("Change Email Address").await;
        page.fill("New email address", &duplicate.email).await;
        page.click("Send codes").await;
        page.heading("Enter the codes").await;
        let (_, current_code) = stack.codes(&duplicate.email, &main.email).await;
        page.fill("Code sent to the new", "000000").await;
        page.fill("Code sent to your current", &current_code).await;
        page.fill("Google Authenticator code", "999 999").await;
        page.click("Confirm").await;

        page.shows("4 attempts left before this migration locks.")
            .await;
        assert_eq!(
            page.focused().await,
            "error-summary",
            "the summary takes focus"
        );
        assert_eq!(
            page.field_error("new-contact-code").await.as_deref(),
            Some("The code sent to the new contact is not right")
        );
        assert!(page.field_error("current-contact-code").await.is_none());
        assert!(page.field_error("totp-code").await.is_some());
        let kept = page
            .field("Code sent to the new")
            .await
            .prop("value")
            .await
            .unwrap();
        assert_eq!(kept.as_deref(), Some("000000"), "typed values stay");
        page.assert_accessible("codes with errors").await;
        page.screen("04-codes-errors").await;
        page.click("The code sent to the new contact is not right")
            .await;
        assert_eq!(
            page.focused().await,
            "new-contact-code",
            "the summary links to the field"
        );

        for left in [3, 2, 1] {
            page.click("Confirm").await;
            page.shows(&format!("{left} attempts left")).await;
        }
        // The fifth wrong answer locks the migration.
        page.click("Confirm").await;
        page.heading("Migration locked").await;
        page.assert_accessible("locked").await;
        page.screen("09-locked").await;
        let duplicate_now = stack.stored_account(&duplicate.id).await;
        assert_eq!(duplicate_now.status, AccountStatus::Active);
    })
    .await;
}

#[tokio::test]
async fn resend_codes_waits_out_the_cooldown_and_stops_when_the_sends_are_used_up() {
    let policy = Policy {
        resend_cooldown: 3,
        max_sends: 2,
        ..Policy::default()
    };
    let (stack, origin) = stack_and_origin(policy).await;
    let main = stack.main_account(Channel::Email).await;
    let new_email = unique_email("resend");
    with_page(origin, move |page| async move {
        page.sign_in(&main.id).await;
        page.click("Change Email Address").await;
        page.fill("New email address", &new_email).await;
        page.click("Send codes").await;
        page.heading("Enter the codes").await;
        page.shows("You can ask for new codes in").await;
        let resend = page.button("Resend codes").await;
        assert_eq!(
            resend.attr("aria-disabled").await.unwrap().as_deref(),
            Some("true")
        );
        resend.click().await.expect("click");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(
            stack.emails_to(&new_email).await.len(),
            1,
            "no send in the cooldown"
        );

        page.shows("You can ask for new codes now.").await;
        page.click("Resend codes").await;
        page.shows("New codes sent. The earlier codes no longer work.")
            .await;
        assert_eq!(stack.emails_to(&new_email).await.len(), 2);

        // The second send was the last (max_sends 2): the API announces no
        // further resend, and the page offers none.
        page.shows("No more codes can be sent for this migration.")
            .await;
        let resend = page.button("Resend codes").await;
        assert_eq!(
            resend.attr("aria-disabled").await.unwrap().as_deref(),
            Some("true")
        );
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        resend.click().await.expect("click");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(stack.emails_to(&new_email).await.len(), 2, "no third send");
        page.shows("No more codes can be sent for this migration.")
            .await;
        page.assert_accessible("resend used up").await;
        page.screen("04-codes-resend-limited").await;
    })
    .await;
}

#[tokio::test]
async fn a_kyc_duplicate_shows_its_blockers_in_words_and_cancel_changes_nothing() {
    let (stack, origin) = stack_and_origin(Policy::default()).await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, true).await;
    with_page(origin, move |page| async move {
        start_and_enter_codes(
            &page,
            &stack,
            &main,
            Channel::Email,
            &duplicate.email,
            false,
        )
        .await;
        page.heading("This account can't be migrated").await;
        page.shows("The other account has completed identity verification (KYC).")
            .await;
        page.assert_accessible("blockers").await;
        page.screen("05-blockers").await;
        page.click("Cancel migration").await;
        page.heading("Security Center").await;
        page.shows("Migration cancelled. Nothing was changed.")
            .await;
        let duplicate_now = stack.stored_account(&duplicate.id).await;
        assert_eq!(duplicate_now.status, AccountStatus::Active);
        assert_eq!(
            contact_of(&duplicate_now, Channel::Email),
            Some(duplicate.email.clone())
        );
    })
    .await;
}

#[tokio::test]
async fn the_dialogs_cancel_leaves_the_duplicate_open() {
    let (stack, origin) = stack_and_origin(Policy::default()).await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    with_page(origin, move |page| async move {
        start_and_enter_codes(
            &page,
            &stack,
            &main,
            Channel::Email,
            &duplicate.email,
            false,
        )
        .await;
        migrate_to_warnings(&page, false, "email").await;

        page.click("Close Account").await;
        page.shows("Tick the box to confirm you understand the warnings")
            .await;
        assert_eq!(page.focused().await, "error-summary");
        assert!(
            !page.dialog_open().await,
            "no dialog before the acknowledgement"
        );
        page.assert_accessible("warnings with errors").await;
        page.screen("06-warnings-errors").await;

        page.field("I understand")
            .await
            .click()
            .await
            .expect("tick");
        page.click("Close Account").await;
        assert!(page.dialog_open().await);
        assert_eq!(page.focused().await, "Cancel", "the safe choice has focus");
        page.click("Cancel").await;
        assert!(!page.dialog_open().await);
        assert_eq!(
            page.focused().await,
            "close-account",
            "focus returns to Close Account"
        );
        page.heading("Close the other account").await;

        let duplicate_now = stack.stored_account(&duplicate.id).await;
        assert_eq!(duplicate_now.status, AccountStatus::Active);
        let main_now = stack.stored_account(&main.id).await;
        assert_eq!(
            contact_of(&main_now, Channel::Email),
            Some(main.email.clone())
        );
    })
    .await;
}
