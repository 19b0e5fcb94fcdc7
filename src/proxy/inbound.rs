//! The first look at a request, before routing: the target rule, the host rule, the path
//! normalized once, and the `Connection` tokens refused. What comes out is all that routing,
//! policy, the log and the upstream request use, so the four cannot disagree about a request.

use http::{Method, StatusCode};
use pingora::http::RequestHeader;

use super::hygiene::HeaderHygiene;
use super::upstream::CheckedTarget;
use crate::error::ApiError;
use crate::policy::{normalize_path, parse_target, request_host, RequestTarget, TargetError};
use crate::routes::Reply;

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

/// Checks `header`; `Err` is the reply the gateway sends instead (400, 405, or 204 for
/// `OPTIONS *`).
pub fn inbound(header: &RequestHeader, hygiene: &HeaderHygiene) -> Result<Inbound, Reply> {
    let raw = header.raw_path();
    let (authority, path_and_query) = match parse_target(&header.method, raw) {
        Ok(RequestTarget::Path {
            authority,
            path_and_query,
        }) => (authority, path_and_query),
        Ok(RequestTarget::ServerOptions) => return Err(server_options()),
        Err(e) => return Err(target_refused(e)),
    };
    let hosts: Vec<&[u8]> = header
        .headers
        .get_all(http::header::HOST)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let host = request_host(authority, &hosts, header.version).map_err(|_| {
        ApiError::BadRequest("bad_host", "The request must name one valid host.").into_reply()
    })?;
    if let Some(why) = hygiene.refused_connection_header(&header.headers) {
        return Err(ApiError::BadRequest("bad_connection_header", why).into_reply());
    }
    let path = normalize_path(&path_and_query).map_err(|_| {
        ApiError::BadRequest("bad_path", "The address could not be understood.").into_reply()
    })?;
    let rewritten = (authority.is_some() || path_and_query.as_bytes() != raw)
        .then(|| path_and_query.to_string());
    Ok(Inbound {
        path,
        target: path_and_query.into_owned(),
        authority: host.as_ref().map(|h| h.authority.to_string()),
        host: host.map(|h| h.name),
        upstream: CheckedTarget {
            rewritten,
            absolute_authority: authority.map(str::to_string),
        },
    })
}

fn target_refused(e: TargetError) -> Reply {
    let error = match e {
        TargetError::Connect => ApiError::MethodNotAllowed,
        _ => ApiError::BadRequest(
            "bad_target",
            "The request target must be a path such as /app, or an http(s) URL.",
        ),
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
