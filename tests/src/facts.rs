//! A facts endpoint that misbehaves on purpose, for the faults the stand-in
//! (`admin::stand_in`) does not produce: slow, failing, malformed, unsigned,
//! wrongly signed or stale answers. Each answers every request the same
//! way; a healthy answer is the one the stand-in would give for an active
//! account without KYC, with assets and no withdrawal in flight, so a
//! client that ignored the fault would go on.

use contact_migration::facts::signing::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use contact_migration::facts::FactsKey;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing listens on the port.
    Down,
    /// A healthy, signed answer, three seconds late.
    Slow,
    /// A signed 503.
    ServerError,
    /// A signed 200 whose body is not the contract's.
    Malformed,
    /// A healthy answer without a signature.
    Unsigned,
    /// A healthy answer signed with another key.
    WrongKey,
    /// A healthy answer signed ten minutes ago.
    Stale,
}

pub const ALL_FAULTS: [Fault; 7] = [
    Fault::Down,
    Fault::Slow,
    Fault::ServerError,
    Fault::Malformed,
    Fault::Unsigned,
    Fault::WrongKey,
    Fault::Stale,
];

/// The URL of an endpoint with `fault`, served in this runtime.
pub async fn faulty_endpoint(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    if fault == Fault::Down {
        drop(listener);
        return url;
    }
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| async move {
                    Ok::<_, Infallible>(answer(fault, request).await)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

async fn answer(fault: Fault, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let account_id = request
        .uri()
        .path()
        .split('/')
        .nth(2)
        .unwrap_or_default()
        .to_owned();
    let request_signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let healthy = json!({
        "account_id": account_id, "kyc_verified": false, "has_assets": true,
        "pending_withdrawals": false, "migration_id": "x", "held_until": 0
    })
    .to_string();
    let (status, body) = match fault {
        Fault::ServerError => (503, r#"{"error":{"code":"unavailable"}}"#.to_owned()),
        Fault::Malformed => (
            200,
            json!({"account_id": account_id, "kyc": "no"}).to_string(),
        ),
        _ => (200, healthy),
    };
    if fault == Fault::Slow {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let now = crate::unix_now();
    let (key, at) = match fault {
        Fault::WrongKey => (
            FactsKey::new(b"not the facts key the service holds, at all".to_vec()).unwrap(),
            now,
        ),
        Fault::Stale => (crate::facts_key(), now - 600),
        _ => (crate::facts_key(), now),
    };
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if fault != Fault::Unsigned {
        let signature = key.sign_answer(at, status, &request_signature, body.as_bytes());
        response = response
            .header(TIMESTAMP_HEADER, at.to_string())
            .header(SIGNATURE_HEADER, signature);
    }
    response.body(Full::new(Bytes::from(body))).unwrap()
}
