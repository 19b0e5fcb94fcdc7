//! systemd integration (`Type=notify`, via `sd-notify`): `READY=1` once every listener accepts
//! connections, `STOPPING=1` when shutdown begins, and `WATCHDOG=1` at half the interval systemd
//! asks for (`WatchdogSec=` sets `WATCHDOG_USEC`). Without `NOTIFY_SOCKET` every call is a
//! no-op, so the same binary runs anywhere.
//!
//! "Accepts" is proven, not assumed: pingora binds its listeners on its own threads, so we
//! connect to each address until it answers. Readiness (`/readyz`) waits on the same proof.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use sd_notify::NotifyState;

use crate::gateway::Gateway;

/// How often a listener is tried while it is not accepting yet.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// How long the listeners have to start accepting before we say so in the log (and go on
/// trying: a slow start is not a failed one).
const PROBE_WARN_AFTER: Duration = Duration::from_secs(10);

/// Waits until every address in `listen` accepts a connection, then marks the gateway ready
/// and tells systemd.
pub async fn announce_when_listening(gw: &Gateway, listen: &[SocketAddr]) {
    let started = std::time::Instant::now();
    let mut warned = false;
    for addr in listen {
        let target = reachable(*addr);
        while tokio::net::TcpStream::connect(target).await.is_err() {
            if !warned && started.elapsed() > PROBE_WARN_AFTER {
                tracing::warn!(%addr, "the listener does not accept connections yet");
                warned = true;
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }
    gw.readiness().set_listening();
    tracing::info!(listen = ?listen, "listening; ready");
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Sends `WATCHDOG=1` at half of `WATCHDOG_USEC` until the task is dropped; returns at once
/// when systemd set no watchdog.
pub async fn watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        notify(&[NotifyState::Watchdog]);
    }
}

/// Shutdown has begun.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// A reload has begun (`RELOADING=1`, with the monotonic time systemd requires), or ended.
pub fn reloading(done: bool) {
    if done {
        notify(&[NotifyState::Ready]);
    } else if let Ok(now) = NotifyState::monotonic_usec_now() {
        notify(&[NotifyState::Reloading, now]);
    }
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// The unspecified address means "every interface": loopback is one of them.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// Reloads the configuration at every SIGHUP until the task is dropped.
async fn reload_on_sighup(gw: std::sync::Arc<Gateway>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP: reload with `passkey-gateway reload`");
            return;
        }
    };
    while hup.recv().await.is_some() {
        reloading(false);
        // The outcome is logged and counted by `reload` itself.
        let _ = gw.reload().await;
        reloading(true);
    }
}

/// The pingora background service for operations: the admin listener (when configured), the
/// readiness announcement, the watchdog, and `STOPPING=1` when the server shuts down.
pub struct Operations {
    gw: std::sync::Arc<Gateway>,
    /// Bound by `server::build_server`, so a taken port is a start error, not a log line.
    admin: std::sync::Mutex<Option<std::net::TcpListener>>,
}

impl Operations {
    pub fn new(gw: std::sync::Arc<Gateway>, admin: Option<std::net::TcpListener>) -> Operations {
        Operations {
            gw,
            admin: std::sync::Mutex::new(admin),
        }
    }
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Operations {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let admin = self
            .admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let admin = admin.and_then(|std_listener| {
            let _ = std_listener.set_nonblocking(true);
            match tokio::net::TcpListener::from_std(std_listener) {
                Ok(listener) => Some(tokio::spawn(crate::admin::serve_admin_http(
                    listener,
                    self.gw.clone(),
                ))),
                Err(e) => {
                    tracing::error!(error = %e, "the admin listener is not available");
                    None
                }
            }
        });
        let listen = self.gw.config().server.listen.clone();
        let gw = self.gw.clone();
        let ready = tokio::spawn(async move { announce_when_listening(&gw, &listen).await });
        let dog = tokio::spawn(watchdog());
        let hup = tokio::spawn(reload_on_sighup(self.gw.clone()));
        let hooks = tokio::spawn(crate::webhooks::run(self.gw.clone()));
        let _ = shutdown.changed().await;
        stopping();
        for task in [ready, dog, hup, hooks] {
            task.abort();
        }
        if let Some(admin) = admin {
            admin.abort();
        }
    }
}
