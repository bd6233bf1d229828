//! Request bodies for the three request types (and migrate's empty one):
//! never panics; every refusal is `invalid_request`; nothing over the size
//! limit, under another content type, or other than an object is ever read.
//! Input: a content-type selector byte, then the body.
#![no_main]

use contact_migration::domain::Error;
use contact_migration::http::{json_body, MAX_BODY_BYTES};
use contact_migration::steps::close::CloseRequest;
use contact_migration::steps::start::StartRequest;
use contact_migration::steps::verify::VerifyRequest;
use lambda_http::http::{header, Request};
use lambda_http::Body;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("Application/JSON; charset=utf-8"),
    Some("text/plain"),
    Some("application/json-patch+json"),
    Some(""),
];

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

fn check<T: serde::de::DeserializeOwned>(request: &Request<Body>, json: bool) {
    match json_body::<T>(request) {
        Ok(_) => {
            assert!(json, "read under another content type");
            let first = request.body().iter().find(|b| !b.is_ascii_whitespace());
            assert!(matches!(first, None | Some(b'{')), "not a JSON object");
            assert!(
                request.body().len() <= MAX_BODY_BYTES,
                "read past the limit"
            );
        }
        Err(Error::InvalidRequest(message)) => assert!(!message.is_empty()),
        Err(other) => panic!("not invalid_request: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[*selector as usize % CONTENT_TYPES.len()];
    let json = content_type.is_none_or(|t| {
        t.to_ascii_lowercase().starts_with("application/json;") || t == "application/json"
    });
    let mut builder = Request::builder().method("POST").uri("/migrations");
    if let Some(t) = content_type {
        builder = builder.header(header::CONTENT_TYPE, t);
    }
    // Text when it is UTF-8 (as API Gateway sends JSON), bytes otherwise.
    let body = match std::str::from_utf8(body) {
        Ok(text) => Body::Text(text.to_owned()),
        Err(_) => Body::Binary(body.to_vec()),
    };
    let request = builder.body(body).expect("a request");
    check::<StartRequest>(&request, json);
    check::<VerifyRequest>(&request, json);
    check::<CloseRequest>(&request, json);
    check::<EmptyBody>(&request, json);
});
