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
    /// Every endpoint, in the contract's order.
    pub const EVERY: [Endpoint; 7] = [
        Endpoint::Start,
        Endpoint::Resend,
        Endpoint::Verify,
        Endpoint::Migrate,
        Endpoint::Close,
        Endpoint::Get,
        Endpoint::Cancel,
    ];

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
        served(CHECK_TOTP, self)
    }

    /// Whether the endpoint reads the exchange's account facts, and so needs
    /// the facts endpoint's signing key.
    pub fn reads_facts(self) -> bool {
        served(READ_FACTS, self)
    }

    /// Whether the endpoint makes or checks one-time codes, and so needs the
    /// code key.
    pub fn uses_code_key(self) -> bool {
        served(USE_CODE_KEY, self)
    }

    /// Whether the endpoint sends codes (SES, SNS).
    pub fn sends_codes(self) -> bool {
        served(DELIVER_CODES, self)
    }

    const fn bit(self) -> Served {
        1 << self as u8
    }
}

/// A set of endpoints, as a constant a function's binary is built with
/// (`lambda::run::<{ endpoints(&[...]) }>`): whatever the set leaves out is
/// known at compile time, so its code, and the SDK clients only it uses, are
/// not linked into that binary.
pub type Served = u8;

/// The set of `list`.
pub const fn endpoints(list: &[Endpoint]) -> Served {
    let mut set = 0;
    let mut i = 0;
    while i < list.len() {
        set |= list[i].bit();
        i += 1;
    }
    set
}

/// Whether `set` holds `endpoint`.
pub const fn served(set: Served, endpoint: Endpoint) -> bool {
    set & endpoint.bit() != 0
}

/// Every endpoint.
pub const ALL: Served = endpoints(&Endpoint::EVERY);
/// The endpoints that check TOTP codes.
pub const CHECK_TOTP: Served = endpoints(&[Endpoint::Verify, Endpoint::Close]);
/// The endpoints that read account facts.
pub const READ_FACTS: Served = endpoints(&[Endpoint::Verify, Endpoint::Migrate, Endpoint::Close]);
/// The endpoints that make or check one-time codes.
pub const USE_CODE_KEY: Served = endpoints(&[Endpoint::Start, Endpoint::Resend, Endpoint::Verify]);
/// The endpoints that send codes.
pub const DELIVER_CODES: Served = endpoints(&[Endpoint::Start, Endpoint::Resend]);

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
    fn a_set_of_endpoints_holds_exactly_its_members() {
        let verify_and_get = endpoints(&[Endpoint::Verify, Endpoint::Get]);
        for e in Endpoint::EVERY {
            assert_eq!(
                served(verify_and_get, e),
                matches!(e, Endpoint::Verify | Endpoint::Get),
                "{e:?}"
            );
            assert!(served(ALL, e), "{e:?}");
            assert!(!served(endpoints(&[]), e), "{e:?}");
        }
    }

    #[test]
    fn what_each_endpoint_needs_is_as_its_step_uses_it() {
        let needs = |e: Endpoint| {
            (
                e.sends_codes(),
                e.uses_code_key(),
                e.checks_totp(),
                e.reads_facts(),
            )
        };
        assert_eq!(needs(Endpoint::Start), (true, true, false, false));
        assert_eq!(needs(Endpoint::Resend), (true, true, false, false));
        assert_eq!(needs(Endpoint::Verify), (false, true, true, true));
        assert_eq!(needs(Endpoint::Migrate), (false, false, false, true));
        assert_eq!(needs(Endpoint::Close), (false, false, true, true));
        assert_eq!(needs(Endpoint::Get), (false, false, false, false));
        assert_eq!(needs(Endpoint::Cancel), (false, false, false, false));
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
