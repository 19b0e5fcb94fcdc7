//! What the upstream request carries, decided in one place: the checked target and host, the
//! gateway's session cookie taken out of `Cookie`, `X-Forwarded-*` and `X-Real-IP` set, and for
//! a signed-in user the signed assertion and convenience headers. (Removing what the client must
//! not send is `hygiene.rs`.)

use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::prelude::*;

use super::forwarded::{ip_text, Forwarded};

use crate::decision::identity_headers;
use crate::identity::{AssertionSigner, HeaderPreset, ASSERTION_HEADER};
use crate::session::{CookieSpec, LiveSession};

// Sent in this case (pingora keeps the case given for the upstream's wire).
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";
const X_FORWARDED_PORT: &str = "x-forwarded-port";
const X_REAL_IP: &str = "x-real-ip";

/// What `request_filter` checked, for the upstream request to carry unchanged in meaning.
#[derive(Debug, Default)]
pub struct CheckedTarget {
    /// The origin-form target to send, when it differs from the bytes received.
    pub rewritten: Option<String>,
    /// The absolute-form authority that was routed, sent as `Host`.
    pub absolute_authority: Option<String>,
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
        upstream.append_header(http::header::COOKIE, values.join("; "))?;
    }
    Ok(())
}

/// The target and `Host` the policy checked: an absolute-form target goes upstream in
/// origin-form with its authority as `Host`; an origin-form one with its leading slashes
/// collapsed (see `policy::target`).
pub fn set_target(upstream: &mut RequestHeader, checked: &CheckedTarget) -> Result<()> {
    if let Some(target) = &checked.rewritten {
        let uri = http::Uri::try_from(target.as_str())
            .or_err(InternalError, "the checked target is not a URI")?;
        upstream.set_uri(uri);
    }
    if let Some(authority) = &checked.absolute_authority {
        upstream.insert_header(http::header::HOST, authority.as_str())?;
    }
    Ok(())
}

/// `X-Forwarded-For/-Proto/-Host/-Port` and `X-Real-IP` as decided (see `forwarded.rs`).
///
/// Appended, not inserted: the hygiene pass has already removed every client value of these
/// names (`hygiene.rs`, `GATEWAY_SET`), so appending gives the same request, and pingora's
/// `append_header` costs half of `insert_header`, which looks for values to replace in both the
/// header map and the case map.
pub fn set_forwarded(upstream: &mut RequestHeader, decided: &Forwarded) -> Result<()> {
    if let Some(chain) = &decided.for_chain {
        upstream.append_header(X_FORWARDED_FOR, chain.as_str())?;
    }
    if let Some(client) = decided.client {
        upstream.append_header(X_REAL_IP, ip_text(client))?;
    }
    upstream.append_header(X_FORWARDED_PROTO, HeaderValue::from_static(decided.proto))?;
    if let Some(host) = &decided.host {
        upstream.append_header(X_FORWARDED_HOST, host.as_str())?;
    }
    if let Some(port) = decided.port {
        upstream.append_header(X_FORWARDED_PORT, port.to_string())?;
    }
    Ok(())
}

/// The identity headers `decision::identity_headers` builds (the ones forward-auth answers
/// with too), replacing any of the same name.
pub fn add_identity(
    signer: &AssertionSigner,
    preset: HeaderPreset,
    upstream: &mut RequestHeader,
    live: &LiveSession,
    audience: &str,
) -> Result<()> {
    let identity = identity_headers(signer, preset, live, audience)
        .map_err(|e| Error::because(InternalError, "signing the identity assertion", e))?;
    // Appended for the reason `set_forwarded` gives: the hygiene pass removed every identity
    // header a client sent (`identity::is_identity_header`).
    upstream.append_header(ASSERTION_HEADER, identity.assertion)?;
    for (name, value) in identity.convenience.iter() {
        upstream.append_header(*name, value.as_str())?;
    }
    Ok(())
}
