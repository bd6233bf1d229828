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

use std::future::Future;
use std::pin::Pin;

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
            Ok(caller) => match dispatch::<SERVED>(app, route, &caller, &request, now) {
                Ok(step) => step.await,
                Err(e) => Err(e),
            },
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

/// A step's answer, still to come.
type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<Response<Body>, Error>> + Send + 'a>>;

/// The step of `route`, one arm per endpoint of `SERVED`, chosen by a plain
/// function with guards evaluated at compile time (`const { .. }`): a served
/// step's future is built, boxed, only in its own arm, so the steps of the
/// endpoints a function does not serve are not in its binary. (In an `async`
/// fn they would all stay, whatever the guards: its state machine keeps a
/// resume path into every `.await`.)
fn dispatch<'a, const SERVED: Served>(
    app: &'a App,
    route: &'a Route,
    caller: &'a Caller,
    request: &Request,
    now: Timestamp,
) -> Result<StepFuture<'a>, Error> {
    let id = route.migration_id.as_deref().unwrap_or_default();
    Ok(match route.endpoint {
        Endpoint::Start if const { served(SERVED, Endpoint::Start) } => {
            let body = json_body(request)?;
            Box::pin(async move {
                let view = start::start(app, caller, body, now).await?;
                Ok(json_response(StatusCode::CREATED, &view))
            })
        }
        Endpoint::Resend if const { served(SERVED, Endpoint::Resend) } => {
            Box::pin(async move { ok(start::resend(app, caller, id, now).await?) })
        }
        Endpoint::Verify if const { served(SERVED, Endpoint::Verify) } => {
            let body = json_body(request)?;
            Box::pin(async move { ok(verify::verify(app, caller, id, body, now).await?) })
        }
        Endpoint::Migrate if const { served(SERVED, Endpoint::Migrate) } => {
            let _: EmptyBody = json_body(request)?;
            Box::pin(async move { ok(migrate::migrate(app, caller, id, now).await?) })
        }
        Endpoint::Close if const { served(SERVED, Endpoint::Close) } => {
            let body = json_body(request)?;
            Box::pin(async move { ok(close::close(app, caller, id, body, now).await?) })
        }
        Endpoint::Get if const { served(SERVED, Endpoint::Get) } => {
            Box::pin(async move { ok(lifecycle::get(app, caller, id, now).await?) })
        }
        Endpoint::Cancel if const { served(SERVED, Endpoint::Cancel) } => {
            Box::pin(async move { ok(lifecycle::cancel(app, caller, id, now).await?) })
        }
        _ => return Err(Error::RouteNotFound),
    })
}

/// `migrate` takes `{}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

fn ok(body: impl Serialize) -> Result<Response<Body>, Error> {
    Ok(json_response(StatusCode::OK, &body))
}
