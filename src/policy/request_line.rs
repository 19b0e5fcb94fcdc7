//! The request line rule as one pure function: the target form (`target.rs`), the host
//! (`host.rs`) and the normalized path (`path.rs`), checked together.
//!
//! Owns: combining the three into what routing and policy see. Both modes call it: the inline
//! proxy with the bytes on the wire, forward-auth with the original request the fronting proxy
//! describes, so a URL cannot pass one mode's rules and not the other's.

use http::{Method, Version};

use super::{normalize_path, parse_target, request_host, RequestTarget, TargetError};

/// A request line the rules accept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestLine {
    /// The normalized path routing and policy see.
    pub path: String,
    /// The checked origin-form target (path and query), e.g. for `return_to`.
    pub target: String,
    /// The routing host, canonical (see `host.rs`).
    pub host: Option<String>,
    /// The routed host as written (with port).
    pub authority: Option<String>,
    /// The origin-form target to send upstream, when it differs from the bytes received.
    pub rewritten: Option<String>,
    /// The absolute-form authority that was routed (sent upstream as `Host`).
    pub absolute_authority: Option<String>,
}

/// Why a request line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("`OPTIONS *` names no resource")]
    ServerOptions,
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("the request must name one valid host")]
    Host,
    #[error("the path could not be understood")]
    Path,
}

/// Checks `method` and the raw target with every `Host` value (`version` decides whether one is
/// required).
pub fn check_request_line(
    method: &Method,
    raw: &[u8],
    host_headers: &[&[u8]],
    version: Version,
) -> Result<RequestLine, LineError> {
    let (authority, path_and_query) = match parse_target(method, raw)? {
        RequestTarget::Path {
            authority,
            path_and_query,
        } => (authority, path_and_query),
        RequestTarget::ServerOptions => return Err(LineError::ServerOptions),
    };
    let host = request_host(authority, host_headers, version).map_err(|_| LineError::Host)?;
    let path = normalize_path(&path_and_query).map_err(|_| LineError::Path)?;
    let rewritten = (authority.is_some() || path_and_query.as_bytes() != raw)
        .then(|| path_and_query.to_string());
    Ok(RequestLine {
        path,
        target: path_and_query.into_owned(),
        authority: host.as_ref().map(|h| h.authority.to_string()),
        host: host.map(|h| h.name),
        rewritten,
        absolute_authority: authority.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(raw: &str, host: &str) -> Result<RequestLine, LineError> {
        check_request_line(
            &Method::GET,
            raw.as_bytes(),
            &[host.as_bytes()],
            Version::HTTP_11,
        )
    }

    #[test]
    fn the_three_rules_apply_together() {
        let ok = line("//app/./x/../y?q=1", "App.Example:8080").expect("accepted");
        assert_eq!(ok.path, "/app/y");
        assert_eq!(ok.target, "/app/./x/../y?q=1");
        assert_eq!(ok.host.as_deref(), Some("app.example"));
        assert_eq!(ok.authority.as_deref(), Some("App.Example:8080"));
        assert_eq!(ok.rewritten.as_deref(), Some("/app/./x/../y?q=1"));
        let absolute = line("http://other.example/a", "app.example").expect("accepted");
        assert_eq!(absolute.host.as_deref(), Some("other.example"));
        assert_eq!(
            absolute.absolute_authority.as_deref(),
            Some("other.example")
        );
        assert_eq!(
            line("x:/admin", "a"),
            Err(LineError::Target(TargetError::UnsupportedForm))
        );
        assert_eq!(line("/a", "bad host"), Err(LineError::Host));
        assert_eq!(line("/a%2f..%2fb", "a"), Err(LineError::Path));
    }
}
