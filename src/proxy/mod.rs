//! `impl ProxyHttp`: thin glue between pingora's phases and the modules that decide.
//!
//! - `request_filter`: normalize the path once; answer the gateway's own endpoints locally; find
//!   the route (404 without one); check the session (in memory) and apply the route's policy.
//! - `upstream_request_filter`: strip every identity header the client sent and the gateway's
//!   session cookie, set `X-Forwarded-*`, then add the signed assertion and convenience headers.
//! - `fail_to_proxy`: an upstream that is down becomes a JSON 502; everything else keeps serving.
//! - `logging`: one line per request, without query strings, cookies or tokens.

mod forwarded;
mod io;
mod upstream;

pub use forwarded::{client_ip, forwarded, Forwarded, Incoming, Peer};
pub use upstream::strip_identity_headers;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use http::StatusCode;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::error::ApiError;
use crate::gateway::{unix_now, Gateway};
use crate::policy::{decide, normalize_path, wants_html, Decision, UserView};
use crate::routes::{self, forbidden_page, Reply};
use crate::session::LiveSession;

/// The pingora application: one per listener set, sharing one [`Gateway`].
pub struct GatewayProxy {
    gw: Arc<Gateway>,
}

impl GatewayProxy {
    pub fn new(gw: Arc<Gateway>) -> GatewayProxy {
        GatewayProxy { gw }
    }
}

/// Per-request state carried between phases.
pub struct RequestCtx {
    started: Instant,
    /// The normalized path policy and routing saw.
    path: String,
    /// Index into the router's routes, once chosen.
    route: Option<usize>,
    peer: Peer,
    /// The signed-in session, when the request carried a valid cookie.
    session: Option<Arc<LiveSession>>,
    /// Status of a reply the gateway wrote itself.
    local_status: Option<u16>,
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            path: String::new(),
            route: None,
            peer: Peer {
                addr: None,
                tls: false,
            },
            session: None,
            local_status: None,
        }
    }

    /// pingora calls this once each request header is parsed (see `limits::connections`).
    fn on_connection_reuse(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
        connection: Box<dyn std::any::Any + Send + Sync>,
    ) {
        crate::limits::on_request_header(session, connection);
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.peer = peer_of(session);
        match self.decide(session, ctx).await? {
            Some(reply) => {
                ctx.local_status = Some(reply.status.as_u16());
                io::write_reply(session, reply).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .and_then(|i| self.gw.router.routes().get(i))
            .ok_or_else(|| Error::explain(InternalError, "no route chosen"))?;
        let up = &route.upstream;
        Ok(Box::new(HttpPeer::new(up.addr, up.tls, up.sni.clone())))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let gw = &self.gw;
        upstream::strip_identity_headers(upstream);
        upstream::strip_session_cookie(&gw.sessions.cookie, upstream)?;
        let trusted = &gw.config.server.trusted_proxies;
        upstream::set_forwarded(session.req_header(), upstream, ctx.peer, trusted)?;
        let route = ctx.route.and_then(|i| gw.router.routes().get(i));
        if let (Some(live), Some(route)) = (&ctx.session, route) {
            upstream::add_identity(gw, upstream, live, &route.audience)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            HTTPStatus(code) => *code,
            _ if *e.esource() == ErrorSource::Upstream => 502,
            _ if *e.esource() == ErrorSource::Downstream => 0,
            _ => 500,
        };
        if code == 502 || code == 504 {
            let reply = bad_gateway(code);
            ctx.local_status = Some(code);
            if let Err(write_error) = io::write_reply(session, reply).await {
                tracing::debug!(error = %write_error, "client went away before the 502");
            }
        } else if code > 0 {
            ctx.local_status = Some(code);
            let _ = session.respond_error(code).await;
        }
        tracing::warn!(error = %e, "proxying failed");
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let header = session.req_header();
        let status = ctx
            .local_status
            .or_else(|| session.response_written().map(|r| r.status.as_u16()))
            .unwrap_or(0);
        let route = ctx.route.and_then(|i| self.gw.router.routes().get(i));
        tracing::info!(
            target: "access",
            method = %header.method,
            host = header.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("-"),
            // The path only: queries may carry tokens.
            path = %header.uri.path(),
            status,
            upstream = route.map_or("-", |r| r.name.as_str()),
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        );
    }
}

impl GatewayProxy {
    /// `Some(reply)` when the gateway answers itself; `None` to forward.
    async fn decide(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Option<Reply>> {
        let raw = session
            .req_header()
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        ctx.path = match normalize_path(&raw) {
            Ok(path) => path,
            Err(_) => {
                return Ok(Some(
                    ApiError::BadRequest("bad_path", "The address could not be understood.")
                        .into_reply(),
                ))
            }
        };
        if routes::is_own_path(&ctx.path) {
            // Only the gateway's own endpoints use the client address (rate limits).
            let client = self.client_ip(session, ctx.peer.addr);
            let body = match io::read_body(session, self.gw.config.server.max_body_bytes).await? {
                Ok(body) => body,
                Err(e) => return Ok(Some(e.into_reply())),
            };
            let req = io::request(session, ctx.path.clone(), body, client);
            return Ok(Some(routes::handle(&self.gw, req).await));
        }
        if let Some(reply) = routes::well_known(&self.gw, &ctx.path) {
            return Ok(Some(reply));
        }
        let host = request_host(session);
        let Some(index) = self.gw.router.route_index(host.as_deref(), &ctx.path) else {
            return Ok(Some(ApiError::NotFound.into_reply()));
        };
        ctx.route = Some(index);
        let route = &self.gw.router.routes()[index];
        if is_websocket(session) && !route.websockets {
            return Ok(Some(
                ApiError::Forbidden(
                    "websockets_disabled",
                    "This route does not accept WebSocket connections.",
                )
                .into_reply(),
            ));
        }
        ctx.session = self.session_of(session).await;
        let user = ctx.session.as_ref().map(|s| UserView {
            username: &s.identity.username,
            groups: &s.identity.groups,
        });
        let header = session.req_header();
        let navigation = wants_html(&header.method, &header.headers);
        Ok(match decide(&route.rule, &ctx.path, user.as_ref()) {
            Decision::Allow => None,
            Decision::NeedLogin => Some(self.login_needed(session, navigation)),
            Decision::Forbidden if navigation => {
                Some(forbidden_page(&self.gw.config.webauthn.rp_name))
            }
            Decision::Forbidden => Some(
                ApiError::Forbidden(
                    "forbidden",
                    "Your account is not allowed to use this address.",
                )
                .into_reply(),
            ),
        })
    }

    /// The session named by the request's cookie, checked in memory (a store read only on a
    /// cache miss). A store failure counts as no session: fail closed.
    async fn session_of(&self, session: &Session) -> Option<Arc<LiveSession>> {
        let headers = &session.req_header().headers;
        match self.gw.sessions.from_headers(headers, unix_now()).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "session check failed");
                None
            }
        }
    }

    /// 302 to the login page for a navigation, 401 JSON naming the login page otherwise.
    fn login_needed(&self, session: &Session, navigation: bool) -> Reply {
        let original = session
            .req_header()
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str());
        let encoded: String = url::form_urlencoded::byte_serialize(original.as_bytes()).collect();
        let login = format!("/passkeys/login?return_to={encoded}");
        if navigation {
            return Reply::redirect(&login);
        }
        Reply::json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({
                "error": "unauthenticated",
                "message": "Sign in with your passkey to continue.",
                "login_url": login,
            }),
        )
    }

    fn client_ip(&self, session: &Session, peer: Option<IpAddr>) -> Option<IpAddr> {
        let xff = session
            .req_header()
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        client_ip(peer, xff, &self.gw.config.server.trusted_proxies)
    }
}

fn peer_of(session: &Session) -> Peer {
    let addr = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    Peer { addr, tls }
}

/// The host the client asked for: the `Host` header, or the authority of an absolute URI.
fn request_host(session: &Session) -> Option<String> {
    let header = session.req_header();
    header
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| header.uri.authority().map(|a| a.to_string()))
}

fn is_websocket(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn bad_gateway(code: u16) -> Reply {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    Reply::json(
        status,
        &serde_json::json!({
            "error": "bad_gateway",
            "message": "The application behind this address is not answering. Try again shortly.",
        }),
    )
}
