//! The request-target rule (RFC 9112 §3.2): which request lines reach routing at all, and which
//! target is forwarded upstream.
//!
//! Owns: classifying the raw target bytes and the origin-form target to forward. Does not own:
//! path normalization (`path.rs`) or the host (`host.rs`).
//!
//! The threat: pingora parses a target such as `x:/admin` (a scheme without `//`) into the URI
//! `/` but forwards the raw bytes, and `urlsplit`- or Werkzeug-style upstreams read them as
//! `/admin`. So the gateway classifies the raw bytes itself and accepts only:
//!
//! - origin-form (`/path?query`), forwarded with its leading slashes collapsed to one, so that no
//!   upstream reads `//host/path` as a network-path reference to another authority;
//! - absolute-form with the scheme `http` or `https` (any case) and an authority, forwarded
//!   rewritten to origin-form (its authority becomes the routing host, see `host.rs`);
//! - asterisk-form `*` for `OPTIONS` only, which the gateway answers itself.
//!
//! Everything else is refused: other schemes (`x:/admin`, `a-b.c+d:/admin`), `http:/admin`,
//! `http:admin`, authority-form (`host:80`) and any byte outside visible ASCII (spaces, tabs,
//! control and non-ASCII bytes: browsers percent-encode them). `CONNECT` is refused before the
//! target is looked at: the gateway is not a forward proxy.

use std::borrow::Cow;

/// What a request line asks for, once accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTarget<'a> {
    /// Origin-form or absolute-form: a path (and query) to route, authorize and forward.
    Path {
        /// The absolute-form authority (`host[:port]`), routing the request instead of `Host`.
        authority: Option<&'a str>,
        /// The origin-form target to forward and normalize: starts with exactly one `/`.
        path_and_query: Cow<'a, str>,
    },
    /// `OPTIONS *`: a question about the server, answered by the gateway.
    ServerOptions,
}

/// Why a target was refused (a 400, or 405 for `CONNECT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the request target has a byte outside visible ASCII")]
    BadByte,
    #[error("only http and https absolute-form targets are accepted")]
    UnsupportedForm,
    #[error("the absolute-form target has no authority or carries userinfo")]
    BadAuthority,
    #[error("`*` is only a target for OPTIONS")]
    Asterisk,
    #[error("this gateway is not a forward proxy")]
    Connect,
}

/// Classifies the raw request-target bytes (as received, fragment removed) for `method`.
pub fn parse_target<'a>(
    method: &http::Method,
    raw: &'a [u8],
) -> Result<RequestTarget<'a>, TargetError> {
    if *method == http::Method::CONNECT {
        return Err(TargetError::Connect);
    }
    // Visible ASCII only; this also makes the bytes valid UTF-8.
    if raw.is_empty() || !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(TargetError::BadByte);
    }
    let text = std::str::from_utf8(raw).map_err(|_| TargetError::BadByte)?;
    if text == "*" {
        return match *method == http::Method::OPTIONS {
            true => Ok(RequestTarget::ServerOptions),
            false => Err(TargetError::Asterisk),
        };
    }
    if text.starts_with('/') {
        return Ok(RequestTarget::Path {
            authority: None,
            path_and_query: Cow::Borrowed(collapse_leading_slashes(text)),
        });
    }
    absolute_form(text)
}

/// `http://host[:port][/path][?query]`, scheme in any case; userinfo refused.
fn absolute_form(text: &str) -> Result<RequestTarget<'_>, TargetError> {
    let (scheme, rest) = text.split_once("://").ok_or(TargetError::UnsupportedForm)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(TargetError::UnsupportedForm);
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(TargetError::BadAuthority);
    }
    // `http://host` and `http://host?q` have an empty path: origin-form needs at least `/`.
    let path_and_query = match path_and_query.starts_with('/') {
        true => Cow::Borrowed(collapse_leading_slashes(path_and_query)),
        false => Cow::Owned(format!("/{path_and_query}")),
    };
    Ok(RequestTarget::Path {
        authority: Some(authority),
        path_and_query,
    })
}

/// `//a/b` → `/a/b`: a forwarded origin-form target never starts with `//`.
fn collapse_leading_slashes(path: &str) -> &str {
    let slashes = path.len() - path.trim_start_matches('/').len();
    &path[slashes.saturating_sub(1)..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn get(raw: &str) -> Result<RequestTarget<'_>, TargetError> {
        parse_target(&Method::GET, raw.as_bytes())
    }

    fn path(
        authority: Option<&'static str>,
        path_and_query: &'static str,
    ) -> RequestTarget<'static> {
        RequestTarget::Path {
            authority,
            path_and_query: Cow::Borrowed(path_and_query),
        }
    }

    #[test]
    fn only_origin_and_http_absolute_forms_pass() {
        let cases: &[(&str, Result<RequestTarget<'static>, TargetError>)] = &[
            ("/admin", Ok(path(None, "/admin"))),
            ("/a?b=/c", Ok(path(None, "/a?b=/c"))),
            ("//admin", Ok(path(None, "/admin"))),
            ("///evil/x", Ok(path(None, "/evil/x"))),
            ("http://h/admin", Ok(path(Some("h"), "/admin"))),
            ("HTTP://H:80/admin", Ok(path(Some("H:80"), "/admin"))),
            ("https://h", Ok(path(Some("h"), "/"))),
            ("http://h//admin", Ok(path(Some("h"), "/admin"))),
            ("http://h?x=1", Ok(path(Some("h"), "/?x=1"))),
            ("x:/admin", Err(TargetError::UnsupportedForm)),
            ("a-b.c+d:/admin", Err(TargetError::UnsupportedForm)),
            ("x:/%61dmin", Err(TargetError::UnsupportedForm)),
            ("http:/admin", Err(TargetError::UnsupportedForm)),
            ("http:admin", Err(TargetError::UnsupportedForm)),
            ("ftp://h/admin", Err(TargetError::UnsupportedForm)),
            ("x://h/admin", Err(TargetError::UnsupportedForm)),
            ("host:80", Err(TargetError::UnsupportedForm)),
            ("admin", Err(TargetError::UnsupportedForm)),
            ("http:///admin", Err(TargetError::BadAuthority)),
            ("http://u@h/admin", Err(TargetError::BadAuthority)),
            ("*", Err(TargetError::Asterisk)),
            ("/ad min", Err(TargetError::BadByte)),
            ("/ad\tmin", Err(TargetError::BadByte)),
            ("/adm\u{e9}n", Err(TargetError::BadByte)),
            ("", Err(TargetError::BadByte)),
        ];
        for (raw, want) in cases {
            assert_eq!(&get(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn asterisk_is_for_options_and_connect_for_nobody() {
        assert_eq!(
            parse_target(&Method::OPTIONS, b"*"),
            Ok(RequestTarget::ServerOptions)
        );
        assert_eq!(
            parse_target(&Method::CONNECT, b"h:443"),
            Err(TargetError::Connect)
        );
        assert_eq!(
            parse_target(&Method::CONNECT, b"/x"),
            Err(TargetError::Connect)
        );
        assert_eq!(
            parse_target(&Method::GET, b"/\xff"),
            Err(TargetError::BadByte)
        );
    }
}
