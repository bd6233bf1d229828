//! A local stand-in for the exchange's account facts endpoint
//! (docs/facts-openapi.yaml), so the `http` adapter of the facts port is
//! what runs on the local stack (`admin serve-facts`, started by
//! `infra/local/emulators.sh`) and in the tests (in-process, one per test
//! table). It keeps the facts where the `table` adapter does, on the account
//! items, and answers only signed, fresh requests, signing each answer for
//! the request it answers. Besides the exchange's two operations (read the
//! facts, hold the account for a closure) it offers what operators need to
//! change facts: `PUT /accounts/{id}/facts`.

use contact_migration::facts::signing::{self, FactsKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use contact_migration::facts::{Changed, FactsChange};
use contact_migration::store::{HoldOutcome, Store};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The longest closure hold granted, whatever is asked.
const MAX_HOLD_SECONDS: u64 = 900;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    migration_id: String,
    hold_seconds: u64,
}

/// Serves the stand-in on `listener` until the process ends.
pub async fn serve(listener: TcpListener, store: Store, key: FactsKey) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("serve-facts: accept failed: {e}");
                continue;
            }
        };
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (store, key) = (store.clone(), key.clone());
                async move { Ok::<_, Infallible>(answer(&store, &key, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Starts the stand-in on a free loopback port in this runtime; its address.
pub async fn spawn(store: Store, key: FactsKey) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(serve(listener, store, key));
    Ok(address)
}

fn refusal(status: StatusCode, code: &str) -> (StatusCode, Value) {
    (status, json!({"error": {"code": code}}))
}

/// One request: checked, routed, and its answer signed for it.
async fn answer(
    store: &Store,
    key: &FactsKey,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (ts, signature) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
    let now = contact_migration::lambda::now();
    let (status, body) = match Limited::new(body, 16 * 1024).collect().await {
        Err(_) => refusal(StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        Ok(body) => {
            let body = body.to_bytes();
            let path = parts.uri.path();
            if !key.verifies_request(&ts, parts.method.as_str(), path, &body, &signature)
                || !signing::fresh(&ts, now)
            {
                refusal(StatusCode::UNAUTHORIZED, "unsigned")
            } else {
                route(store, &parts.method, path, &body, now).await
            }
        }
    };
    let body = body.to_string().into_bytes();
    let at = contact_migration::lambda::now();
    let answer_signature = key.sign_answer(at, status.as_u16(), &signature, &body);
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, at.to_string())
        .header(SIGNATURE_HEADER, answer_signature)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

async fn route(
    store: &Store,
    method: &Method,
    path: &str,
    body: &[u8],
    now: i64,
) -> (StatusCode, Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match (method, segments.as_slice()) {
        (&Method::GET, ["accounts", id, "facts"]) => match store.account_facts(id).await {
            Ok(Some(facts)) => Ok(facts_answer(id, facts)),
            Ok(None) => Ok(refusal(StatusCode::NOT_FOUND, "unknown_account")),
            Err(e) => Err(e),
        },
        (&Method::PUT, ["accounts", id, "facts"]) => {
            let Ok(change) = serde_json::from_slice::<FactsChange>(body) else {
                return refusal(StatusCode::BAD_REQUEST, "invalid_request");
            };
            store
                .set_account_facts(id, change, now)
                .await
                .map(|changed| match changed {
                    Changed::Done(facts) => facts_answer(id, facts),
                    Changed::UnknownAccount => refusal(StatusCode::NOT_FOUND, "unknown_account"),
                    Changed::AccountClosed => refusal(StatusCode::CONFLICT, "account_closed"),
                    Changed::Held => refusal(StatusCode::CONFLICT, "held"),
                })
        }
        (&Method::PUT, ["accounts", id, "closure-hold"]) => {
            let Ok(hold) = serde_json::from_slice::<HoldRequest>(body) else {
                return refusal(StatusCode::BAD_REQUEST, "invalid_request");
            };
            let until = now + hold.hold_seconds.min(MAX_HOLD_SECONDS) as i64;
            store
                .hold_account_facts(id, &hold.migration_id, until)
                .await
                .map(|held| match held {
                    HoldOutcome::Held => (
                        StatusCode::OK,
                        json!({"account_id": id, "migration_id": hold.migration_id, "held_until": until}),
                    ),
                    HoldOutcome::UnknownAccount => {
                        refusal(StatusCode::NOT_FOUND, "unknown_account")
                    }
                    HoldOutcome::AccountClosed => refusal(StatusCode::CONFLICT, "account_closed"),
                })
        }
        (&Method::DELETE, ["accounts", id, "closure-hold", migration_id]) => store
            .release_account_facts(id, migration_id)
            .await
            .map(|()| (StatusCode::OK, json!({}))),
        _ => Ok(refusal(StatusCode::NOT_FOUND, "not_found")),
    };
    result.unwrap_or_else(|e| {
        eprintln!("serve-facts: {e}");
        refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal")
    })
}

fn facts_answer(id: &str, facts: contact_migration::facts::AccountFacts) -> (StatusCode, Value) {
    (
        StatusCode::OK,
        json!({
            "account_id": id,
            "kyc_verified": facts.kyc_verified,
            "has_assets": facts.has_assets,
            "pending_withdrawals": facts.pending_withdrawals,
        }),
    )
}
