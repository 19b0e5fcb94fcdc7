//! The first look at a request, before routing: the target rule, the host rule, the path
//! normalized once, and the `Connection` tokens refused. What comes out is all that routing,
//! policy, the log and the upstream request use, so the four cannot disagree about a request.

use http::{Method, StatusCode};
use pingora::http::RequestHeader;

use super::hygiene::HeaderHygiene;
use super::upstream::CheckedTarget;
use crate::error::ApiError;
use crate::policy::{check_request_line, LineError, TargetError};
use crate::reply::Reply;

/// A request line the gateway accepted.
#[derive(Debug, Default)]
pub struct Inbound {
    /// The normalized path routing and policy see.
    pub path: String,
    /// The checked origin-form target (path and query), e.g. for `return_to`.
    pub target: String,
    /// The routing host, canonical (see `policy::host`).
    pub host: Option<String>,
    /// The routed host as written (with port): `X-Forwarded-Host`.
    pub authority: Option<String>,
    /// What the upstream request must carry instead of the bytes received.
    pub upstream: CheckedTarget,
}

/// Checks `header` with the one request-line rule (`policy::check_request_line`, which
/// forward-auth applies to the original request too) and the `Connection` tokens; `Err` is the
/// reply the gateway sends instead (400, 405, or 204 for `OPTIONS *`).
pub fn inbound(header: &RequestHeader, hygiene: &HeaderHygiene) -> Result<Inbound, Reply> {
    let hosts = host_values(header).map_err(line_refused)?;
    let line = check_request_line(&header.method, header.raw_path(), &hosts, header.version)
        .map_err(line_refused)?;
    if let Some(why) = hygiene.refused_connection_header(&header.headers) {
        return Err(ApiError::BadRequest("bad_connection_header", why).into_reply());
    }
    Ok(Inbound {
        path: line.path,
        target: line.target,
        host: line.host,
        authority: line.authority,
        upstream: CheckedTarget {
            rewritten: line.rewritten,
            absolute_authority: line.absolute_authority,
        },
    })
}

/// What names the host: every `Host` value; for HTTP/2, the `:authority` pseudo-header (which
/// pingora keeps as the URI's authority, the target being `:path`), with any `Host` beside it
/// required to name the same (RFC 9113 §8.3.1), so routing and the upstream's `Host` agree.
fn host_values(header: &RequestHeader) -> Result<Vec<&[u8]>, LineError> {
    let mut hosts = header
        .headers
        .get_all(http::header::HOST)
        .iter()
        .map(|v| v.as_bytes());
    let authority = match header.version {
        http::Version::HTTP_2 => header.uri.authority(),
        _ => None,
    };
    let Some(authority) = authority.map(|a| a.as_str().as_bytes()) else {
        return Ok(hosts.collect());
    };
    match hosts.all(|h| h.eq_ignore_ascii_case(authority)) {
        true => Ok(vec![authority]),
        false => Err(LineError::Host),
    }
}

/// The reply for a refused request line; `OPTIONS *` is answered rather than refused.
pub(crate) fn line_refused(e: LineError) -> Reply {
    let error = match e {
        LineError::ServerOptions => return server_options(),
        LineError::Target(TargetError::Connect) => ApiError::MethodNotAllowed,
        LineError::Target(_) => ApiError::BadRequest(
            "bad_target",
            "The request target must be a path such as /app, or an http(s) URL.",
        ),
        LineError::Host => {
            ApiError::BadRequest("bad_host", "The request must name one valid host.")
        }
        LineError::Path => ApiError::BadRequest("bad_path", "The address could not be understood."),
    };
    error.into_reply()
}

/// `OPTIONS *` asks what the server supports; it names no resource, so nothing is forwarded.
fn server_options() -> Reply {
    let allow = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .map(|m| m.to_string())
    .join(", ");
    Reply::empty(StatusCode::NO_CONTENT).header("allow", allow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::normalize_path;
    use proptest::prelude::*;

    /// Pieces that make targets interesting: schemes, slashes, dots, escapes, separators.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "/",
            "//",
            "\\",
            ".",
            "..",
            "%2e",
            "%2f",
            "%5c",
            "%25",
            "%61",
            ";",
            "?",
            "#",
            ":",
            "http:",
            "https://",
            "HTTP://",
            "x:",
            "localhost",
            "admin",
            "a",
            "@",
            "*",
            "%",
        ])
    }

    fn header(target: &[u8]) -> Option<RequestHeader> {
        let mut header = RequestHeader::build("GET", target, None).ok()?;
        header.insert_header("host", "localhost").ok()?;
        Some(header)
    }

    fn h2(host: Option<&str>) -> RequestHeader {
        let mut header = RequestHeader::build("GET", b"/app/x", None).expect("header");
        header.set_version(http::Version::HTTP_2);
        header.set_uri(http::Uri::from_static("https://App.Example:8443/app/x"));
        if let Some(host) = host {
            header.insert_header("host", host).expect("host");
        }
        header
    }

    #[test]
    fn an_h2_request_is_routed_by_its_authority() {
        let hygiene = HeaderHygiene::default();
        let checked = inbound(&h2(None), &hygiene).expect("no Host is needed beside :authority");
        assert_eq!(checked.host.as_deref(), Some("app.example"));
        assert_eq!(checked.authority.as_deref(), Some("App.Example:8443"));
        assert_eq!(checked.path, "/app/x");
        assert!(inbound(&h2(Some("app.example:8443")), &hygiene).is_ok());
        let other = inbound(&h2(Some("admin.example")), &hygiene);
        assert_eq!(other.err().map(|r| r.status), Some(StatusCode::BAD_REQUEST));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Whenever the gateway would forward, the target it forwards normalizes to the path
        /// it authorized, and is origin-form with one leading slash.
        #[test]
        fn what_is_forwarded_is_what_was_authorized(
            start in prop::sample::select(vec!["", "/", "//", "http://localhost", "http://localhost/"]),
            pieces in prop::collection::vec(piece(), 1..12),
        ) {
            let target = format!("{start}{}", pieces.concat());
            let Some(header) = header(target.as_bytes()) else { return Ok(()) };
            let Ok(checked) = inbound(&header, &HeaderHygiene::default()) else { return Ok(()) };
            let raw = std::str::from_utf8(header.raw_path()).expect("accepted targets are ASCII");
            let forwarded = checked.upstream.rewritten.as_deref().unwrap_or(raw);
            prop_assert!(forwarded.starts_with('/') && !forwarded.starts_with("//"), "{target} -> {forwarded}");
            prop_assert_eq!(normalize_path(forwarded).ok(), Some(checked.path.clone()), "{} -> {}", target, forwarded);
            prop_assert_eq!(forwarded, checked.target.as_str());
        }
    }
}
