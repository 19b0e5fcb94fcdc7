//! Crash safety, tested rather than assumed: the real binary registers passkeys while being
//! killed with SIGKILL at random moments; after each restart every registration the client saw
//! acknowledged is still there, and the store file opens cleanly.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use passkey_gateway::gateway::{unix_now, STORE_FILE};
use passkey_gateway::store::{hash_secret, NewUser, Store};
use rand::Rng;
use tokio::sync::Mutex;

use crate::support::passkeys::{credential_id, Browser};

const ROUNDS: usize = 4;
const PER_ROUND: usize = 12;

fn start(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the gateway binary")
}

/// Bounded wait until the restarted process answers its health check.
async fn wait_healthy(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = crate::support::client();
    loop {
        let ok = client
            .get(format!("http://localhost:{}/passkeys/health", addr.port()))
            .send()
            .await;
        if ok.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "the gateway did not come back");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Users with enrollment tokens, written while no gateway runs.
async fn seed_users(store_path: &Path, count: usize) -> Vec<String> {
    let store = Store::open(store_path).expect("open store");
    let mut tokens = Vec::new();
    for i in 0..count {
        let user = store
            .create_user(NewUser {
                username: format!("crash{i}"),
                display_name: format!("Crash {i}"),
                email: None,
                groups: vec![],
            })
            .await
            .expect("user");
        let token = passkey_gateway::session::new_session_value();
        store
            .create_enrollment(user.id, hash_secret(&token), unix_now() + 3600)
            .await
            .expect("token");
        tokens.push(token);
    }
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_registrations_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("data").join(STORE_FILE);
    std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
    let tokens = seed_users(&store_path, ROUNDS * PER_ROUND).await;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"http://localhost:{port}\"\n[server]\nlisten = [\"{addr}\"]\ndata_dir = \"{data}\"\ngrace_period = \"0s\"\nceremony_rate_per_minute = 0\n[webauthn]\nrp_id = \"localhost\"\n",
            port = addr.port(),
            data = dir.path().join("data").display()
        ),
    )
    .expect("config");

    let acknowledged = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        let mut child = start(&config);
        wait_healthy(addr).await;
        // Kill once a random number of this round's registrations were acknowledged, while the
        // others are still in flight.
        let kill_after = rng.random_range(1..PER_ROUND);
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for token in &tokens[round * PER_ROUND..(round + 1) * PER_ROUND] {
            let (token, acknowledged, done) = (token.clone(), acknowledged.clone(), done.clone());
            let base = format!("http://localhost:{}", addr.port());
            tasks.push(tokio::spawn(async move {
                let mut browser = Browser::new(&base);
                let answer = browser.try_register(&token, "K").await;
                if let Some(answer) = answer.filter(|a| a.status == 201) {
                    acknowledged.lock().await.push(credential_id(&answer));
                }
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while done.load(Ordering::SeqCst) < kill_after {
            assert!(Instant::now() < deadline, "registrations stalled");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        for task in tasks {
            let _ = task.await;
        }
    }

    // The file opens cleanly and holds every acknowledged passkey.
    let store = Store::open(&store_path).expect("the store opens after kill -9");
    let acknowledged = acknowledged.lock().await;
    assert!(
        !acknowledged.is_empty(),
        "some registrations were acknowledged"
    );
    for id in acknowledged.iter() {
        assert!(
            store
                .passkey_by_credential_id(id)
                .await
                .expect("read")
                .is_some(),
            "an acknowledged passkey was lost"
        );
    }
    // A restarted gateway serves them: one more start, health, and a clean stop.
    drop(store);
    let mut child = start(&config);
    wait_healthy(addr).await;
    child.kill().expect("kill");
    child.wait().expect("reaped");
}
