//! The real pingora `Server` on a thread, stopped by a custom shutdown signal: plain HTTP, and
//! TLS on a freshly generated self-signed certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use passkey_gateway::server::run;
use passkey_gateway::{Config, Gateway};
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::oneshot;

use crate::support::{EchoUpstream, Echoed};

struct StopOnDemand(Mutex<Option<oneshot::Receiver<()>>>);

#[async_trait]
impl ShutdownSignalWatch for StopOnDemand {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().expect("lock").take();
        if let Some(rx) = rx {
            let _ = rx.await;
        }
        ShutdownSignal::FastShutdown
    }
}

/// A real server on a port that was free a moment ago (pingora cannot report a port-0 bind).
struct RealServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl RealServer {
    fn start(toml: &str) -> RealServer {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let data = tempfile::tempdir().expect("tempdir");
        let text = toml
            .replace("{listen}", &addr.to_string())
            .replace("{port}", &addr.port().to_string())
            .replace("{data_dir}", &data.path().display().to_string());
        let config = Config::from_toml(Path::new("real.toml"), &text).expect("valid config");
        let gw = Gateway::new(config).expect("gateway");
        let (tx, rx) = oneshot::channel();
        let signal = Box::new(StopOnDemand(Mutex::new(Some(rx))));
        let thread = std::thread::spawn(move || {
            run(
                gw,
                RunArgs {
                    shutdown_signal: signal,
                },
            )
            .expect("server runs");
        });
        wait_for_port(addr);
        RealServer {
            addr,
            stop: Some(tx),
            thread: Some(thread),
            _data: data,
        }
    }

    fn stop(mut self) {
        let _ = self.stop.take().map(|tx| tx.send(()));
        let thread = self.thread.take().expect("thread");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        thread.join().expect("server thread");
    }
}

/// Bounded wait until the listener accepts.
fn wait_for_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "the server never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_server_proxies_and_stops() {
    let up = EchoUpstream::start().await;
    let server = RealServer::start(&format!(
        r#"
        public_url = "http://localhost:{{port}}"
        [server]
        listen = ["{{listen}}"]
        data_dir = "{{data_dir}}"
        grace_period = "0s"
        [webauthn]
        rp_id = "localhost"
        [[route]]
        name = "app"
        upstream = "http://{}"
        access = "public"
        "#,
        up.addr
    ));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let resp = client
        .get(format!("http://{}/hello", server.addr))
        .header("X-Passkey-User", "mallory")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let seen: Echoed = resp.json().await.expect("echo");
    assert_eq!(seen.path, "/hello");
    assert_eq!(seen.header("x-passkey-user"), None);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_a_self_signed_certificate() {
    let up = EchoUpstream::start().await;
    let pem_dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_path = pem_dir.path().join("cert.pem");
    let key_path = pem_dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    let server = RealServer::start(&format!(
        r#"
        public_url = "https://localhost:{{port}}"
        [server]
        listen = ["{{listen}}"]
        data_dir = "{{data_dir}}"
        grace_period = "0s"
        [server.tls]
        cert = "{}"
        key = "{}"
        [webauthn]
        rp_id = "localhost"
        [[route]]
        name = "app"
        upstream = "http://{}"
        access = "public"
        "#,
        cert_path.display(),
        key_path.display(),
        up.addr
    ));
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("root");
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root)
        .resolve("localhost", server.addr)
        .build()
        .expect("client");
    let resp = client
        .get(format!("https://localhost:{}/over-tls", server.addr.port()))
        .send()
        .await
        .expect("TLS request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN picked h2");
    let seen: Echoed = resp.json().await.expect("echo");
    assert_eq!(seen.path, "/over-tls");
    assert_eq!(
        seen.header("x-forwarded-proto"),
        Some("https"),
        "the gateway knows it terminated TLS"
    );
    server.stop();
}
