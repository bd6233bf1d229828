//! The harness of the end-to-end tests: a fresh table in DynamoDB Local per
//! test, codes read back from the SES emulator's store, and requests shaped
//! exactly as the API Gateway HTTP API (payload 2.0, JWT authorizer) sends
//! them, answered by the same `http::serve` the Lambda functions run.
//!
//! Needs the local stack (`make test` starts it): DynamoDB Local on
//! `AWS_ENDPOINT_URL_DYNAMODB`, the SES emulator on `AWS_ENDPOINT_URL_SESV2`,
//! moto (SNS and KMS) on `AWS_ENDPOINT_URL_SNS` and `AWS_ENDPOINT_URL_KMS`.

use contact_migration::config::TlsRoots;
use contact_migration::domain::{
    totp, Account, AccountStatus, Channel, CodeKey, Contact, Policy, Timestamp,
};
use contact_migration::facts::{Changed, Facts, FactsChange, FactsKey, HttpFacts};
use contact_migration::http::{self, AuthMode, Served};
use contact_migration::notify::Courier;
use contact_migration::store::Store;
use contact_migration::vault::Vault;
use contact_migration::App;
use serde_json::{json, Value};
use std::time::Duration;

pub mod facts;
pub mod faults;
pub mod gate;
pub mod iam;
pub mod invariants;
pub mod relay;
pub mod wire;

/// Every endpoint, as the stack serves them in process.
pub const ALL_ENDPOINTS: Served = http::ALL;

pub const ACKNOWLEDGE_ALL: &[&str] = &[
    "account_closure_permanent",
    "assets_not_transferred",
    "invitation_relationships_lost",
];

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn ses_endpoint() -> String {
    env_or("AWS_ENDPOINT_URL_SESV2", "http://127.0.0.1:8005")
}

pub fn dynamodb_endpoint() -> String {
    env_or("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")
}

/// SDK configuration for the local stack, whatever the environment holds:
/// fixed dummy credentials, never a developer's real ones, and the
/// functions' HTTP client (the SDK crates come without one of their own).
pub async fn local_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(contact_migration::aws::https_client(TlsRoots::System))
        .region(aws_config::Region::new(env_or("AWS_REGION", "us-east-1")))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local", "local", None, None, "tests",
        ))
        .load()
        .await
}

pub fn sns_endpoint() -> String {
    env_or("AWS_ENDPOINT_URL_SNS", "http://127.0.0.1:8006")
}

pub fn sns_client(config: &aws_config::SdkConfig, endpoint: &str) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::config::Builder::from(config)
            .endpoint_url(endpoint)
            .build(),
    )
}

pub fn kms_endpoint() -> String {
    env_or("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:8006")
}

/// The alias of the TOTP key `infra/local/emulators.sh` creates in moto.
pub const TOTP_KEY_ALIAS: &str = "alias/contact-migration-totp";

pub fn kms_client(config: &aws_config::SdkConfig, endpoint: &str) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(config)
            .endpoint_url(endpoint)
            .build(),
    )
}

/// The TOTP key of the local stack: `TOTP_KEY_ID`, else the alias.
pub fn totp_key_id() -> String {
    env_or("TOTP_KEY_ID", TOTP_KEY_ALIAS)
}

/// The vault of the local stack: moto's KMS and the key `TOTP_KEY_ID` names
/// (the alias emulators.sh creates, created here too if this moto was
/// started without it, so the tests do not depend on how it was started).
pub async fn local_vault() -> Vault {
    static KEY_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let kms = kms_client(&local_config().await, &kms_endpoint());
    let key_id = totp_key_id();
    KEY_READY.get_or_init(|| ensure_alias(&kms, &key_id)).await;
    Vault::new(kms, key_id)
}

/// Creates the symmetric key an alias names, if the alias names none.
async fn ensure_alias(kms: &aws_sdk_kms::Client, key_id: &str) {
    if !key_id.starts_with("alias/") {
        return;
    }
    let described = kms.describe_key().key_id(key_id).send().await;
    match described {
        Ok(_) => return,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_not_found_exception()) => {}
        Err(e) => panic!(
            "moto's KMS is reachable (make test starts it): {}",
            aws_sdk_kms::error::DisplayErrorContext(&e)
        ),
    }
    let key = kms
        .create_key()
        .description("contact-migration TOTP secrets (local)")
        .send()
        .await
        .expect("moto creates a key")
        .key_metadata
        .expect("a created key has metadata")
        .key_id;
    // Another test process may have won the race: its alias serves as well.
    if let Err(e) = kms
        .create_alias()
        .alias_name(key_id)
        .target_key_id(key)
        .send()
        .await
    {
        assert!(
            e.as_service_error()
                .is_some_and(|e| e.is_already_exists_exception()),
            "creating {key_id}: {}",
            aws_sdk_kms::error::DisplayErrorContext(&e)
        );
    }
}

/// The courier of the local stack: the SES emulator and the SNS emulator.
pub async fn local_courier() -> Courier {
    let aws = local_config().await;
    Courier::new(
        ses_client(&aws, &ses_endpoint()),
        SENDER,
        sns_client(&aws, &sns_endpoint()),
        None,
    )
}

pub const SENDER: &str = "no-reply@example.com";

/// Log lines written in memory, for tests that install the production
/// subscriber ([`contact_migration::lambda::json_logs`]) over it.
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'w self) -> LogBuffer {
        self.clone()
    }
}

pub fn ses_client(config: &aws_config::SdkConfig, endpoint: &str) -> aws_sdk_sesv2::Client {
    aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(config)
            .endpoint_url(endpoint)
            .build(),
    )
}

/// Runs the requests concurrently and collects their answers in order.
pub async fn all<F>(requests: Vec<F>) -> Vec<Answer>
where
    F: std::future::Future<Output = Answer> + Send + 'static,
{
    let handles: Vec<_> = requests.into_iter().map(tokio::spawn).collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.expect("request task finished"));
    }
    answers
}

pub fn unix_now() -> Timestamp {
    contact_migration::lambda::now()
}

/// A unique address on a domain the emulator accepts.
pub fn unique_email(label: &str) -> String {
    format!("{label}-{}@example.com", uuid::Uuid::new_v4().simple())
}

#[derive(Clone)]
pub struct TestAccount {
    pub id: String,
    pub email: String,
    pub phone: Option<String>,
    /// The secret in the clear, as the account holder's authenticator app
    /// knows it; the table holds it only sealed.
    pub totp_secret: Option<String>,
}

/// A fresh contact on `channel` that nobody owns.
pub fn unique_contact(channel: Channel, label: &str) -> String {
    match channel {
        Channel::Email => unique_email(label),
        Channel::Phone => unique_phone(),
    }
}

impl TestAccount {
    /// The account's contact on `channel`.
    pub fn contact(&self, channel: Channel) -> &str {
        match channel {
            Channel::Email => &self.email,
            Channel::Phone => self.phone.as_deref().expect("account has a phone"),
        }
    }

    pub fn totp_at(&self, at: Timestamp) -> String {
        totp::code_at(self.totp_secret.as_deref().expect("account has TOTP"), at)
            .expect("valid secret")
    }
}

#[derive(Default, Clone, Copy)]
pub struct AccountSpec {
    pub kyc: bool,
    pub assets: bool,
    pub no_totp: bool,
    /// Give the account a (unique) phone number too.
    pub phone: bool,
    /// A withdrawal of the account is in flight.
    pub pending_withdrawal: bool,
}

/// A unique, valid UK mobile number in E.164 (`+447400` and six digits).
pub fn unique_phone() -> String {
    let n =
        u32::from_be_bytes(uuid::Uuid::new_v4().as_bytes()[..4].try_into().unwrap()) % 1_000_000;
    format!("+447400{n:06}")
}

/// One test's world: its own table, the real emulators, and (once asked
/// for) an event bus and queue of its own.
pub struct Stack {
    pub app: App,
    pub http: reqwest::Client,
    events: std::sync::Arc<tokio::sync::OnceCell<relay::EventSink>>,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

impl Answer {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

pub const TEST_SECRET: &[u8] = b"end-to-end-test-secret-0123456789abcdef";

/// The secret the tests' facts endpoints sign with.
pub fn facts_key_bytes() -> &'static [u8] {
    b"end-to-end-facts-secret-0123456789abcdef"
}

pub fn facts_key() -> FactsKey {
    FactsKey::new(facts_key_bytes().to_vec()).expect("long enough")
}

/// The facts port the tests use: `FACTS_ADAPTER=table` reads the table
/// (`store`), anything else (the local stack's `http`) the exchange's
/// stand-in, started in this runtime over the same table, through the
/// `http` adapter as the functions run it.
pub async fn test_facts(store: &Store) -> Facts {
    if std::env::var("FACTS_ADAPTER").as_deref() == Ok("table") {
        return Facts::Table(store.clone());
    }
    let plain = Store::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&local_config().await)
                .endpoint_url(dynamodb_endpoint())
                .build(),
        ),
        store.table(),
    );
    let address = admin::stand_in::spawn(plain, facts_key())
        .await
        .expect("a loopback port for the facts stand-in");
    // A generous timeout: these tests are about the steps, on a machine
    // that may be busy; the fault tests use the production second.
    Facts::Http(Box::new(HttpFacts::new(
        &format!("http://{address}"),
        facts_key(),
        Duration::from_secs(10),
        60,
    )))
}

/// The `http` adapter of the facts port on `url`, as the local stack
/// configures it (one second's timeout).
pub fn facts_client(url: &str) -> HttpFacts {
    HttpFacts::new(url, facts_key(), Duration::from_secs(1), 60)
}

impl Stack {
    pub async fn new() -> Stack {
        Stack::with_policy(Policy::default()).await
    }

    pub async fn with_policy(policy: Policy) -> Stack {
        Stack::build(policy, None).await
    }

    /// A stack whose DynamoDB client passes through `faults`.
    pub async fn with_faults(policy: Policy, faults: &faults::FaultInjector) -> Stack {
        Stack::build(policy, Some(faults.clone())).await
    }

    async fn build(policy: Policy, faults: Option<faults::FaultInjector>) -> Stack {
        let aws = local_config().await;
        let mut config =
            aws_sdk_dynamodb::config::Builder::from(&aws).endpoint_url(dynamodb_endpoint());
        if let Some(faults) = faults {
            config = config.interceptor(faults);
        }
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(config.build());
        let table = format!("test-{}", uuid::Uuid::new_v4().simple());
        let courier = local_courier().await.with_sms_rule(policy.sms.clone());
        let store = Store::new(dynamodb, table);
        store
            .create_table()
            .await
            .expect("DynamoDB Local is reachable (make test starts it)");
        Stack {
            app: App {
                facts: test_facts(&store).await,
                store,
                courier: Some(courier),
                codes: CodeKey::new(TEST_SECRET).expect("long enough").into(),
                vault: Some(local_vault().await),
                policy,
            },
            http: reqwest::Client::new(),
            events: Default::default(),
        }
    }

    /// A stack around an app built elsewhere (as the functions build it).
    pub fn of(app: App) -> Stack {
        Stack {
            app,
            http: reqwest::Client::new(),
            events: Default::default(),
        }
    }

    /// Deletes the stack's table, once a test is done with it: long runs
    /// (`make soak`) make thousands of stacks, and DynamoDB Local slows down
    /// as its tables, each with a stream, pile up. Best effort.
    pub async fn drop_table(&self) {
        let _ = self
            .app
            .store
            .client()
            .delete_table()
            .table_name(self.app.store.table())
            .send()
            .await;
    }

    /// The stack's courier (SES and SNS emulators).
    pub fn courier(&self) -> Courier {
        self.app.courier.clone().expect("the stack sends codes")
    }

    /// The same table and policy, with code delivery through `courier`.
    pub fn with_courier(&self, courier: Courier) -> Stack {
        Stack {
            app: App {
                courier: Some(courier),
                ..self.app.clone()
            },
            http: self.http.clone(),
            events: self.events.clone(),
        }
    }

    /// The stack's event bus and the queue its events are copied to.
    pub async fn event_sink(&self) -> &relay::EventSink {
        self.events
            .get_or_init(|| relay::EventSink::new(self.app.store.table()))
            .await
    }

    /// The relay function's handler over this stack's table, delivering
    /// with the stack's courier to the stack's event bus.
    pub async fn relay(&self) -> contact_migration::relay::Relay {
        contact_migration::relay::Relay {
            store: self.app.store.clone(),
            courier: self.courier(),
            bus: self.event_sink().await.bus(),
        }
    }

    /// Runs the relay over everything the table's stream holds until all of
    /// it is delivered (what `make dev`'s relay does continuously).
    pub async fn deliver(&self) -> contact_migration::relay::local::Poll {
        let relay = self.relay().await;
        let mut poller = relay::poller(&relay).await;
        relay::drain(&mut poller, &relay, 10).await
    }

    /// The CloudEvents published for this stack so far, in arrival order.
    pub async fn events(&self) -> Vec<Value> {
        self.event_sink().await.events().await
    }

    pub async fn account(&self, spec: AccountSpec) -> TestAccount {
        let email = unique_email(if spec.kyc { "kyc" } else { "user" });
        let phone = spec.phone.then(unique_phone);
        let id = uuid::Uuid::new_v4().to_string();
        let totp_secret = (!spec.no_totp).then(|| totp::generate_secret(&mut rand::rng()));
        let sealed = match &totp_secret {
            Some(secret) => Some(self.vault().seal(&id, secret).await.expect("KMS seals")),
            None => None,
        };
        let account = Account {
            account_id: id.clone(),
            email: Some(Contact::parse(Channel::Email, &email).unwrap()),
            phone: phone
                .as_ref()
                .map(|p| Contact::parse(Channel::Phone, p).unwrap()),
            status: AccountStatus::Active,
            kyc_verified: spec.kyc,
            has_assets: spec.assets,
            referral_code: Some(format!("REF{}", &id[..6])),
            referral_code_active: true,
            totp_secret: sealed,
            totp_last_step: None,
            token_version: 0,
        };
        assert!(self.app.store.create_account(&account).await.unwrap());
        if spec.pending_withdrawal {
            self.set_facts(
                &id,
                FactsChange {
                    pending_withdrawals: Some(true),
                    ..FactsChange::default()
                },
            )
            .await;
        }
        TestAccount {
            id,
            email,
            phone,
            totp_secret,
        }
    }

    /// Changes an account's facts through the stack's facts port, as the
    /// exchange (or an operator) would; the answer says whether it landed.
    pub async fn try_set_facts(&self, id: &str, change: FactsChange) -> Changed {
        self.app
            .facts
            .set(id, change, unix_now())
            .await
            .expect("the facts port answers")
    }

    /// [`Stack::try_set_facts`] that must land.
    pub async fn set_facts(&self, id: &str, change: FactsChange) {
        let changed = self.try_set_facts(id, change).await;
        assert!(matches!(changed, Changed::Done(_)), "{changed:?}");
    }

    /// The vault accounts' TOTP secrets are sealed with.
    pub fn vault(&self) -> &Vault {
        self.app.vault.as_ref().expect("the test stack has a vault")
    }

    /// A main account for a test of `channel`: TOTP enrolled, and a phone
    /// too when the channel is phone.
    pub async fn main_account(&self, channel: Channel) -> TestAccount {
        self.account(AccountSpec {
            phone: channel == Channel::Phone,
            ..AccountSpec::default()
        })
        .await
    }

    /// A duplicate account with an email and a phone, so a migration on
    /// either channel leaves it another contact to release and to notify.
    pub async fn duplicate_account(&self, _channel: Channel, kyc: bool) -> TestAccount {
        self.account(AccountSpec {
            kyc,
            assets: true,
            no_totp: true,
            phone: true,
            pending_withdrawal: false,
        })
        .await
    }

    /// Every invariant violation in the table (empty when sound).
    pub async fn violations(&self) -> Vec<String> {
        invariants::violations(&invariants::scan(self).await, &self.app.policy)
    }

    /// One item straight from the table (a strongly consistent read), for
    /// tests that look at what was stored.
    pub async fn stored_item(
        &self,
        key: contact_migration::store::item::Item,
    ) -> Option<contact_migration::store::item::Item> {
        self.app
            .store
            .client()
            .get_item()
            .table_name(self.app.store.table())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .expect("the table answers")
            .item
    }

    /// The events recorded in one quota log (`kind`, `subject`), read
    /// straight from the table.
    pub async fn quota_events(&self, kind: &str, subject: &str) -> usize {
        let key = contact_migration::store::item::key(format!("QUOTA#{kind}#{subject}"), "QUOTA");
        self.stored_item(key)
            .await
            .and_then(|it| it.get("hits").and_then(|h| h.as_l().ok()).map(Vec::len))
            .unwrap_or(0)
    }

    pub async fn stored_account(&self, id: &str) -> Account {
        self.app
            .store
            .account(id)
            .await
            .unwrap()
            .expect("account exists")
    }

    /// Sends a request as API Gateway would, with `caller` as the JWT `sub`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        caller: Option<&str>,
        body: Option<Value>,
        now: Timestamp,
    ) -> Answer {
        let body = body.map(|b| b.to_string());
        self.call_raw(
            method,
            path,
            caller,
            body.as_deref(),
            &[("content-type", "application/json")],
            now,
            AuthMode::Jwt,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        caller: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
        now: Timestamp,
        auth: AuthMode,
    ) -> Answer {
        let event = api_gateway_event(method, path, caller, body, headers);
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event");
        // Boxed: every step's future is inside `serve`'s, and tests that
        // await many requests in one function would carry them all on a
        // test thread's stack (debug builds do not overlap their storage).
        let response = Box::pin(http::serve::<ALL_ENDPOINTS>(&self.app, auth, request, now)).await;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes: &[u8] = response.body().as_ref();
        let body = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            retry_after,
        }
    }

    /// Starts a migration of `new_contact`; a `+` number is the phone channel.
    pub async fn start(&self, main: &TestAccount, new_contact: &str, now: Timestamp) -> Answer {
        let channel = if new_contact.starts_with('+') {
            "phone"
        } else {
            "email"
        };
        self.call(
            "POST",
            "/migrations",
            Some(&main.id),
            Some(json!({"channel": channel, "new_contact": new_contact})),
            now,
        )
        .await
    }

    /// The codes most recently sent to each side of a started migration.
    pub async fn codes(&self, new_contact: &str, current_contact: &str) -> (String, String) {
        (
            self.latest_code(new_contact).await,
            self.latest_code(current_contact).await,
        )
    }

    pub async fn verify(
        &self,
        main: &TestAccount,
        id: &str,
        codes: (&str, &str, &str),
        now: Timestamp,
    ) -> Answer {
        self.call(
            "POST",
            &format!("/migrations/{id}/verify"),
            Some(&main.id),
            Some(json!({"new_contact_code": codes.0, "current_contact_code": codes.1, "totp_code": codes.2})),
            now,
        )
        .await
    }

    /// Start and verify with the right codes; returns the migration id and the verify answer.
    pub async fn start_and_verify(
        &self,
        main: &TestAccount,
        new_contact: &str,
        now: Timestamp,
    ) -> (String, Answer) {
        let started = self.start(main, new_contact, now).await;
        assert_eq!(started.status, 201, "{started:?}");
        let id = started.body["migration_id"].as_str().unwrap().to_owned();
        let (new_code, current_code) = self
            .codes(new_contact, current_contact_of(main, new_contact))
            .await;
        let verified = self
            .verify(
                main,
                &id,
                (&new_code, &current_code, &main.totp_at(now)),
                now,
            )
            .await;
        (id, verified)
    }

    pub async fn step(
        &self,
        main: &TestAccount,
        id: &str,
        step: &str,
        body: Value,
        now: Timestamp,
    ) -> Answer {
        self.call(
            "POST",
            &format!("/migrations/{id}/{step}"),
            Some(&main.id),
            Some(body),
            now,
        )
        .await
    }

    pub async fn close_all_acknowledged(
        &self,
        main: &TestAccount,
        id: &str,
        now: Timestamp,
    ) -> Answer {
        self.step(
            main,
            id,
            "close",
            json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true}),
            now,
        )
        .await
    }

    /// The whole flow up to a completed migration.
    pub async fn migrate_fully(
        &self,
        main: &TestAccount,
        new_contact: &str,
        now: Timestamp,
    ) -> (String, Answer) {
        let (id, verified) = self.start_and_verify(main, new_contact, now).await;
        assert_eq!(verified.body["state"], "verified", "{verified:?}");
        let migrated = self.step(main, &id, "migrate", json!({}), now).await;
        assert_eq!(migrated.status, 200, "{migrated:?}");
        let closed = self.close_all_acknowledged(main, &id, now).await;
        (id, closed)
    }

    /// Every email the SES emulator holds for `to`, oldest first, as (subject, text).
    pub async fn emails_to(&self, to: &str) -> Vec<(String, String)> {
        let store: Value = self
            .http
            .get(format!("{}/store", ses_endpoint()))
            .send()
            .await
            .expect("the SES emulator is reachable (make test starts it)")
            .json()
            .await
            .expect("the SES emulator store is JSON");
        store["emails"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|email| {
                email_recipients(email)
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(to))
            })
            .map(|email| {
                (
                    email["subject"].as_str().unwrap_or_default().to_owned(),
                    email["body"]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// Every SMS the SNS emulator holds for the E.164 number `to`, oldest first.
    pub async fn sms_to(&self, to: &str) -> Vec<String> {
        let state: Value = self
            .http
            .get(format!("{}/moto-api/data.json", sns_endpoint()))
            .send()
            .await
            .expect("the SNS emulator is reachable (make test starts it)")
            .json()
            .await
            .expect("the SNS emulator state is JSON");
        state["sns"]["SMS"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|sms| sms["phone_number"].as_str() == Some(to))
            .filter_map(|sms| sms["message"].as_str().map(str::to_owned))
            .collect()
    }

    /// Every message `to` received, oldest first: emails' text parts, or SMS
    /// when `to` is a phone number.
    pub async fn messages_to(&self, to: &str) -> Vec<String> {
        if to.starts_with('+') {
            self.sms_to(to).await
        } else {
            self.emails_to(to)
                .await
                .into_iter()
                .map(|(_, text)| text)
                .collect()
        }
    }

    /// The first standalone 6-digit number of the newest code message to
    /// `to` (an email address or a phone number).
    pub async fn latest_code(&self, to: &str) -> String {
        for _ in 0..50 {
            let found = self
                .messages_to(to)
                .await
                .into_iter()
                .rev()
                .find_map(|text| first_six_digit_number(&text));
            if let Some(code) = found {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no code email reached {to}");
    }
}

/// Where the current-contact code of a migration of `new_contact` goes: the
/// main account's contact on that channel, else its email.
pub fn current_contact_of<'a>(main: &'a TestAccount, new_contact: &str) -> &'a str {
    match (new_contact.starts_with('+'), &main.phone) {
        (true, Some(phone)) => phone,
        _ => &main.email,
    }
}

fn email_recipients(email: &Value) -> Vec<String> {
    email["destination"]["to"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

pub fn first_six_digit_number(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .map(str::to_owned)
}

/// An API Gateway HTTP API (payload format 2.0) event.
pub fn api_gateway_event(
    method: &str,
    path: &str,
    caller: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Value {
    let authorizer = match caller {
        Some(sub) => {
            json!({"jwt": {"claims": {"sub": sub, "iss": "https://issuer.example.com"}, "scopes": null}})
        }
        None => Value::Null,
    };
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "authorizer": authorizer,
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "end-to-end"},
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "26/Nov/2026:12:00:00 +0000",
            "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Replaces an account item as an operator (or another system) would, to
/// change the world between two steps.
pub async fn overwrite_account(stack: &Stack, account: &Account) {
    stack.app.store.put_account_item(account).await.unwrap();
}
