//! `impl ProxyHttp`: thin glue between pingora's phases and the modules that decide.
//!
//! - `request_filter`: check the target and host and normalize the path once (`inbound.rs`);
//!   decide the client address once (`forwarded.rs`); answer the gateway's own endpoints
//!   locally; find the route (404 without one); check the session (in memory) and apply the
//!   route's policy.
//! - `upstream_request_filter`: send the checked target and host, strip what clients may not
//!   send (`hygiene.rs`) and the gateway's session cookie, set `X-Forwarded-*` and `X-Real-IP`,
//!   then add the signed assertion and convenience headers.
//! - `response_filter`: an upstream may not set the gateway's own cookie (`response.rs`).
//! - `fail_to_proxy`: an upstream that is down becomes a JSON 502; everything else keeps serving.
//! - `logging`: one line per request, without query strings, cookies or tokens.

mod forwarded;
mod hygiene;
mod inbound;
mod io;
mod response;
mod upstream;

pub use forwarded::{client_ip, forwarded, ip_text, Forwarded, Incoming, Peer};
pub use hygiene::HeaderHygiene;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{HeaderName, StatusCode};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::clock::Clock;
use crate::decision::{decide_request, Verdict};
use crate::endpoints::{self, forbidden, login_needed, Endpoints};
use crate::error::ApiError;
use crate::gateway::{Gateway, ProxyHandles};
use crate::identity::AssertionSigner;
use crate::metrics::Metrics;
use crate::policy::{wants_html, Decision};
use crate::reload::Live;
use crate::reply::Reply;
use crate::session::{LiveSession, Sessions};

/// The pingora application, one per listener set: the handles its phases use (config, routes,
/// sessions, signer, clock), shared with one [`Gateway`], and the gateway's own endpoints.
pub struct GatewayProxy {
    /// The config and routes now; each request loads it once and keeps it (`reload.rs`).
    live: Arc<ArcSwap<Live>>,
    sessions: Arc<Sessions>,
    signer: Arc<AssertionSigner>,
    clock: Arc<Clock>,
    /// The gateway's own endpoints (they act on the whole gateway).
    endpoints: Endpoints,
    hygiene: HeaderHygiene,
    metrics: Arc<Metrics>,
}

impl GatewayProxy {
    pub fn new(gw: Arc<Gateway>) -> GatewayProxy {
        let config = gw.config();
        let id = &config.identity;
        let hygiene = HeaderHygiene::new(&id.strip_headers, &id.trusted_proxy_headers);
        let ProxyHandles {
            live,
            sessions,
            signer,
            clock,
            metrics,
        } = gw.proxy_handles();
        GatewayProxy {
            metrics,
            live,
            sessions,
            signer,
            clock,
            endpoints: Endpoints::new(gw),
            hygiene,
        }
    }
}

/// Per-request state carried between phases.
pub struct RequestCtx {
    started: Instant,
    /// The config and routes this request uses from start to end, even across a reload.
    live: Arc<Live>,
    /// The checked request line: what routing, policy, the log and the upstream all use.
    inbound: inbound::Inbound,
    /// Index into the router's routes, once chosen.
    route: Option<usize>,
    peer: Peer,
    /// The client and the forwarded headers, decided once.
    forwarded: Option<Forwarded>,
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
            live: self.live.load_full(),
            inbound: inbound::Inbound::default(),
            route: None,
            peer: Peer {
                addr: None,
                tls: false,
                local_port: None,
            },
            forwarded: None,
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
                let https = ctx.forwarded.as_ref().is_some_and(|f| f.proto == "https");
                io::write_reply(session, reply, https).await?;
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
            .live
            .route(ctx.route)
            .ok_or_else(|| Error::explain(InternalError, "no route chosen"))?;
        let up = route
            .upstream
            .as_ref()
            .ok_or_else(|| Error::explain(InternalError, "a forward-auth-only route"))?;
        Ok(Box::new(HttpPeer::new(up.addr, up.tls, up.sni.clone())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let decided = ctx
            .forwarded
            .as_ref()
            .ok_or_else(|| Error::explain(InternalError, "request not checked"))?;
        upstream::set_target(upstream, &ctx.inbound.upstream)?;
        self.hygiene.strip(upstream, decided.trusted_peer);
        upstream::strip_session_cookie(self.sessions.cookie(), upstream)?;
        upstream::set_forwarded(upstream, decided)?;
        let route = ctx.live.route(ctx.route);
        if let (Some(live), Some(route)) = (&ctx.session, route) {
            let preset = ctx.live.config.identity.headers;
            upstream::add_identity(&self.signer, preset, upstream, live, &route.audience)?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let dropped = response::drop_gateway_cookies(self.sessions.cookie(), response)?;
        if dropped > 0 {
            let route = ctx.live.route(ctx.route);
            tracing::warn!(
                upstream = route.map_or("-", |r| r.name.as_str()),
                dropped,
                "upstream tried to set the gateway's session cookie; removed"
            );
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
            // A request pingora refuses to forward as it stands: say so rather than hang up.
            InvalidHTTPHeader if *e.esource() == ErrorSource::Downstream => 400,
            _ if *e.esource() == ErrorSource::Downstream => 0,
            _ => 500,
        };
        if code == 502 || code == 504 {
            ctx.live.counters(ctx.route).upstream_error();
        }
        if code > 0 {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let reply = ApiError::proxy_failure(status, e.to_string()).into_reply();
            ctx.local_status = Some(status.as_u16());
            if let Err(write_error) = io::write_reply(session, reply, false).await {
                tracing::debug!(error = %write_error, "client went away before the error reply");
            }
        }
        tracing::warn!(error = %e, "proxying failed");
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let header = session.req_header();
        let client = ctx.forwarded.as_ref().and_then(|f| f.client);
        let status = ctx
            .local_status
            .or_else(|| session.response_written().map(|r| r.status.as_u16()))
            .unwrap_or(0);
        let route = ctx.live.route(ctx.route);
        let took = ctx.started.elapsed();
        ctx.live.counters(ctx.route).count(status);
        self.metrics.observe_duration(took);
        tracing::info!(
            target: crate::logging::ACCESS_TARGET,
            method = %header.method,
            client = %client.map_or_else(|| "-".to_string(), ip_text),
            host = ctx.inbound.host.as_deref().unwrap_or("-"),
            // The normalized path that was checked, never the query: queries may carry tokens.
            path = if ctx.inbound.path.is_empty() { "-" } else { &ctx.inbound.path },
            status,
            upstream = route.map_or("-", |r| r.name.as_str()),
            duration_ms = took.as_secs_f64() * 1000.0,
        );
    }
}

impl GatewayProxy {
    /// `Some(reply)` when the gateway answers itself; `None` to forward.
    async fn decide(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Option<Reply>> {
        ctx.inbound = match inbound::inbound(session.req_header(), &self.hygiene) {
            Ok(checked) => checked,
            Err(reply) => {
                // Whatever follows a refused request line on this connection is not trusted.
                session.set_keepalive(None);
                return Ok(Some(reply));
            }
        };
        let decided = self.forwarded(session, ctx);
        let client = decided.client;
        let trusted_peer = decided.trusted_peer;
        ctx.forwarded = Some(decided);
        let live = ctx.live.clone();
        if endpoints::is_own_path(&ctx.inbound.path) {
            let body = match io::read_body(session, live.config.server.max_body_bytes).await? {
                Ok(body) => body,
                Err(e) => return Ok(Some(e.into_reply())),
            };
            let req = io::request(session, ctx.inbound.path.clone(), body, client);
            if ctx.inbound.path == endpoints::FORWARD_AUTH_PATH {
                return Ok(Some(self.endpoints.forward_auth(&req, trusted_peer).await));
            }
            return Ok(Some(self.endpoints.handle(req).await));
        }
        if let Some(reply) = self.endpoints.well_known(&ctx.inbound.path) {
            return Ok(Some(reply));
        }
        let header = session.req_header();
        let verdict = decide_request(
            &live.router,
            &self.sessions,
            self.clock.now(),
            ctx.inbound.host.as_deref(),
            &ctx.inbound.path,
            &header.headers,
        )
        .await;
        Ok(self.inline_answer(session, ctx, verdict))
    }

    /// The shared decision as the inline proxy answers it: `None` forwards the request.
    fn inline_answer(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        verdict: Verdict,
    ) -> Option<Reply> {
        let (index, decision, live) = match verdict {
            Verdict::Routed {
                route,
                decision,
                session,
            } => (route, decision, session),
            Verdict::NoRoute => return Some(ApiError::NotFound.into_reply()),
            Verdict::StoreUnavailable(e) => {
                return Some(ApiError::StoreUnavailable(e).into_reply())
            }
        };
        let live_config = ctx.live.clone();
        let route = &live_config.router.routes()[index];
        // A forward-auth-only route has no app behind this gateway: nothing to proxy to.
        if route.upstream.is_none() {
            return Some(ApiError::NotFound.into_reply());
        }
        ctx.route = Some(index);
        ctx.session = live;
        if is_websocket(session) && !route.websockets {
            return Some(
                ApiError::Forbidden(
                    "websockets_disabled",
                    "This route does not accept WebSocket connections.",
                )
                .into_reply(),
            );
        }
        let header = session.req_header();
        // Only a refusal needs it: an allowed request skips reading `Accept`.
        let navigation = || wants_html(&header.method, &header.headers);
        match decision {
            Decision::Allow => None,
            Decision::NeedLogin => Some(login_needed(&ctx.inbound.target, navigation())),
            Decision::Forbidden => Some(forbidden(
                &live_config.config.webauthn.rp_name,
                navigation(),
            )),
        }
    }

    /// The client and forwarded headers for this request (see `forwarded.rs`).
    fn forwarded(&self, session: &Session, ctx: &RequestCtx) -> Forwarded {
        let headers = &session.req_header().headers;
        // Looked up by prebuilt names: a `&str` name is parsed and lowercased on every lookup.
        let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        // Every line joined: a proxy may add its own line rather than extend the first.
        let lines: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let xff = (!lines.is_empty()).then(|| lines.join(","));
        let incoming = Incoming {
            xff: xff.as_deref(),
            proto: text(&X_FORWARDED_PROTO),
            host: text(&X_FORWARDED_HOST),
            port: text(&X_FORWARDED_PORT),
        };
        let trusted = &ctx.live.config.server.trusted_proxies;
        forwarded(
            ctx.peer,
            &incoming,
            trusted,
            ctx.inbound.authority.as_deref(),
        )
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

fn peer_of(session: &Session) -> Peer {
    let addr = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let local_port = session
        .server_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.port());
    Peer {
        addr,
        tls,
        local_port,
    }
}

fn is_websocket(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}
