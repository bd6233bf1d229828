use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde_json::{json, Map, Value};

use super::json_response;
use crate::domain::Error;

/// The contract's status code and error code of every error: the one table.
pub fn status(e: &Error) -> StatusCode {
    match e {
        Error::InvalidRequest(_) | Error::InvalidContact(_) => StatusCode::BAD_REQUEST,
        Error::Unauthenticated => StatusCode::UNAUTHORIZED,
        Error::TwoFactorRequired | Error::AccountNotActive => StatusCode::FORBIDDEN,
        Error::MigrationNotFound | Error::RouteNotFound => StatusCode::NOT_FOUND,
        Error::ContactAlreadyYours
        | Error::InvalidState(_)
        | Error::NotEligible(_)
        | Error::ContactAlreadyMigrated
        | Error::AccountAlreadyMigrated
        | Error::DuplicateIdentityVerified
        | Error::DuplicateClosed
        | Error::StateChanged => StatusCode::CONFLICT,
        Error::CodesExpired | Error::MigrationExpired => StatusCode::GONE,
        Error::InvalidCodes { .. } | Error::ConfirmationRequired { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Error::MigrationLocked => StatusCode::LOCKED,
        Error::RateLimited { .. } | Error::SendsExhausted => StatusCode::TOO_MANY_REQUESTS,
        Error::DeliveryFailed | Error::FactsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub fn code(e: &Error) -> &'static str {
    match e {
        Error::InvalidRequest(_) => "invalid_request",
        Error::InvalidContact(_) => "invalid_contact",
        Error::Unauthenticated => "unauthenticated",
        Error::TwoFactorRequired => "two_factor_required",
        Error::AccountNotActive => "account_not_active",
        Error::MigrationNotFound => "migration_not_found",
        Error::RouteNotFound => "not_found",
        Error::ContactAlreadyYours => "contact_already_yours",
        Error::InvalidState(_) => "invalid_state",
        Error::NotEligible(_) => "not_eligible",
        Error::ContactAlreadyMigrated => "contact_already_migrated",
        Error::AccountAlreadyMigrated => "account_already_migrated",
        Error::DuplicateIdentityVerified => "duplicate_identity_verified",
        Error::DuplicateClosed => "duplicate_closed",
        Error::StateChanged => "state_changed",
        Error::CodesExpired => "codes_expired",
        Error::MigrationExpired => "migration_expired",
        Error::InvalidCodes { .. } => "invalid_codes",
        Error::ConfirmationRequired { .. } => "confirmation_required",
        Error::MigrationLocked => "migration_locked",
        Error::RateLimited { .. } | Error::SendsExhausted => "rate_limited",
        Error::DeliveryFailed => "delivery_failed",
        Error::FactsUnavailable(_) => "facts_unavailable",
        Error::Internal(_) => "internal",
    }
}

/// `{"error": {"code", "message", ...extra fields}}`; internal details are
/// logged here and never answered.
pub fn error_response(e: &Error) -> Response<Body> {
    let message = match e {
        Error::Internal(detail) => {
            tracing::error!(error = %detail, "internal error");
            "something went wrong; try again later".to_owned()
        }
        Error::FactsUnavailable(detail) => {
            tracing::warn!(error = %detail, "account facts unavailable; step refused");
            e.to_string()
        }
        other => other.to_string(),
    };
    let mut body = Map::new();
    body.insert("code".into(), json!(code(e)));
    body.insert("message".into(), json!(message));
    match e {
        Error::NotEligible(blockers) => {
            body.insert("blockers".into(), json!(blockers));
        }
        Error::InvalidCodes {
            invalid,
            attempts_remaining,
        } => {
            body.insert("invalid".into(), json!(invalid));
            body.insert("attempts_remaining".into(), json!(attempts_remaining));
        }
        Error::ConfirmationRequired { missing } => {
            body.insert("missing".into(), json!(missing));
        }
        Error::RateLimited { retry_after } => {
            body.insert("retry_after".into(), json!(retry_after));
        }
        _ => {}
    }
    let mut response = json_response(status(e), &json!({ "error": Value::Object(body) }));
    if let Error::RateLimited { retry_after } = e {
        if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}
