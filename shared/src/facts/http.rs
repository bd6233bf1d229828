//! The `http` adapter: the exchange's internal facts endpoint
//! (docs/facts-openapi.yaml). Every request is signed, every answer must be
//! signed for that request and fresh, and the whole exchange, answer body
//! included, has a short timeout. Anything else is
//! [`Error::FactsUnavailable`]: the step that asked changes nothing.
//!
//! The client is hyper's, over rustls with aws-lc and the TLS settings of the
//! SDK clients' own ([`crate::aws`]), so the functions carry no second HTTP
//! stack.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

use super::signing::{self, FactsKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{AccountFacts, Changed, FactsChange};
use crate::aws::{root_store, tls_config};
use crate::config::TlsRoots;
use crate::domain::Error;
use rustls::RootCertStore;

/// Answers are a few booleans; anything longer is not an answer.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct HttpFacts {
    base: String,
    key: FactsKey,
    timeout: Duration,
    hold_seconds: u64,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HttpFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFacts")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("hold_seconds", &self.hold_seconds)
            .finish_non_exhaustive()
    }
}

fn unavailable(detail: impl std::fmt::Display) -> Error {
    Error::FactsUnavailable(detail.to_string())
}

/// The error code of a refusal the endpoint explains (`{"error": {"code"}}`).
#[derive(Deserialize)]
struct Refusal {
    error: RefusalCode,
}

#[derive(Deserialize)]
struct RefusalCode {
    code: String,
}

#[derive(Deserialize)]
struct FactsAnswer {
    account_id: String,
    #[serde(flatten)]
    facts: AccountFacts,
}

impl HttpFacts {
    /// The endpoint's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A client of the endpoint at `base` (`https://…`, or `http://` on a
    /// loopback address for the local stand-in). `hold_seconds`: how long a
    /// closure hold lasts unless released or ended by the closure's event.
    pub fn new(base: &str, key: FactsKey, timeout: Duration, hold_seconds: u64) -> HttpFacts {
        // Configuration allows `http://` on loopback only (the stand-in);
        // there the TLS set-up is never used, so no roots are loaded. The
        // exchange's own endpoint is vouched for by the system's CAs.
        let roots = match base.starts_with("https://") {
            true => root_store(TlsRoots::System),
            false => RootCertStore::empty(),
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config(roots));
        let connector = builder.https_or_http().enable_http1().build();
        HttpFacts {
            base: base.trim_end_matches('/').to_owned(),
            key,
            timeout,
            hold_seconds,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// One signed request and its verified answer: status and body.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let at = crate::lambda::now();
        let signature = self.key.sign_request(at, method.as_str(), path, &body);
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, at.to_string())
            .header(SIGNATURE_HEADER, &signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(unavailable)?;
        let answer = tokio::time::timeout(self.timeout, async {
            let response = self.client.request(request).await.map_err(unavailable)?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(unavailable)?
                .to_bytes();
            Ok::<_, Error>((parts, body))
        })
        .await
        .map_err(|_| unavailable(format!("no answer within {:?}", self.timeout)))??;
        let (parts, body) = answer;
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let (ts, their_signature) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
        if !self.key.verifies_answer(
            ts,
            parts.status.as_u16(),
            &signature,
            &body,
            their_signature,
        ) {
            return Err(unavailable(format!(
                "answer {} is not signed for this request",
                parts.status
            )));
        }
        if !signing::fresh(ts, crate::lambda::now()) {
            return Err(unavailable("answer timestamp is not fresh"));
        }
        if parts.status.is_server_error() {
            return Err(unavailable(format!("answer {}", parts.status)));
        }
        Ok((parts.status, body))
    }

    fn account_path(account_id: &str) -> Result<String, Error> {
        // Account ids go into the path as they are: only ids that need no
        // escaping are asked about.
        if account_id.is_empty()
            || !account_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(unavailable(format!("{account_id:?} is no account id")));
        }
        Ok(format!("/accounts/{account_id}"))
    }

    fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|e| unavailable(format!("malformed answer: {e}")))
    }

    fn refusal(body: &[u8]) -> Option<String> {
        serde_json::from_slice::<Refusal>(body)
            .ok()
            .map(|r| r.error.code)
    }

    fn facts_of(account_id: &str, body: &[u8]) -> Result<AccountFacts, Error> {
        let answer: FactsAnswer = Self::parse(body)?;
        if answer.account_id != account_id {
            return Err(unavailable("the answer is about another account"));
        }
        Ok(answer.facts)
    }

    pub async fn facts(&self, account_id: &str) -> Result<AccountFacts, Error> {
        let path = format!("{}/facts", Self::account_path(account_id)?);
        match self.exchange(Method::GET, &path, None).await? {
            (StatusCode::OK, body) => Self::facts_of(account_id, &body),
            (status, _) => Err(unavailable(format!("facts answered {status}"))),
        }
    }

    pub async fn hold(&self, account_id: &str, migration_id: &str) -> Result<(), Error> {
        let path = format!("{}/closure-hold", Self::account_path(account_id)?);
        let body = json!({"migration_id": migration_id, "hold_seconds": self.hold_seconds});
        match self.exchange(Method::PUT, &path, Some(body)).await? {
            (StatusCode::OK, _) => Ok(()),
            (StatusCode::CONFLICT, body)
                if Self::refusal(&body).as_deref() == Some("account_closed") =>
            {
                Err(Error::DuplicateClosed)
            }
            (status, _) => Err(unavailable(format!("closure hold answered {status}"))),
        }
    }

    pub async fn release(&self, account_id: &str, migration_id: &str) -> Result<(), Error> {
        let path = format!(
            "{}/closure-hold/{}",
            Self::account_path(account_id)?,
            Self::account_path(migration_id)?.trim_start_matches("/accounts/")
        );
        match self.exchange(Method::DELETE, &path, None).await? {
            (StatusCode::OK, _) => Ok(()),
            (status, _) => Err(unavailable(format!("hold release answered {status}"))),
        }
    }

    pub async fn set(&self, account_id: &str, change: FactsChange) -> Result<Changed, Error> {
        let path = format!("{}/facts", Self::account_path(account_id)?);
        let body = serde_json::to_value(change).map_err(unavailable)?;
        match self.exchange(Method::PUT, &path, Some(body)).await? {
            (StatusCode::OK, body) => Self::facts_of(account_id, &body).map(Changed::Done),
            (StatusCode::NOT_FOUND, _) => Ok(Changed::UnknownAccount),
            (StatusCode::CONFLICT, body) => match Self::refusal(&body).as_deref() {
                Some("account_closed") => Ok(Changed::AccountClosed),
                Some("held") => Ok(Changed::Held),
                other => Err(unavailable(format!("facts change refused: {other:?}"))),
            },
            (status, _) => Err(unavailable(format!("facts change answered {status}"))),
        }
    }
}
