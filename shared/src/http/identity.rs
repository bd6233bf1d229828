use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::domain::{Caller, Error};

/// Where the caller's identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Production: the `sub` claim the API Gateway JWT authorizer verified.
    Jwt,
    /// Local development only (`AUTH_MODE=dev`): the `X-Dev-Account-Id`
    /// header names the caller. Never set by `template.yaml`.
    Dev,
}

pub const DEV_ACCOUNT_HEADER: &str = "x-dev-account-id";
const MAX_ACCOUNT_ID_LENGTH: usize = 128;

fn valid(id: &str) -> Option<String> {
    let id = id.trim();
    (!id.is_empty() && id.len() <= MAX_ACCOUNT_ID_LENGTH && !id.chars().any(char::is_control))
        .then(|| id.to_owned())
}

fn jwt_subject(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => {
            let claims = &context.authorizer.as_ref()?.jwt.as_ref()?.claims;
            valid(claims.get("sub")?)
        }
        _ => None,
    }
}

fn account_id(request: &Request, auth: AuthMode) -> Result<String, Error> {
    if auth == AuthMode::Dev {
        if let Some(id) = request.headers().get(DEV_ACCOUNT_HEADER) {
            return id
                .to_str()
                .ok()
                .and_then(valid)
                .ok_or(Error::Unauthenticated);
        }
    }
    jwt_subject(request).ok_or(Error::Unauthenticated)
}

/// The caller. Nothing in the body or path can name it; the source address
/// and user agent are what API Gateway saw, for the audit trail.
pub fn caller(request: &Request, auth: AuthMode) -> Result<Caller, Error> {
    let account_id = account_id(request, auth)?;
    let http = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => Some(&context.http),
        _ => None,
    };
    let header_user_agent = || {
        request
            .headers()
            .get(lambda_http::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok(Caller {
        account_id,
        source_ip: http.and_then(|h| h.source_ip.clone()),
        user_agent: http
            .and_then(|h| h.user_agent.clone())
            .or_else(header_user_agent),
    })
}
