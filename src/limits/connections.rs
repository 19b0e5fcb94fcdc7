//! [`GuardedApp`]: the HTTP/1.1 connection loop with the limits pingora 0.9.1 does not have.
//!
//! pingora keeps a kept-alive connection open without limit after its first request (reading a
//! request header switches keep-alive to "infinite"), bounds each *read* of a header but not the
//! whole header (one byte a minute keeps it open), and counts no connections. So the gateway
//! runs each accepted connection itself, in both the real `Server` and a caller's accept loop:
//!
//! - a cap on open connections: beyond `server.max_connections` a connection is closed as soon
//!   as it is accepted (after the TLS handshake on TLS listeners, which pingora bounds at 60 s);
//! - a deadline for each whole request header: `server.request_header_timeout` from the accept
//!   for the first request; on a kept-alive connection, the idle allowance plus that timeout from
//!   the end of the previous response;
//! - an idle timeout between requests: pingora's per-request keep-alive, set again after every
//!   request header ([`on_request_header`]) because pingora resets it to "infinite" there.
//!
//! The proxy learns that a header has arrived through pingora's per-connection user context,
//! which its `on_connection_reuse` hook receives once the header is parsed.
//!
//! HTTP/2 (ALPN `h2` on TLS listeners; no h2c) runs pingora's own h2 connection loop, inside the
//! same connection cap: its streams are multiplexed on one connection, so the per-request header
//! deadline above does not apply; the connection is closed after `server.keepalive_timeout`
//! with no open stream (pingora's `h2_idle_timeout`, set in `server::guarded`), and the h2 codec
//! bounds header sizes and concurrent streams itself.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::sync::Semaphore;

use crate::config::ServerConfig;

/// The connection limits of `[server]`, and the connections open now.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    keepalive_secs: u64,
    header_timeout: Duration,
    slots: Arc<Semaphore>,
}

impl ConnectionLimits {
    pub fn new(server: &ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            keepalive_secs: server.keepalive_timeout.as_secs().max(1),
            header_timeout: server.request_header_timeout,
            slots: Arc::new(Semaphore::new(server.max_connections)),
        }
    }

    /// The whole-header deadline of a connection's next request.
    fn header_deadline(&self, first: bool) -> Duration {
        if first {
            self.header_timeout
        } else {
            Duration::from_secs(self.keepalive_secs) + self.header_timeout
        }
    }
}

/// An HTTP application (the pingora proxy) behind the connection limits.
pub struct GuardedApp<H> {
    inner: Arc<H>,
    limits: ConnectionLimits,
}

impl<H> GuardedApp<H> {
    pub fn new(inner: H, limits: ConnectionLimits) -> GuardedApp<H> {
        GuardedApp {
            inner: Arc::new(inner),
            limits,
        }
    }
}

#[async_trait]
impl<H> ServerApp for GuardedApp<H>
where
    H: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(_slot) = self.limits.slots.clone().try_acquire_owned() else {
            tracing::debug!("connection closed: server.max_connections are open");
            // Dropping the stream closes the connection.
            return None;
        };
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // pingora's loop for the whole h2 connection; the slot is held until it ends.
            return self.inner.process_new(stream, shutdown).await;
        }
        let mut session = ServerSession::new_http1(stream);
        let limit = self.inner.server_options();
        session.set_keepalive_reuses_remaining(limit.and_then(|o| o.keepalive_request_limit));
        let mut first = true;
        loop {
            let keepalive = (!*shutdown.borrow()).then_some(self.limits.keepalive_secs);
            session.set_keepalive(keepalive);
            let deadline = self.limits.header_deadline(first);
            let reused = self.serve_request(session, deadline, shutdown).await?;
            let (stream, settings) = reused.consume();
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            first = false;
        }
    }

    async fn cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}

impl<H> GuardedApp<H>
where
    H: HttpServerApp + Send + Sync + 'static,
{
    /// One request; `None` closes the connection (not reusable, or its header came too late).
    async fn serve_request(
        self: &Arc<Self>,
        mut session: ServerSession,
        deadline: Duration,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let arrived = Arc::new(AtomicBool::new(false));
        let start = RequestStart {
            header_arrived: arrived.clone(),
            keepalive_secs: self.limits.keepalive_secs,
        };
        session.set_connection_user_context(Some(Box::new(start)));
        tokio::select! {
            reused = self.inner.process_new_http(session, shutdown) => reused,
            () = header_missed(&arrived, deadline) => {
                tracing::debug!(?deadline, "connection closed: the request header came too late");
                None
            }
        }
    }
}

/// Completes at `deadline` if the header has not arrived by then; otherwise never.
async fn header_missed(arrived: &AtomicBool, deadline: Duration) {
    tokio::time::sleep(deadline).await;
    if arrived.load(Ordering::Acquire) {
        std::future::pending::<()>().await;
    }
}

/// Handed to the proxy with each request: where to say that its header arrived.
struct RequestStart {
    header_arrived: Arc<AtomicBool>,
    keepalive_secs: u64,
}

/// Called by the proxy once a request header is parsed (`on_connection_reuse`, which pingora
/// calls for every request that carries a connection context): stops the header deadline and
/// bounds the idle time before the next request.
pub fn on_request_header(session: &mut ServerSession, context: Box<dyn Any + Send + Sync>) {
    let Ok(start) = context.downcast::<RequestStart>() else {
        return;
    };
    start.header_arrived.store(true, Ordering::Release);
    // pingora set keep-alive to "infinite" when it read the header, or off when the client asked
    // to close; only the former is replaced.
    if session.get_keepalive().is_some() {
        session.set_keepalive(Some(start.keepalive_secs));
    }
}
