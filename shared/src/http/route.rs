use lambda_http::http::Method;

/// The endpoints of PRODUCT.md §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Start,
    Resend,
    Verify,
    Migrate,
    Close,
    Get,
    Cancel,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Start => "start",
            Endpoint::Resend => "resend",
            Endpoint::Verify => "verify",
            Endpoint::Migrate => "migrate",
            Endpoint::Close => "close",
            Endpoint::Get => "get",
            Endpoint::Cancel => "cancel",
        }
    }

    /// Whether the endpoint checks TOTP codes, and so opens TOTP secrets.
    pub fn checks_totp(self) -> bool {
        matches!(self, Endpoint::Verify | Endpoint::Close)
    }

    /// Whether the endpoint reads the exchange's account facts, and so needs
    /// the facts endpoint's signing key.
    pub fn reads_facts(self) -> bool {
        matches!(self, Endpoint::Verify | Endpoint::Migrate | Endpoint::Close)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub migration_id: Option<String>,
}

/// Matches a request path from the `migrations` segment on, so a stage or
/// base-path prefix in front of it does not matter.
pub fn route(method: &Method, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = segments.iter().position(|s| *s == "migrations")?;
    let rest = &segments[start + 1..];
    let (endpoint, id) = match (method, rest) {
        (&Method::POST, []) => (Endpoint::Start, None),
        (&Method::GET, [id]) => (Endpoint::Get, Some(id)),
        (&Method::DELETE, [id]) => (Endpoint::Cancel, Some(id)),
        (&Method::POST, [id, action]) => {
            let endpoint = match *action {
                "resend" => Endpoint::Resend,
                "verify" => Endpoint::Verify,
                "migrate" => Endpoint::Migrate,
                "close" => Endpoint::Close,
                _ => return None,
            };
            (endpoint, Some(id))
        }
        _ => return None,
    };
    Some(Route {
        endpoint,
        migration_id: id.map(|id| id.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: Method, path: &str) -> Option<(Endpoint, Option<String>)> {
        route(&method, path).map(|r| (r.endpoint, r.migration_id))
    }

    #[test]
    fn production_paths_route_to_their_endpoints() {
        assert_eq!(
            r(Method::POST, "/migrations"),
            Some((Endpoint::Start, None))
        );
        assert_eq!(
            r(Method::POST, "/migrations/abc/resend"),
            Some((Endpoint::Resend, Some("abc".into())))
        );
        assert_eq!(
            r(Method::POST, "/migrations/abc/verify"),
            Some((Endpoint::Verify, Some("abc".into())))
        );
        assert_eq!(
            r(Method::POST, "/migrations/abc/migrate"),
            Some((Endpoint::Migrate, Some("abc".into())))
        );
        assert_eq!(
            r(Method::POST, "/migrations/abc/close/"),
            Some((Endpoint::Close, Some("abc".into())))
        );
        assert_eq!(
            r(Method::GET, "/migrations/abc"),
            Some((Endpoint::Get, Some("abc".into())))
        );
        assert_eq!(
            r(Method::DELETE, "/migrations/abc"),
            Some((Endpoint::Cancel, Some("abc".into())))
        );
        assert_eq!(
            r(Method::GET, "/prod/migrations/abc"),
            Some((Endpoint::Get, Some("abc".into())))
        );
    }

    #[test]
    fn other_paths_do_not_route() {
        assert_eq!(r(Method::GET, "/migrations"), None);
        assert_eq!(r(Method::PUT, "/migrations/abc"), None);
        assert_eq!(r(Method::POST, "/migrations/abc/explode"), None);
        assert_eq!(r(Method::POST, "/accounts"), None);
        assert_eq!(r(Method::POST, "/migrations/a/b/c"), None);
    }
}
