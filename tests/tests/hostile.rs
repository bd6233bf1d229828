//! Hostile input against the real function binaries over HTTP, served by
//! `cargo lambda watch` (router table in Cargo.toml, `AUTH_MODE=dev`), and
//! the same inputs in process through `http::serve` where cargo-lambda
//! answers them itself.
//!
//! Every input gets a clear 4xx with the contract's error JSON, quickly, and
//! the function processes keep serving: none dies or restarts, and a whole
//! migration goes through them at the end.
//!
//! What cargo-lambda (1.9.2, pinned in infra/local/requirements.txt) answers
//! before any function runs (it plays API Gateway locally, with differences):
//! - a method/path pair missing from its router table: 404 with its own
//!   problem JSON (API Gateway answers such requests itself too);
//! - `OPTIONS` preflights: 200 from its CORS layer;
//! - a body that is not UTF-8 under a text-like or missing content type, and
//!   a header value that is not UTF-8: 500 with its own problem JSON, since it
//!   cannot put them in the event (API Gateway base64-encodes such bodies;
//!   the in-process tests below send them that way);
//! - malformed HTTP (NUL or raw UTF-8 in the path, NUL in a header,
//!   conflicting lengths): 400 from its HTTP server; a 100 kB path: 414;
//! - a header given twice: the function sees the first value (API Gateway
//!   joins them with commas; tested in process).
//!
//! Its router matches `{id}` against `..` and `%2e%2e`; lambda_http then
//! resolves those dot segments, so the function sees another path and
//! answers 404 `not_found` (the code docs/openapi.yaml gives a route a
//! function does not serve).
//!
//! A mixed-script domain (Cyrillic `а` in `exаmple.com`) is a valid
//! internationalized domain: it is accepted as its own punycode address,
//! which is what the masked contact in the answer shows, never as the ASCII
//! address it imitates. A confusable in the local part is refused.
//!
//! Requests are written on a raw socket so that nothing (URL parsing, dot
//! segment removal, header validation) changes them on the way.

mod watch;

use contact_migration::http::{self as edge, AuthMode};
use end_to_end::{
    api_gateway_event, dynamodb_endpoint, unique_email, unix_now, AccountSpec, Answer, Stack,
    TestAccount, ACKNOWLEDGE_ALL, ALL_ENDPOINTS,
};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use watch::{Watch, COLD_START};

/// A hostile request, once warm, must be answered within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

const MB: usize = 1024 * 1024;

// ---- a raw HTTP/1.1 client -----------------------------------------------

struct Raw {
    method: String,
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Raw {
    fn new(method: &str, target: impl Into<Vec<u8>>) -> Raw {
        Raw {
            method: method.to_owned(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Raw {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn caller(self, account_id: &str) -> Raw {
        self.header("x-dev-account-id", account_id)
    }

    fn json(self, body: impl Into<Vec<u8>>) -> Raw {
        self.header("content-type", "application/json").body(body)
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Raw {
        self.body = body.into();
        self
    }

    fn bytes(&self, port: u16) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !self.headers.iter().any(|(n, _)| n == "host") {
            out.extend_from_slice(format!("host: 127.0.0.1:{port}\r\n").as_bytes());
        }
        out.extend_from_slice(b"connection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !self.headers.iter().any(|(n, _)| n == "content-length") {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: Value,
    text: String,
}

impl Reply {
    fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

async fn send(port: u16, request: &Raw, within: Duration) -> Result<Reply, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        // The server may answer (and close) before reading a large body.
        let _ = stream.write_all(&request.bytes(port)).await;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_reply(&raw)
    };
    tokio::time::timeout(within, exchange)
        .await
        .map_err(|_| format!("no answer within {within:?}"))?
}

fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete response: {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut body = raw[head_end + 4..].to_vec();
    if header("transfer-encoding").eq_ignore_ascii_case("chunked") {
        body = dechunk(&body);
    }
    let text = String::from_utf8_lossy(&body).to_string();
    Ok(Reply {
        status,
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        text,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    out
}

// ---- expectations --------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The function refused it with the contract's error JSON.
    Refused(u16, &'static str),
    /// The function accepted it: 201, the new contact masked as given.
    Started(&'static str),
    /// cargo-lambda answered with this status before any function ran.
    Emulator(u16),
}

struct Case {
    what: String,
    request: Raw,
    expect: Expect,
}

fn case(what: impl Into<String>, request: Raw, expect: Expect) -> Case {
    Case {
        what: what.into(),
        request,
        expect,
    }
}

/// `None` when `reply` is what `expect` says; otherwise why not.
fn mismatch(reply: &Reply, expect: Expect) -> Option<String> {
    match expect {
        Expect::Refused(status, code) => {
            let message = reply.body["error"]["message"].as_str().unwrap_or("");
            let ok = reply.status == status
                && reply.error_code() == code
                && !message.is_empty()
                && reply.content_type == "application/json";
            (!ok).then(|| format!("want {status} {code}"))
        }
        Expect::Started(masked) => {
            let ok = reply.status == 201
                && reply.body["state"] == "codes_sent"
                && reply.body["new_contact"] == masked;
            (!ok).then(|| format!("want 201 for {masked}"))
        }
        Expect::Emulator(status) => {
            // Never the contract's JSON: no function answered this.
            let ok = reply.status == status && reply.body.get("error").is_none();
            (!ok).then(|| format!("want cargo-lambda's own {status}"))
        }
    }
}

async fn run_cases(port: u16, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let started = std::time::Instant::now();
        let outcome = send(port, &c.request, ANSWER_WITHIN).await;
        let took = started.elapsed();
        match outcome {
            Ok(reply) => {
                let summary: String = reply.text.chars().take(160).collect();
                println!(
                    "{:>3} {:>6}ms  {:<58} {summary}",
                    reply.status,
                    took.as_millis(),
                    c.what
                );
                if let Some(why) = mismatch(&reply, c.expect) {
                    failures.push(format!(
                        "{}: {why}, got {} {}",
                        c.what, reply.status, reply.text
                    ));
                }
                if reply.status >= 500 && !matches!(c.expect, Expect::Emulator(_)) {
                    failures.push(format!("{}: a 5xx from a function", c.what));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", c.what)),
        }
    }
    failures
}

// ---- inputs --------------------------------------------------------------

fn start_body(contact: &str) -> String {
    json!({"channel": "email", "new_contact": contact}).to_string()
}

fn phone_body(contact: &str) -> String {
    json!({"channel": "phone", "new_contact": contact}).to_string()
}

const VERIFY_BODY: &str =
    r#"{"new_contact_code":"123456","current_contact_code":"123456","totp_code":"123456"}"#;

fn close_body() -> String {
    json!({"acknowledged_warnings": ACKNOWLEDGE_ALL, "confirm": true}).to_string()
}

/// `{"channel":"email","new_contact":"aaaa…"}` of about `size` bytes.
fn big_start_body(size: usize) -> String {
    start_body(&"a".repeat(size))
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

fn number_array(len: usize) -> String {
    format!("[{}]", vec!["1"; len].join(","))
}

fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Requests that reach a function and must be refused with a contract error.
fn refused_cases(main: &TestAccount) -> Vec<Case> {
    let id = main.id.as_str();
    let post = |path: &str| Raw::new("POST", path).caller(id);
    let start = || post("/migrations");
    let some = random_id();
    let verify_path = format!("/migrations/{some}/verify");
    let migrate_path = format!("/migrations/{some}/migrate");
    let close_path = format!("/migrations/{some}/close");
    let bad = Expect::Refused(400, "invalid_request");
    let contact = Expect::Refused(400, "invalid_contact");
    let not_found = Expect::Refused(404, "migration_not_found");
    let unauthenticated = Expect::Refused(401, "unauthenticated");
    let mut cases = vec![
        // Size and shape.
        case("1 MB start body", start().json(big_start_body(MB)), bad),
        case("1 MB verify body", post(&verify_path).json(big_start_body(MB)), bad),
        case("1 MB migrate body", post(&migrate_path).json(big_start_body(MB)), bad),
        case("1 MB close body", post(&close_path).json(big_start_body(MB)), bad),
        case("10k nested arrays", start().json(nested_arrays(10_000)), bad),
        case("10k nested objects", start().json(nested_objects(10_000)), bad),
        case(
            "7k nested arrays, under the size limit",
            start().json(format!(r#"{{"channel":{}}}"#, nested_arrays(7_000))),
            bad,
        ),
        case(
            "2k nested objects in migrate's empty body",
            post(&migrate_path).json(nested_objects(2_000)),
            bad,
        ),
        case(
            "200k-element array as new_contact (1 MB)",
            start().json(format!(
                r#"{{"channel":"email","new_contact":{}}}"#,
                number_array(200_000)
            )),
            bad,
        ),
        case(
            "7k-element array as new_contact",
            start().json(format!(
                r#"{{"channel":"email","new_contact":{}}}"#,
                number_array(7_000)
            )),
            bad,
        ),
        case(
            // Close reads the migration first (what it needs depends on it:
            // the duplicate's code), so no such migration is the answer.
            "500 unknown acknowledgements, no confirm",
            post(&close_path).json(
                json!({"acknowledged_warnings": vec!["account_closure_permanent_"; 500], "confirm": false})
                    .to_string(),
            ),
            not_found,
        ),
        case(
            "16 kB code strings",
            post(&verify_path).json(
                json!({"new_contact_code": "9".repeat(5_000), "current_contact_code": "9".repeat(5_000), "totp_code": "9".repeat(5_000)})
                    .to_string(),
            ),
            not_found,
        ),
        case("15 kB new_contact", start().json(big_start_body(15_000)), contact),
        // Content types.
        case(
            "text/plain",
            start()
                .header("content-type", "text/plain")
                .body(start_body("a@example.com")),
            bad,
        ),
        case(
            "form-encoded",
            start()
                .header("content-type", "application/x-www-form-urlencoded")
                .body("channel=email&new_contact=a%40example.com"),
            bad,
        ),
        case(
            "multipart",
            start()
                .header("content-type", "multipart/form-data; boundary=x")
                .body("--x\r\ncontent-disposition: form-data; name=\"channel\"\r\n\r\nemail\r\n--x--\r\n"),
            bad,
        ),
        case(
            "application/xml",
            start()
                .header("content-type", "application/xml")
                .body("<start><channel>email</channel></start>"),
            bad,
        ),
        case(
            "application/json-patch+json",
            start()
                .header("content-type", "application/json-patch+json")
                .body(start_body("a@example.com")),
            bad,
        ),
        case(
            "empty content type",
            start().header("content-type", "").body(start_body("a@example.com")),
            bad,
        ),
        case(
            "content type in capitals with a charset (accepted)",
            start()
                .header("content-type", "Application/JSON; charset=UTF-8")
                .body(start_body("not-an-address")),
            contact,
        ),
        case(
            "no content type (read as JSON)",
            start().body(start_body("not-an-address")),
            contact,
        ),
        case(
            "content type twice, text/plain first",
            start()
                .header("content-type", "text/plain")
                .header("content-type", "application/json")
                .body(start_body("a@example.com")),
            bad,
        ),
        // Confusables and other unicode in contacts.
        case("Cyrillic a in the local part", start().json(start_body("\u{430}dmin@example.com")), contact),
        case("Greek omicron in the local part", start().json(start_body("\u{3bf}scar@example.com")), contact),
        case("fullwidth letter in the local part", start().json(start_body("\u{ff41}dmin@example.com")), contact),
        case("fullwidth @", start().json(start_body("admin\u{ff20}example.com")), contact),
        case("small commercial at", start().json(start_body("admin\u{fe6b}example.com")), contact),
        case("right-to-left override in the domain", start().json(start_body("admin@\u{202e}example.com")), contact),
        case("zero-width joiner in the domain", start().json(start_body("admin@exa\u{200d}mple.com")), contact),
        case("escaped NUL in the local part", start().json(start_body("a\u{0}b@example.com")), contact),
        case("NUL in the domain", start().json(start_body("ab@exa\u{0}mple.com")), contact),
        case("fullwidth plus in a phone", start().json(phone_body("\u{ff0b}447400123456")), contact),
        case("Arabic-Indic digits in a phone", start().json(phone_body("+\u{664}\u{664}7400123456")), contact),
        case("superscript digits in a phone", start().json(phone_body("+\u{b2}\u{b2}7400123456")), contact),
        // Bytes that are not JSON.
        case(
            "invalid UTF-8 as application/octet-stream",
            start()
                .header("content-type", "application/octet-stream")
                .body(b"{\"channel\":\"email\",\"new_contact\":\"\xff\xfe@example.com\"}".to_vec()),
            bad,
        ),
        case(
            "raw NUL inside a JSON string",
            start().json(b"{\"channel\":\"email\",\"new_contact\":\"a\x00b@example.com\"}".to_vec()),
            bad,
        ),
        case("NUL after the JSON", start().json(format!("{}\0", start_body("a@example.com"))), bad),
        case("a lone NUL", start().json(vec![0u8]), bad),
        case("byte order mark", start().json(format!("\u{feff}{}", start_body("a@example.com"))), bad),
        case("null", start().json("null"), bad),
        case("a JSON string", start().json("\"a@example.com\""), bad),
        case(
            "duplicate keys",
            start().json(r#"{"channel":"email","channel":"phone","new_contact":"a@example.com"}"#),
            bad,
        ),
        case("trailing garbage", start().json(format!("{} {{", start_body("a@example.com"))), bad),
        case(
            "a field naming the caller",
            start().json(json!({"channel": "email", "new_contact": "a@example.com", "account_id": "x"}).to_string()),
            bad,
        ),
        case(
            "a positional array for start",
            start().json(r#"["email","a@example.com"]"#),
            bad,
        ),
        case(
            "a positional array for close",
            post(&close_path).json(r#"[["account_closure_permanent"],true]"#),
            bad,
        ),
        case("an empty array for migrate", post(&migrate_path).json("[]"), bad),
        case("channel fax", start().json(r#"{"channel":"fax","new_contact":"a@example.com"}"#), bad),
        case("confirm as a string", post(&close_path).json(r#"{"acknowledged_warnings":[],"confirm":"true"}"#), bad),
        case("confirm as 1e999", post(&close_path).json(r#"{"acknowledged_warnings":[],"confirm":1e999}"#), bad),
        case("codes as numbers", post(&verify_path).json(r#"{"new_contact_code":1,"current_contact_code":2,"totp_code":3}"#), bad),
        case("a field in migrate's body", post(&migrate_path).json(r#"{"confirm":true}"#), bad),
        // Path ids that are not ids.
        case("encoded ../ as the id", Raw::new("GET", "/migrations/..%2F..%2Fetc%2Fpasswd").caller(id), not_found),
        case("%00 as the id (GET)", Raw::new("GET", "/migrations/%00").caller(id), not_found),
        case("%00 as the id (DELETE)", Raw::new("DELETE", "/migrations/%00").caller(id), not_found),
        case("%00 as the id (resend)", post("/migrations/%00/resend").json("{}"), not_found),
        case("%00 as the id (verify)", post("/migrations/%00/verify").json(VERIFY_BODY), not_found),
        case("%00 as the id (migrate)", post("/migrations/%00/migrate").json("{}"), not_found),
        case("%00 as the id (close)", post("/migrations/%00/close").json(close_body()), not_found),
        case("8000-character id", Raw::new("GET", format!("/migrations/{}", "a".repeat(8_000))).caller(id), not_found),
        case("encoded RTL override and emoji id", Raw::new("GET", "/migrations/%E2%80%AE%F0%9F%98%80").caller(id), not_found),
        case("upper-case UUID", Raw::new("GET", format!("/migrations/{}", random_id().to_uppercase())).caller(id), not_found),
        case("braced UUID", Raw::new("GET", format!("/migrations/%7B{}%7D", random_id())).caller(id), not_found),
        case("urn:uuid: id", Raw::new("GET", format!("/migrations/urn:uuid:{}", random_id())).caller(id), not_found),
        case("bad percent escape", Raw::new("GET", "/migrations/%zz").caller(id), not_found),
        // The router matches `{id}` = `..`; the function sees the path with
        // the dot segment resolved, which none of its routes match.
        case("`..` as the id", Raw::new("GET", "/migrations/..").caller(id), Expect::Refused(404, "not_found")),
        case("`%2e%2e` as the id", Raw::new("GET", "/migrations/%2e%2e").caller(id), Expect::Refused(404, "not_found")),
        case("`..` as the id of verify", post("/migrations/../verify").json(VERIFY_BODY), Expect::Refused(404, "not_found")),
        // Identity.
        case("no identity", Raw::new("POST", "/migrations").json(start_body("a@example.com")), unauthenticated),
        case("empty dev identity", Raw::new("POST", "/migrations").caller("").json(start_body("a@example.com")), unauthenticated),
        case("blank dev identity", Raw::new("POST", "/migrations").caller("   ").json(start_body("a@example.com")), unauthenticated),
        case("200-character dev identity", Raw::new("POST", "/migrations").caller(&"a".repeat(200)).json(start_body("a@example.com")), unauthenticated),
        case("dev identity with a tab", Raw::new("POST", "/migrations").caller("a\tb").json(start_body("a@example.com")), unauthenticated),
        case(
            "an unverifiable bearer token and no dev identity",
            Raw::new("POST", "/migrations")
                .header("authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
                .json(start_body("a@example.com")),
            unauthenticated,
        ),
        case(
            "dev identity twice, an unknown account first",
            Raw::new("POST", "/migrations")
                .caller("nobody")
                .caller(id)
                .json(start_body(&unique_email("twice"))),
            Expect::Refused(403, "account_not_active"),
        ),
        case("unknown account", Raw::new("POST", "/migrations").caller("nobody").json(start_body(&unique_email("x"))), Expect::Refused(403, "account_not_active")),
    ];
    for path in [
        verify_path.as_str(),
        migrate_path.as_str(),
        close_path.as_str(),
    ] {
        cases.push(case(
            format!(
                "no identity on {}",
                path.rsplit('/').next().unwrap_or_default()
            ),
            Raw::new("POST", path).json("{}"),
            unauthenticated,
        ));
    }
    cases
}

/// Requests that cargo-lambda answers itself; the in-process tests cover
/// what a function would answer.
fn emulator_cases(main: &TestAccount) -> Vec<Case> {
    let id = main.id.as_str();
    let some = random_id();
    let one = format!("/migrations/{some}");
    let mut cases = vec![
        case(
            "invalid UTF-8 as application/json",
            Raw::new("POST", "/migrations")
                .caller(id)
                .json(b"{\"channel\":\"email\",\"new_contact\":\"\xff\xfe@example.com\"}".to_vec()),
            Expect::Emulator(500),
        ),
        case(
            "invalid UTF-8 without a content type",
            Raw::new("POST", "/migrations")
                .caller(id)
                .body(b"\xc3\x28\xa0\xa1".to_vec()),
            Expect::Emulator(500),
        ),
        case(
            "Latin-1 bytes in the dev identity",
            Raw::new("GET", one.as_str()).header("x-dev-account-id", b"\xe9t\xe9".to_vec()),
            Expect::Emulator(500),
        ),
        case(
            "NUL in the dev identity",
            Raw::new("GET", one.as_str()).header("x-dev-account-id", b"a\x00b".to_vec()),
            Expect::Emulator(400),
        ),
        case(
            "NUL in the path",
            Raw::new("GET", b"/migrations/a\x00b".to_vec()).caller(id),
            Expect::Emulator(400),
        ),
        case(
            "100 kB id",
            Raw::new("GET", format!("/migrations/{}", "a".repeat(100_000))).caller(id),
            Expect::Emulator(414),
        ),
        case(
            "raw ../ in the path",
            Raw::new("GET", format!("/migrations/../migrations/{some}")).caller(id),
            Expect::Emulator(404),
        ),
        case(
            "conflicting content lengths",
            Raw::new("POST", "/migrations")
                .caller(id)
                .header("content-type", "application/json")
                .header("content-length", "2")
                .header("content-length", "3")
                .body("{}"),
            Expect::Emulator(400),
        ),
        case(
            "GET /migrations",
            Raw::new("GET", "/migrations").caller(id),
            Expect::Emulator(404),
        ),
        case(
            "CORS preflight",
            Raw::new("OPTIONS", one.as_str())
                .header("origin", "http://evil.example")
                .header("access-control-request-method", "DELETE"),
            Expect::Emulator(200),
        ),
    ];
    for method in ["PUT", "PATCH", "TRACE", "HEAD", "PROPFIND", "FOO"] {
        cases.push(case(
            format!("{method} /migrations/{{id}}"),
            Raw::new(method, one.as_str()).caller(id).json("{}"),
            Expect::Emulator(404),
        ));
    }
    cases
}

// ---- over HTTP -----------------------------------------------------------

async fn warm(watch: &Watch, main: &TestAccount) {
    let port = watch.port;
    let some = random_id();
    let warmups = [
        Raw::new("GET", format!("/migrations/{some}")).caller(&main.id),
        Raw::new("POST", format!("/migrations/{some}/verify"))
            .caller(&main.id)
            .json(VERIFY_BODY),
        Raw::new("POST", format!("/migrations/{some}/migrate"))
            .caller(&main.id)
            .json("{}"),
        Raw::new("POST", format!("/migrations/{some}/close"))
            .caller(&main.id)
            .json(close_body()),
    ];
    for request in &warmups {
        let reply = send(port, request, COLD_START)
            .await
            .expect("warm-up answered");
        assert_eq!(
            (reply.status, reply.error_code()),
            (404, "migration_not_found"),
            "{reply:?}"
        );
    }
}

const FUNCTIONS: [&str; 4] = ["send-codes", "verify", "migrate", "close"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_contract_errors_and_the_functions_keep_serving() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let mut watch = Watch::start(
        stack.app.store.table(),
        &dynamodb_endpoint(),
        &stack.app.facts,
    );
    let port = watch.port;
    warm(&watch, &main).await;
    let pids: Vec<Vec<u32>> = FUNCTIONS.iter().map(|f| watch.function_pids(f)).collect();
    for (name, pids) in FUNCTIONS.iter().zip(&pids) {
        assert_eq!(pids.len(), 1, "one {name} process after warm-up");
    }

    let mut cases = refused_cases(&main);
    // Accepted spellings, each from an account of its own (starts are
    // limited per account): a mixed-script domain is its own punycode
    // address, never the ASCII one it imitates; fullwidth letters and dots
    // in the domain are one contact with their ASCII spelling (UTS 46).
    for (what, contact, masked) in [
        (
            "Cyrillic a in the domain",
            "admin@ex\u{430}mple.com",
            "a***@xn--exmple-4nf.com",
        ),
        (
            "Greek omicron in the domain",
            "admin@g\u{3bf}ogle.com",
            "a***@xn--gogle-rce.com",
        ),
        (
            "whole-script Cyrillic domain",
            "admin@\u{430}\u{440}\u{440}\u{4cf}\u{435}.com",
            "a***@xn--80ak6aa92e.com",
        ),
        (
            "fullwidth letters in the domain",
            "admin@\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com",
            "a***@example.com",
        ),
        (
            "fullwidth dot in the domain",
            "admin@example\u{ff0e}com",
            "a***@example.com",
        ),
        (
            "soft hyphen in the domain",
            "admin@exam\u{ad}ple.com",
            "a***@example.com",
        ),
    ] {
        let fresh = stack.account(AccountSpec::default()).await;
        cases.push(case(
            what,
            Raw::new("POST", "/migrations")
                .caller(&fresh.id)
                .json(start_body(contact)),
            Expect::Started(masked),
        ));
    }
    let first_named = stack.account(AccountSpec::default()).await;
    cases.push(case(
        "dev identity twice, a real account first (first wins)",
        Raw::new("POST", "/migrations")
            .caller(&first_named.id)
            .caller("nobody")
            .json(start_body("first-wins@example.com")),
        Expect::Started("f***@example.com"),
    ));
    cases.extend(emulator_cases(&main));

    println!("status  took  input                                                      answer");
    let failures = run_cases(port, &cases).await;

    // No function process died or was replaced along the way.
    for (name, before) in FUNCTIONS.iter().zip(&pids) {
        assert_eq!(
            &watch.function_pids(name),
            before,
            "{name} still served by the same process"
        );
    }
    // And they all still serve: a whole migration, through each of them.
    complete_migration_over_http(&stack, port).await;
    assert!(
        failures.is_empty(),
        "{} of {} inputs were not answered as the contract says:\n{}\n--- cargo lambda watch log: {}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        watch.log_path.display()
    );
}

async fn json_call(port: u16, request: Raw) -> Reply {
    send(port, &request, ANSWER_WITHIN)
        .await
        .expect("answered in time")
}

async fn complete_migration_over_http(stack: &Stack, port: u16) {
    let main = stack.account(AccountSpec::default()).await;
    let duplicate = stack
        .account(AccountSpec {
            no_totp: true,
            ..AccountSpec::default()
        })
        .await;
    let started = json_call(
        port,
        Raw::new("POST", "/migrations")
            .caller(&main.id)
            .json(start_body(&duplicate.email)),
    )
    .await;
    assert_eq!(started.status, 201, "{started:?}");
    let id = started.body["migration_id"].as_str().unwrap().to_owned();

    // Another account's id is as unknown as a made-up one.
    let other = json_call(
        port,
        Raw::new("GET", format!("/migrations/{id}")).caller(&duplicate.id),
    )
    .await;
    assert_eq!(
        (other.status, other.error_code()),
        (404, "migration_not_found")
    );

    let (new_code, current_code) = stack.codes(&duplicate.email, &main.email).await;
    let codes = json!({"new_contact_code": new_code, "current_contact_code": current_code, "totp_code": main.totp_at(unix_now())});
    let verified = json_call(
        port,
        Raw::new("POST", format!("/migrations/{id}/verify"))
            .caller(&main.id)
            .json(codes.to_string()),
    )
    .await;
    assert_eq!(verified.body["state"], "verified", "{verified:?}");
    let migrated = json_call(
        port,
        Raw::new("POST", format!("/migrations/{id}/migrate"))
            .caller(&main.id)
            .json("{}"),
    )
    .await;
    assert_eq!(
        migrated.body["state"], "awaiting_confirmation",
        "{migrated:?}"
    );
    let closed = json_call(
        port,
        Raw::new("POST", format!("/migrations/{id}/close"))
            .caller(&main.id)
            .json(close_body()),
    )
    .await;
    assert_eq!(
        (closed.status, &closed.body["closed_account_id"]),
        (200, &json!(duplicate.id)),
        "{closed:?}"
    );
}

// ---- in process, where cargo-lambda answers itself -----------------------

/// Serves an API Gateway event through the same `http::serve` the functions
/// run, converted by `http::request_from_str` (which, unlike lambda_http's
/// own conversion, does not panic on events API Gateway would not send).
async fn serve_event(stack: &Stack, event: &Value, auth: AuthMode) -> Answer {
    let request = edge::request_from_str(&event.to_string()).expect("a valid API Gateway event");
    let response = edge::serve::<ALL_ENDPOINTS>(&stack.app, auth, request, unix_now()).await;
    let status = response.status().as_u16();
    let bytes: &[u8] = response.body().as_ref();
    Answer {
        status,
        body: serde_json::from_slice(bytes).unwrap_or(Value::Null),
        retry_after: None,
    }
}

/// An event whose body is `bytes`, base64-encoded as API Gateway sends a
/// body it does not take for text.
fn binary_event(caller: &str, path: &str, bytes: &[u8], headers: &[(&str, &str)]) -> Value {
    let mut event = api_gateway_event("POST", path, Some(caller), None, headers);
    event["body"] = json!(aws_smithy_types::base64::encode(bytes));
    event["isBase64Encoded"] = json!(true);
    event
}

fn assert_refused(answer: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(
        (answer.status, answer.error_code()),
        (status, code),
        "{what}: {answer:?}"
    );
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {answer:?}"
    );
}

#[tokio::test]
async fn bodies_that_are_not_utf8_are_invalid_requests() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let invalid = b"{\"channel\":\"email\",\"new_contact\":\"\xff\xfe@example.com\"}";
    for (what, headers) in [
        (
            "as application/json",
            &[("content-type", "application/json")][..],
        ),
        ("without a content type", &[][..]),
    ] {
        let event = binary_event(&main.id, "/migrations", invalid, headers);
        let answer = serve_event(&stack, &event, AuthMode::Jwt).await;
        assert_refused(&answer, 400, "invalid_request", what);
    }
    let verify = format!("/migrations/{}/verify", random_id());
    let event = binary_event(
        &main.id,
        &verify,
        b"\xc3\x28",
        &[("content-type", "application/json")],
    );
    assert_refused(
        &serve_event(&stack, &event, AuthMode::Jwt).await,
        400,
        "invalid_request",
        "verify",
    );
}

async fn get(stack: &Stack, method: &str, path: &str, caller: &str) -> Answer {
    let event = api_gateway_event(method, path, Some(caller), None, &[]);
    serve_event(stack, &event, AuthMode::Jwt).await
}

/// serde reads a JSON array as a struct's fields in order; the contract's
/// bodies are objects, so arrays are refused before that.
#[tokio::test]
async fn positional_array_bodies_are_invalid_requests() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let some = random_id();
    for (path, body) in [
        ("/migrations".to_owned(), r#"["email","a@example.com"]"#),
        (format!("/migrations/{some}/verify"), r#"["1","2","3"]"#),
        (format!("/migrations/{some}/migrate"), "[]"),
        (
            format!("/migrations/{some}/close"),
            r#"[["account_closure_permanent"],true]"#,
        ),
        (format!("/migrations/{some}/close"), " \n[]"),
    ] {
        let event = api_gateway_event(
            "POST",
            &path,
            Some(&main.id),
            Some(body),
            &[("content-type", "application/json")],
        );
        let answer = serve_event(&stack, &event, AuthMode::Jwt).await;
        assert_refused(&answer, 400, "invalid_request", &format!("{path} {body}"));
    }
}

#[tokio::test]
async fn unknown_methods_and_unroutable_paths_are_not_found() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let some = random_id();
    let one = format!("/migrations/{some}");
    for method in [
        "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "FOO",
    ] {
        let answer = get(&stack, method, &one, &main.id).await;
        assert_refused(&answer, 404, "not_found", method);
    }
    // Dot segments (`..`, and `%2e%2e` as the URL standard says) are
    // resolved before routing, so these name other paths; a path longer than
    // any route is no route.
    for path in [
        "/migrations/..".to_owned(),
        "/migrations/%2e%2e".to_owned(),
        format!("{one}/verify/../close"),
        "/".to_owned(),
        "/migration".to_owned(),
        "migrations".to_owned(),
        format!("/migrations/{}", "a".repeat(100_000)),
    ] {
        let answer = get(&stack, "GET", &path, &main.id).await;
        assert_refused(&answer, 404, "not_found", &path[..path.len().min(40)]);
    }
    for path in [
        "/migrations/../migrations/x".to_owned(),
        "/migrations/%00".to_owned(),
        "/migrations/..%2F..%2Fetc%2Fpasswd".to_owned(),
        format!("/migrations/{}", "a".repeat(8_000)),
        format!("/migrations/{}", some.to_uppercase()),
        format!("/migrations/urn:uuid:{some}"),
        "/migrations/\u{430}\u{449}\u{1f600}".to_owned(),
        format!("/migrations/{some}?id={some}"),
    ] {
        let answer = get(&stack, "GET", &path, &main.id).await;
        assert_refused(
            &answer,
            404,
            "migration_not_found",
            &path[..path.len().min(40)],
        );
    }
}

#[tokio::test]
async fn header_values_api_gateway_passes_on_are_refused_cleanly() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let now = unix_now();
    let body = start_body(&unique_email("joined"));
    // API Gateway joins a repeated header's values with commas.
    let joined_type = stack
        .call_raw(
            "POST",
            "/migrations",
            Some(&main.id),
            Some(&body),
            &[("content-type", "application/json,text/plain")],
            now,
            AuthMode::Jwt,
        )
        .await;
    assert_refused(&joined_type, 400, "invalid_request", "joined content types");
    let joined_identity = format!("{},{}", main.id, random_id());
    let answer = stack
        .call_raw(
            "POST",
            "/migrations",
            None,
            Some(&body),
            &[
                ("content-type", "application/json"),
                ("x-dev-account-id", &joined_identity),
            ],
            now,
            AuthMode::Dev,
        )
        .await;
    assert_refused(&answer, 403, "account_not_active", "joined dev identities");
    // Not visible ASCII: no identity at all, never a lookalike of one.
    for value in ["\u{e9}t\u{e9}", "\u{430}dmin"] {
        let answer = stack
            .call_raw(
                "POST",
                "/migrations",
                None,
                Some(&body),
                &[
                    ("content-type", "application/json"),
                    ("x-dev-account-id", value),
                ],
                now,
                AuthMode::Dev,
            )
            .await;
        assert_refused(&answer, 401, "unauthenticated", value);
    }
}

#[tokio::test]
async fn jwt_claims_that_name_no_one_are_unauthenticated() {
    let stack = Stack::new().await;
    let body = start_body(&unique_email("jwt"));
    let now = unix_now();
    for sub in ["", "   ", "a\u{0}b", "a\nb"] {
        let answer = stack
            .call_raw(
                "POST",
                "/migrations",
                Some(sub),
                Some(&body),
                &[("content-type", "application/json")],
                now,
                AuthMode::Jwt,
            )
            .await;
        assert_refused(&answer, 401, "unauthenticated", &format!("sub {sub:?}"));
    }
    let long = "a".repeat(200);
    let answer = stack
        .call_raw(
            "POST",
            "/migrations",
            Some(&long),
            Some(&body),
            &[("content-type", "application/json")],
            now,
            AuthMode::Jwt,
        )
        .await;
    assert_refused(&answer, 401, "unauthenticated", "200-character sub");
    // An authorizer without claims, and one without a sub claim.
    for authorizer in [
        json!({"jwt": {"claims": {}, "scopes": null}}),
        json!({"jwt": {"claims": {"iss": "https://issuer.example.com"}, "scopes": null}}),
        json!({"lambda": {"sub": "someone"}}),
    ] {
        let mut event = api_gateway_event(
            "POST",
            "/migrations",
            None,
            Some(&body),
            &[("content-type", "application/json")],
        );
        event["requestContext"]["authorizer"] = authorizer.clone();
        let answer = serve_event(&stack, &event, AuthMode::Jwt).await;
        assert_refused(&answer, 401, "unauthenticated", &authorizer.to_string());
    }
}

/// Headers that lambda_http builds the request URI from, with values that
/// make no URL. lambda_http's own conversion panics on them (a 500 whose body
/// carries the panic message; with the release profile's `panic = "abort"`,
/// the end of the process); the functions sanitise events first
/// (`http::sanitize`, applied in `lambda::run`), so they are ordinary requests.
#[tokio::test]
async fn headers_that_make_no_url_are_refused_cleanly_over_http() {
    let stack = Stack::new().await;
    let main = stack.account(AccountSpec::default()).await;
    let watch = Watch::start(
        stack.app.store.table(),
        &dynamodb_endpoint(),
        &stack.app.facts,
    );
    warm(&watch, &main).await;
    let one = format!("/migrations/{}", random_id());
    let cases = vec![
        case(
            "Host with a port past 65535",
            Raw::new("GET", one.as_str())
                .caller(&main.id)
                .header("host", "example.com:99999"),
            Expect::Refused(404, "migration_not_found"),
        ),
        case(
            "X-Forwarded-Proto that is not a scheme",
            Raw::new("GET", one.as_str())
                .caller(&main.id)
                .header("x-forwarded-proto", "a b"),
            Expect::Refused(404, "migration_not_found"),
        ),
    ];
    let failures = run_cases(watch.port, &cases).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
