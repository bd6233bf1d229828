//! The events the service publishes are the ones `docs/asyncapi.yaml`
//! describes: each type is produced for real (a completed migration, a plain
//! change, a locked migration), delivered by the relay to the stack's event
//! bus, read back from the queue its rule fills, and validated against the
//! payload schema of its message. The same schemas refuse broken events, so
//! the check can fail; and no event carries a contact, a code or a secret.

use contact_migration::domain::event::{EventType, SOURCE};
use contact_migration::domain::Channel;
use end_to_end::{current_contact_of, unique_contact, unix_now, Stack};
use jsonschema::Validator;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn asyncapi() -> Value {
    let path = format!("{}/../docs/asyncapi.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The messages of the document, by name.
fn messages() -> BTreeMap<String, Value> {
    let doc = asyncapi();
    let messages = doc["components"]["messages"]
        .as_object()
        .expect("components.messages");
    messages
        .iter()
        .map(|(key, message)| {
            assert_eq!(
                message["name"],
                key.as_str(),
                "message {key} is named by its key"
            );
            (key.clone(), message.clone())
        })
        .collect()
}

/// A validator of each message's payload (AsyncAPI's default schema format
/// is a superset of JSON Schema Draft 7), formats (`date-time`) included.
fn validators() -> BTreeMap<String, Validator> {
    messages()
        .into_iter()
        .map(|(name, message)| {
            let payload = &message["payload"];
            jsonschema::draft7::meta::validate(payload)
                .unwrap_or_else(|e| panic!("{name}: the payload is not a JSON Schema: {e}"));
            let validator = jsonschema::draft7::options()
                .should_validate_formats(true)
                .build(payload)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, validator)
        })
        .collect()
}

fn errors(validator: &Validator, event: &Value) -> Vec<String> {
    validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// `event` broken in every way a schema must notice: each attribute
/// missing, each data field missing, an unknown data field, a wrong
/// constant, a malformed sequence or time.
fn broken(event: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for attribute in event.as_object().unwrap().keys() {
        let mut e = event.clone();
        e.as_object_mut().unwrap().remove(attribute);
        out.push((format!("without {attribute}"), e));
    }
    for field in event["data"].as_object().unwrap().keys() {
        let mut e = event.clone();
        e["data"].as_object_mut().unwrap().remove(field);
        out.push((format!("without data.{field}"), e));
    }
    let changes: [(&str, &str, Value); 8] = [
        ("data", "email", json!("someone@example.com")),
        ("data", "code", json!("123456")),
        ("", "extension", json!("x")),
        ("", "specversion", json!("0.3")),
        ("", "source", json!("someone-else")),
        ("", "sequence", json!("1")),
        ("", "time", json!("yesterday")),
        ("data", "channel", json!("fax")),
    ];
    for (at, field, value) in changes {
        let mut e = event.clone();
        let target = if at.is_empty() { &mut e } else { &mut e[at] };
        target[field] = value.clone();
        out.push((format!("with {at}.{field} = {value}"), e));
    }
    out
}

#[test]
fn the_document_describes_exactly_the_four_event_types() {
    let doc = asyncapi();
    assert!(
        doc["asyncapi"].as_str().unwrap_or("").starts_with("3."),
        "AsyncAPI 3: {}",
        doc["asyncapi"]
    );
    let names: Vec<String> = messages().into_keys().collect();
    let mut types: Vec<String> = EventType::ALL.iter().map(|t| t.as_str().into()).collect();
    types.sort();
    assert_eq!(names, types);
    assert_eq!(doc["channels"]["events"]["address"], "contact-migration");

    // Every example validates against its own schema, not another's, and
    // every broken copy of it is refused.
    let validators = validators();
    for (name, message) in messages() {
        let examples = message["examples"].as_array().expect("examples");
        assert!(!examples.is_empty(), "{name}: an example");
        for example in examples {
            let event = &example["payload"];
            for (other, validator) in &validators {
                let errors = errors(validator, event);
                if *other == name {
                    assert!(errors.is_empty(), "{name}: {errors:?}");
                } else {
                    assert!(!errors.is_empty(), "a {name} example passes as {other}");
                }
            }
            for (what, event) in broken(event) {
                assert!(
                    !validators[&name].is_valid(&event),
                    "{name}: the example {what} is accepted"
                );
            }
        }
    }
}

/// A code of the same length that is certainly wrong: each digit shifted.
fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_digit((d + 1) % 10, 10).unwrap(),
            None => c,
        })
        .collect()
}

#[tokio::test]
async fn every_published_event_matches_its_asyncapi_schema() {
    let validators = validators();
    let stack = Stack::new().await;
    let now = unix_now();
    // Strings that must never appear in an event.
    let mut secrets: Vec<String> = Vec::new();

    // A completed email migration: contact.migrated.v1 about the main
    // account, account.closed.v1 about the duplicate.
    let main = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    let (migrated_id, verified) = stack.start_and_verify(&main, &duplicate.email, now).await;
    assert_eq!(verified.body["state"], "verified", "{verified:?}");
    let (new_code, current_code) = stack
        .codes(
            &duplicate.email,
            current_contact_of(&main, &duplicate.email),
        )
        .await;
    secrets.extend([new_code, current_code, main.totp_at(now)]);
    let migrated = stack
        .step(&main, &migrated_id, "migrate", json!({}), now)
        .await;
    assert_eq!(migrated.status, 200, "{migrated:?}");
    let closed = stack.close_all_acknowledged(&main, &migrated_id, now).await;
    assert_eq!(closed.status, 200, "{closed:?}");
    assert_eq!(closed.body["state"], "completed", "{closed:?}");

    // A plain change of a phone number: contact.changed.v1.
    let changer = stack.main_account(Channel::Phone).await;
    let fresh_phone = unique_contact(Channel::Phone, "changed");
    let (changed_id, changed) = stack.start_and_verify(&changer, &fresh_phone, now).await;
    assert_eq!(changed.body["state"], "completed", "{changed:?}");
    let (new_code, current_code) = stack
        .codes(&fresh_phone, current_contact_of(&changer, &fresh_phone))
        .await;
    secrets.extend([new_code, current_code, changer.totp_at(now)]);

    // Five wrong verifications: migration.locked.v1.
    let guesser = stack.main_account(Channel::Email).await;
    let target = unique_contact(Channel::Email, "locked");
    let started = stack.start(&guesser, &target, now).await;
    assert_eq!(started.status, 201, "{started:?}");
    let locked_id = started.body["migration_id"].as_str().unwrap().to_owned();
    let (new_code, current_code) = stack
        .codes(&target, current_contact_of(&guesser, &target))
        .await;
    let guesses = (
        wrong(&new_code),
        wrong(&current_code),
        wrong(&guesser.totp_at(now)),
    );
    for remaining in (0..5).rev() {
        let answer = stack
            .verify(
                &guesser,
                &locked_id,
                (&guesses.0, &guesses.1, &guesses.2),
                now,
            )
            .await;
        assert_eq!(answer.status, 422, "{answer:?}");
        assert_eq!(answer.body["error"]["attempts_remaining"], remaining);
    }
    secrets.extend([new_code, current_code]);

    let delivered = stack.deliver().await;
    assert_eq!(delivered.failed, 0, "{delivered:?}");
    let events = stack.events().await;
    let envelopes = stack.event_sink().await.envelopes().await;

    // Exactly one event of each type, each about the account it concerns.
    let expected = [
        (
            "contact.migrated.v1",
            migrated_id.as_str(),
            main.id.as_str(),
        ),
        (
            "account.closed.v1",
            migrated_id.as_str(),
            duplicate.id.as_str(),
        ),
        (
            "contact.changed.v1",
            changed_id.as_str(),
            changer.id.as_str(),
        ),
        (
            "migration.locked.v1",
            locked_id.as_str(),
            guesser.id.as_str(),
        ),
    ];
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (event_type, migration, subject) in expected {
        let found: Vec<&Value> = events.iter().filter(|e| e["type"] == event_type).collect();
        assert_eq!(found.len(), 1, "one {event_type} in {events:#?}");
        let event = found[0];
        assert_eq!(event["id"], format!("{migration}/{event_type}"));
        assert_eq!(event["subject"], subject);
        assert_eq!(event["data"]["migration_id"], migration);
        assert_eq!(event["data"]["account_id"], subject);
        // Each account's first event.
        assert_eq!(event["sequence"], "000000000001", "{event}");
    }
    assert_eq!(
        events
            .iter()
            .find(|e| e["type"] == "migration.locked.v1")
            .unwrap()["data"]["failed_attempts"],
        5
    );

    // The EventBridge entries: Source and DetailType as the document says.
    for envelope in &envelopes {
        assert_eq!(envelope["source"], SOURCE, "{envelope}");
        assert_eq!(envelope["detail-type"], envelope["detail"]["type"]);
    }

    // Every event against the schema of its type; no other type's schema
    // takes it; and each broken copy of it is refused.
    for event in &events {
        let name = event["type"].as_str().expect("a type");
        let validator = validators
            .get(name)
            .unwrap_or_else(|| panic!("no schema for {name}"));
        let errors = errors(validator, event);
        assert!(errors.is_empty(), "{name}: {errors:?} in {event:#}");
        for (other, validator) in &validators {
            if other != name {
                assert!(!validator.is_valid(event), "{name} passes as {other}");
            }
        }
        for (what, broken) in broken(event) {
            assert!(
                !validator.is_valid(&broken),
                "{name} {what} is accepted: {broken:#}"
            );
        }
    }

    // No contact, code or secret anywhere in what consumers receive.
    secrets.extend([
        main.email.clone(),
        duplicate.email.clone(),
        duplicate.phone.clone().unwrap(),
        changer.email.clone(),
        changer.phone.clone().unwrap(),
        fresh_phone.clone(),
        guesser.email.clone(),
        target.clone(),
    ]);
    for account in [&main, &changer, &guesser] {
        secrets.push(account.totp_secret.clone().expect("TOTP enrolled"));
    }
    // Phone numbers without their `+` too.
    let bare: Vec<String> = secrets
        .iter()
        .filter_map(|s| s.strip_prefix('+').map(str::to_owned))
        .collect();
    secrets.extend(bare);
    let received = serde_json::to_string(&envelopes).unwrap();
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !contains(&received, secret),
            "{secret:?} is in the events: {received}"
        );
    }
}

/// Whether `text` contains `secret`; a number only as a whole number (a
/// six-digit code may well be part of the twelve-digit `sequence` or the
/// AWS account id of an envelope).
fn contains(text: &str, secret: &str) -> bool {
    if !secret.bytes().all(|b| b.is_ascii_digit()) {
        return text.contains(secret);
    }
    let bytes = text.as_bytes();
    text.match_indices(secret).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + secret.len()).copied();
        !before.is_some_and(|b| b.is_ascii_digit()) && !after.is_some_and(|b| b.is_ascii_digit())
    })
}

#[test]
fn a_code_is_found_as_a_whole_number_only() {
    assert!(contains(r#"{"code":"123456"}"#, "123456"));
    assert!(contains("a 123456 b", "123456"));
    assert!(!contains(r#"{"sequence":"000000123456"}"#, "123456"));
    assert!(contains("x j@example.com", "j@example.com"));
}
