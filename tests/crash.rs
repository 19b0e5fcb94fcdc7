//! Crash safety, tested rather than assumed: the real binary is killed with SIGKILL while it
//! acknowledges registrations, logins, logouts, session revocations, `user disable`, passkey
//! deletes, `keys rotate` and enrollment spending. After each restart, everything the client saw
//! acknowledged still holds (a revoked session stays revoked, a rotated key stays rotated, a spent
//! enrollment token stays spent), the store file opens cleanly, and surviving passkeys sign in.
//! Each kill records how many operations were in flight, so a run that never hits the window is
//! visible (and fails).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use passkey_gateway::gateway::{unix_now, STORE_FILE};
use passkey_gateway::store::{hash_secret, NewUser, Store};
use rand::Rng;
use tokio::sync::Mutex;

use passkey_gateway::session::public_id;
use serde_json::json;

use crate::support::passkeys::{credential_id, Browser};
use crate::support::process::{free_addr, Running};
use crate::support::EchoUpstream;

const ROUNDS: usize = 4;
const PER_ROUND: usize = 12;

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

/// A config for the real binary on `addr` (a port that was free a moment ago: the binary cannot
/// report a port-0 bind), with `/app` routed to `upstream`.
fn write_config(dir: &Path, addr: SocketAddr, upstream: SocketAddr) -> PathBuf {
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"http://localhost:{port}\"\n[server]\nlisten = [\"{addr}\"]\n\
             data_dir = \"{data}\"\ngrace_period = \"0s\"\nceremony_rate_per_minute = 0\n\
             [webauthn]\nrp_id = \"localhost\"\n\
             [[route]]\nname = \"app\"\npath = \"/app\"\nupstream = \"http://{upstream}\"\n",
            port = addr.port(),
            data = dir.join("data").display()
        ),
    )
    .expect("config");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_registrations_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("data").join(STORE_FILE);
    std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
    let tokens = seed_users(&store_path, ROUNDS * PER_ROUND).await;
    let addr = free_addr();
    let up = EchoUpstream::start().await;
    let config = write_config(dir.path(), addr, up.addr);
    let base = format!("http://localhost:{}", addr.port());

    // (username, credential id, the browser holding its key) for each acknowledged registration.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, Vec<u8>, Browser)>::new()));
    let mut rng = rand::rng();
    let mut in_flight_at_kills = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Running::start(&config, addr).await;
        // Kill once a random number of this round's registrations were acknowledged, while the
        // others are still in flight.
        let kill_after = rng.random_range(1..PER_ROUND);
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for (i, token) in tokens
            .iter()
            .enumerate()
            .skip(round * PER_ROUND)
            .take(PER_ROUND)
        {
            let (token, acknowledged, done) = (token.clone(), acknowledged.clone(), done.clone());
            let base = base.clone();
            tasks.push(tokio::spawn(async move {
                let mut browser = Browser::new(&base);
                let answer = browser.try_register(&token, "K").await;
                if let Some(answer) = answer.filter(|a| a.status == 201) {
                    let id = credential_id(&answer);
                    acknowledged
                        .lock()
                        .await
                        .push((format!("crash{i}"), id, browser));
                }
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while done.load(Ordering::SeqCst) < kill_after {
            assert!(Instant::now() < deadline, "registrations stalled");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let in_flight = PER_ROUND - done.load(Ordering::SeqCst);
        child.kill_9();
        in_flight_at_kills.push(in_flight);
        for task in tasks {
            let _ = task.await;
        }
    }
    println!("registrations in flight at each kill: {in_flight_at_kills:?}");
    assert!(
        in_flight_at_kills.iter().any(|n| *n > 0),
        "no kill hit a registration in flight"
    );

    // The file opens cleanly and holds every acknowledged passkey.
    let store = Store::open(&store_path).expect("the store opens after kill -9");
    let mut acknowledged = acknowledged.lock().await;
    assert!(
        !acknowledged.is_empty(),
        "some registrations were acknowledged"
    );
    for (_, id, _) in acknowledged.iter() {
        assert!(
            store
                .passkey_by_credential_id(id)
                .await
                .expect("read")
                .is_some(),
            "an acknowledged passkey was lost"
        );
    }
    // A restarted gateway serves them: every surviving passkey signs in.
    drop(store);
    let mut child = Running::start(&config, addr).await;
    for (username, _, browser) in acknowledged.iter_mut() {
        browser.cookie = None;
        let answer = browser.try_login(username).await.expect("an answer");
        assert_eq!(answer.status, 200, "{username} signs in: {:?}", answer.body);
        assert_eq!(browser.get("/passkeys/me").await.status, 200);
    }
    child.kill_9();
}

/// The operations killed mid-way in [`acknowledged_operations_survive_kill_9`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Registration through an enrollment link (spends the token, signs in).
    Enroll,
    Login,
    Logout,
    /// `session revoke ID` through the CLI.
    Revoke,
    /// `user disable NAME` through the CLI.
    Disable,
    /// The owner deletes their second passkey.
    Delete,
    /// `keys rotate` through the CLI.
    Rotate,
}

const OPS: [Op; 7] = [
    Op::Enroll,
    Op::Login,
    Op::Logout,
    Op::Revoke,
    Op::Disable,
    Op::Delete,
    Op::Rotate,
];

/// How many of each operation a round runs, one after another.
fn per_round(op: Op) -> usize {
    match op {
        Op::Enroll | Op::Login | Op::Logout => 3,
        Op::Revoke | Op::Disable | Op::Delete | Op::Rotate => 2,
    }
}

/// Started, finished and acknowledged operations of each kind in one round.
#[derive(Default)]
struct Tally {
    started: [AtomicUsize; 7],
    finished: [AtomicUsize; 7],
    acked: [AtomicUsize; 7],
    /// Set at the kill: no operation starts after it.
    killed: std::sync::atomic::AtomicBool,
}

impl Tally {
    fn index(op: Op) -> usize {
        OPS.iter().position(|o| *o == op).expect("listed")
    }
    fn in_flight(&self, op: Op) -> usize {
        let i = Tally::index(op);
        self.started[i].load(Ordering::SeqCst) - self.finished[i].load(Ordering::SeqCst)
    }
    fn acked(&self, op: Op) -> usize {
        self.acked[Tally::index(op)].load(Ordering::SeqCst)
    }
}

/// One user of a round, and what the client saw acknowledged for them.
struct Subject {
    op: Op,
    username: String,
    token: String,
    browser: Browser,
    /// The session cookie the operation is about (`name=value`).
    cookie: Option<String>,
    /// Delete: the id of the second passkey.
    second_passkey: Option<String>,
    acknowledged: bool,
}

/// Runs the real CLI against the live gateway (its admin socket); the output if it succeeded.
async fn cli(config: &Path, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .expect("run the binary");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The key id that signed the identity assertion the upstream received for `browser`'s session.
async fn signing_kid(browser: &mut Browser) -> String {
    use base64::Engine;
    let echoed = browser.get("/app/kid").await;
    assert_eq!(echoed.status, 200, "{:?}", echoed.body);
    let jwt = echoed.body["headers"]["x-passkey-assertion"][0]
        .as_str()
        .expect("an assertion");
    let header = jwt.split('.').next().expect("a JWS header");
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url");
    let header: serde_json::Value = serde_json::from_slice(&header).expect("JSON");
    header["kid"].as_str().expect("kid").to_string()
}

/// Runs one subject's operation; whether the client saw it acknowledged.
async fn run_op(subject: &mut Subject, config: &Path) -> bool {
    let b = &mut subject.browser;
    match subject.op {
        Op::Enroll => match b.try_register(&subject.token, "K").await {
            Some(a) if a.status == 201 => {
                let set = a.set_cookie.expect("an enrollment signs in");
                subject.cookie = set.split(';').next().map(str::to_string);
                true
            }
            _ => false,
        },
        Op::Login => match b.try_login(&subject.username).await {
            Some(a) if a.status == 200 && a.set_cookie.is_some() => {
                subject.cookie = b.cookie.clone();
                true
            }
            _ => false,
        },
        Op::Logout => b
            .try_send(reqwest::Method::POST, "/passkeys/logout", Some(json!({})))
            .await
            .is_some_and(|a| a.status == 204),
        Op::Revoke => {
            let cookie = subject.cookie.as_deref().expect("a session");
            let id = public_id(&hash_secret(cookie.split_once('=').expect("pair").1));
            cli(config, &["session", "revoke", &id]).await.is_some()
        }
        Op::Disable => cli(config, &["user", "disable", &subject.username])
            .await
            .is_some(),
        Op::Delete => {
            let id = subject.second_passkey.as_deref().expect("a second passkey");
            let path = format!("/passkeys/credentials/{id}");
            b.try_send(reqwest::Method::DELETE, &path, None)
                .await
                .is_some_and(|a| a.status == 204)
        }
        Op::Rotate => unreachable!("rotations are run by run_rotations"),
    }
}

/// Sets a subject up on the live gateway: registered (except enrollments), signed in, and for a
/// delete, holding a second passkey.
async fn set_up(subject: &mut Subject) {
    if subject.op == Op::Enroll {
        return;
    }
    let b = &mut subject.browser;
    assert_eq!(b.register(Some(&subject.token), "first").await.status, 201);
    if subject.op == Op::Delete {
        let second = b.register(None, "second").await;
        assert_eq!(second.status, 201, "{:?}", second.body);
        subject.second_passkey = Some(second.body["id"].as_str().expect("id").to_string());
    }
    if subject.op == Op::Login {
        b.cookie = None;
    }
    subject.cookie = b.cookie.clone();
}

/// `GET /passkeys/me` with `cookie`: its status.
async fn me_with(browser: &mut Browser, cookie: Option<String>) -> reqwest::StatusCode {
    browser.cookie = cookie;
    browser.get("/passkeys/me").await.status
}

/// Checks, against the restarted gateway, that what `subject` saw acknowledged still holds.
async fn check_survived(subject: &mut Subject) {
    let name = subject.username.clone();
    let b = &mut subject.browser;
    match subject.op {
        Op::Enroll => {
            // The token is spent: it cannot begin another registration.
            let again = b
                .post(
                    "/passkeys/register/begin",
                    json!({"token": subject.token, "name": "again"}),
                )
                .await;
            assert_ne!(
                again.status, 200,
                "{name}: a spent enrollment token works again"
            );
            let cookie = subject.cookie.clone();
            assert_eq!(
                me_with(b, cookie).await,
                200,
                "{name}: the enrollment's session"
            );
        }
        Op::Login => {
            let cookie = subject.cookie.clone();
            assert_eq!(me_with(b, cookie).await, 200, "{name}: the login's session");
        }
        Op::Logout | Op::Revoke => {
            let cookie = subject.cookie.clone();
            assert_eq!(
                me_with(b, cookie).await,
                401,
                "{name}: an ended session is back"
            );
        }
        Op::Disable => {
            let cookie = subject.cookie.clone();
            assert_eq!(
                me_with(b, cookie).await,
                401,
                "{name}: a disabled user's session"
            );
            return;
        }
        Op::Delete => {
            let cookie = subject.cookie.clone();
            assert_eq!(me_with(b, cookie).await, 200);
            let listed = b.get("/passkeys/credentials").await;
            let ids: Vec<&str> = listed
                .body
                .as_array()
                .expect("a list")
                .iter()
                .filter_map(|p| p["id"].as_str())
                .collect();
            assert_eq!(ids.len(), 1, "{name}: a deleted passkey is back: {ids:?}");
            assert!(!ids.contains(&subject.second_passkey.as_deref().expect("id")));
        }
        Op::Rotate => unreachable!(),
    }
    // The surviving passkey still signs in.
    b.cookie = None;
    let login = b.try_login(&name).await.expect("an answer");
    assert_eq!(
        login.status, 200,
        "{name} signs in after the restart: {:?}",
        login.body
    );
    subject.cookie = b.cookie.clone();
}

/// Where a round's kill falls in its chain of operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KillAt {
    /// Once a random number were acknowledged, while the next one is in flight.
    Window,
    /// Right after the last one was acknowledged: no later commit can carry an acknowledged but
    /// non-durable one to disk, so this is the kill that catches a commit made non-durable.
    LastAck,
}

/// Runs one kind's operations one after another, counting them in `tally`; stops starting new
/// ones once `tally.killed` is set. The subjects, with what each saw acknowledged, and the key ids
/// that acknowledged rotations printed.
async fn run_chain(
    op: Op,
    subjects: Vec<Subject>,
    tally: Arc<Tally>,
    config: PathBuf,
) -> (Vec<Subject>, Vec<String>) {
    let i = Tally::index(op);
    let mut done = Vec::new();
    let mut kids = Vec::new();
    if op == Op::Rotate {
        for _ in 0..per_round(Op::Rotate) {
            if tally.killed.load(Ordering::SeqCst) {
                break;
            }
            tally.started[i].fetch_add(1, Ordering::SeqCst);
            if let Some(out) = cli(&config, &["keys", "rotate"]).await {
                let kid = out
                    .strip_prefix("new signing key ")
                    .and_then(|rest| rest.split(';').next())
                    .expect("the new kid")
                    .to_string();
                kids.push(kid);
                tally.acked[i].fetch_add(1, Ordering::SeqCst);
            }
            tally.finished[i].fetch_add(1, Ordering::SeqCst);
        }
        return (done, kids);
    }
    for mut subject in subjects {
        if !tally.killed.load(Ordering::SeqCst) {
            tally.started[i].fetch_add(1, Ordering::SeqCst);
            subject.acknowledged = run_op(&mut subject, &config).await;
            if subject.acknowledged {
                tally.acked[i].fetch_add(1, Ordering::SeqCst);
            }
            tally.finished[i].fetch_add(1, Ordering::SeqCst);
        }
        done.push(subject);
    }
    (done, kids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_operations_survive_kill_9() {
    // Two kills per kind: one in the window, one right after the last acknowledgement.
    let rounds: Vec<(Op, KillAt)> = OPS
        .iter()
        .flat_map(|op| [(*op, KillAt::Window), (*op, KillAt::LastAck)])
        .collect();
    let users: usize = rounds
        .iter()
        .filter(|(op, _)| *op != Op::Rotate)
        .map(|(op, _)| per_round(*op))
        .sum();
    let dir = tempfile::tempdir().expect("tempdir");
    let store_path = dir.path().join("data").join(STORE_FILE);
    std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
    let tokens = seed_users(&store_path, users + 1).await;
    let addr = free_addr();
    let up = EchoUpstream::start().await;
    let config = write_config(dir.path(), addr, up.addr);
    let base = format!("http://localhost:{}", addr.port());
    let mut rng = rand::rng();
    let mut child = Running::start(&config, addr).await;
    let mut tokens = tokens.into_iter().enumerate();
    // A signed-in observer, to read which key signs assertions.
    let (_, token) = tokens.next().expect("a token");
    let mut observer = Browser::new(&base);
    assert_eq!(
        observer.register(Some(&token), "observer").await.status,
        201
    );

    let mut report = Vec::new();
    let mut window_hits = 0;
    for (round, (target, kill_at)) in rounds.iter().copied().enumerate() {
        let mut subjects = Vec::new();
        if target != Op::Rotate {
            for (i, token) in tokens.by_ref().take(per_round(target)) {
                let mut subject = Subject {
                    op: target,
                    username: format!("crash{i}"),
                    token,
                    browser: Browser::new(&base),
                    cookie: None,
                    second_passkey: None,
                    acknowledged: false,
                };
                set_up(&mut subject).await;
                subjects.push(subject);
            }
        }
        let kid_before = signing_kid(&mut observer).await;

        // Only this kind runs, one operation after another, so no other commit lands between an
        // acknowledgement and the kill except the next operation's own.
        let tally = Arc::new(Tally::default());
        let n = per_round(target);
        let kill_after = match kill_at {
            KillAt::Window => rng.random_range(1..n),
            KillAt::LastAck => n,
        };
        let chain = tokio::spawn(run_chain(target, subjects, tally.clone(), config.clone()));
        let deadline = Instant::now() + Duration::from_secs(30);
        let t = Tally::index(target);
        loop {
            let acked = tally.acked[t].load(Ordering::SeqCst);
            let finished = tally.finished[t].load(Ordering::SeqCst);
            let hit = match kill_at {
                KillAt::Window => acked >= kill_after && tally.in_flight(target) > 0,
                KillAt::LastAck => acked >= kill_after,
            };
            if hit || finished == n {
                break;
            }
            assert!(Instant::now() < deadline, "{target:?} stalled");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tally.killed.store(true, Ordering::SeqCst);
        let in_flight = tally.in_flight(target);
        let acked_at_kill = tally.acked(target);
        child.kill_9();
        // Every client (and CLI) has its answer or its error before the restart.
        let (mut subjects, rotated) = chain.await.expect("operation chain");
        report.push(format!(
            "kill {round} ({target:?}, {kill_at:?}): {in_flight} in flight, \
             {acked_at_kill} of {n} acknowledged at the kill, {} in all",
            tally.acked(target)
        ));
        match kill_at {
            KillAt::Window => window_hits += usize::from(in_flight > 0),
            KillAt::LastAck => assert_eq!(acked_at_kill, n, "{target:?}: all acknowledged"),
        }

        child = Running::start(&config, addr).await;
        for subject in subjects.iter_mut().filter(|s| s.acknowledged) {
            check_survived(subject).await;
        }
        // A rotated key stays rotated: the newest acknowledged key (or a later one whose
        // acknowledgement the kill cut off) signs, and every acknowledged key is published.
        if let Some(last) = rotated.last() {
            let kid_after = signing_kid(&mut observer).await;
            assert_ne!(kid_after, kid_before, "the rotation was lost");
            let jwks = observer.get("/passkeys/jwks.json").await.body;
            let published = jwks["keys"].as_array().expect("keys");
            for kid in &rotated {
                assert!(
                    published.iter().any(|k| k["kid"] == kid.as_str()),
                    "acknowledged key {kid} is not published"
                );
            }
            assert!(
                kid_after == *last || in_flight > 0,
                "signing with {kid_after}, not the last acknowledged {last}"
            );
        }
    }
    for line in &report {
        println!("{line}");
    }
    println!(
        "{window_hits} of {} window kills hit an operation in flight",
        OPS.len()
    );
    // One after another, each operation is slow enough (a durable commit, a process) that a kill
    // aimed at the window nearly always finds one in flight; most must.
    assert!(
        window_hits * 2 > OPS.len(),
        "only {window_hits} of {} window kills hit an operation in flight: {report:#?}",
        OPS.len()
    );
    child.kill_9();
}
