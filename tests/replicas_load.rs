//! Replicas on one real PostgreSQL under concurrent load: one passkey signing in through two
//! replicas at once, and one replica killed with SIGKILL while clients sign in and out on all
//! three. The database comes from `PKGW_TEST_POSTGRES_URL` (see the README, "Testing").

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use passkey_gateway::store::{hash_secret, REVOCATION_BOUND};
use passkey_gateway::{Config, Gateway};
use rand::Rng;
use reqwest::Method;
use serde_json::json;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::RequestChallengeResponse;

use crate::support::passkeys::{enroll, Answer, Browser};
use crate::support::postgres::{kek_file, replica_config, replicas_at, status_with, Database};
use crate::support::process::{free_addr, Running};
use crate::support::EchoUpstream;

/// Every sign-in of these tests comes from 127.0.0.1: no per-client ceremony budget.
const NO_RATE_LIMIT: &str = "ceremony_rate_per_minute = 0";
/// These tests check what was acknowledged, not latency: on a starved 2-core CI machine (debug
/// build, other tests beside) a lock wait on the shared rows of ceremony begins and audit events
/// can pass the default 5 s and answer a 503, which would fail them for no fault of their own.
const PATIENT: &str = "statement_timeout = \"60s\"";
/// The `[server]` and `[store]` lines of every replica here.
const LOAD: [&str; 2] = [NO_RATE_LIMIT, PATIENT];

/// One login attempt with the shared authenticator, as the client saw it.
#[derive(Debug)]
struct Attempt {
    /// The signature counter the authenticator put in this assertion.
    counter: u32,
    /// When `login/complete` was sent, and when its answer arrived.
    sent: Instant,
    answered: Instant,
    status: u16,
    error: Option<String>,
    cookie: Option<String>,
}

impl Attempt {
    fn accepted(&self) -> bool {
        self.status == 200
    }
}

/// The signature counter inside an assertion's authenticator data (after the 32-byte RP id
/// hash and the flags byte, big-endian).
fn signed_count(data: &[u8]) -> u32 {
    u32::from_be_bytes(data[33..37].try_into().expect("authenticator data"))
}

/// Begins a login on `browser`'s replica and signs it with the shared authenticator.
async fn begin_and_sign(
    browser: &mut Browser,
    authenticator: &Mutex<SoftPasskey>,
) -> (String, webauthn_rs::prelude::PublicKeyCredential, u32) {
    let (ceremony, options): (String, RequestChallengeResponse) =
        browser.begin_login(Some("alice")).await;
    let credential = authenticator
        .lock()
        .expect("authenticator")
        .do_authentication(browser.origin.clone(), options)
        .expect("the authenticator signs");
    let counter = signed_count(&credential.response.authenticator_data);
    (ceremony, credential, counter)
}

/// Completes a signed login on `browser`'s replica and records what the client saw.
async fn complete(
    browser: &mut Browser,
    ceremony: &str,
    credential: &webauthn_rs::prelude::PublicKeyCredential,
    counter: u32,
) -> Attempt {
    browser.cookie = None;
    let sent = Instant::now();
    let answer: Answer = browser.complete_login(ceremony, credential, "/").await;
    Attempt {
        counter,
        sent,
        answered: Instant::now(),
        status: answer.status.as_u16(),
        error: answer.body["error"].as_str().map(str::to_string),
        cookie: browser.cookie.clone(),
    }
}

/// Many login ceremonies with ONE soft passkey (one signature counter), begun and completed on
/// two replicas at once. What the store promises (the same on redb and PostgreSQL: the count is
/// checked against the one stored when the assertion is verified, and `complete_login` keeps
/// the higher of the stored and the new count under the passkey's row lock, "never
/// backwards"):
///
/// - every answer is a success or a clean refusal (400 `login_failed`), never a 5xx;
/// - linearizable in real time: a login accepted after another's acceptance was already seen by
///   the client carries a higher counter (so no accepted login repeats or goes below a count
///   acknowledged before it was sent). Two logins verified concurrently against the same stored
///   count may both be accepted in either commit order: both are genuine assertions of the one
///   authenticator; the stored count then keeps the higher;
/// - a refusal only happens because a higher count was accepted (the authenticator's counter
///   never repeats, so nothing else can overtake it);
/// - the stored count ends equal to the highest accepted counter;
/// - a genuine authenticator is never flagged as a clone: a count behind one stored after its
///   ceremony began is a concurrent sign-in, not a clone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_passkey_signing_in_on_two_replicas_at_once_keeps_its_count_consistent() {
    const TASKS: usize = 12;
    const PER_TASK: usize = 6;
    let upstream = EchoUpstream::start().await;
    let database = Database::create().await;
    let replicas = replicas_at(&database.url, upstream.addr, 2, LOAD).await;
    let (user, token) = enroll(&replicas[0].gw, "alice", &[]).await;
    let mut owner = Browser::new(&replicas[0].url(""));
    let registered = owner.register(Some(&token), "key").await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    let authenticator = Arc::new(Mutex::new(std::mem::replace(
        &mut owner.authenticator,
        SoftPasskey::new(true),
    )));
    let attempts = Arc::new(Mutex::new(Vec::new()));

    // Forced interleaving first: two assertions signed in order, the later one completed first
    // on B; the earlier one, completed next on A, is behind and must be refused cleanly.
    let mut on_a = Browser::new(&replicas[0].url(""));
    let mut on_b = Browser::new(&replicas[0].url(""));
    on_b.base = replicas[1].url("");
    let (first, first_signed, first_count) = begin_and_sign(&mut on_a, &authenticator).await;
    let (second, second_signed, second_count) = begin_and_sign(&mut on_b, &authenticator).await;
    let later = complete(&mut on_b, &second, &second_signed, second_count).await;
    let earlier = complete(&mut on_a, &first, &first_signed, first_count).await;
    assert!(later.accepted(), "{later:?}");
    assert_eq!(
        (earlier.status, earlier.error.as_deref()),
        (400, Some("login_failed")),
        "an overtaken assertion is refused: {earlier:?}"
    );
    attempts.lock().expect("attempts").extend([later, earlier]);

    // Then many at once: each begins on one replica and completes on the other, pausing a
    // random while between signing and completing so completions overtake each other.
    let urls = [replicas[0].url(""), replicas[1].url("")];
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (authenticator, attempts, urls) =
            (authenticator.clone(), attempts.clone(), urls.clone());
        let origin = urls[0].clone();
        tasks.push(tokio::spawn(async move {
            let mut browser = Browser::new(&origin);
            for round in 0..PER_TASK {
                let side = (task + round) % 2;
                browser.base = urls[side].clone();
                let (ceremony, signed, count) = begin_and_sign(&mut browser, &authenticator).await;
                let pause = rand::rng().random_range(0..4);
                for _ in 0..pause {
                    tokio::task::yield_now().await;
                }
                browser.base = urls[1 - side].clone();
                let attempt = complete(&mut browser, &ceremony, &signed, count).await;
                attempts.lock().expect("attempts").push(attempt);
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client task");
    }

    let attempts = std::mem::take(&mut *attempts.lock().expect("attempts"));
    check_counts(&attempts);
    let accepted: Vec<&Attempt> = attempts.iter().filter(|a| a.accepted()).collect();
    let highest = accepted
        .iter()
        .map(|a| a.counter)
        .max()
        .expect("some accepted");
    let stored = replicas[1]
        .gw
        .store()
        .passkeys_of(user.id)
        .await
        .expect("read")
        .pop()
        .expect("the passkey");
    assert_eq!(
        stored.sign_count, highest,
        "the stored count is the highest"
    );
    assert!(!stored.clone_suspected, "a genuine authenticator flagged");
    // Every acceptance made a working session, on either replica.
    for attempt in &accepted {
        let cookie = attempt.cookie.as_deref().expect("a session cookie");
        assert_eq!(
            status_with(&replicas[attempt.counter as usize % 2].url("/x"), cookie).await,
            200
        );
    }
    eprintln!(
        "{} logins with one passkey on two replicas: {} accepted, {} refused as overtaken",
        attempts.len(),
        accepted.len(),
        attempts.len() - accepted.len()
    );
}

/// The invariants of [`one_passkey_signing_in_on_two_replicas_at_once_keeps_its_count_consistent`]
/// over every attempt the clients saw.
fn check_counts(attempts: &[Attempt]) {
    let accepted: Vec<&Attempt> = attempts.iter().filter(|a| a.accepted()).collect();
    for attempt in attempts {
        assert!(
            attempt.accepted()
                || (attempt.status, attempt.error.as_deref()) == (400, Some("login_failed")),
            "neither a success nor a clean refusal: {attempt:?}"
        );
        if attempt.accepted() {
            // Acknowledged to the client before this one was sent: strictly lower.
            for before in accepted.iter().filter(|b| b.answered < attempt.sent) {
                assert!(
                    before.counter < attempt.counter,
                    "accepted counter {} after {} was acknowledged",
                    attempt.counter,
                    before.counter
                );
            }
        } else {
            assert!(
                accepted.iter().any(|a| a.counter > attempt.counter),
                "counter {} refused with no higher one accepted",
                attempt.counter
            );
        }
    }
    let mut counters: Vec<u32> = accepted.iter().map(|a| a.counter).collect();
    counters.sort_unstable();
    counters.dedup();
    assert_eq!(counters.len(), accepted.len(), "a counter accepted twice");
}

/// What one client saw of the load in [`killing_one_replica_under_load_loses_no_acknowledged_write`].
#[derive(Default)]
struct Seen {
    /// Sessions whose sign-in was acknowledged and that were not logged out.
    alive: Vec<String>,
    /// Sessions whose logout was acknowledged.
    dead: Vec<String>,
    /// Answers a live replica should not give, and socket failures of a live replica.
    errors: Vec<String>,
    /// Requests to the killed replica that got no answer.
    cut: usize,
}

/// The shared state of the load: which replica dies, and the acknowledgements so far.
struct Load {
    urls: Vec<String>,
    killed: usize,
    /// Set just before the SIGKILL: a request to the killed replica may fail at the socket
    /// only from then on.
    kill_sent: AtomicBool,
    stop: AtomicBool,
    acked: AtomicUsize,
    /// Clients in the middle of a sign-in on the replica that dies (to show the kill hit some).
    busy_on_killed: AtomicUsize,
}

impl Load {
    /// Checks one answer (or the lack of one) from replica `r`; `ok` lists the expected statuses.
    fn judge(
        &self,
        r: usize,
        answer: &Option<Answer>,
        ok: &[u16],
        what: &str,
        seen: &mut Seen,
    ) -> bool {
        match answer {
            Some(a) if ok.contains(&a.status.as_u16()) => {
                self.acked.fetch_add(1, Ordering::SeqCst);
                true
            }
            Some(a) => {
                seen.errors
                    .push(format!("{what} on replica {r}: {} {:?}", a.status, a.body));
                false
            }
            None if r == self.killed && self.kill_sent.load(Ordering::SeqCst) => {
                seen.cut += 1;
                false
            }
            None => {
                seen.errors
                    .push(format!("{what} on live replica {r}: no answer"));
                false
            }
        }
    }
}

/// One client's loop: sign in on one replica, use the cookie on the next, and log out every
/// other time on the third, until told to stop.
async fn client_loop(load: Arc<Load>, client: usize, mut browser: Browser) -> Seen {
    let mut seen = Seen::default();
    let username = format!("load{client}");
    let n = load.urls.len();
    let mut round = client;
    while !load.stop.load(Ordering::SeqCst) {
        round += 1;
        let r = round % n;
        browser.base = load.urls[r].clone();
        browser.cookie = None;
        let on_killed = usize::from(r == load.killed);
        load.busy_on_killed.fetch_add(on_killed, Ordering::SeqCst);
        let answer = browser.try_login(&username).await;
        load.busy_on_killed.fetch_sub(on_killed, Ordering::SeqCst);
        if !load.judge(r, &answer, &[200], "sign-in", &mut seen) {
            continue;
        }
        let cookie = browser.cookie.clone().expect("a session cookie");
        let r = (round + 1) % n;
        browser.base = load.urls[r].clone();
        let answer = browser.try_send(Method::GET, "/x", None).await;
        load.judge(r, &answer, &[200], "the new cookie", &mut seen);
        if round % 2 == 0 {
            seen.alive.push(cookie);
            continue;
        }
        let r = (round + 2) % n;
        browser.base = load.urls[r].clone();
        let answer = browser
            .try_send(Method::POST, "/passkeys/logout", Some(json!({})))
            .await;
        if load.judge(r, &answer, &[200, 204], "logout", &mut seen) {
            seen.dead.push(cookie);
        }
        // An unanswered logout may or may not have happened: neither alive nor dead.
    }
    seen
}

/// Waits (bounded) until `load` has `n` acknowledgements.
async fn wait_for_acks(load: &Load, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while load.acked.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "the load stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded) until a sign-in is in flight on the replica to be killed, so the kill lands
/// inside one (sign-ins are short: a kill at a random moment often finds none); returns how many.
async fn wait_for_a_sign_in_on_the_killed(load: &Load) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let busy = load.busy_on_killed.load(Ordering::SeqCst);
        if busy > 0 {
            return busy;
        }
        assert!(
            Instant::now() < deadline,
            "no sign-in reached the replica to kill"
        );
        tokio::task::yield_now().await;
    }
}

/// A gateway on the database that serves nothing: the test's admin, as the CLI would be from
/// another machine.
fn admin_gateway(url: &str, dir: &Path, kek: &Path) -> Arc<Gateway> {
    let text = replica_config(
        url,
        dir,
        kek,
        1,
        "127.0.0.1:1".parse().expect("addr"),
        ["", ""],
    );
    let config = Config::from_toml(&dir.join("admin.toml"), &text).expect("config");
    Gateway::new(config).expect("the admin gateway starts")
}

/// Three real `serve` processes on one database; clients sign in, use their cookie on another
/// replica and log out on a third, spread over all three; one replica is killed with SIGKILL
/// mid-load. The survivors answer every request (requests to the killed one fail at the socket
/// only); afterwards every acknowledged sign-in is a session in the database that works on both
/// survivors, and every acknowledged logout is gone from the database and refused by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_replica_under_load_loses_no_acknowledged_write() {
    const CLIENTS: usize = 9;
    let upstream = EchoUpstream::start().await;
    let database = Database::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kek = kek_file(dir.path());
    let admin = admin_gateway(&database.url, dir.path(), &kek);
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let mut processes = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let data = dir.path().join(format!("replica{i}"));
        std::fs::create_dir_all(&data).expect("data dir");
        let server = format!("listen = [\"{addr}\"]\ngrace_period = \"0s\"\n{NO_RATE_LIMIT}");
        let text = replica_config(
            &database.url,
            &data,
            &kek,
            addrs[0].port(),
            upstream.addr,
            [&server, PATIENT],
        );
        let config = data.join("gateway.toml");
        std::fs::write(&config, text).expect("config");
        processes.push(Running::start(&config, *addr).await);
    }
    let urls: Vec<String> = addrs
        .iter()
        .map(|a| format!("http://localhost:{}", a.port()))
        .collect();
    let mut browsers = Vec::new();
    for client in 0..CLIENTS {
        let (_, token) = enroll(&admin, &format!("load{client}"), &[]).await;
        let mut browser = Browser::new(&urls[0]);
        browser.base = urls[client % 3].clone();
        let registered = browser.register(Some(&token), "key").await;
        assert_eq!(registered.status, 201, "{:?}", registered.body);
        browsers.push(browser);
    }

    let load = Arc::new(Load {
        urls,
        killed: 2,
        kill_sent: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        acked: AtomicUsize::new(0),
        busy_on_killed: AtomicUsize::new(0),
    });
    let clients: Vec<_> = browsers
        .into_iter()
        .enumerate()
        .map(|(client, browser)| tokio::spawn(client_loop(load.clone(), client, browser)))
        .collect();
    wait_for_acks(&load, 60).await;
    let busy_at_kill = wait_for_a_sign_in_on_the_killed(&load).await;
    load.kill_sent.store(true, Ordering::SeqCst);
    processes[load.killed].kill_9();
    let at_kill = load.acked.load(Ordering::SeqCst);
    wait_for_acks(&load, at_kill + 60).await;
    load.stop.store(true, Ordering::SeqCst);
    let mut seen = Seen::default();
    for client in clients {
        let one = client.await.expect("a client");
        seen.alive.extend(one.alive);
        seen.dead.extend(one.dead);
        seen.errors.extend(one.errors);
        seen.cut += one.cut;
    }
    let load_ended = Instant::now();
    assert!(seen.errors.is_empty(), "{:#?}", seen.errors);
    assert!(busy_at_kill > 0, "the kill hit no sign-in in flight");
    assert!(
        seen.cut > 0,
        "no request reached the killed replica after the kill"
    );
    eprintln!(
        "{busy_at_kill} sign-ins in flight on the killed replica; {at_kill} acknowledgements before the kill, {} in all; {} requests cut; {} sessions alive, {} logged out",
        load.acked.load(Ordering::SeqCst),
        seen.cut,
        seen.alive.len(),
        seen.dead.len()
    );

    let survivors = [&load.urls[0], &load.urls[1]];
    for cookie in &seen.alive {
        let stored = admin.store().session(hash_of(cookie)).await.expect("read");
        assert!(stored.is_some(), "an acknowledged sign-in was lost");
        for url in survivors {
            assert_eq!(status_with(&format!("{url}/x"), cookie).await, 200);
        }
    }
    for cookie in &seen.dead {
        let stored = admin.store().session(hash_of(cookie)).await.expect("read");
        assert!(stored.is_none(), "an acknowledged logout came back");
        for url in survivors {
            // Acknowledged before the load ended: refused within the bound from then.
            while status_with(&format!("{url}/x"), cookie).await == 200 {
                assert!(
                    load_ended.elapsed() < REVOCATION_BOUND,
                    "a logged-out session still works"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

/// The store key of the session a `name=value` cookie carries.
fn hash_of(cookie: &str) -> passkey_gateway::store::SecretHash {
    hash_secret(cookie.split_once('=').expect("a name=value pair").1)
}

/// A PostgreSQL cluster of this test's own (`initdb` into a temporary directory, served on a
/// free loopback port), so stopping it disturbs no other test sharing the usual server. Run as
/// the `postgres` user when the test runs as root (PostgreSQL refuses root).
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = postgres_bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_addr().port();
        if std::fs::metadata("/proc/self")
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster directory");
        }
        let data = dir.path().join("data");
        run_pg(
            &bin.join("initdb"),
            &[
                "-A",
                "trust",
                "-U",
                "postgres",
                "-D",
                &data.display().to_string(),
            ],
        );
        let cluster = Cluster { dir, port, bin };
        cluster.pg_ctl("start");
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start` (waiting until it accepts connections) or `pg_ctl stop -m fast`.
    fn pg_ctl(&self, action: &str) {
        let data = self.dir.path().join("data").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let mut args = vec![action, "-w", "-D", &data, "-l", &log, "-o", &options];
        if action == "stop" {
            args.extend(["-m", "fast"]);
        }
        run_pg(&self.bin.join("pg_ctl"), &args);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let pg_ctl = self.bin.join("pg_ctl");
        let args = ["stop", "-w", "-D", data.as_str(), "-m", "immediate"];
        let _ = pg_command(&pg_ctl).args(args).output();
    }
}

/// `runuser -u postgres -- PROGRAM` when running as root, else `PROGRAM`.
fn pg_command(program: &Path) -> std::process::Command {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return std::process::Command::new(program);
    }
    let mut command = std::process::Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

/// Runs a PostgreSQL program (as `postgres` when root) and asserts it succeeded.
fn run_pg(program: &Path, args: &[&str]) {
    let out = pg_command(program)
        .args(args)
        .output()
        .expect("run a PostgreSQL program");
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest `/usr/lib/postgresql/*/bin` with `initdb` (Debian's layout), or
/// `PKGW_TEST_POSTGRES_BIN`.
fn postgres_bin_dir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("PKGW_TEST_POSTGRES_BIN") {
        return dir.into();
    }
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect(
        "no PostgreSQL server programs (initdb): install postgresql, or set PKGW_TEST_POSTGRES_BIN",
    )
}

/// A sign-in on `browser`'s replica, as statuses: `login/begin`'s when it refused, else
/// `login/complete`'s.
async fn login_status(browser: &mut Browser, username: &str) -> u16 {
    browser.cookie = None;
    let body = json!({"username": username});
    let begun = browser
        .send(Method::POST, "/passkeys/login/begin", Some(body))
        .await;
    if begun.status != 200 {
        return begun.status.as_u16();
    }
    let options: RequestChallengeResponse =
        serde_json::from_value(json!({"publicKey": begun.body["publicKey"]})).expect("options");
    let ceremony = begun.body["session_id"]
        .as_str()
        .expect("session_id")
        .to_string();
    let credential = browser.assert(options);
    let done = browser.complete_login(&ceremony, &credential, "/").await;
    done.status.as_u16()
}

/// What the load in [`stopping_postgresql_under_load_answers_503_and_recovers`] saw: (what,
/// replica, status, when), `what` being "cookie" or "sign-in".
type Statuses = Mutex<Vec<(&'static str, usize, u16, Instant)>>;

/// Two replicas on a PostgreSQL cluster of the test's own; clients keep using a signed-in
/// cookie and signing in on both while the server is stopped (`pg_ctl stop -m fast`) and
/// started again. Every answer is a 200 or a 503 (never a 500, never a dropped connection);
/// while the server is down, cached sessions are trusted only within the revocation bound (plus
/// the listener's heartbeat) and then answer 503, and sign-ins answer 503; after the restart both
/// replicas serve the cookie and sign-ins again with no restart of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_postgresql_under_load_answers_503_and_recovers() {
    let upstream = EchoUpstream::start().await;
    let cluster = Cluster::start();
    let replicas = replicas_at(&cluster.url(), upstream.addr, 2, [NO_RATE_LIMIT, ""]).await;
    let (_, token) = enroll(&replicas[0].gw, "alice", &[]).await;
    let mut signer = Browser::new(&replicas[0].url(""));
    assert_eq!(signer.register(Some(&token), "key").await.status, 201);
    let cookie = signer.cookie.clone().expect("signed in");
    let urls: Vec<String> = replicas.iter().map(|r| r.url("")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let statuses: Arc<Statuses> = Arc::default();
    let mut clients = Vec::new();
    for (r, url) in urls.iter().enumerate() {
        let (stop, statuses, cookie, url) =
            (stop.clone(), statuses.clone(), cookie.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let status = status_with(&format!("{url}/x"), &cookie).await;
                statuses
                    .lock()
                    .expect("statuses")
                    .push(("cookie", r, status, Instant::now()));
            }
        }));
    }
    let (signer_stop, signer_statuses, signer_urls) =
        (stop.clone(), statuses.clone(), urls.clone());
    clients.push(tokio::spawn(async move {
        for round in 0.. {
            if signer_stop.load(Ordering::SeqCst) {
                break;
            }
            let r = round % 2;
            signer.base = signer_urls[r].clone();
            let status = login_status(&mut signer, "alice").await;
            signer_statuses
                .lock()
                .expect("statuses")
                .push(("sign-in", r, status, Instant::now()));
        }
    }));

    // Up: everything answers 200.
    let begun = Instant::now();
    for r in 0..2 {
        wait_for(&statuses, ("cookie", r, 200), begun).await;
        wait_for(&statuses, ("sign-in", r, 200), begun).await;
    }
    let stopping = Instant::now();
    cluster.pg_ctl("stop");
    let stopped = Instant::now();
    // Down: once the bound has passed, the cookie needs the database on both replicas: 503.
    for url in &urls {
        loop {
            match status_with(&format!("{url}/x"), &cookie).await {
                503 => break,
                200 => assert!(
                    stopped.elapsed() < REVOCATION_BOUND * 3,
                    "a cached session trusted past the bound"
                ),
                other => panic!("while PostgreSQL is down: {other}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let noticed = stopped.elapsed();
    wait_for(&statuses, ("sign-in", 0, 503), stopped).await;
    wait_for(&statuses, ("sign-in", 1, 503), stopped).await;
    cluster.pg_ctl("start");
    let started = Instant::now();
    // Back: both replicas serve the cookie and sign-ins again, by themselves.
    for r in 0..2 {
        wait_for(&statuses, ("cookie", r, 200), started).await;
        wait_for(&statuses, ("sign-in", r, 200), started).await;
    }
    let recovered = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("a client");
    }
    let seen = std::mem::take(&mut *statuses.lock().expect("statuses"));
    let unexpected: Vec<_> = seen.iter().filter(|s| s.2 != 200 && s.2 != 503).collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 200 and 503: {unexpected:?}"
    );
    let during = seen.iter().filter(|s| s.3 > stopping).count();
    let refused = seen.iter().filter(|s| s.2 == 503).count();
    eprintln!(
        "{} answers ({during} after the stop began, {refused} were 503); cached sessions refused {noticed:?} after the stop; recovered {recovered:?} after the start",
        seen.len()
    );
}

/// Waits (bounded) until the load has seen `(what, replica, status)` after `since`.
async fn wait_for(statuses: &Statuses, (what, r, status): (&str, usize, u16), since: Instant) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = statuses
            .lock()
            .expect("statuses")
            .iter()
            .any(|s| (s.0, s.1, s.2) == (what, r, status) && s.3 > since);
        if seen {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the load saw no {what} {status} on replica {r}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
