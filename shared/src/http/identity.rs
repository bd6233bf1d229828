use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::domain::Error;

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

/// The caller's account id. Nothing in the body or path can name it.
pub fn caller(request: &Request, auth: AuthMode) -> Result<String, Error> {
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
