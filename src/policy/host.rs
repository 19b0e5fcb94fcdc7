//! The host rule: which host a request is routed by.
//!
//! Owns: choosing between the absolute-form authority and `Host`, and the one canonical form both
//! routes and requests are compared in. Does not own: route lookup (`routing.rs`).
//!
//! - The absolute-form authority wins over `Host` (RFC 9112 §3.2.2); the proxy then sends that
//!   authority upstream as `Host`, so the upstream serves the host that was routed.
//! - An HTTP/1.1 request with neither is refused (RFC 9112 §3.2); HTTP/1.0 may omit it and is
//!   then routed only by host-less routes.
//! - Canonical form: lowercase, port dropped, one trailing dot dropped (`Admin.Example.` is
//!   `admin.example`), so no spelling of a configured host falls through to a catch-all route.
//! - A host a DNS name or IP literal cannot be (spaces, `@`, `/`, empty labels, a bad port) is
//!   refused rather than matched loosely.

/// The host of a request, once accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHost<'a> {
    /// Canonical form for matching routes: lowercase, no port, no trailing dot.
    pub name: String,
    /// As the client wrote it (with port): what `Host` upstream and `X-Forwarded-Host` carry.
    pub authority: &'a str,
}

/// Why a host was refused (always a 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("an HTTP/1.1 request must name its host")]
    Missing,
    #[error("more than one Host header")]
    Repeated,
    #[error("the host is not a valid DNS name or IP address")]
    Invalid,
}

/// Longest DNS name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME: usize = 253;

/// The routing host from the absolute-form `authority` (if any) and every `Host` header value.
pub fn request_host<'a>(
    authority: Option<&'a str>,
    host_headers: &[&'a [u8]],
    version: http::Version,
) -> Result<Option<RequestHost<'a>>, HostError> {
    if host_headers.len() > 1 {
        return Err(HostError::Repeated);
    }
    let header = match host_headers.first() {
        Some(bytes) => Some(std::str::from_utf8(bytes).map_err(|_| HostError::Invalid)?),
        None => None,
    };
    let Some(authority) = authority.or(header) else {
        return match version <= http::Version::HTTP_10 {
            true => Ok(None),
            false => Err(HostError::Missing),
        };
    };
    let name = canonical_host(authority).ok_or(HostError::Invalid)?;
    Ok(Some(RequestHost { name, authority }))
}

/// `Admin.Example.:8080` → `admin.example`; `[::1]:80` → `[::1]`; `None` when it is no host.
pub fn canonical_host(authority: &str) -> Option<String> {
    let (host, port) = split_port(authority)?;
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || port.parse::<u16>().is_err() {
            return None;
        }
    }
    if let Some(literal) = host.strip_prefix('[') {
        let inner = literal.strip_suffix(']')?;
        let ip: std::net::Ipv6Addr = inner.parse().ok()?;
        return Some(format!("[{ip}]"));
    }
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let valid = !host.is_empty() && host.len() <= MAX_NAME && host.split('.').all(is_label);
    valid.then_some(host)
}

/// `host[:port]` → (`host`, port text); the port of an IPv6 literal follows its `]`.
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, rest) = authority.split_at(close + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// A DNS label as hosts use it: 1–63 letters, digits, `-` or `_` (seen on internal names).
fn is_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Version;

    #[test]
    fn hosts_are_compared_in_one_form() {
        let cases: &[(&str, Option<&str>)] = &[
            ("admin.localhost", Some("admin.localhost")),
            ("Admin.LocalHost", Some("admin.localhost")),
            ("admin.localhost.", Some("admin.localhost")),
            ("admin.localhost.:8080", Some("admin.localhost")),
            ("admin.localhost:8080", Some("admin.localhost")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            ("[::1]:8080", Some("[::1]")),
            ("[0:0::1]", Some("[::1]")),
            ("internal_host", Some("internal_host")),
            ("admin.localhost..", None),
            (".admin", None),
            ("a..b", None),
            ("admin.localhost:", None),
            ("admin.localhost:99999", None),
            ("admin.localhost:80:80", None),
            ("admin.localhost:x", None),
            ("user@admin.localhost", None),
            ("admin.localhost/x", None),
            ("admin localhost", None),
            ("adm\u{ed}n", None),
            ("[::1", None),
            ("[::1]x", None),
            ("[nothex]", None),
            ("", None),
            (".", None),
        ];
        for (authority, want) in cases {
            assert_eq!(canonical_host(authority).as_deref(), *want, "{authority:?}");
        }
    }

    #[test]
    fn authority_beats_host_and_http11_needs_one() {
        let got = request_host(Some("A.example"), &[b"b.example"], Version::HTTP_11);
        assert_eq!(
            got,
            Ok(Some(RequestHost {
                name: "a.example".into(),
                authority: "A.example"
            }))
        );
        let got = request_host(None, &[b"B.example:1"], Version::HTTP_11);
        assert_eq!(got.map(|h| h.map(|h| h.name)), Ok(Some("b.example".into())));
        assert_eq!(
            request_host(None, &[], Version::HTTP_11),
            Err(HostError::Missing)
        );
        assert_eq!(request_host(None, &[], Version::HTTP_10), Ok(None));
        assert_eq!(
            request_host(None, &[b"a", b"b"], Version::HTTP_11),
            Err(HostError::Repeated)
        );
        assert_eq!(
            request_host(None, &[b""], Version::HTTP_11),
            Err(HostError::Invalid)
        );
        assert_eq!(
            request_host(None, &[b"\xff"], Version::HTTP_11),
            Err(HostError::Invalid)
        );
    }
}
