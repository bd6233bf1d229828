//! The HTTP edge: routes, the caller's identity, JSON bodies, and the one
//! table from errors to status codes.

mod error;
mod event;
mod identity;
mod route;

pub use error::error_response;
pub use event::{request_from_event, request_from_str, sanitize};
pub use identity::{caller, AuthMode};
pub use route::{
    endpoints, route, served, Endpoint, Route, Served, ALL, CHECK_TOTP, DELIVER_CODES, READ_FACTS,
    USE_CODE_KEY,
};

use lambda_http::http::{header, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::App;
use crate::domain::{Caller, Error, Timestamp};
use crate::steps::{close, lifecycle, migrate, start, verify};

/// Request bodies are a few short strings; anything larger is refused unread.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Parses a JSON body. An empty body reads as `{}` so `migrate` can be
/// called without one; unknown fields, wrong types, deep nesting and
/// oversized or non-JSON bodies are all `invalid_request`.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, Error> {
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" {
            return Err(Error::InvalidRequest(
                "Content-Type must be application/json".into(),
            ));
        }
    }
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Error::InvalidRequest(format!(
            "the body is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    // serde reads a JSON array as a struct's fields in order; the contract's
    // bodies are objects.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::InvalidRequest(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidRequest(format!("invalid JSON body: {e}")))
}

/// Answers one request for a function that serves the endpoints `SERVED`
/// (only their steps are compiled into it).
pub async fn serve<const SERVED: Served>(
    app: &App,
    auth: AuthMode,
    request: Request,
    now: Timestamp,
) -> Response<Body> {
    let route =
        route(request.method(), request.uri().path()).filter(|r| served(SERVED, r.endpoint));
    let result = match &route {
        None => Err(Error::RouteNotFound),
        Some(route) => match caller(&request, auth) {
            Err(e) => Err(e),
            Ok(caller) => dispatch::<SERVED>(app, route, &caller, &request, now).await,
        },
    };
    let (response, error_code) = match result {
        Ok(response) => (response, ""),
        Err(e) => (error_response(&e), error::code(&e)),
    };
    tracing::info!(
        endpoint = route.as_ref().map(|r| r.endpoint.name()).unwrap_or("none"),
        migration_id = route
            .as_ref()
            .and_then(|r| r.migration_id.as_deref())
            .unwrap_or(""),
        status = response.status().as_u16(),
        error_code,
        "request"
    );
    response
}

/// The step of `route`, one arm per endpoint of `SERVED`: the guards are
/// constants, so a function's binary holds only its own steps.
async fn dispatch<const SERVED: Served>(
    app: &App,
    route: &Route,
    caller: &Caller,
    request: &Request,
    now: Timestamp,
) -> Result<Response<Body>, Error> {
    let id = route.migration_id.as_deref().unwrap_or_default();
    let serves = |endpoint| served(SERVED, endpoint);
    match route.endpoint {
        Endpoint::Start if serves(Endpoint::Start) => {
            let view = start::start(app, caller, json_body(request)?, now).await?;
            Ok(json_response(StatusCode::CREATED, &view))
        }
        Endpoint::Resend if serves(Endpoint::Resend) => {
            ok(start::resend(app, caller, id, now).await?)
        }
        Endpoint::Verify if serves(Endpoint::Verify) => {
            ok(verify::verify(app, caller, id, json_body(request)?, now).await?)
        }
        Endpoint::Migrate if serves(Endpoint::Migrate) => {
            let _: EmptyBody = json_body(request)?;
            ok(migrate::migrate(app, caller, id, now).await?)
        }
        Endpoint::Close if serves(Endpoint::Close) => {
            ok(close::close(app, caller, id, json_body(request)?, now).await?)
        }
        Endpoint::Get if serves(Endpoint::Get) => ok(lifecycle::get(app, caller, id, now).await?),
        Endpoint::Cancel if serves(Endpoint::Cancel) => {
            ok(lifecycle::cancel(app, caller, id, now).await?)
        }
        _ => Err(Error::RouteNotFound),
    }
}

/// `migrate` takes `{}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

fn ok(body: impl Serialize) -> Result<Response<Body>, Error> {
    Ok(json_response(StatusCode::OK, &body))
}
