//! Delivery faults injected at the SDK boundary (aws-smithy-mocks): SES and
//! SNS throttling and rejection, and a provider that never answers. Each
//! answers 503 `delivery_failed`, leaves no usable-but-undelivered state and
//! spends no quota; a failed security notice never undoes a commit.

use aws_sdk_sesv2::operation::send_email::{SendEmailError, SendEmailInput, SendEmailOutput};
use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use contact_migration::domain::{Channel, Policy};
use contact_migration::notify::Courier;
use end_to_end::{
    local_config, ses_client, sns_client, sns_endpoint, unique_contact, unix_now, Stack, SENDER,
};
use serde_json::json;
use std::time::Duration;

fn recipient(input: &SendEmailInput) -> &str {
    input
        .destination()
        .and_then(|d| d.to_addresses().first())
        .map(String::as_str)
        .unwrap_or_default()
}

fn subject(input: &SendEmailInput) -> &str {
    input
        .content()
        .and_then(|c| c.simple())
        .and_then(|m| m.subject())
        .map(|s| s.data())
        .unwrap_or_default()
}

fn ses_throttled() -> Rule {
    mock!(aws_sdk_sesv2::Client::send_email).then_error(|| {
        SendEmailError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("slow down")
                .build(),
        )
    })
}

fn ses_delivers_to_all_but(refused: String) -> [Rule; 2] {
    [
        mock!(aws_sdk_sesv2::Client::send_email)
            .match_requests(move |input| recipient(input) == refused)
            .then_error(|| {
                SendEmailError::MessageRejected(
                    MessageRejected::builder().message("rejected").build(),
                )
            }),
        mock!(aws_sdk_sesv2::Client::send_email)
            .then_output(|| SendEmailOutput::builder().message_id("m").build()),
    ]
}

/// A courier whose email side answers with `rules`; SMS goes to the emulator.
async fn email_courier(rules: &[Rule]) -> Courier {
    let ses = mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, rules);
    Courier::new(
        ses,
        SENDER,
        sns_client(&local_config().await, &sns_endpoint()),
        None,
    )
}

/// Only one migration start a day, one send per contact: a quota spent on a
/// failed delivery would show at once.
fn tight_policy() -> Policy {
    let mut policy = Policy::default();
    policy.starts_per_account.limit = 1;
    policy.sends_per_contact_per_requester.limit = 1;
    policy.sends_per_contact.limit = 1;
    policy
}

async fn trail_len(stack: &Stack, account_id: &str) -> usize {
    stack.app.store.audit_trail(account_id).await.unwrap().len()
}

#[tokio::test]
async fn ses_throttling_answers_delivery_failed_and_spends_no_quota() {
    let stack = Stack::with_policy(tight_policy()).await;
    let main = stack.main_account(Channel::Email).await;
    let throttled = stack.with_courier(email_courier(&[ses_throttled()]).await);
    let fresh = unique_contact(Channel::Email, "throttled");
    let now = unix_now();
    let answer = throttled.start(&main, &fresh, now).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (503, "delivery_failed"),
        "{answer:?}"
    );
    assert_eq!(
        trail_len(&stack, &main.id).await,
        0,
        "no migration was written"
    );
    let retried = stack.start(&main, &fresh, now + 1).await;
    assert_eq!(retried.status, 201, "the quota was given back: {retried:?}");
}

#[tokio::test]
async fn a_rejected_second_code_leaves_nothing_usable() {
    let stack = Stack::with_policy(tight_policy()).await;
    let main = stack.main_account(Channel::Email).await;
    let rules = ses_delivers_to_all_but(main.email.clone());
    let rejecting = stack.with_courier(email_courier(&rules).await);
    let fresh = unique_contact(Channel::Email, "half");
    let now = unix_now();
    let answer = rejecting.start(&main, &fresh, now).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (503, "delivery_failed"),
        "{answer:?}"
    );
    assert_eq!(rules[1].num_calls(), 1, "the new contact's code went out");
    assert_eq!(
        rules[0].num_calls(),
        1,
        "the current contact's code was refused"
    );
    assert_eq!(
        trail_len(&stack, &main.id).await,
        0,
        "no migration was written"
    );
    let retried = stack.start(&main, &fresh, now + 1).await;
    assert_eq!(
        retried.status, 201,
        "neither contact's send quota was spent: {retried:?}"
    );
}

#[tokio::test]
async fn sns_throttling_answers_delivery_failed() {
    let stack = Stack::with_policy(tight_policy()).await;
    let main = stack.main_account(Channel::Phone).await;
    // SNS throttles with a generic `Throttling` error, which the SDK retries
    // by its standard policy before giving up.
    let rule = mock!(aws_sdk_sns::Client::publish).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                 <Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>",
            ),
        )
    });
    let sns = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&rule]);
    let courier = Courier::new(
        ses_client(&local_config().await, &end_to_end::ses_endpoint()),
        SENDER,
        sns,
        None,
    );
    let throttled = stack.with_courier(courier);
    let fresh = unique_contact(Channel::Phone, "sms");
    let now = unix_now();
    let answer = throttled.start(&main, &fresh, now).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (503, "delivery_failed"),
        "{answer:?}"
    );
    assert_eq!(
        rule.num_calls(),
        3,
        "the standard retry policy tried three times"
    );
    assert_eq!(trail_len(&stack, &main.id).await, 0);
    let retried = stack.start(&main, &fresh, now + 1).await;
    assert_eq!(retried.status, 201, "{retried:?}");
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out_as_delivery_failed() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let aws = local_config().await;
    let ses = aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(&aws)
            .endpoint_url(format!("http://{address}"))
            .timeout_config(
                aws_sdk_sesv2::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_millis(500))
                    .build(),
            )
            .build(),
    );
    let stack = Stack::with_policy(tight_policy()).await;
    let main = stack.main_account(Channel::Email).await;
    let stalled = stack.with_courier(Courier::new(
        ses,
        SENDER,
        sns_client(&aws, &sns_endpoint()),
        None,
    ));
    let fresh = unique_contact(Channel::Email, "stalled");
    let now = unix_now();
    let answer = stalled.start(&main, &fresh, now).await;
    hold.abort();
    assert_eq!(
        (answer.status, answer.error_code()),
        (503, "delivery_failed"),
        "{answer:?}"
    );
    assert_eq!(trail_len(&stack, &main.id).await, 0);
    assert_eq!(stack.start(&main, &fresh, now + 1).await.status, 201);
}

#[tokio::test]
async fn a_failed_resend_keeps_the_codes_already_sent() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let fresh = unique_contact(Channel::Email, "keep");
    let now = unix_now();
    let started = stack.start(&main, &fresh, now).await;
    let id = started.body["migration_id"].as_str().unwrap();
    let (new_code, current_code) = stack.codes(&fresh, &main.email).await;

    let throttled = stack.with_courier(email_courier(&[ses_throttled()]).await);
    let resend = throttled
        .step(&main, id, "resend", json!({}), now + 60)
        .await;
    assert_eq!(
        (resend.status, resend.error_code()),
        (503, "delivery_failed"),
        "{resend:?}"
    );
    let got = stack
        .call(
            "GET",
            &format!("/migrations/{id}"),
            Some(&main.id),
            None,
            now + 60,
        )
        .await;
    assert_eq!(
        got.body["resend_available_at"], started.body["resend_available_at"],
        "no send was recorded"
    );

    let verified = stack
        .verify(
            &main,
            id,
            (&new_code, &current_code, &main.totp_at(now + 60)),
            now + 60,
        )
        .await;
    assert_eq!(
        verified.status, 200,
        "the codes already sent still work: {verified:?}"
    );
}

#[tokio::test]
async fn a_failed_security_notice_never_undoes_the_migration() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    let now = unix_now();
    let (id, _) = stack.start_and_verify(&main, &duplicate.email, now).await;
    stack.step(&main, &id, "migrate", json!({}), now).await;

    let notices_fail = mock!(aws_sdk_sesv2::Client::send_email)
        .match_requests(|input| subject(input).starts_with("Security notice"))
        .then_error(|| {
            SendEmailError::MessageRejected(MessageRejected::builder().message("rejected").build())
        });
    let courier = email_courier(&[notices_fail]).await;
    let closed = stack
        .with_courier(courier)
        .close_all_acknowledged(&main, &id, now)
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    assert_eq!(closed.body["state"], "completed");
    let stored = stack.stored_account(&main.id).await;
    assert_eq!(stored.email.unwrap().value(), duplicate.email);
}
