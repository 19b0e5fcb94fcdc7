//! nginx and Caddy started for real on loopback, in front of an echo app and a gateway, each
//! running the snippet file from `contrib/forward-auth/` (the text the README includes) with only
//! its addresses and port filled in. Neither can listen on port 0, so the caller picks a free
//! port and retries with another when the proxy fails to bind it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which fronting proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }

    /// The snippet file, as the README shows it.
    pub fn snippet_path(self) -> PathBuf {
        let name = match self {
            Kind::Nginx => "nginx.conf",
            Kind::Caddy => "Caddyfile",
        };
        snippets_dir().join(name)
    }
}

pub fn snippets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/forward-auth")
}

/// The gateway and app addresses the snippets are written with.
const SNIPPET_GATEWAY: &str = "127.0.0.1:8080";
const SNIPPET_APP: &str = "127.0.0.1:3000";

/// A running fronting proxy; killed (by its own pid) when dropped.
pub struct Front {
    pub kind: Kind,
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Front {
    /// The origin a browser uses through this proxy.
    pub fn base(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// What the proxy logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("front.log")).unwrap_or_default()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Fails the test (never skips it) when the proxy is not installed.
pub fn require(kind: Kind) {
    let found = Command::new(kind.binary())
        .arg(match kind {
            Kind::Nginx => "-v",
            Kind::Caddy => "version",
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{0} is not installed: the forward-auth tests run the real {0} (`apt-get install -y {0}`; \
         .ci/run installs it when missing)",
        kind.binary()
    );
}

/// The snippet with the gateway's and the app's addresses and the listening port filled in.
pub fn templated(kind: Kind, port: u16, gateway: SocketAddr, app: SocketAddr) -> String {
    let text = std::fs::read_to_string(kind.snippet_path()).expect("snippet file");
    assert!(text.contains(SNIPPET_GATEWAY) && text.contains(SNIPPET_APP));
    let (listen, ours) = match kind {
        Kind::Nginx => ("listen 80;", format!("listen 127.0.0.1:{port};")),
        Kind::Caddy => ("app.example.com {", format!("http://localhost:{port} {{")),
    };
    assert!(
        text.contains(listen),
        "the snippet changed: {listen} is gone"
    );
    text.replace(SNIPPET_GATEWAY, &gateway.to_string())
        .replace(SNIPPET_APP, &app.to_string())
        .replace(listen, &ours)
}

/// Starts `kind` on `port` with the templated snippet; `None` when it exits before serving
/// (the port was taken meanwhile: pick another).
pub async fn start(kind: Kind, port: u16, gateway: SocketAddr, app: SocketAddr) -> Option<Front> {
    require(kind);
    let dir = tempfile::tempdir().expect("tempdir");
    let snippet = templated(kind, port, gateway, app);
    let log = std::fs::File::create(dir.path().join("front.log")).expect("log file");
    let mut command = match kind {
        Kind::Nginx => nginx(dir.path(), &snippet),
        Kind::Caddy => caddy(dir.path(), &snippet),
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.binary()));
    let mut front = Front {
        kind,
        port,
        child,
        dir,
    };
    match serving(&mut front).await {
        true => Some(front),
        false => None,
    }
}

/// Waits until the proxy answers the gateway's health check through its `/passkeys/` route
/// (which proves it is this proxy, routing to this gateway), or exits.
async fn serving(front: &mut Front) -> bool {
    let client = super::client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = front.child.try_wait() {
            let log = front.log();
            // Only a lost race for the port is worth another try; anything else is a failure.
            assert!(
                log.contains("in use"),
                "{} exited:\n{log}",
                front.kind.binary()
            );
            return false;
        }
        let health = client.get(front.url("/passkeys/health")).send().await;
        if health.is_ok_and(|r| r.status() == 200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} did not serve within 20 s:\n{}",
        front.kind.binary(),
        front.log()
    );
}

/// nginx in the foreground, one process, everything under `dir`.
fn nginx(dir: &Path, snippet: &str) -> Command {
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/front.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         {snippet}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("front.log"));
    command
}

/// Caddy in the foreground: no admin endpoint, no automatic HTTPS, state under `dir`.
fn caddy(dir: &Path, snippet: &str) -> Command {
    let d = dir.display();
    let conf =
        format!("{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {d}/data\n}}\n{snippet}");
    let path = dir.join("Caddyfile");
    std::fs::write(&path, conf).expect("write Caddyfile");
    let mut command = Command::new("caddy");
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    command
}
