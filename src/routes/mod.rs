//! The gateway's own endpoints under `/passkeys/` (and `/.well-known/webauthn`): a parsed
//! [`Request`] in, a [`Reply`] out. No pingora types here.

mod meta;
mod pages;
mod reply;

pub use pages::{escape_html, forbidden_page, Page, Pages};
pub use reply::{Reply, Request};

use http::Method;

use crate::error::ApiError;
use crate::gateway::Gateway;

/// Whether a normalized path belongs to the gateway rather than to any upstream.
pub fn is_own_path(path: &str) -> bool {
    path == "/passkeys" || path.starts_with("/passkeys/")
}

/// Answers one request to the gateway's own endpoints.
pub async fn handle(gw: &Gateway, req: Request) -> Reply {
    match dispatch(gw, &req).await {
        Ok(reply) => reply,
        Err(e) => e.into_reply(),
    }
}

async fn dispatch(gw: &Gateway, req: &Request) -> Result<Reply, ApiError> {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    match req.path.as_str() {
        "/passkeys/health" if get => meta::health(gw).await,
        "/passkeys/health" => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

/// `/.well-known/webauthn` when related origins are configured; `None` lets it route upstream.
pub fn well_known(gw: &Gateway, path: &str) -> Option<Reply> {
    (path == "/.well-known/webauthn" && !gw.config.webauthn.related_origins.is_empty())
        .then(|| meta::related_origins(gw))
}
