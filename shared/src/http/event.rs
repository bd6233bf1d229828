//! API Gateway events into requests, without the panics of the plain
//! conversion.
//!
//! lambda_http turns an event into a request with `unwrap`s that a
//! malformed event reaches: it parses `{X-Forwarded-Proto}://{Host}{path}`
//! as a URL (a `Host` of `example.com:99999`, or a protocol that is not a
//! scheme, panics), builds the URI from that (a path past 64 KiB panics),
//! and decodes a base64 body (invalid base64 panics). A panic there happens
//! before any handler runs: a 500 that leaks the panic message, and with
//! `panic = "abort"` (the release profile) the end of the process.
//!
//! API Gateway never sends such events, but a local server, another front
//! or a test can. The service reads none of host, protocol, stage or query
//! string (routes take the path, identity the authorizer), so [`sanitize`]
//! drops them; a path too long to be a route becomes `/` (no route); a body
//! marked base64 that is not is taken as the text it is.

use lambda_http::http::header;
use lambda_http::request::LambdaRequest;
use lambda_http::Request;

/// Longer paths are no route of ours, and could exceed the URI length limit
/// once percent-encoded (three bytes per byte at most).
const MAX_PATH_BYTES: usize = 16 * 1024;

/// The event with everything removed that the conversion to a [`Request`]
/// could trip over and the service does not read.
pub fn sanitize(event: LambdaRequest) -> LambdaRequest {
    match event {
        LambdaRequest::ApiGatewayV2(mut event) => {
            event.headers.remove(header::HOST);
            event.headers.remove("x-forwarded-proto");
            event.request_context.domain_name = None;
            event.request_context.stage = None;
            event.raw_query_string = None;
            event.query_string_parameters = Default::default();
            if let Some(path) = event.raw_path.as_mut() {
                if path.len() > MAX_PATH_BYTES {
                    *path = "/".to_owned();
                } else if !path.starts_with('/') {
                    path.insert(0, '/');
                }
            }
            if event.is_base64_encoded && !event.body.as_deref().is_none_or(is_base64) {
                event.is_base64_encoded = false;
            }
            LambdaRequest::ApiGatewayV2(event)
        }
        other => other,
    }
}

/// The request an event stands for; [`sanitize`] first.
pub fn request_from_event(event: LambdaRequest) -> Request {
    sanitize(event).into()
}

/// Like `lambda_http::request::from_str`, through [`request_from_event`].
pub fn request_from_str(event: &str) -> Result<Request, serde_json::Error> {
    serde_json::from_str::<LambdaRequest>(event).map(request_from_event)
}

/// Whether the standard base64 decoder lambda_http uses accepts `text`:
/// the standard alphabet, canonical padding, and no stray bits in the last
/// symbol.
fn is_base64(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return false;
    }
    let data = bytes
        .strip_suffix(b"==")
        .or_else(|| bytes.strip_suffix(b"="))
        .unwrap_or(bytes);
    let value = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    if !data.iter().all(|b| value(*b).is_some()) {
        return false;
    }
    let last = data.last().and_then(|b| value(*b)).unwrap_or(0);
    match bytes.len() - data.len() {
        0 => true,
        1 => last & 0b11 == 0,
        _ => last & 0b1111 == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(path: &str, headers: serde_json::Value) -> String {
        serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "a=b c",
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                "stage": "$default", "requestId": "r", "routeKey": "$default", "time": "t", "timeEpoch": 0,
                "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "t"}
            },
            "isBase64Encoded": false
        })
        .to_string()
    }

    #[test]
    fn host_and_protocol_that_are_not_a_url_do_not_panic() {
        for headers in [
            serde_json::json!({"host": "example.com:99999"}),
            serde_json::json!({"host": "a b"}),
            serde_json::json!({"x-forwarded-proto": "a b"}),
            serde_json::json!({"host": "1.2.3.999"}),
        ] {
            let request = request_from_str(&event("/migrations/x", headers)).unwrap();
            assert_eq!(request.uri().path(), "/migrations/x");
        }
    }

    #[test]
    fn a_path_too_long_to_be_a_route_is_no_route() {
        let long = format!("/migrations/{}", "\u{e9}".repeat(20_000));
        let request = request_from_str(&event(&long, serde_json::json!({}))).unwrap();
        assert_eq!(request.uri().path(), "/");
    }

    #[test]
    fn a_path_without_its_slash_gets_one() {
        let request = request_from_str(&event(":99999", serde_json::json!({}))).unwrap();
        assert_eq!(request.uri().path(), "/:99999");
    }

    #[test]
    fn a_body_marked_base64_that_is_not_is_text() {
        let mut raw: serde_json::Value =
            serde_json::from_str(&event("/migrations", serde_json::json!({}))).unwrap();
        raw["isBase64Encoded"] = true.into();
        for (body, expected) in [
            ("{}", b"{}".as_slice()),
            ("e30=", b"{}".as_slice()),
            ("e30", b"e30".as_slice()),
            ("e31=", b"e31=".as_slice()),
            ("e30==", b"e30==".as_slice()),
            ("", b"".as_slice()),
        ] {
            raw["body"] = body.into();
            let request = request_from_str(&raw.to_string()).unwrap();
            assert_eq!(request.body().as_ref(), expected, "{body:?}");
        }
    }

    #[test]
    fn the_base64_check_agrees_with_the_decoder_on_short_inputs() {
        // The decoder's verdict is whether it panics; keep those quiet.
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.to_string().contains("base64") {
                report(info)
            }
        }));
        const ALPHABET: &[u8] = b"Az0+/=!";
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            texts = texts
                .iter()
                .flat_map(|t| ALPHABET.iter().map(move |c| format!("{t}{}", *c as char)))
                .collect();
            for text in &texts {
                let decoded =
                    std::panic::catch_unwind(|| lambda_http::Body::from_maybe_encoded(true, text));
                assert_eq!(is_base64(text), decoded.is_ok(), "{text:?}");
            }
        }
    }
}
