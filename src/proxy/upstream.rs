//! What the upstream request carries, decided in one place: every identity header the client
//! sent is removed, the gateway's session cookie is taken out of `Cookie`, `X-Forwarded-*` are
//! set, and for a signed-in user the signed assertion and convenience headers are added.

use std::time::SystemTime;

use ipnet::IpNet;
use pingora::http::RequestHeader;
use pingora::prelude::*;

use super::forwarded::{forwarded, Incoming, Peer};
use crate::gateway::Gateway;
use crate::identity::{convenience_headers, is_identity_header, ASSERTION_HEADER};
use crate::session::{CookieSpec, LiveSession};

/// Removes every identity header, whatever its case, `_` spelling or repetition.
pub fn strip_identity_headers(header: &mut RequestHeader) {
    let doomed: Vec<http::HeaderName> = header
        .headers
        .keys()
        .filter(|name| is_identity_header(name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        header.remove_header(&name);
    }
}

/// Removes the gateway's own cookie; the app's cookies stay byte for byte as sent.
pub fn strip_session_cookie(cookie: &CookieSpec, upstream: &mut RequestHeader) -> Result<()> {
    let values: Vec<String> = upstream
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| cookie.strip(v))
        .collect();
    upstream.remove_header(&http::header::COOKIE);
    if !values.is_empty() {
        upstream.insert_header(http::header::COOKIE, values.join("; "))?;
    }
    Ok(())
}

/// `X-Forwarded-For/-Proto/-Host` as the gateway saw the request (see `forwarded.rs`).
pub fn set_forwarded(
    downstream: &RequestHeader,
    upstream: &mut RequestHeader,
    peer: Peer,
    trusted: &[IpNet],
) -> Result<()> {
    let text = |name: &str| downstream.headers.get(name).and_then(|v| v.to_str().ok());
    // Joined so that duplicate X-Forwarded-For lines from a trusted proxy keep every hop.
    let xff: Vec<&str> = downstream
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let xff = (!xff.is_empty()).then(|| xff.join(", "));
    let incoming = Incoming {
        xff: xff.as_deref(),
        proto: text("x-forwarded-proto"),
        host: text("x-forwarded-host"),
        host_header: text("host"),
    };
    let decided = forwarded(peer, &incoming, trusted);
    for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"] {
        upstream.remove_header(name);
    }
    if !decided.keep_forwarded {
        upstream.remove_header("forwarded");
    }
    if let Some(chain) = decided.for_chain {
        upstream.insert_header("x-forwarded-for", chain)?;
    }
    upstream.insert_header("x-forwarded-proto", decided.proto)?;
    if let Some(host) = decided.host {
        upstream.insert_header("x-forwarded-host", host)?;
    }
    Ok(())
}

/// The signed assertion (reused per session and audience while fresh) and the preset's
/// convenience headers.
pub fn add_identity(
    gw: &Gateway,
    upstream: &mut RequestHeader,
    live: &LiveSession,
    audience: &str,
) -> Result<()> {
    let token = gw
        .signer
        .assertion_header(&live.identity, &live.sid(), audience, SystemTime::now())
        .map_err(|e| Error::because(InternalError, "signing the identity assertion", e))?;
    upstream.insert_header(ASSERTION_HEADER, token)?;
    for (name, value) in convenience_headers(gw.config.identity.headers, &live.identity) {
        upstream.insert_header(name, value)?;
    }
    Ok(())
}
