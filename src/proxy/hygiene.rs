//! Which client request headers never reach an upstream, and the `Connection` tokens refused.
//!
//! Owns: the lists of names and the one pass over a request's headers that removes them. Does
//! not own: the values the gateway sets in their place (`forwarded.rs`, `upstream.rs`).
//!
//! Removed from every forwarded request, whatever its case and with `_` for `-` (CGI-style apps
//! read `X_Real_IP` as `X-Real-IP`):
//! - every identity header (`identity::is_identity_header`);
//! - the headers the gateway sets itself: `X-Forwarded-For/-Proto/-Host/-Port`, `X-Real-IP`;
//! - headers upstreams commonly trust for routing or identity (`policy::DROPPED_CLIENT_HEADERS`),
//!   unless the peer is a trusted proxy and `identity.trusted_proxy_headers` names them;
//! - the operator's own `identity.strip_headers`.

use http::HeaderMap;
use pingora::http::RequestHeader;

use crate::identity::is_identity_header;
use crate::policy::client_headers::{dropped_entry, same_name};

/// Set by the gateway on every forwarded request; a client's value never passes.
const GATEWAY_SET: [&str; 5] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
];

/// pingora refuses a request whose `Connection` header nominates this many headers or more.
const MAX_CONNECTION_TOKENS: usize = 10;

/// The configured hygiene, built once at start.
#[derive(Debug, Clone, Default)]
pub struct HeaderHygiene {
    /// `identity.strip_headers`, compared with [`same_name`].
    extra: Vec<String>,
    /// Entries of `policy::DROPPED_CLIENT_HEADERS` a trusted proxy may pass.
    trusted_pass: Vec<&'static str>,
}

impl HeaderHygiene {
    pub fn new(strip_headers: &[String], trusted_proxy_headers: &[String]) -> HeaderHygiene {
        HeaderHygiene {
            extra: strip_headers.iter().map(|n| n.trim().to_owned()).collect(),
            trusted_pass: trusted_proxy_headers
                .iter()
                .filter_map(|n| dropped_entry(n.trim().trim_end_matches('*')))
                .collect(),
        }
    }

    /// Removes every header this module owns from the request about to go upstream.
    pub fn strip(&self, upstream: &mut RequestHeader, from_trusted_proxy: bool) {
        let doomed: Vec<http::HeaderName> = upstream
            .headers
            .keys()
            .filter(|name| self.is_doomed(name.as_str(), from_trusted_proxy))
            .cloned()
            .collect();
        for name in doomed {
            upstream.remove_header(&name);
        }
    }

    fn is_doomed(&self, name: &str, from_trusted_proxy: bool) -> bool {
        if is_identity_header(name) {
            return true;
        }
        let named = |list: &[&str]| list.iter().any(|known| same_name(name, known));
        if named(&GATEWAY_SET) || self.extra.iter().any(|extra| same_name(name, extra)) {
            return true;
        }
        match dropped_entry(name) {
            Some(entry) => !(from_trusted_proxy && self.trusted_pass.contains(&entry)),
            None => false,
        }
    }

    /// Why a `Connection` header is refused, if it is: it nominates (asks the gateway to drop)
    /// `Host`, an identity or forwarded header, or a header this gateway strips; or it is
    /// malformed or too long for pingora, which would otherwise drop the connection unanswered.
    pub fn refused_connection_header(&self, headers: &HeaderMap) -> Option<&'static str> {
        let tokens = headers
            .get_all(http::header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty());
        for (count, token) in tokens.enumerate() {
            if count + 1 >= MAX_CONNECTION_TOKENS {
                return Some("The Connection header names too many headers.");
            }
            let Some(name) = std::str::from_utf8(token).ok().filter(|t| is_token(t)) else {
                return Some("The Connection header has a malformed option.");
            };
            if same_name(name, "host")
                || same_name(name, "forwarded")
                || self.is_doomed(name, false)
            {
                return Some("The Connection header names a header the gateway controls.");
            }
        }
        None
    }
}

/// An HTTP `token` (RFC 9110 §5.6.2).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::is_dropped_client_header;

    fn hygiene() -> HeaderHygiene {
        HeaderHygiene::new(&["X-Internal-Token".into()], &["forwarded".into()])
    }

    #[test]
    fn doomed_names_in_any_spelling() {
        let h = hygiene();
        for name in [
            "x-passkey-user",
            "remote_user",
            "x-forwarded-for",
            "X_Forwarded_For",
            "x-forwarded-port",
            "x-real-ip",
            "X_REAL_IP",
            "x-forwarded-prefix",
            "x-original-url",
            "x_rewrite_url",
            "x-auth-request-user",
            "X-Auth-Request-Email",
            "x-internal-token",
            "x_internal_token",
        ] {
            assert!(h.is_doomed(name, false), "{name} from a client");
            assert!(h.is_doomed(name, true), "{name} from a trusted proxy");
        }
        assert!(h.is_doomed("forwarded", false));
        assert!(
            !h.is_doomed("forwarded", true),
            "configured to pass from trusted proxies"
        );
        for name in ["cookie", "authorization", "x-request-id", "user-agent"] {
            assert!(!h.is_doomed(name, false), "{name} passes");
        }
    }

    #[test]
    fn connection_may_not_nominate_what_the_gateway_controls() {
        let h = hygiene();
        let verdict = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::CONNECTION,
                http::HeaderValue::from_str(value).expect("value"),
            );
            h.refused_connection_header(&headers)
        };
        for ok in [
            "keep-alive",
            "close",
            "Upgrade",
            "keep-alive, x-app-thing",
            "",
        ] {
            assert_eq!(verdict(ok), None, "{ok}");
        }
        for bad in [
            "X-Passkey-Assertion",
            "keep-alive, x_passkey_user",
            "X-Forwarded-For",
            "x-real-ip",
            "Host",
            "Forwarded",
            "X-Original-URL",
            "x-internal-token",
            "\"x-forwarded-for\"",
            ":authority",
            "a,b,c,d,e,f,g,h,i,j",
        ] {
            assert!(verdict(bad).is_some(), "{bad} must be refused");
        }
    }

    #[test]
    fn the_drop_list_is_what_config_may_name() {
        for name in [
            "Forwarded",
            "x-original-url",
            "X-Auth-Request-*",
            "x-auth-request-user",
        ] {
            assert!(is_dropped_client_header(name), "{name}");
        }
        for name in ["X-Real-IP", "X-Forwarded-For", "X-Passkey-User", "Cookie"] {
            assert!(!is_dropped_client_header(name), "{name}");
        }
    }
}
