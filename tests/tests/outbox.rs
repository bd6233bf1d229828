//! The transactional outbox and the relay (PRODUCT.md §6), against the real
//! local stack: DynamoDB Local's stream read by the local stand-in of the
//! event source mapping, the relay function's handler, the SES and SMS
//! emulators, and EventBridge on moto with a rule to an SQS queue.

use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_sdk_sesv2::operation::send_email::{SendEmailError, SendEmailInput, SendEmailOutput};
use aws_sdk_sesv2::types::error::TooManyRequestsException;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use contact_migration::domain::{Channel, EventType};
use contact_migration::notify::Courier;
use contact_migration::relay::{EventBus, Relay, StreamEvent};
use end_to_end::{
    local_config, sns_client, sns_endpoint, unique_contact, unix_now, Stack, TestAccount, SENDER,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn recipient(input: &SendEmailInput) -> String {
    input
        .destination()
        .and_then(|d| d.to_addresses().first())
        .cloned()
        .unwrap_or_default()
}

fn subject(input: &SendEmailInput) -> String {
    input
        .content()
        .and_then(|c| c.simple())
        .and_then(|m| m.subject())
        .map(|s| s.data().to_owned())
        .unwrap_or_default()
}

fn is_notice(text: &str) -> bool {
    text.contains("Security notice") || text.starts_with("The ")
}

/// The security notices the emulators hold for `to`.
async fn notices_to(stack: &Stack, to: &str) -> usize {
    stack
        .messages_to(to)
        .await
        .iter()
        .filter(|m| is_notice(m))
        .count()
}

/// A main account and an email-only duplicate, migrated and closed.
async fn completed_migration(stack: &Stack) -> (TestAccount, TestAccount, String) {
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    let (id, closed) = stack
        .migrate_fully(&main, &duplicate.email, unix_now())
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    (main, duplicate, id)
}

fn of_type(events: &[Value], t: EventType) -> Vec<&Value> {
    events.iter().filter(|e| e["type"] == t.as_str()).collect()
}

#[tokio::test]
async fn a_completed_migration_announces_exactly_its_events_once() {
    let stack = Stack::new().await;
    let (main, duplicate, id) = completed_migration(&stack).await;

    let first = stack.deliver().await;
    assert_eq!((first.delivered, first.failed), (1, 0), "{first:?}");
    // A second relay over the whole stream finds everything delivered.
    stack.deliver().await;

    let envelopes = stack.event_sink().await.envelopes().await;
    assert_eq!(envelopes.len(), 2, "{envelopes:#?}");
    for envelope in &envelopes {
        assert_eq!(envelope["source"], "contact-migration");
        assert_eq!(envelope["detail-type"], envelope["detail"]["type"]);
    }
    let events = stack.events().await;
    let migrated = of_type(&events, EventType::ContactMigrated);
    let closed = of_type(&events, EventType::AccountClosed);
    assert_eq!((migrated.len(), closed.len()), (1, 1), "{events:#?}");
    let (migrated, closed) = (migrated[0], closed[0]);
    for event in [migrated, closed] {
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["source"], "contact-migration");
        assert_eq!(event["datacontenttype"], "application/json");
        assert_eq!(event["data"]["migration_id"], id.as_str());
        assert_eq!(
            event["id"],
            format!("{id}/{}", event["type"].as_str().unwrap())
        );
        assert_eq!(
            event["sequence"], "000000000001",
            "the accounts' first event"
        );
    }
    assert_eq!(migrated["subject"], main.id.as_str());
    assert_eq!(migrated["data"]["from_account_id"], duplicate.id.as_str());
    assert_eq!(closed["subject"], duplicate.id.as_str());
    assert_eq!(
        closed["data"]["contact_moved_to_account_id"],
        main.id.as_str()
    );
    let hold = migrated["data"]["withdrawal_hold_until"].as_str().unwrap();
    assert!(hold > migrated["time"].as_str().unwrap(), "{hold}");

    // The notices: the main account's previous address and the moved one,
    // once each.
    for to in [&main.email, &duplicate.email] {
        assert_eq!(notices_to(&stack, to).await, 1, "{to}");
    }
}

#[tokio::test]
async fn no_event_body_contains_a_contact_value_code_or_secret() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Phone).await;
    let duplicate = stack
        .account(end_to_end::AccountSpec {
            phone: true,
            no_totp: true,
            ..Default::default()
        })
        .await;
    let now = unix_now();
    let new_contact = duplicate.phone.clone().unwrap();
    let (id, verified) = stack.start_and_verify(&main, &new_contact, now).await;
    assert_eq!(verified.body["state"], "verified", "{verified:?}");
    let codes = stack
        .codes(&new_contact, main.phone.as_deref().unwrap())
        .await;
    stack.step(&main, &id, "migrate", json!({}), now).await;
    let closed = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    stack.deliver().await;

    let bodies = serde_json::to_string(&stack.event_sink().await.envelopes().await).unwrap();
    assert!(bodies.contains(&main.id), "the events are there: {bodies}");
    let secret = main.totp_secret.clone().unwrap();
    let forbidden = vec![
        main.email.clone(),
        main.phone.clone().unwrap(),
        duplicate.email.clone(),
        new_contact.clone(),
        secret,
        codes.0,
        codes.1,
    ];
    for value in forbidden {
        assert!(!bodies.contains(&value), "{value} in {bodies}");
    }
}

#[tokio::test]
async fn a_plain_change_announces_contact_changed() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let fresh = unique_contact(Channel::Email, "fresh");
    let (_, verified) = stack.start_and_verify(&main, &fresh, unix_now()).await;
    assert_eq!(verified.body["state"], "completed", "{verified:?}");
    stack.deliver().await;

    let events = stack.events().await;
    let changed = of_type(&events, EventType::ContactChanged);
    assert_eq!((events.len(), changed.len()), (1, 1), "{events:#?}");
    assert_eq!(changed[0]["subject"], main.id.as_str());
    assert_eq!(changed[0]["data"]["channel"], "email");
    for to in [&main.email, &fresh] {
        assert_eq!(notices_to(&stack, to).await, 1, "{to}");
    }
}

#[tokio::test]
async fn a_lock_announces_migration_locked() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let now = unix_now();
    let started = stack
        .start(&main, &unique_contact(Channel::Email, "x"), now)
        .await;
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    for _ in 0..stack.app.policy.max_failed_attempts {
        let wrong = stack
            .verify(&main, &id, ("000000", "000000", "000000"), now)
            .await;
        assert_eq!(wrong.status, 422, "{wrong:?}");
    }
    stack.deliver().await;

    let events = stack.events().await;
    let locked = of_type(&events, EventType::MigrationLocked);
    assert_eq!((events.len(), locked.len()), (1, 1), "{events:#?}");
    assert_eq!(locked[0]["subject"], main.id.as_str());
    assert_eq!(locked[0]["data"]["failed_attempts"], 5);
}

#[tokio::test]
async fn a_cancelled_transaction_announces_nothing() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    let now = unix_now();
    let (id, _) = stack.start_and_verify(&main, &duplicate.email, now).await;
    stack.step(&main, &id, "migrate", json!({}), now).await;
    // The duplicate's assets change after `migrate`: the closing
    // transaction's condition refuses, and nothing of it is written.
    let mut changed = stack.stored_account(&duplicate.id).await;
    changed.has_assets = false;
    end_to_end::overwrite_account(&stack, &changed).await;
    let refused = stack.close_all_acknowledged(&main, &id, now).await;
    assert_eq!(refused.status, 409, "{refused:?}");

    assert_eq!(stack.app.store.outbox(&id).await.unwrap(), None);
    let poll = stack.deliver().await;
    assert_eq!((poll.delivered, poll.failed), (0, 0));
    assert!(stack.events().await.is_empty());
    assert_eq!(notices_to(&stack, &duplicate.email).await, 0);
    assert_eq!(
        stack.app.store.sequences(&[&main.id]).await.unwrap()[0].committed,
        0
    );
}

/// SES refuses every security notice until told otherwise.
fn notices_throttled() -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_sesv2::Client::send_email)
        .match_requests(|input| subject(input).starts_with("Security notice"))
        .then_error(|| {
            SendEmailError::TooManyRequestsException(
                TooManyRequestsException::builder().message("slow").build(),
            )
        })
}

async fn email_courier(ses: aws_sdk_sesv2::Client) -> Courier {
    Courier::new(
        ses,
        SENDER,
        sns_client(&local_config().await, &sns_endpoint()),
        None,
    )
}

#[tokio::test]
async fn a_failed_notice_never_undoes_the_commit_and_is_retried_until_delivered() {
    let stack = Stack::new().await;
    let (main, duplicate, id) = completed_migration(&stack).await;

    let throttled = mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&notices_throttled()]);
    let failing = stack.with_courier(email_courier(throttled).await);
    let poll = failing.deliver().await;
    assert!(poll.failed > 0, "the record is reported failed: {poll:?}");
    assert_eq!(poll.delivered, 0);
    // The commit stands; the events went out; the notices wait.
    let stored = stack.stored_account(&main.id).await;
    assert_eq!(stored.email.unwrap().value(), duplicate.email);
    assert_eq!(stack.events().await.len(), 2);
    let stored = stack.app.store.outbox(&id).await.unwrap().unwrap();
    let emails = stored
        .outbox
        .notices
        .iter()
        .filter(|n| n.to.channel() == Channel::Email);
    for notice in emails {
        assert!(!stored.delivered.contains_key(&notice.id), "{stored:?}");
    }

    let poll = stack.deliver().await;
    assert_eq!((poll.delivered, poll.failed), (1, 0), "{poll:?}");
    for to in [&main.email, &duplicate.email] {
        assert_eq!(notices_to(&stack, to).await, 1, "{to}");
    }
    assert_eq!(stack.events().await.len(), 2, "no event published twice");
}

/// The relay sends notices concurrently, and records each once it is sent:
/// a process that dies can leave only the notices it was sending unrecorded,
/// and only those can go out again.
#[tokio::test]
async fn a_relay_killed_mid_batch_loses_nothing_and_sends_no_recorded_notice_again() {
    let stack = Stack::new().await;
    let mut expected = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (main, duplicate, id) = completed_migration(&stack).await;
        expected.extend([main.email, duplicate.email]);
        ids.push(id);
    }

    // The process dies as it is about to send the third notice.
    let sent_before_death = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let dying = {
        let (sent, calls) = (sent_before_death.clone(), calls.clone());
        mock!(aws_sdk_sesv2::Client::send_email).then_compute_output(move |input| {
            if calls.fetch_add(1, Ordering::SeqCst) == 2 {
                panic!("the relay process dies here");
            }
            sent.lock().unwrap().push(recipient(input));
            SendEmailOutput::builder().message_id("m").build()
        })
    };
    let ses = mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&dying]);
    let doomed = stack.with_courier(email_courier(ses).await);
    let died = tokio::spawn(async move { doomed.deliver().await }).await;
    assert!(died.is_err(), "the first relay died mid-batch");
    let before = sent_before_death.lock().unwrap().clone();
    assert_eq!(before.len(), 2, "{before:?}");
    // What the dead process recorded as sent: only what it had sent.
    let mut recorded = Vec::new();
    for id in &ids {
        let stored = stack.app.store.outbox(id).await.unwrap().unwrap();
        recorded.extend(
            stored
                .outbox
                .notices
                .iter()
                .filter(|n| stored.delivered.contains_key(&n.id))
                .map(|n| n.to.value().to_owned()),
        );
    }
    for to in &recorded {
        assert!(before.contains(to), "{to} recorded but never sent");
    }

    // Restarted, from the stream's oldest record.
    let poll = stack.deliver().await;
    assert_eq!(poll.failed, 0, "{poll:?}");
    for to in &expected {
        let after = notices_to(&stack, to).await;
        let again = usize::from(!recorded.contains(to));
        assert_eq!(after, again, "{to}: sent {before:?}, recorded {recorded:?}");
    }
    let events = stack.events().await;
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((events.len(), ids.len()), (4, 4), "{events:#?}");
}

/// An outbox's stream record, as the event source mapping delivers it.
fn record(migration_id: &str, sequence_number: &str) -> Value {
    json!({
        "eventID": sequence_number,
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/s",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": format!("OUTBOX#{migration_id}")}, "sk": {"S": "OUTBOX"}},
            "SequenceNumber": sequence_number,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

fn batch(records: &[Value]) -> StreamEvent {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

#[tokio::test]
async fn events_for_one_account_are_published_in_sequence_order() {
    let stack = Stack::new().await;
    let main = stack.main_account(Channel::Email).await;
    let now = unix_now();
    // Three commits about the main account: a plain change of its phone,
    // a locked migration, and a migration of a duplicate's email.
    let phone = unique_contact(Channel::Phone, "p");
    let (change, verified) = stack.start_and_verify(&main, &phone, now).await;
    assert_eq!(verified.body["state"], "completed", "{verified:?}");
    let started = stack
        .start(&main, &unique_contact(Channel::Email, "x"), now)
        .await;
    let lock = started.body["migration_id"].as_str().unwrap().to_owned();
    for _ in 0..stack.app.policy.max_failed_attempts {
        stack
            .verify(&main, &lock, ("000000", "000000", "000000"), now)
            .await;
    }
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    // A later TOTP step: the plain change spent this one.
    let (closure, closed) = stack.migrate_fully(&main, &duplicate.email, now + 30).await;
    assert_eq!(closed.status, 200, "{closed:?}");

    let relay = stack.relay().await;
    // The newest first, alone: it waits for its predecessors, publishing nothing.
    let answer = relay.handle(batch(&[record(&closure, "3")])).await;
    assert_eq!(answer.batch_item_failures.len(), 1, "{answer:?}");
    assert_eq!(answer.batch_item_failures[0].item_identifier, "3");
    let early = stack.events().await;
    assert!(
        early.iter().all(|e| e["subject"] != main.id.as_str()),
        "{early:#?}"
    );
    // Then all three in the wrong order in one batch.
    let answer = relay
        .handle(batch(&[
            record(&closure, "3"),
            record(&lock, "2"),
            record(&change, "1"),
        ]))
        .await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");

    let about_main: Vec<String> = stack
        .events()
        .await
        .iter()
        .filter(|e| e["subject"] == main.id.as_str())
        .map(|e| {
            format!(
                "{} {}",
                e["sequence"].as_str().unwrap(),
                e["type"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        about_main,
        [
            "000000000001 contact.changed.v1",
            "000000000002 migration.locked.v1",
            "000000000003 contact.migrated.v1"
        ],
        "published in sequence order"
    );
}

#[tokio::test]
async fn put_events_partial_failure_retries_only_the_failed_entries() {
    let stack = Stack::new().await;
    let (main, duplicate, id) = completed_migration(&stack).await;

    let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let partial = {
        let calls = calls.clone();
        mock!(aws_sdk_eventbridge::Client::put_events).then_compute_output(move |input| {
            let types: Vec<String> = input
                .entries()
                .iter()
                .map(|e| e.detail_type().unwrap_or_default().to_owned())
                .collect();
            let mut seen = calls.lock().unwrap();
            seen.push(types.clone());
            // The first call loses its first entry; later calls take all.
            let entries = types
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    if seen.len() == 1 && i == 0 {
                        PutEventsResultEntry::builder()
                            .error_code("InternalFailure")
                            .error_message("try again")
                            .build()
                    } else {
                        PutEventsResultEntry::builder()
                            .event_id(format!("e{i}"))
                            .build()
                    }
                })
                .collect();
            PutEventsOutput::builder()
                .failed_entry_count(i32::from(seen.len() == 1))
                .set_entries(Some(entries))
                .build()
        })
    };
    let eventbridge = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, &[&partial]);
    let relay = Relay {
        store: stack.app.store.clone(),
        courier: stack.courier(),
        bus: EventBus::new(eventbridge, "contact-migration"),
    };
    let answer = relay.handle(batch(&[record(&id, "1")])).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].len(), 2, "both events in one call: {calls:?}");
    assert_eq!(
        calls[1],
        vec![calls[0][0].clone()],
        "only the failed entry again"
    );
    let heads = stack
        .app
        .store
        .event_heads(&[&main.id, &duplicate.id])
        .await
        .unwrap();
    assert_eq!(heads, vec![(1, 1), (1, 1)], "both recorded as published");
}

#[tokio::test]
async fn an_event_bus_that_stays_down_fails_the_record_and_publishes_later() {
    let stack = Stack::new().await;
    let (_, _, id) = completed_migration(&stack).await;
    let down = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
        PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(
                PutEventsResultEntry::builder()
                    .error_code("ThrottlingException")
                    .build(),
            )
            .entries(
                PutEventsResultEntry::builder()
                    .error_code("ThrottlingException")
                    .build(),
            )
            .build()
    });
    let relay = Relay {
        store: stack.app.store.clone(),
        courier: stack.courier(),
        bus: EventBus::new(
            mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, &[&down]),
            "contact-migration",
        ),
    };
    let answer = relay.handle(batch(&[record(&id, "7")])).await;
    assert_eq!(answer.batch_item_failures.len(), 1, "{answer:?}");

    // The notices went; the retry publishes the events and sends nothing again.
    let poll = stack.deliver().await;
    assert_eq!((poll.delivered, poll.failed), (1, 0), "{poll:?}");
    let events = stack.events().await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let stored = stack.app.store.outbox(&id).await.unwrap().unwrap();
    let delivered: HashMap<String, String> = stored.delivered;
    assert_eq!(
        delivered.len(),
        stored.outbox.notices.len(),
        "{delivered:?}"
    );
}
