//! The migration flow as a client drives it: requests shaped as API Gateway
//! sends them, answered in-process by `http::serve` (the handler every
//! function runs), with codes read back from the SES emulator.

use aws_sdk_sesv2::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sesv2::config::{ConfigBag, Intercept, RuntimeComponents};
use contact_migration::domain::{Channel, Timestamp};
use contact_migration::http::{serve, AuthMode, Endpoint};
use contact_migration::App;
use end_to_end::{
    api_gateway_event, first_six_digit_number, Stack, TestAccount, ACKNOWLEDGE_ALL, ALL_ENDPOINTS,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The steps, in the order of the tables.
pub const STEPS: [Endpoint; 7] = Endpoint::EVERY;

/// One request: method, path, JSON body.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

impl Req {
    pub fn start(new_contact: &str) -> Req {
        Req {
            method: "POST",
            path: "/migrations".into(),
            body: Some(json!({"channel": "email", "new_contact": new_contact})),
        }
    }

    pub fn resend(id: &str) -> Req {
        Req::post(id, "resend", json!({}))
    }

    pub fn verify(id: &str, codes: &Codes, totp: &str) -> Req {
        Req::post(
            id,
            "verify",
            json!({"new_contact_code": codes.new_contact, "current_contact_code": codes.current_contact, "totp_code": totp}),
        )
    }

    pub fn migrate(id: &str) -> Req {
        Req::post(id, "migrate", json!({}))
    }

    pub fn close(id: &str) -> Req {
        Req::post(
            id,
            "close",
            json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true}),
        )
    }

    pub fn get(id: &str) -> Req {
        Req {
            method: "GET",
            path: format!("/migrations/{id}"),
            body: None,
        }
    }

    pub fn cancel(id: &str) -> Req {
        Req {
            method: "DELETE",
            path: format!("/migrations/{id}"),
            body: None,
        }
    }

    fn post(id: &str, step: &str, body: Value) -> Req {
        Req {
            method: "POST",
            path: format!("/migrations/{id}/{step}"),
            body: Some(body),
        }
    }

    /// The API Gateway (HTTP API, payload 2.0) event for this request from `caller`.
    pub fn event(&self, caller: &str) -> String {
        let body = self.body.as_ref().map(Value::to_string);
        api_gateway_event(
            self.method,
            &self.path,
            Some(caller),
            body.as_deref(),
            &[("content-type", "application/json")],
        )
        .to_string()
    }
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// Time spent in `http::serve` alone.
    pub took: Duration,
}

/// Answers `req` from `caller` in-process, timing only the handler.
pub async fn call(app: &App, caller: &str, req: &Req, now: Timestamp) -> Answer {
    let request =
        lambda_http::request::from_str(&req.event(caller)).expect("a valid API Gateway event");
    let started = Instant::now();
    let response = serve::<ALL_ENDPOINTS>(app, AuthMode::Jwt, request, now).await;
    let took = started.elapsed();
    let bytes: &[u8] = response.body().as_ref();
    Answer {
        status: response.status().as_u16(),
        body: serde_json::from_slice(bytes).unwrap_or(Value::Null),
        took,
    }
}

/// Like [`call`], but the answer must have `status`.
pub async fn expect(app: &App, caller: &str, req: &Req, now: Timestamp, status: u16) -> Answer {
    let answer = call(app, caller, req, now).await;
    assert_eq!(
        answer.status, status,
        "{} {}: {}",
        req.method, req.path, answer.body
    );
    answer
}

/// The two one-time codes of a migration.
#[derive(Debug, Clone)]
pub struct Codes {
    pub new_contact: String,
    pub current_contact: String,
}

/// Where the codes are read back from.
#[derive(Clone)]
pub enum Inbox {
    /// The SES emulator's store (`GET /store?since=`).
    Emulator { http: reqwest::Client, base: String },
    /// The `SendEmail` requests on their way to the emulator (see [`CodeTrap`]).
    Trap(CodeTrap),
}

impl Inbox {
    pub fn emulator() -> Inbox {
        Inbox::Emulator {
            http: reqwest::Client::new(),
            base: end_to_end::ses_endpoint(),
        }
    }

    /// The codes last sent for a migration of `new_contact` by `main`, sent no
    /// earlier than `since`.
    pub async fn codes(&self, new_contact: &str, main: &TestAccount, since: Timestamp) -> Codes {
        Codes {
            new_contact: self.code(new_contact, since).await,
            current_contact: self.code(&main.email, since).await,
        }
    }

    async fn code(&self, to: &str, since: Timestamp) -> String {
        for _ in 0..200 {
            let found = match self {
                Inbox::Emulator { http, base } => newest_code_in_store(http, base, to, since).await,
                Inbox::Trap(trap) => trap.code(to),
            };
            if let Some(code) = found {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no code reached {to}");
    }
}

async fn newest_code_in_store(
    http: &reqwest::Client,
    base: &str,
    to: &str,
    since: Timestamp,
) -> Option<String> {
    let store: Value = http
        .get(format!("{base}/store?since={since}"))
        .send()
        .await
        .expect("the SES emulator is reachable")
        .json()
        .await
        .expect("the SES emulator store is JSON");
    store["emails"]
        .as_array()?
        .iter()
        .rev()
        .filter(|email| {
            email["destination"]["to"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r.as_str().is_some_and(|r| r.eq_ignore_ascii_case(to)))
        })
        .find_map(|email| first_six_digit_number(email["body"]["text"].as_str()?))
}

/// Reads the code out of every `SendEmail` request the SES client sends (the
/// request still goes to the emulator). Used where polling the emulator's
/// store would load the machine more than the service under test.
#[derive(Clone, Debug, Default)]
pub struct CodeTrap(Arc<Mutex<HashMap<String, String>>>);

impl CodeTrap {
    fn code(&self, to: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .get(&to.to_ascii_lowercase())
            .cloned()
    }
}

impl Intercept for CodeTrap {
    fn name(&self) -> &'static str {
        "CodeTrap"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_sesv2::error::BoxError> {
        let Some(bytes) = context.request().body().bytes() else {
            return Ok(());
        };
        let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
            return Ok(());
        };
        let text = doc["Content"]["Simple"]["Body"]["Text"]["Data"]
            .as_str()
            .unwrap_or_default();
        if let Some(code) = first_six_digit_number(text) {
            let mut codes = self.0.lock().unwrap();
            for to in doc["Destination"]["ToAddresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                codes.insert(to.to_ascii_lowercase(), code.clone());
            }
        }
        Ok(())
    }
}

/// A main account (TOTP enrolled) and a duplicate holding an email.
pub struct Pair {
    pub main: TestAccount,
    pub duplicate: TestAccount,
}

pub async fn pair(stack: &Stack) -> Pair {
    Pair {
        main: stack.main_account(Channel::Email).await,
        duplicate: stack.duplicate_account(Channel::Email, false).await,
    }
}

/// A migration brought to a given point of the flow, in-process.
pub struct Prepared {
    pub pair: Pair,
    pub id: String,
    pub codes: Codes,
}

impl Prepared {
    pub fn caller(&self) -> &str {
        &self.pair.main.id
    }

    pub fn verify(&self, now: Timestamp) -> Req {
        Req::verify(&self.id, &self.codes, &self.pair.main.totp_at(now))
    }
}

/// How far [`prepare`] takes a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    CodesSent,
    Verified,
    AwaitingConfirmation,
}

/// A fresh pair of accounts and a migration of the duplicate's email to the
/// main account, taken to `stage` through the handler.
pub async fn prepare(stack: &Stack, inbox: &Inbox, stage: Stage, now: Timestamp) -> Prepared {
    let pair = pair(stack).await;
    let app = &stack.app;
    let started = expect(
        app,
        &pair.main.id,
        &Req::start(&pair.duplicate.email),
        now,
        201,
    )
    .await;
    let id = started.body["migration_id"]
        .as_str()
        .expect("a migration id")
        .to_owned();
    let codes = inbox
        .codes(&pair.duplicate.email, &pair.main, now - 2)
        .await;
    let prepared = Prepared { pair, id, codes };
    if stage >= Stage::Verified {
        expect(app, prepared.caller(), &prepared.verify(now), now, 200).await;
    }
    if stage >= Stage::AwaitingConfirmation {
        expect(
            app,
            prepared.caller(),
            &Req::migrate(&prepared.id),
            now,
            200,
        )
        .await;
    }
    prepared
}

/// `p`-th percentile (0..=100) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    percentile(&sorted, 50.0)
}
