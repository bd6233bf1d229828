//! The keyboard alone through a whole migration, and the language switcher.

use super::*;
use web::keyboard::TAB;

#[tokio::test]
async fn a_migration_can_be_done_with_the_keyboard_alone() {
    let (stack, origin) = stack_and_origin(Policy::default()).await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    with_page(origin, move |page| async move {
        let enter = ENTER.to_string();
        page.heading("Sign in").await;
        page.tab_to("Account ID").await;
        page.press(&format!("{}{enter}", main.id)).await;
        page.heading("Security Center").await;
        page.tab_to("Change Email Address").await;
        page.press(&enter).await;
        page.tab_to("New email address").await;
        page.press(&format!("{}{enter}", duplicate.email)).await;
        page.heading("Enter the codes").await;

        let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
        page.tab_to("Code sent to the new").await;
        page.press(&format!("{new_code}{TAB}{current_code}{TAB}"))
            .await;
        assert!(page
            .focused_name()
            .await
            .starts_with("Google Authenticator code"));
        page.press(&format!("{}{enter}", main.totp_at(unix_now())))
            .await;

        page.heading("belongs to another account").await;
        page.tab_to("Migrate Account").await;
        page.press(&enter).await;
        page.heading("Close the other account").await;
        page.tab_to("I understand").await;
        page.press(&SPACE.to_string()).await;
        page.tab_to("Close Account").await;
        page.press(&enter).await;
        assert!(page.dialog_open().await);
        page.tab_to("Yes, Confirm").await;
        page.press(&enter).await;
        page.heading("complete").await;

        let closed = stack.stored_account(&duplicate.id).await;
        assert_eq!(closed.status, AccountStatus::Closed);
    })
    .await;
}

#[tokio::test]
async fn the_page_speaks_simplified_chinese_when_chosen_and_remembers_it() {
    let (stack, origin) = stack_and_origin(Policy::default()).await;
    let main = stack.main_account(Channel::Email).await;
    with_page(origin, move |page| async move {
        page.sign_in(&main.id).await;
        let switcher = page.field("Language").await;
        switcher.select_by_value("zh-CN").await.expect("choose");
        page.heading("安全中心").await;
        page.shows("更换邮箱地址").await;
        page.assert_accessible("Security Center in Chinese").await;
        page.screen("02-security-center-zh").await;
        page.client.refresh().await.expect("reload");
        page.heading("安全中心").await;
        let lang = page
            .client
            .execute("return document.documentElement.lang;", vec![])
            .await
            .expect("script");
        assert_eq!(lang, "zh-CN");
    })
    .await;
}
