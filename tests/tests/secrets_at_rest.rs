//! TOTP secrets at rest (PRODUCT.md §4): the table holds each secret only
//! sealed under the TOTP key, bound to its account, so neither the table nor
//! its stream, backups or exports carry one in the clear, and a ciphertext
//! moved onto another account's item opens for nobody.

use aws_sdk_dynamodb::types::AttributeValue;
use contact_migration::domain::{Channel, Error};
use contact_migration::store::item::{self, Item};
use end_to_end::{invariants, unix_now, AccountSpec, LogBuffer, Stack, TestAccount};

/// The bytes a base32 (RFC 4648, no padding) secret stands for.
fn base32_bytes(secret: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut width, mut out) = (0u32, 0, Vec::new());
    for c in secret.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .expect("a base32 secret") as u32;
        bits = (bits << 5) | value;
        width += 5;
        if width >= 8 {
            width -= 8;
            out.push((bits >> width) as u8);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `value`, anywhere inside it, holds `secret`: as text (any case)
/// or as the bytes it encodes.
fn holds(value: &AttributeValue, secret: &str) -> bool {
    let text = secret.to_ascii_lowercase();
    let raw = base32_bytes(secret);
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.to_ascii_lowercase().contains(&text),
        AttributeValue::Ss(ss) | AttributeValue::Ns(ss) => {
            ss.iter().any(|s| s.to_ascii_lowercase().contains(&text))
        }
        AttributeValue::B(b) => {
            let b = b.as_ref();
            contains(b, &raw) || contains(&b.to_ascii_lowercase(), text.as_bytes())
        }
        AttributeValue::Bs(bs) => bs.iter().any(|b| contains(b.as_ref(), &raw)),
        AttributeValue::L(values) => values.iter().any(|v| holds(v, secret)),
        AttributeValue::M(map) => map.values().any(|v| holds(v, secret)),
        _ => false,
    }
}

#[tokio::test]
async fn totp_secret_is_never_stored_in_the_clear() {
    let stack = Stack::new().await;
    let now = unix_now();
    let mut secrets = Vec::new();
    let mut mains = Vec::new();
    for ch in [Channel::Email, Channel::Phone] {
        let main = stack.main_account(ch).await;
        let duplicate = stack.duplicate_account(ch, false).await;
        let (_, closed) = stack.migrate_fully(&main, duplicate.contact(ch), now).await;
        assert_eq!(closed.status, 200, "{closed:?}");
        secrets.push(main.totp_secret.clone().unwrap());
        mains.push(main);
    }
    // An enrolled account that took part in no migration.
    let other = stack
        .account(AccountSpec {
            phone: true,
            ..AccountSpec::default()
        })
        .await;
    secrets.push(other.totp_secret.clone().unwrap());

    let items = invariants::scan(&stack).await;
    assert!(items.len() > 10, "the flows wrote their items");
    for secret in &secrets {
        for it in &items {
            for (name, value) in it {
                assert!(
                    !holds(value, secret),
                    "attribute {name} of item {:?} holds a TOTP secret",
                    item::get_s(it, item::PK)
                );
            }
        }
    }
    // The secrets are there, sealed, and still open for their accounts.
    for main in mains.iter().chain([&other]) {
        let stored = stack
            .stored_item(item::account_key(&main.id))
            .await
            .unwrap();
        assert!(!stored.contains_key("totp_secret"));
        assert!(matches!(
            stored.get(item::TOTP_SECRET_CIPHERTEXT),
            Some(AttributeValue::B(_))
        ));
        let account = stack.stored_account(&main.id).await;
        assert_eq!(
            stack.app.totp_secret(&account).await.unwrap(),
            main.totp_secret
        );
    }
}

#[tokio::test]
async fn a_sealed_secret_opens_only_for_the_account_it_was_sealed_for() {
    let stack = Stack::new().await;
    let vault = stack.vault();
    let sealed = vault.seal("account-a", "JBSWY3DPEHPK3PXP").await.unwrap();
    assert_eq!(
        vault.open("account-a", &sealed).await.unwrap(),
        "JBSWY3DPEHPK3PXP"
    );
    // KMS authenticates the encryption context with the ciphertext.
    let elsewhere = vault.open("account-b", &sealed).await;
    assert!(
        matches!(elsewhere, Err(Error::Internal(_))),
        "{elsewhere:?}"
    );
    assert!(!format!("{sealed:?}").contains("JBSWY3DPEHPK3PXP"));
}

async fn set_ciphertext(stack: &Stack, account_id: &str, ciphertext: AttributeValue) {
    let mut stored = stack
        .stored_item(item::account_key(account_id))
        .await
        .unwrap();
    stored.insert(item::TOTP_SECRET_CIPHERTEXT.into(), ciphertext);
    put(stack, stored).await;
}

async fn put(stack: &Stack, it: Item) {
    stack
        .app
        .store
        .client()
        .put_item()
        .table_name(stack.app.store.table())
        .set_item(Some(it))
        .send()
        .await
        .unwrap();
}

fn ciphertext_of(it: &Item) -> AttributeValue {
    it.get(item::TOTP_SECRET_CIPHERTEXT)
        .cloned()
        .expect("the account is enrolled")
}

#[tokio::test(flavor = "current_thread")]
async fn totp_secret_ciphertext_is_bound_to_its_account() {
    // This test's logs, on this thread only.
    let logs = LogBuffer::default();
    let _logging = tracing::subscriber::set_default(contact_migration::lambda::json_logs(
        logs.clone(),
        tracing::Level::INFO,
    ));
    let stack = Stack::new().await;
    let now = unix_now();
    let victim = stack.main_account(Channel::Email).await;
    let duplicate = stack.duplicate_account(Channel::Email, false).await;
    // Someone who can write the table, with an authenticator of their own.
    let intruder: TestAccount = stack.account(AccountSpec::default()).await;

    let started = stack.start(&victim, &duplicate.email, now).await;
    assert_eq!(started.status, 201, "{started:?}");
    let id = started.body["migration_id"].as_str().unwrap().to_owned();
    let (new_code, current_code) = stack.codes(&duplicate.email, &victim.email).await;

    let own = stack
        .stored_item(item::account_key(&victim.id))
        .await
        .unwrap();
    let foreign = ciphertext_of(
        &stack
            .stored_item(item::account_key(&intruder.id))
            .await
            .unwrap(),
    );
    set_ciphertext(&stack, &victim.id, foreign.clone()).await;
    let migration_before = stack.stored_item(item::migration_key(&id)).await;
    let account_before = stack.stored_item(item::account_key(&victim.id)).await;

    // The intruder's code (right for the moved secret), then the victim's.
    for totp in [intruder.totp_at(now), victim.totp_at(now)] {
        let answer = stack
            .verify(&victim, &id, (&new_code, &current_code, &totp), now)
            .await;
        assert_eq!(answer.status, 500, "{answer:?}");
        assert_eq!(answer.error_code(), "internal");
        assert_eq!(
            stack.stored_item(item::migration_key(&id)).await,
            migration_before,
            "a secret that does not open changes nothing"
        );
        assert_eq!(
            stack.stored_item(item::account_key(&victim.id)).await,
            account_before
        );
    }
    let written = logs.text();
    assert!(written.contains("internal error"), "{written}");
    let AttributeValue::B(foreign) = foreign else {
        unreachable!()
    };
    let hex: String = foreign
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for form in [aws_smithy_types::base64::encode(foreign.as_ref()), hex] {
        assert!(!written.contains(&form), "the ciphertext was logged");
    }

    // Its own ciphertext back, the victim's code passes: the refusals above
    // were the binding, not a broken verify.
    put(&stack, own).await;
    let answer = stack
        .verify(
            &victim,
            &id,
            (&new_code, &current_code, &victim.totp_at(now)),
            now,
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["state"], "verified");
}

/// What opening a secret adds to each verify and close: one KMS `Decrypt`.
/// A measurement, not a rule: `cargo test -p end-to-end --test
/// secrets_at_rest -- --ignored --nocapture` (against local moto; KMS in a
/// region answers in a few milliseconds).
#[tokio::test]
#[ignore]
async fn opening_a_secret_costs_one_kms_round_trip() {
    let stack = Stack::new().await;
    let id = stack.main_account(Channel::Email).await.id;
    let account = stack.stored_account(&id).await;
    let decrypt = timings(|| async {
        assert!(stack.app.totp_secret(&account).await.unwrap().is_some());
    })
    .await;
    // For scale: reading the account item from DynamoDB Local.
    let read = timings(|| async {
        assert!(stack.app.store.account(&id).await.unwrap().is_some());
    })
    .await;
    for (what, t) in [
        ("KMS Decrypt (moto)", decrypt),
        ("GetItem (DynamoDB Local)", read),
    ] {
        println!(
            "{what}, {} calls: median {:?}, p90 {:?}, max {:?}",
            t.len(),
            t[t.len() / 2],
            t[t.len() * 9 / 10],
            t[t.len() - 1]
        );
    }
}

/// 48 timed calls, sorted, after two that open the connection.
async fn timings<F, Fut>(call: F) -> Vec<std::time::Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut timings = Vec::new();
    for _ in 0..50 {
        let start = std::time::Instant::now();
        call().await;
        timings.push(start.elapsed());
    }
    let mut timings = timings.split_off(2);
    timings.sort();
    timings
}
