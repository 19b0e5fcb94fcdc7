//! What every endpoint checks before it acts: JSON bodies (415/400), the session cookie, the
//! `Origin` of state-changing requests, and the per-address ceremony rate limit.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::Request;
use crate::error::{ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::session::LiveSession;

/// Parses a JSON body; the content type must say JSON.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> ApiResult<T> {
    let is_json = req
        .header("content-type")
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        tracing::debug!(error = %e, "bad JSON body");
        ApiError::BadRequest(
            "bad_request",
            "The request body is not the JSON this endpoint expects.",
        )
    })
}

/// The signed-in session, if the request carries a valid cookie.
pub async fn session(gw: &Gateway, req: &Request) -> ApiResult<Option<Arc<LiveSession>>> {
    Ok(gw.sessions().from_headers(&req.headers, gw.now()).await?)
}

/// The signed-in session, or 401.
pub async fn require_session(gw: &Gateway, req: &Request) -> ApiResult<Arc<LiveSession>> {
    session(gw, req).await?.ok_or(ApiError::Unauthorized)
}

/// Credential changes (add, rename, delete a passkey; revoke another session; make an
/// add-a-device link) need a passkey assertion within `[session] reauth_window`: a cookie alone
/// is what a script injected into any app behind the gateway (same origin) would have. The page
/// answers `reauth_required` by running a sign-in ceremony inline and retrying.
pub fn recently_authenticated(gw: &Gateway, live: &LiveSession) -> ApiResult<()> {
    let window = gw.config().session.reauth_window.as_secs();
    let window = i64::try_from(window).unwrap_or(i64::MAX);
    if live.authenticated_within(window, gw.now()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "reauth_required",
            "Confirm it is you with your passkey, then try again.",
        ))
    }
}

/// Cookie-authenticated state changes must come from one of our own origins (CSRF defence on top
/// of SameSite=Lax). A missing `Origin` is refused: every browser sends it on these methods.
pub fn same_origin(gw: &Gateway, req: &Request) -> ApiResult<()> {
    let origin = req.header("origin").unwrap_or_default();
    let ours = gw
        .config()
        .origins()
        .iter()
        .any(|o| o.origin().ascii_serialization() == origin);
    if ours {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "bad_origin",
            "This request did not come from this site's own pages.",
        ))
    }
}

/// Counts one ceremony attempt for the client's network; 429 with Retry-After when over the limit.
pub fn rate_limit(gw: &Gateway, req: &Request) -> ApiResult<()> {
    let (Some(limiter), Some(ip)) = (&gw.limiter(), req.client_ip) else {
        return Ok(());
    };
    limiter.check(ip).map_err(|wait| {
        gw.metrics().rate_limited();
        ApiError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        }
    })
}
