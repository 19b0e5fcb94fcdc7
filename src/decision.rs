//! The one access decision, shared by both modes: the inline proxy (`proxy`) and forward-auth
//! (`GET /passkeys/auth`, `endpoints/forward_auth.rs`). Given a request line that passed
//! `policy::check_request_line` and the request's headers, it finds the route, checks the
//! session, applies the route's policy, and builds the identity headers for the route's audience.
//!
//! Owns: the order of those steps and what each mode may not do differently. Does not own: the
//! replies (each mode turns a [`Verdict`] into its own answer at the edge) or the rules
//! themselves (`routing`, `session`, `policy`, `identity`). No pingora or HTTP-edge type here.

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue};

use crate::identity::{AssertionSigner, HeaderPreset, IdentityError};
use crate::policy::{decide, Decision, Requester};
use crate::routing::Router;
use crate::session::{Convenience, LiveSession, Sessions};
use crate::store::StoreError;

/// What the gateway decided about one request.
#[derive(Debug)]
pub enum Verdict {
    /// No `[[route]]` serves this host and path: 404.
    NoRoute,
    /// A route serves it; `decision` says whether this requester may pass.
    Routed {
        /// Index into [`Router::routes`].
        route: usize,
        decision: Decision,
        /// The signed-in session, when the request carried a valid cookie.
        session: Option<Arc<LiveSession>>,
    },
    /// A route serves it, but the request's session could not be checked (the store did not
    /// answer): 503, neither let through nor sent to sign in again, which would not help.
    StoreUnavailable(StoreError),
}

/// Decides the request for the checked `host` (canonical) and normalized `path`, with the
/// session named by `headers`' cookie. Only a routed request costs a session check.
pub async fn decide_request(
    router: &Router,
    sessions: &Sessions,
    now: i64,
    host: Option<&str>,
    path: &str,
    headers: &HeaderMap,
) -> Verdict {
    let Some(route) = router.route_index(host, path) else {
        return Verdict::NoRoute;
    };
    let session = match sessions.from_headers(headers, now).await {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!(error = %e, "session check failed");
            return Verdict::StoreUnavailable(e);
        }
    };
    let user = session.as_ref().map(|s| Requester {
        username: &s.identity.username,
        groups: &s.identity.groups,
    });
    let decision = decide(&router.routes()[route].rule, path, user.as_ref());
    Verdict::Routed {
        route,
        decision,
        session,
    }
}

/// The identity a signed-in request carries to its route's app: the signed assertion (reused
/// per session and audience while fresh) and the preset's convenience headers.
#[derive(Debug)]
pub struct IdentityHeaders {
    /// `X-Passkey-Assertion`.
    pub assertion: HeaderValue,
    /// The preset's unsigned headers, in a stable order (built once per session).
    pub convenience: Convenience,
}

/// Builds [`IdentityHeaders`] for `live` and the route's `audience`.
pub fn identity_headers(
    signer: &AssertionSigner,
    preset: HeaderPreset,
    live: &LiveSession,
    audience: &str,
) -> Result<IdentityHeaders, IdentityError> {
    let assertion =
        signer.assertion_header(&live.identity, live.sid(), audience, SystemTime::now())?;
    Ok(IdentityHeaders {
        assertion,
        convenience: live.convenience_headers(preset),
    })
}
