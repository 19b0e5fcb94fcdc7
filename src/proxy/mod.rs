//! `impl ProxyHttp`: thin glue between pingora's phases and the modules that decide.
//!
//! - `request_filter`: normalize the path once; answer the gateway's own endpoints locally; find
//!   the route (404 without one); apply its policy.
//! - `upstream_request_filter`: strip every identity header the client sent, set `X-Forwarded-*`.
//! - `fail_to_proxy`: an upstream that is down becomes a JSON 502; everything else keeps serving.
//! - `logging`: one line per request, without query strings, cookies or tokens.

mod forwarded;
mod io;

pub use forwarded::{client_ip, forwarded, Forwarded, Incoming, Peer};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use http::StatusCode;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::identity::is_identity_header;
use crate::policy::normalize_path;
use crate::routes::{self, Reply};

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
            local_status: None,
        }
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
        strip_identity_headers(upstream);
        self.set_forwarded(session, upstream, ctx)
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
        let client = self.client_ip(session, ctx.peer.addr);
        if routes::is_own_path(&ctx.path) {
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
        let Some(index) = self.route_index(host.as_deref(), &ctx.path) else {
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
        Ok(None)
    }

    fn route_index(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let route = self.gw.router.route(host, path)?;
        self.gw
            .router
            .routes()
            .iter()
            .position(|r| std::ptr::eq(r, route))
    }

    fn client_ip(&self, session: &Session, peer: Option<IpAddr>) -> Option<IpAddr> {
        let xff = session
            .req_header()
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        client_ip(peer, xff, &self.gw.config.server.trusted_proxies)
    }

    fn set_forwarded(
        &self,
        session: &Session,
        upstream: &mut RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        let text = |name: &str| {
            session
                .req_header()
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
        };
        // Joined so that duplicate X-Forwarded-For lines from a trusted proxy keep every hop.
        let xff: Vec<&str> = session
            .req_header()
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
        let decided = forwarded(ctx.peer, &incoming, &self.gw.config.server.trusted_proxies);
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
}

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
