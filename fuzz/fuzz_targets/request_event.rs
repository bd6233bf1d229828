//! API Gateway events as the functions receive them: the event text into a
//! request, then identity, route and body. Never panics, whatever the event.
//! With `--features lambda-http-conversion` the event goes through
//! lambda_http's own conversion instead (the one that panics).
#![no_main]

use contact_migration::http::{caller, json_body, route, AuthMode};
use contact_migration::steps::close::CloseRequest;
use contact_migration::steps::start::StartRequest;
use contact_migration::steps::verify::VerifyRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    #[cfg(feature = "lambda-http-conversion")]
    let request = lambda_http::request::from_str(text);
    #[cfg(not(feature = "lambda-http-conversion"))]
    let request = contact_migration::http::request_from_str(text);
    let Ok(request) = request else {
        return;
    };
    for auth in [AuthMode::Jwt, AuthMode::Dev] {
        if let Ok(c) = caller(&request, auth) {
            assert!(!c.account_id.trim().is_empty() && c.account_id.len() <= 128);
        }
    }
    let _ = route(request.method(), request.uri().path());
    let _ = json_body::<StartRequest>(&request);
    let _ = json_body::<VerifyRequest>(&request);
    let _ = json_body::<CloseRequest>(&request);
});
