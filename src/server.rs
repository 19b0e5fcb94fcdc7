//! [`Config`] → a pingora `Server`: listeners (plain or TLS), worker threads, shutdown timing.
//! Also the accept loop that tests (and anything else holding its own listener) use to run the
//! very same proxy on a socket they bound themselves.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use pingora::apps::ServerApp;
use pingora::listeners::tls::{Acceptor, TlsSettings};
use pingora::protocols::{GetSocketDigest, SocketDigest};
use pingora::proxy::{http_proxy, HttpProxy};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use tokio::net::TcpListener;

use crate::gateway::{Gateway, StartError};
use crate::limits::{ConnectionLimits, GuardedApp};
use crate::proxy::GatewayProxy;

/// The application every listener runs: the proxy behind the connection limits.
pub type ProxyApp = GuardedApp<HttpProxy<GatewayProxy>>;

/// Runs the gateway until a shutdown signal (SIGTERM/SIGINT); blocks the calling thread.
pub fn run(gw: Arc<Gateway>, args: RunArgs) -> Result<(), StartError> {
    let server = build_server(gw)?;
    server.run(args);
    Ok(())
}

/// Builds the pingora server: every listener is bound once up front so a port in use is a clear
/// error here, not a panic inside pingora's listener thread.
pub fn build_server(gw: Arc<Gateway>) -> Result<Server, StartError> {
    let config = gw.config().clone();
    for addr in &config.server.listen {
        std::net::TcpListener::bind(addr)
            .map_err(|cause| StartError::Listen { addr: *addr, cause })?;
    }
    let admin = match config.server.admin_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|cause| StartError::Listen { addr, cause })?,
        ),
        None => None,
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf(&config));
    server.bootstrap();
    server.add_service(background_service("gateway upkeep", Upkeep(gw.clone())));
    server.add_service(background_service(
        "operations",
        crate::service_manager::Operations::new(gw.clone(), admin),
    ));
    let app = guarded(
        http_proxy(&server.configuration, GatewayProxy::new(gw.clone())),
        &gw,
    );
    let mut service = Service::new("passkey-gateway".to_string(), app);
    for addr in &config.server.listen {
        let addr = addr.to_string();
        match tls_settings(&gw)? {
            Some(settings) => service.add_tls_with_settings(&addr, None, settings),
            None => service.add_tcp(&addr),
        }
    }
    server.add_service(service);
    Ok(server)
}

/// One TLS listener's settings, `None` without `[server.tls]`: the certificate comes from the
/// gateway's [`ServedCertificate`](crate::tls::ServedCertificate), which a reload swaps; the
/// files named here were checked at load and are not read again by pingora.
pub fn tls_settings(gw: &Gateway) -> Result<Option<TlsSettings>, StartError> {
    let (Some(tls), Some(served)) = (&gw.config().tls, gw.served_certificate()) else {
        return Ok(None);
    };
    let mut settings =
        TlsSettings::intermediate(&tls.cert.to_string_lossy(), &tls.key.to_string_lossy())
            .map_err(StartError::Tls)?;
    settings.set_cert_resolver(served);
    // ALPN `h2` then `http/1.1`: browsers get HTTP/2, WebSockets and older clients HTTP/1.1.
    settings.enable_h2();
    Ok(Some(settings))
}

/// The gateway's periodic work and its admin socket, as a pingora background service: both stop
/// with the server.
struct Upkeep(Arc<Gateway>);

#[async_trait::async_trait]
impl BackgroundService for Upkeep {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let gw = self.0.clone();
        let admin = tokio::spawn(async move {
            if let Err(e) = crate::admin::serve_admin_socket(gw).await {
                tracing::error!(error = %e, "the admin socket is not available");
            }
        });
        tokio::select! {
            _ = self.0.clone().upkeep() => {}
            _ = shutdown.changed() => {}
        }
        admin.abort();
        let _ = std::fs::remove_file(crate::admin::admin_socket_path(&self.0.config()));
        // Last activity is written once more so a clean stop loses none of it.
        let _ = self.0.sessions().flush_last_seen(i64::MAX).await;
    }
}

/// pingora's own settings, from ours. The grace period defaults to 300 s in pingora: far too long
/// for a gateway whose requests are short.
fn server_conf(config: &crate::Config) -> ServerConf {
    let grace = config.server.grace_period.as_secs();
    ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(grace.max(1)),
        ..ServerConf::default()
    }
}

/// The proxy application for a custom accept loop (see [`serve_listener`]).
pub fn proxy_app(gw: Arc<Gateway>) -> Arc<ProxyApp> {
    let conf = Arc::new(ServerConf::default());
    Arc::new(guarded(
        http_proxy(&conf, GatewayProxy::new(gw.clone())),
        &gw,
    ))
}

/// One place builds the app, so both paths run the same connection limits.
fn guarded(mut proxy: HttpProxy<GatewayProxy>, gw: &Gateway) -> ProxyApp {
    let server = &gw.config().server;
    // An h2 connection with no open stream is closed as an idle HTTP/1.1 one is.
    let mut options = proxy.server_options.take().unwrap_or_default();
    options.h2_idle_timeout = Some(server.keepalive_timeout);
    proxy.server_options = Some(options);
    GuardedApp::new(proxy, ConnectionLimits::new(server))
}

/// Serves HTTP/1.1 connections from a listener the caller bound (e.g. on port 0), until
/// `shutdown` turns true. The proxy logic is exactly the one `Server` runs.
pub async fn serve_listener(listener: TcpListener, app: Arc<ProxyApp>, shutdown: ShutdownWatch) {
    serve(listener, app, None, shutdown).await
}

/// [`serve_listener`] behind TLS, with the settings the `Server`'s listeners get
/// ([`tls_settings`]): the same certificate resolver, so a reload swaps what it serves too.
pub async fn serve_tls_listener(
    listener: TcpListener,
    app: Arc<ProxyApp>,
    settings: TlsSettings,
    shutdown: ShutdownWatch,
) {
    serve(listener, app, Some(Arc::new(settings.build())), shutdown).await
}

async fn serve(
    listener: TcpListener,
    app: Arc<ProxyApp>,
    tls: Option<Arc<Acceptor>>,
    shutdown: ShutdownWatch,
) {
    loop {
        let mut stop = shutdown.clone();
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let (app, shutdown, tls) = (app.clone(), shutdown.clone(), tls.clone());
        tokio::spawn(async move {
            let stream = l4_stream(tcp);
            let stream: pingora::protocols::Stream = match tls {
                // As pingora's TLS listener does: the handshake, then the app on the TLS stream.
                Some(acceptor) => match acceptor.tls_handshake(stream).await {
                    Ok(tls) => Box::new(tls),
                    Err(e) => return tracing::debug!(error = %e, "TLS handshake failed"),
                },
                None => Box::new(stream),
            };
            let mut next = Some(stream);
            // Keep-alive: the app hands the connection back while it can be reused.
            while let Some(stream) = next.take() {
                next = app.process_new(stream, &shutdown).await;
            }
        });
    }
}

/// An accepted socket as pingora's listeners hand it on.
fn l4_stream(tcp: tokio::net::TcpStream) -> pingora::protocols::l4::stream::Stream {
    // As pingora's own listeners do: small replies must not wait for Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
    let mut stream: pingora::protocols::l4::stream::Stream = tcp.into();
    stream.set_socket_digest(digest);
    stream
}
