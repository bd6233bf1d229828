//! The API forwarded to another server: `cargo lambda watch` on an internal
//! port under `make dev`.

use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::{Api, ApiFuture};

/// The request headers the API reads; the rest stay with the front server.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "x-dev-account-id",
    "user-agent",
];
/// The response headers the page reads.
const FORWARDED_RESPONSE_HEADERS: &[&str] = &["content-type", "cache-control", "retry-after"];

pub struct Proxy {
    base: String,
    client: reqwest::Client,
}

impl Proxy {
    /// Forwards to `base`, e.g. `http://127.0.0.1:9001`.
    pub fn new(base: impl Into<String>) -> Proxy {
        Proxy {
            base: base.into().trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
        }
    }
}

impl Api for Proxy {
    fn call(&self, request: Request<Bytes>) -> ApiFuture {
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let mut forward = self
            .client
            .request(request.method().clone(), format!("{}{path}", self.base));
        for name in FORWARDED_REQUEST_HEADERS {
            if let Some(value) = request.headers().get(*name) {
                forward = forward.header(*name, value.clone());
            }
        }
        let forward = forward.body(request.into_body());
        Box::pin(async move {
            let Ok(answer) = forward.send().await else {
                return unavailable();
            };
            let status = answer.status();
            let headers: Vec<(HeaderName, HeaderValue)> = FORWARDED_RESPONSE_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = answer.headers().get(*name)?.clone();
                    Some((HeaderName::from_static(name), value))
                })
                .collect();
            let Ok(body) = answer.bytes().await else {
                return unavailable();
            };
            let mut response = Response::new(body);
            *response.status_mut() = status;
            response.headers_mut().extend(headers);
            response
        })
    }
}

/// The API is still compiling or has stopped: an answer in the API's error
/// shape, so the page says so instead of failing to parse.
fn unavailable() -> Response<Bytes> {
    let body =
        r#"{"error": {"code": "api_unavailable", "message": "The API is not answering yet."}}"#;
    let mut response = Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
