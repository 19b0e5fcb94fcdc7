//! What the upstream request carries, decided in one place: the checked target and host, the
//! gateway's session cookie taken out of `Cookie`, `X-Forwarded-*` and `X-Real-IP` set, and for
//! a signed-in user the signed assertion and convenience headers. (Removing what the client must
//! not send is `hygiene.rs`.)

use pingora::http::RequestHeader;
use pingora::prelude::*;

use super::forwarded::Forwarded;

use crate::decision::identity_headers;
use crate::identity::{AssertionSigner, HeaderPreset, ASSERTION_HEADER};
use crate::session::{CookieSpec, LiveSession};

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
        upstream.insert_header(http::header::COOKIE, values.join("; "))?;
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

/// `X-Forwarded-For/-Proto/-Host/-Port` and `X-Real-IP` as decided (see `forwarded.rs`); the
/// client's own values were removed by the hygiene pass.
pub fn set_forwarded(upstream: &mut RequestHeader, decided: &Forwarded) -> Result<()> {
    if let Some(chain) = &decided.for_chain {
        upstream.insert_header("x-forwarded-for", chain.as_str())?;
    }
    if let Some(client) = decided.client {
        upstream.insert_header("x-real-ip", client.to_string())?;
    }
    upstream.insert_header("x-forwarded-proto", decided.proto)?;
    if let Some(host) = &decided.host {
        upstream.insert_header("x-forwarded-host", host.as_str())?;
    }
    if let Some(port) = decided.port {
        upstream.insert_header("x-forwarded-port", port.to_string())?;
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
    upstream.insert_header(ASSERTION_HEADER, identity.assertion)?;
    for (name, value) in identity.convenience {
        upstream.insert_header(name, value)?;
    }
    Ok(())
}
