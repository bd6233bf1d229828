//! Crashed invocations between and inside steps, against the real function
//! binaries served by `cargo lambda watch`.
//!
//! A function process is killed with SIGKILL (no handler, no response) after
//! it answered, or while it is inside a step: a TCP proxy between the
//! functions and DynamoDB Local holds one write, either before it reaches
//! the table or after the table answered and before the function hears it,
//! and the process is killed there. A fresh process with the same binary
//! and environment then takes over, as Lambda starts a new execution
//! environment after a crash (`cargo lambda watch` does not replace a dead
//! function process itself: requests for it wait until one polls again).
//!
//! Each time the flow goes on, or is cancelled and started again, and the
//! table stays sound: the contact has one owner and that owner's record
//! agrees, the duplicate is closed once, the once-only markers and the
//! closure's audit record exist exactly when the commit happened.

mod watch;

use contact_migration::domain::{AccountStatus, Channel, Contact, MigrationState};
use contact_migration::store::item;
use end_to_end::{dynamodb_endpoint, unix_now, AccountSpec, Stack, TestAccount, ACKNOWLEDGE_ALL};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use watch::{Watch, COLD_START};

// ---- a proxy that can hold one DynamoDB write ------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Swallow the request: it never reaches the table.
    Request(&'static str),
    /// Forward the request, swallow the table's answer.
    Response(&'static str),
}

impl Hold {
    /// The `X-Amz-Target` of the operation, as the SDK sends it.
    fn target(self) -> String {
        let (Hold::Request(op) | Hold::Response(op)) = self;
        format!("DynamoDB_20120810.{op}")
    }
}

struct Shared {
    upstream: SocketAddr,
    armed: Mutex<Option<Hold>>,
    held: Notify,
}

impl Shared {
    /// The armed hold, disarmed, if `window` is a request for it.
    fn take_if_for(&self, window: &[u8]) -> Option<Hold> {
        let mut armed = self.armed.lock().unwrap();
        let hold = (*armed)?;
        let target = hold.target();
        window
            .windows(target.len())
            .any(|w| w == target.as_bytes())
            .then(|| armed.take())
            .flatten()
    }
}

struct Proxy {
    endpoint: String,
    shared: Arc<Shared>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("DynamoDB Local at http://IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            upstream,
            armed: Mutex::new(None),
            held: Notify::new(),
        });
        let accepting = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, accepting.clone()));
            }
        });
        Proxy { endpoint, shared }
    }

    fn arm(&self, hold: Hold) {
        *self.shared.armed.lock().unwrap() = Some(hold);
    }

    /// Waits until the armed write has been held.
    async fn held(&self) {
        tokio::time::timeout(COLD_START, self.shared.held.notified())
            .await
            .expect("the armed write happened");
    }
}

/// One connection from a function to DynamoDB Local, relayed both ways.
async fn relay(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let hold_answer = AtomicBool::new(false);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut window = Vec::new();
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // The tail of the previous read too, for a header split in two.
            let keep = window.len().saturating_sub(64);
            window.drain(..keep);
            window.extend_from_slice(&buf[..n]);
            match shared.take_if_for(&window) {
                Some(Hold::Request(_)) => {
                    shared.held.notify_one();
                    // Swallow everything from here on; the function waits
                    // for an answer that never comes.
                    while let Ok(n) = from_client.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                    }
                    return;
                }
                Some(Hold::Response(_)) => hold_answer.store(true, Ordering::SeqCst),
                None => {}
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut notified = false;
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if hold_answer.load(Ordering::SeqCst) {
                // The table has answered; the function never hears it.
                if !notified {
                    shared.held.notify_one();
                    notified = true;
                }
                continue;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side closing ends the connection.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

// ---- HTTP to the functions -------------------------------------------------

const ANSWER_WITHIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        caller: &str,
        body: Option<Value>,
        within: Duration,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-dev-account-id", caller)
            .timeout(within);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the functions answer");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, caller: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, caller, Some(body), COLD_START)
            .await
    }
}

fn close_body() -> Value {
    json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true})
}

// ---- the world -------------------------------------------------------------

struct Pair {
    main: TestAccount,
    duplicate: TestAccount,
}

impl Pair {
    async fn new(stack: &Stack) -> Pair {
        Pair {
            main: stack.account(AccountSpec::default()).await,
            duplicate: stack
                .account(AccountSpec {
                    no_totp: true,
                    ..AccountSpec::default()
                })
                .await,
        }
    }

    fn contact(&self) -> Contact {
        Contact::parse(Channel::Email, &self.duplicate.email).unwrap()
    }
}

async fn start(stack: &Stack, client: &Client, pair: &Pair) -> String {
    let (status, started) = client
        .post(
            "/migrations",
            &pair.main.id,
            json!({"channel": "email", "new_contact": pair.duplicate.email}),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["migration_id"].as_str().unwrap().to_owned();
    // Wait for the codes of this migration, not an older one's.
    let _ = stack.codes(&pair.duplicate.email, &pair.main.email).await;
    id
}

async fn verify_body(stack: &Stack, pair: &Pair) -> Value {
    let (new_code, current_code) = stack.codes(&pair.duplicate.email, &pair.main.email).await;
    json!({"new_contact_code": new_code, "current_contact_code": current_code, "totp_code": pair.main.totp_at(unix_now())})
}

async fn start_verify_migrate(stack: &Stack, client: &Client, pair: &Pair) -> String {
    let id = start(stack, client, pair).await;
    let (status, verified) = client
        .post(
            &format!("/migrations/{id}/verify"),
            &pair.main.id,
            verify_body(stack, pair).await,
        )
        .await;
    assert_eq!(
        (status, &verified["state"]),
        (200, &json!("verified")),
        "{verified}"
    );
    let (status, migrated) = client
        .post(
            &format!("/migrations/{id}/migrate"),
            &pair.main.id,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, &migrated["state"]),
        (200, &json!("awaiting_confirmation")),
        "{migrated}"
    );
    id
}

async fn state(stack: &Stack, id: &str) -> MigrationState {
    stack
        .app
        .store
        .migration(id)
        .await
        .unwrap()
        .expect("the migration exists")
        .state
}

async fn closes_audited(stack: &Stack, account_id: &str) -> usize {
    stack
        .app
        .store
        .audit_trail(account_id)
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            r.get("step")
                .and_then(|s| s.as_s().ok())
                .map(String::as_str)
                == Some("close")
        })
        .count()
}

async fn migrated_marker(stack: &Stack, contact: &Contact) -> Option<String> {
    stack
        .stored_item(item::migrated_marker_key(contact))
        .await
        .and_then(|it| item::get_s(&it, "account_id").map(str::to_owned))
}

/// Nothing of the closure happened: the duplicate still holds the contact.
async fn assert_untouched(stack: &Stack, pair: &Pair) {
    let contact = pair.contact();
    let dup = stack.stored_account(&pair.duplicate.id).await;
    assert_eq!(dup.status, AccountStatus::Active);
    assert_eq!((dup.token_version, dup.referral_code_active), (0, true));
    assert_eq!(dup.email.as_ref(), Some(&contact));
    assert_eq!(
        stack
            .app
            .store
            .contact_owner(&contact)
            .await
            .unwrap()
            .as_deref(),
        Some(pair.duplicate.id.as_str())
    );
    let main = stack.stored_account(&pair.main.id).await;
    assert_eq!(
        main.email.as_ref().map(Contact::value),
        Some(pair.main.email.as_str())
    );
    assert_eq!(migrated_marker(stack, &contact).await, None);
    assert_eq!(closes_audited(stack, &pair.main.id).await, 0);
}

/// The closure happened, once: the contact is the main account's alone.
async fn assert_closed_once(stack: &Stack, pair: &Pair, id: &str) {
    let contact = pair.contact();
    assert_eq!(state(stack, id).await, MigrationState::Completed);
    let main = stack.stored_account(&pair.main.id).await;
    assert_eq!(
        main.email.as_ref(),
        Some(&contact),
        "the main account holds it"
    );
    assert_eq!(
        stack
            .app
            .store
            .contact_owner(&contact)
            .await
            .unwrap()
            .as_deref(),
        Some(pair.main.id.as_str()),
        "and owns it"
    );
    let previous = Contact::parse(Channel::Email, &pair.main.email).unwrap();
    assert_eq!(
        stack.app.store.contact_owner(&previous).await.unwrap(),
        None,
        "its previous contact is released"
    );
    let dup = stack.stored_account(&pair.duplicate.id).await;
    assert_eq!(dup.status, AccountStatus::Closed);
    assert_eq!(
        (
            dup.token_version,
            dup.referral_code_active,
            dup.email.is_none()
        ),
        (1, false, true),
        "closed once: tokens revoked once, referral off, contact removed"
    );
    assert_eq!(
        migrated_marker(stack, &contact).await.as_deref(),
        Some(pair.main.id.as_str())
    );
    assert_eq!(
        closes_audited(stack, &pair.main.id).await,
        1,
        "one commit, one audit record"
    );
}

// ---- the test --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crashed_invocations_leave_a_sound_table_and_the_flow_goes_on() {
    let stack = Stack::new().await;
    let proxy = Proxy::start(&dynamodb_endpoint()).await;
    let mut watch = Watch::start(stack.app.store.table(), &proxy.endpoint, &stack.app.facts);
    let client = Client {
        http: reqwest::Client::new(),
        base: watch.base.clone(),
    };

    // 1. `migrate` killed after it answered: a fresh process answers the
    //    repeated call the same way.
    let first = Pair::new(&stack).await;
    let id = watch
        .serving(start_verify_migrate(&stack, &client, &first))
        .await;
    let migrate_path = format!("/migrations/{id}/migrate");
    let (_, answered) = client.post(&migrate_path, &first.main.id, json!({})).await;
    let image = watch.kill_function("migrate");
    let fresh = watch.respawn(&image);
    let (status, again) = client.post(&migrate_path, &first.main.id, json!({})).await;
    assert_eq!(
        (status, &again),
        (200, &answered),
        "the same answer from a fresh process"
    );
    assert_eq!(watch.function_pids("migrate"), vec![fresh]);
    assert_eq!(
        watch.respawned_requests("migrate"),
        1,
        "served by the fresh process"
    );
    assert_eq!(
        state(&stack, &id).await,
        MigrationState::AwaitingConfirmation
    );

    // 2. `close` killed while its commit is on the way to the table: nothing
    //    changes; a fresh process commits it on the retry.
    proxy.arm(Hold::Request("TransactWriteItems"));
    let close_path = format!("/migrations/{id}/close");
    let in_flight = {
        let (client, caller) = (client.clone(), first.main.id.clone());
        let path = close_path.clone();
        tokio::spawn(async move { client.post(&path, &caller, close_body()).await })
    };
    watch.serving(proxy.held()).await;
    let image = watch.kill_function("close");
    in_flight.abort();
    assert_eq!(
        state(&stack, &id).await,
        MigrationState::AwaitingConfirmation
    );
    assert_untouched(&stack, &first).await;
    watch.respawn(&image);
    let (status, closed) = client.post(&close_path, &first.main.id, close_body()).await;
    assert_eq!(
        (status, &closed["closed_account_id"]),
        (200, &json!(first.duplicate.id)),
        "{closed}"
    );
    assert_closed_once(&stack, &first, &id).await;
    assert_eq!(
        watch.respawned_requests("close"),
        1,
        "served by the fresh process"
    );

    // 3. `close` killed after the table committed, before it answered: the
    //    retry, from a fresh process, answers that same commit.
    let second = Pair::new(&stack).await;
    let id = start_verify_migrate(&stack, &client, &second).await;
    proxy.arm(Hold::Response("TransactWriteItems"));
    let close_path = format!("/migrations/{id}/close");
    let in_flight = {
        let (client, caller) = (client.clone(), second.main.id.clone());
        let path = close_path.clone();
        tokio::spawn(async move { client.post(&path, &caller, close_body()).await })
    };
    watch.serving(proxy.held()).await;
    let image = watch.kill_function("close");
    in_flight.abort();
    assert_closed_once(&stack, &second, &id).await;
    let committed = stack.app.store.migration(&id).await.unwrap().unwrap();
    watch.respawn(&image);
    let (status, closed) = client
        .post(&close_path, &second.main.id, close_body())
        .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["closed_account_id"], json!(second.duplicate.id));
    assert_eq!(
        closed["completed_at"],
        json!(contact_migration::domain::rfc3339(
            committed.completed_at.unwrap()
        )),
        "the commit that happened, not a second one"
    );
    assert_closed_once(&stack, &second, &id).await;
    assert_eq!(watch.respawned_requests("close"), 2);

    // 4. `verify` killed before its write (the one transaction that counts
    //    the attempt): the migration is cancelled and started again, and
    //    completes.
    let third = Pair::new(&stack).await;
    let abandoned = start(&stack, &client, &third).await;
    proxy.arm(Hold::Request("TransactWriteItems"));
    let in_flight = {
        let (client, caller) = (client.clone(), third.main.id.clone());
        let path = format!("/migrations/{abandoned}/verify");
        let body = verify_body(&stack, &third).await;
        tokio::spawn(async move { client.post(&path, &caller, body).await })
    };
    watch.serving(proxy.held()).await;
    let image = watch.kill_function("verify");
    in_flight.abort();
    let stored = stack
        .app
        .store
        .migration(&abandoned)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.state, stored.failed_attempts),
        (MigrationState::CodesSent, 0),
        "the killed attempt left no trace"
    );
    let (status, cancelled) = client
        .call(
            reqwest::Method::DELETE,
            &format!("/migrations/{abandoned}"),
            &third.main.id,
            None,
            ANSWER_WITHIN,
        )
        .await;
    assert_eq!(
        (status, &cancelled["state"]),
        (200, &json!("cancelled")),
        "{cancelled}"
    );
    watch.respawn(&image);
    let id = start_verify_migrate(&stack, &client, &third).await;
    let (status, closed) = client
        .post(
            &format!("/migrations/{id}/close"),
            &third.main.id,
            close_body(),
        )
        .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(state(&stack, &abandoned).await, MigrationState::Cancelled);
    assert_eq!(watch.respawned_requests("verify"), 1);
    assert_closed_once(&stack, &third, &id).await;
    // The first pair is as it was left.
    assert_closed_once(&stack, &first, &first_id(&stack, &first).await).await;
}

/// The completed migration of `pair`, read back through its marker.
async fn first_id(stack: &Stack, pair: &Pair) -> String {
    stack
        .stored_item(item::migrated_marker_key(&pair.contact()))
        .await
        .and_then(|it| item::get_s(&it, "migration_id").map(str::to_owned))
        .expect("a marker names its migration")
}
