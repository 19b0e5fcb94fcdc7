//! The gateway's own endpoints under `/passkeys/` (and `/.well-known/webauthn`): a parsed
//! [`Request`] in, a [`Reply`] out. No pingora types here.

mod account;
mod add_device;
mod ceremony;
mod forward_auth;
mod input;
mod meta;
mod pages;
mod refusals;
mod sessions;

pub use crate::reply::{Reply, Request};
pub use forward_auth::{FORWARD_AUTH_PATH, LOGIN_HEADER, REDIRECT_HEADER};
pub use pages::{escape_html, forbidden_page, Page, Pages};
pub use refusals::{forbidden, login_needed, login_url};

use std::sync::Arc;

use http::Method;

use crate::error::ApiError;
use crate::gateway::Gateway;

/// Whether a normalized path belongs to the gateway rather than to any upstream.
pub fn is_own_path(path: &str) -> bool {
    path == "/passkeys" || path.starts_with("/passkeys/")
}

/// The gateway's own endpoints: the gateway they act on and the pages rendered for it once.
pub struct Endpoints {
    gw: Arc<Gateway>,
    pages: Pages,
}

impl Endpoints {
    pub fn new(gw: Arc<Gateway>) -> Endpoints {
        let pages = Pages::new(&gw.config().webauthn.rp_name);
        Endpoints { gw, pages }
    }

    /// Answers one request to the gateway's own endpoints.
    pub async fn handle(&self, req: Request) -> Reply {
        match dispatch(&self.gw, &self.pages, &req).await {
            Ok(reply) => reply,
            Err(e) => e.into_reply(),
        }
    }

    /// Answers a forward-auth sub-request (`GET /passkeys/auth`, see `forward_auth.rs`);
    /// `peer_trusted`: the TCP peer is in `server.trusted_proxies`.
    pub async fn forward_auth(&self, req: &Request, peer_trusted: bool) -> Reply {
        forward_auth::forward_auth(&self.gw, req, peer_trusted).await
    }

    /// `/.well-known/webauthn` when related origins are configured; `None` lets it route upstream.
    pub fn well_known(&self, path: &str) -> Option<Reply> {
        let gw = &self.gw;
        (path == "/.well-known/webauthn" && !gw.config().webauthn.related_origins.is_empty())
            .then(|| meta::related_origins(gw))
    }
}

async fn dispatch(gw: &Gateway, pages: &Pages, req: &Request) -> Result<Reply, ApiError> {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let post = req.method == Method::POST;
    let path = req.path.as_str();
    if let Some(name) = path.strip_prefix("/passkeys/static/") {
        return pages.asset(name).filter(|_| get).ok_or(ApiError::NotFound);
    }
    if let Some(id) = path.strip_prefix("/passkeys/credentials/") {
        return account::one(gw, req, id).await;
    }
    if let Some(id) = path.strip_prefix("/passkeys/sessions/") {
        return sessions::end(gw, req, id).await;
    }
    match (path, get, post) {
        ("/passkeys/login", true, _) => Ok(pages.page(Page::Login)),
        ("/passkeys/enroll", true, _) => Ok(pages.page(Page::Enroll)),
        ("/passkeys/account", true, _) => account_page(gw, pages, req).await,
        ("/passkeys/register/begin", _, true) => ceremony::register_begin(gw, req).await,
        ("/passkeys/register/complete", _, true) => ceremony::register_complete(gw, req).await,
        ("/passkeys/login/begin", _, true) => ceremony::login_begin(gw, req).await,
        ("/passkeys/login/complete", _, true) => ceremony::login_complete(gw, req).await,
        ("/passkeys/logout", _, true) => account::logout(gw, req).await,
        ("/passkeys/me", true, _) => account::me(gw, req).await,
        ("/passkeys/credentials", true, _) => account::list(gw, req).await,
        ("/passkeys/sessions", true, _) => sessions::list(gw, req).await,
        ("/passkeys/enrollments", _, true) => add_device::create(gw, req).await,
        ("/passkeys/jwks.json", true, _) => Ok(meta::jwks(gw)),
        ("/passkeys/health", true, _) => meta::health(gw).await,
        (
            "/passkeys/login"
            | "/passkeys/enroll"
            | "/passkeys/account"
            | "/passkeys/register/begin"
            | "/passkeys/register/complete"
            | "/passkeys/login/begin"
            | "/passkeys/login/complete"
            | "/passkeys/logout"
            | "/passkeys/me"
            | "/passkeys/credentials"
            | "/passkeys/sessions"
            | "/passkeys/enrollments"
            | "/passkeys/jwks.json"
            | "/passkeys/health",
            _,
            _,
        ) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

/// The account page needs a session; without one, sign in first and come back.
async fn account_page(gw: &Gateway, pages: &Pages, req: &Request) -> Result<Reply, ApiError> {
    match input::session(gw, req).await? {
        Some(_) => Ok(pages.page(Page::Account)),
        None => Ok(Reply::redirect(
            "/passkeys/login?return_to=%2Fpasskeys%2Faccount",
        )),
    }
}
