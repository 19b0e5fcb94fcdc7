//! The world each test builds for itself: an echo upstream, the gateway in-process on port 0,
//! and clients (reqwest, and a raw socket for header spellings reqwest would normalize).
// Not every test module uses every helper.
#![allow(dead_code)]

pub mod aaguid;
pub mod echo;
pub mod fronting;
pub mod h2;
pub mod passkeys;
pub mod postgres;
pub mod process;
pub mod qr;
pub mod raw;
pub mod raw_upstream;
pub mod tls;
pub mod verifier;

use std::net::SocketAddr;
use std::sync::Arc;

use passkey_gateway::server::{proxy_app, serve_listener, serve_tls_listener, tls_settings};
use passkey_gateway::{Config, Gateway};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use echo::{EchoUpstream, Echoed};

/// A gateway serving on its own port-0 listener until dropped.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub gw: Arc<Gateway>,
    pub data: tempfile::TempDir,
    /// The config file, for running the real binary against this gateway.
    pub config_path: std::path::PathBuf,
    _shutdown: watch::Sender<bool>,
}

impl TestGateway {
    /// Binds first (WebAuthn compares the origin's port), then builds the config from `toml`,
    /// where `{port}` and `{data_dir}` are filled in.
    pub async fn start(toml: &str) -> TestGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let data = tempfile::tempdir().expect("tempdir");
        let text = toml
            .replace("{port}", &addr.port().to_string())
            .replace("{data_dir}", &data.path().display().to_string());
        // Also on disk, so the real binary's admin commands can use the same config.
        let config_path = data.path().join("gateway.toml");
        std::fs::write(&config_path, &text).expect("write config");
        let config = Config::from_toml(&config_path, &text).expect("test config is valid");
        let gw = Gateway::new(config).expect("gateway starts");
        let (tx, rx) = watch::channel(false);
        let app = proxy_app(gw.clone());
        match tls_settings(&gw).expect("TLS settings") {
            Some(tls) => tokio::spawn(serve_tls_listener(listener, app, tls, rx)),
            None => tokio::spawn(serve_listener(listener, app, rx)),
        };
        // Bound above, so the kernel accepts connections from here on.
        gw.readiness().set_listening();
        tokio::spawn(gw.clone().upkeep());
        tokio::spawn(passkey_gateway::admin::serve_admin_socket(gw.clone()));
        // The log's end is read before the test acts, so its first events are sent too.
        passkey_gateway::webhooks::start(gw.clone()).await;
        TestGateway {
            addr,
            gw,
            data,
            config_path,
            _shutdown: tx,
        }
    }

    /// A gateway with one public route `/` and one authenticated route `/app` to `upstream`.
    pub async fn in_front_of(upstream: SocketAddr, extra: &str) -> TestGateway {
        TestGateway::start(&config(
            extra,
            &format!(
                r#"
            [[route]]
            name = "public"
            path = "/"
            upstream = "http://{upstream}"
            access = "public"
            "#
            ),
        ))
        .await
    }

    /// The usual world for passkey tests: `/` public, `/app` for signed-in users, `/admin` for
    /// the `admins` group, all to `upstream`; `extra` goes into `[webauthn]`.
    pub async fn app(upstream: SocketAddr, extra: &str) -> TestGateway {
        TestGateway::start(&config("", &app_routes(upstream, extra))).await
    }

    /// Serves the admin listener's endpoints (`/metrics`, `/healthz`, `/readyz`) on port 0.
    pub async fn admin_http(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(passkey_gateway::admin::serve_admin_http(
            listener,
            self.gw.clone(),
        ));
        addr
    }

    /// The origin a browser on this gateway uses (`https` when it serves TLS).
    pub fn base(&self) -> String {
        let scheme = match self.gw.config().tls {
            Some(_) => "https",
            None => "http",
        };
        format!("{scheme}://localhost:{}", self.addr.port())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }
}

/// [`TestGateway::app`]'s routes (and `extra` in `[webauthn]`), for a world built otherwise.
pub fn app_routes(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
            {extra}
            [[route]]
            name = "public"
            upstream = "http://{upstream}"
            access = "public"
            [[route]]
            name = "app"
            path = "/app"
            upstream = "http://{upstream}"
            public_paths = ["/app/public"]
            [[route]]
            name = "admin"
            path = "/admin"
            upstream = "http://{upstream}"
            allow_groups = ["admins"]
            "#
    )
}

/// A test config: `public_url` on the gateway's own port, a temporary `data_dir`, rp id
/// `localhost`. `server` adds `[server]` keys; `rest` follows `[webauthn]` (more of its keys
/// first, then other tables such as routes). `TestGateway::start` fills the placeholders in.
pub fn config(server: &str, rest: &str) -> String {
    format!(
        "public_url = \"http://localhost:{{port}}\"\n[server]\ndata_dir = \"{{data_dir}}\"\n{server}\n\
         [webauthn]\nrp_id = \"localhost\"\n{rest}"
    )
}

/// The Prometheus text the admin listener at `admin` serves now.
pub async fn metrics_text(admin: SocketAddr) -> String {
    client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body")
}

/// A client that never follows redirects and never uses a proxy from the environment. Over TLS
/// it trusts the test CA, offers `h2` and `http/1.1`, and records the server's certificate.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("client")
}

/// [`client`]'s settings, for a test that changes one (e.g. `http1_only`).
pub fn client_builder() -> reqwest::ClientBuilder {
    let root = reqwest::Certificate::from_pem(tls::test_ca().root_pem().as_bytes()).expect("CA");
    reqwest::Client::builder()
        .add_root_certificate(root)
        .tls_info(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve("localhost", "127.0.0.1:0".parse().expect("addr"))
}
