//! Routing: never panics; a route's id is one non-empty path segment, and
//! the route does not depend on a prefix (stage) or on how it is spelled.
//! Input: the method, a NUL byte, the path.
#![no_main]

use contact_migration::http::{route, Endpoint};
use lambda_http::http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (method, path) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (b"POST".as_slice(), data),
    };
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let path = String::from_utf8_lossy(path);
    let Some(found) = route(&method, &path) else {
        return;
    };
    if let Some(id) = &found.migration_id {
        assert!(!id.is_empty() && !id.contains('/'), "{id:?}");
    }
    let canonical = match (found.endpoint, found.migration_id.as_deref()) {
        (Endpoint::Start, None) => "/migrations".to_owned(),
        (Endpoint::Get | Endpoint::Cancel, Some(id)) => format!("/migrations/{id}"),
        (endpoint, Some(id)) => format!("/migrations/{id}/{}", endpoint.name()),
        (endpoint, None) => panic!("{endpoint:?} without an id from {path:?}"),
    };
    assert_eq!(route(&method, &canonical), Some(found.clone()), "{path:?}");
    assert_eq!(
        route(&method, &format!("/stage{canonical}")),
        Some(found),
        "{path:?}"
    );
});
