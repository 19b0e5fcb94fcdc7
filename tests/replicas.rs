//! Three gateways on one real PostgreSQL database, as behind a round-robin balancer: any replica
//! finishes a ceremony another began, a cookie from one works on all, a logout on one is refused
//! on the others within the revocation bound, and a key rotation on one gives all the same JWKS.
//! The database comes from `PKGW_TEST_POSTGRES_URL` (see the README, "Testing").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use passkey_gateway::store::REVOCATION_BOUND;
use passkey_gateway::{Config, Gateway};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::passkeys::{enroll, Browser};
use crate::support::postgres::{replicas_at, status_with, Database, Replica};
use crate::support::{client, EchoUpstream};

/// A TCP relay in front of PostgreSQL that the test can cut (every connection dropped, new ones
/// refused) and restore: a database outage without stopping the server other tests share.
struct Relay {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (accepting, all) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                all.lock().expect("links").push(link);
            }
        });
        Relay { port, up, links }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `n` replicas sharing `database`; the public origin is the first one's (the balancer's).
async fn replicas(database: &Database, upstream: SocketAddr, n: usize) -> Vec<Replica> {
    replicas_at(&database.url, upstream, n, ["", ""]).await
}

async fn jwks(replica: &Replica) -> Value {
    client()
        .get(replica.url("/passkeys/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn any_replica_serves_any_step_and_a_logout_holds_on_all_within_the_bound() {
    let upstream = EchoUpstream::start().await;
    let database = Database::create().await;
    let replicas = replicas(&database, upstream.addr, 3).await;
    let (_, token) = enroll(&replicas[0].gw, "alice", &[]).await;

    // Registration: begun on A, completed on B (the browser's origin is the balancer's).
    let mut browser = Browser::new(&replicas[0].url(""));
    let (ceremony, options) = browser.begin_registration(Some(&token), "laptop").await;
    let credential = browser.create(options);
    browser.base = replicas[1].url("");
    let done = browser
        .post(
            "/passkeys/register/complete",
            json!({"session_id": ceremony, "credential": credential, "name": "laptop"}),
        )
        .await;
    assert!(done.status.is_success(), "{:?}", done.body);

    // Login: begun on B, completed on C; the cookie works on A, B and C.
    let (ceremony, options) = browser.begin_login(Some("alice")).await;
    let assertion = browser.assert(options);
    browser.base = replicas[2].url("");
    let done = browser.complete_login(&ceremony, &assertion, "/").await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    let cookie = browser.cookie.clone().expect("signed in");
    for replica in &replicas {
        assert_eq!(status_with(&replica.url("/x"), &cookie).await, 200);
    }

    // Logout on A: B and C refuse the cookie within the bound.
    browser.base = replicas[0].url("");
    let out = browser.post("/passkeys/logout", json!({})).await;
    assert!(out.status.is_success(), "{:?}", out.body);
    let start = Instant::now();
    for replica in &replicas[1..] {
        loop {
            let status = status_with(&replica.url("/x"), &cookie).await;
            if status != 200 {
                break;
            }
            assert!(
                start.elapsed() < REVOCATION_BOUND,
                "still accepted after {:?}",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    eprintln!(
        "logout refused on every replica after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_key_rotation_on_one_replica_gives_every_replica_the_same_jwks() {
    let upstream = EchoUpstream::start().await;
    let database = Database::create().await;
    let replicas = replicas(&database, upstream.addr, 3).await;
    let first = jwks(&replicas[0]).await;
    for replica in &replicas[1..] {
        assert_eq!(jwks(replica).await, first, "replicas started with one ring");
    }
    let kid = replicas[1].gw.rotate_keys().expect("rotate");
    for replica in &replicas {
        // What each replica's periodic upkeep does (a round is 15 s; the test runs it now).
        replica.gw.upkeep_once(replica.gw.now()).await;
        let now = jwks(replica).await;
        assert_eq!(now["keys"].as_array().map(Vec::len), Some(2));
        assert_eq!(now["keys"][0]["kid"], kid.as_str());
    }
    assert_eq!(jwks(&replicas[0]).await, jwks(&replicas[2]).await);
}

#[tokio::test]
async fn a_replica_whose_database_does_not_answer_does_not_start() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = listener.local_addr().expect("addr");
    drop(listener);
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("kek"), "4b".repeat(32)).expect("kek");
    let text = format!(
        "public_url = \"http://localhost:8080\"\n[webauthn]\nrp_id = \"localhost\"\n[store]\nbackend = \"postgres\"\nurl = \"postgres://pkgw@{dead}/pkgw\"\nconnect_timeout = \"2s\"\nkey_encryption_key_file = \"{}\"\n",
        data.path().join("kek").display()
    );
    let config = Config::from_toml(&data.path().join("g.toml"), &text).expect("config");
    let error = Gateway::new(config).expect_err("no database, no gateway");
    let chain = format!("{:#}", anyhow::Error::from(error));
    assert!(
        chain.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{}/pkgw",
            dead.port()
        )),
        "{chain}"
    );
}

// Multi-threaded: `Gateway::new` blocks its thread while it connects through the relay, which
// runs on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_everything_recovers_by_itself() {
    let upstream = EchoUpstream::start().await;
    let database = Database::create().await;
    let server = url::Url::parse(&database.url).expect("url");
    let target: SocketAddr = format!(
        "{}:{}",
        server.host_str().expect("host"),
        server.port().unwrap_or(5432)
    )
    .parse()
    .expect("the test server is given by address");
    let relay = Relay::start(target).await;
    let mut via_relay = server.clone();
    via_relay.set_port(Some(relay.port)).expect("port");
    let replicas = replicas_at(via_relay.as_str(), upstream.addr, 2, ["", ""]).await;
    let (_, token) = enroll(&replicas[0].gw, "alice", &[]).await;
    let mut browser = Browser::new(&replicas[0].url(""));
    assert!(browser
        .register(Some(&token), "laptop")
        .await
        .status
        .is_success());
    let cookie = browser.cookie.clone().expect("signed in");
    for replica in &replicas {
        assert_eq!(status_with(&replica.url("/x"), &cookie).await, 200);
    }

    // Outage: within the bound (plus a heartbeat), cached sessions stop being trusted and a
    // request that needs the database gets 503; health says so; nothing panics.
    relay.cut();
    let start = Instant::now();
    for replica in &replicas {
        loop {
            match status_with(&replica.url("/x"), &cookie).await {
                200 => {}
                503 => break,
                other => panic!("during the outage: {other}"),
            }
            assert!(
                start.elapsed() < REVOCATION_BOUND * 3,
                "still 200 after {:?}",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let health = client()
            .get(replica.url("/passkeys/health"))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status().as_u16(), 503);
    }
    eprintln!("outage noticed after {:?}", start.elapsed());

    // Back: every replica serves the cookie again with no restart.
    relay.restore();
    let back = Instant::now();
    for replica in &replicas {
        while status_with(&replica.url("/x"), &cookie).await != 200 {
            assert!(back.elapsed() < Duration::from_secs(20), "no recovery");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!("recovered after {:?}", back.elapsed());
}
