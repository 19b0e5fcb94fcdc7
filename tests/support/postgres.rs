//! Gateway replicas on one real PostgreSQL database, as behind a round-robin balancer. The
//! server comes from `PKGW_TEST_POSTGRES_URL` (see the README, "Testing"); each test gets a
//! database of its own.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use passkey_gateway::server::{proxy_app, serve_listener};
use passkey_gateway::{Config, Gateway};
use tokio::net::TcpListener;
use tokio::sync::watch;

const DEFAULT_URL: &str = "postgres://pkgw:pkgw@127.0.0.1:5432/postgres";

/// A database of this test's own, dropped at the end.
pub struct Database {
    admin_url: String,
    name: String,
    pub url: String,
}

impl Database {
    pub async fn create() -> Database {
        let admin_url =
            std::env::var("PKGW_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        let name = format!("pkgw_replicas_{}", uuid::Uuid::new_v4().simple());
        admin(&admin_url)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let mut url = url::Url::parse(&admin_url).expect("a URL");
        url.set_path(&format!("/{name}"));
        Database {
            admin_url,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (url, sql) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async move { admin(&url).await.batch_execute(&sql).await })
        })
        .join();
    }
}

/// A connection to the server at `url`, or a panic saying how to get one.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("no PostgreSQL at {url} ({e}): run .ci/run, or start one and set PKGW_TEST_POSTGRES_URL")
        });
    tokio::spawn(connection);
    client
}

/// One gateway serving in-process on its own port.
pub struct Replica {
    pub addr: SocketAddr,
    pub gw: Arc<Gateway>,
    _data: tempfile::TempDir,
    _shutdown: watch::Sender<bool>,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.addr.port())
    }
}

/// The config of one replica on the database at `url`: `extra` lines go in `[server]` (e.g.
/// `listen`) and in `[store]`, `public_port` is the balancer's (every replica's origin), `/` goes
/// to `upstream`.
pub fn replica_config(
    url: &str,
    data: &Path,
    kek: &Path,
    public_port: u16,
    upstream: SocketAddr,
    [server, store]: [&str; 2],
) -> String {
    format!(
        r#"
public_url = "http://localhost:{public_port}"
[server]
data_dir = "{data}"
{server}
[webauthn]
rp_id = "localhost"
[store]
backend = "postgres"
url = "{url}"
key_encryption_key_file = "{kek}"
{store}
[[route]]
name = "app"
upstream = "http://{upstream}"
"#,
        data = data.display(),
        kek = kek.display(),
    )
}

/// A key-encryption key file in `dir`, the one all replicas of a test share.
pub fn kek_file(dir: &Path) -> std::path::PathBuf {
    let kek = dir.join("kek");
    std::fs::write(&kek, "4b".repeat(32)).expect("write kek");
    kek
}

/// `n` in-process replicas on the database at `url`, with `extra` lines in each `[server]` and
/// `[store]`; the public origin is the first one's (the balancer's).
pub async fn replicas_at(
    url: &str,
    upstream: SocketAddr,
    n: usize,
    extra: [&str; 2],
) -> Vec<Replica> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let public_port = listeners[0].local_addr().expect("addr").port();
    let secrets = tempfile::tempdir().expect("tempdir");
    let kek = kek_file(secrets.path());
    let mut replicas = Vec::new();
    for listener in listeners {
        let data = tempfile::tempdir().expect("tempdir");
        let text = replica_config(url, data.path(), &kek, public_port, upstream, extra);
        let config = Config::from_toml(&data.path().join("gateway.toml"), &text).expect("config");
        let gw = Gateway::new(config).expect("a replica starts");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve_listener(listener, proxy_app(gw.clone()), rx));
        replicas.push(Replica {
            addr,
            gw,
            _data: data,
            _shutdown: tx,
        });
    }
    replicas
}

/// The status `url` answers a request carrying `cookie`.
pub async fn status_with(url: &str, cookie: &str) -> u16 {
    super::client()
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}
