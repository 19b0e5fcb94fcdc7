//! `loadgen soak`: a steady mixed load against one running gateway, for `bench/soak.sh`.
//!
//! Two drivers share one [`Shared`] state until the deadline:
//! - **proxy**: a fixed request rate (`--rate`, not flat out, so latency means something),
//!   alternating the authenticated route (with a live session cookie) and the public route;
//! - **accounts**: one operation every `--ceremony-every` seconds, in the cycle [`CYCLE`]: a
//!   registration through a fresh enrollment link (`passkey-gateway user add` through the admin
//!   socket, then the soft authenticator registers), a sign-in, a logout, a sign-in and an admin
//!   `session revoke --user`; beyond `--max-sessions` live cookies the oldest is logged out, so
//!   the live sessions stay bounded; beyond `--max-users` users the oldest is removed
//!   (`passkey-gateway user remove`), so the users do too. `keys rotate` runs once, at
//!   `--rotate-at`.
//!
//! Every `--sample-seconds` (and once at the end, after the last request has answered) one JSON
//! line goes to stdout (see [`crate::soak_probe`]); the return value is the summary line.
//!
//! An error is any answer other than the expected one. A 401 on the authenticated route is
//! expected only for a cookie whose logout or revoke had begun when the answer arrived; every
//! ended cookie is then checked to be refused.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;
use webauthn_rs::prelude::Url;

use crate::soak_probe::{Probe, Window};
use crate::{Target, VirtualUser};

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// The gateway's base URL, e.g. http://127.0.0.1:PORT.
    #[arg(long)]
    base: String,
    /// The WebAuthn origin the "browser" is on (the gateway's public_url).
    #[arg(long)]
    origin: String,
    /// The gateway binary: admin commands run as `BINARY --config CONFIG ...` (admin socket).
    #[arg(long)]
    gateway: PathBuf,
    #[arg(long)]
    config: PathBuf,
    /// The gateway's process id: RSS and open file descriptors are read from /proc.
    #[arg(long)]
    pid: u32,
    /// The store file whose size is sampled.
    #[arg(long)]
    store: PathBuf,
    /// Seconds of load.
    #[arg(long, default_value_t = 1800.0)]
    duration: f64,
    #[arg(long, default_value_t = 60.0)]
    sample_seconds: f64,
    /// Proxied requests per second, half authenticated, half public.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds between two account operations.
    #[arg(long, default_value_t = 1.0)]
    ceremony_every: f64,
    /// When `keys rotate` runs, in seconds from the start (default: half the duration).
    #[arg(long)]
    rotate_at: Option<f64>,
    /// Users registered before the clock starts.
    #[arg(long, default_value_t = 4)]
    initial_users: usize,
    /// Live session cookies kept at most; beyond, the oldest is logged out.
    #[arg(long, default_value_t = 32)]
    max_sessions: usize,
    /// Users kept at most; beyond, the oldest is removed (`passkey-gateway user remove`), so the
    /// live data reaches a steady state.
    #[arg(long, default_value_t = 64)]
    max_users: usize,
    #[arg(long, default_value = "/app/")]
    auth_path: String,
    #[arg(long, default_value = "/pub/")]
    public_path: String,
}

/// Proxied requests allowed in flight (2.5 s of the default rate); more means the gateway, or the
/// whole machine, fell behind the rate (an error).
const MAX_IN_FLIGHT: usize = 512;

/// The account operations, in the order they repeat.
#[derive(Clone, Copy, Debug)]
enum Op {
    Register,
    Login,
    Logout,
    Revoke,
}
const CYCLE: [Op; 5] = [Op::Register, Op::Login, Op::Logout, Op::Login, Op::Revoke];

/// A live session cookie, and whether its end (logout, revoke) has begun.
struct Session {
    user: String,
    cookie: String,
    ending: AtomicBool,
}

/// Counts over the whole run.
#[derive(Default)]
struct Totals {
    proxied: AtomicU64,
    errors: AtomicU64,
    refused_while_ending: AtomicU64,
    registrations: AtomicU64,
    logins: AtomicU64,
    logouts: AtomicU64,
    revokes: AtomicU64,
    removals: AtomicU64,
    rotations: AtomicU64,
}

struct Shared {
    args: SoakArgs,
    origin: Url,
    http: reqwest::Client,
    sessions: Mutex<VecDeque<Arc<Session>>>,
    next_session: AtomicUsize,
    window: Mutex<Window>,
    totals: Totals,
    first_error: Mutex<Option<String>>,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<Value> {
    let origin = Url::parse(&args.origin).context("--origin")?;
    let probe = Probe::new(args.pid, args.store.clone());
    let shared = Arc::new(Shared {
        origin,
        http: pooled_client(),
        sessions: Mutex::new(VecDeque::new()),
        next_session: AtomicUsize::new(0),
        window: Mutex::new(Window::new()),
        totals: Totals::default(),
        first_error: Mutex::new(None),
        args,
    });
    let mut accounts = Accounts::default();
    for _ in 0..shared.args.initial_users {
        accounts
            .register(&shared)
            .await
            .context("setup registration")?;
    }

    let every = Duration::from_secs_f64(shared.args.sample_seconds);
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(shared.args.duration);
    println!("{}", shared.sample(&probe, 0, started));
    let proxy = tokio::spawn(drive_proxy(shared.clone(), until));
    let ops = tokio::spawn(drive_accounts(shared.clone(), accounts, started, until));
    let mut index = 1;
    loop {
        let due = (started + every * index).min(until);
        tokio::time::sleep_until(due.into()).await;
        if due >= until {
            break;
        }
        println!("{}", shared.sample(&probe, index, started));
        index += 1;
    }
    proxy.await?;
    ops.await?;
    println!("{}", shared.sample(&probe, index, started));
    Ok(shared.summary(started))
}

// ---------------------------------------------------------------------------------------------
// The proxy driver

async fn drive_proxy(shared: Arc<Shared>, until: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / shared.args.rate));
    // A late tick is sent at once: the rate stays the configured one on average.
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut sent = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            shared.error(format!(
                "more than {MAX_IN_FLIGHT} proxied requests in flight: the gateway (or the machine) fell behind"
            ));
            continue;
        };
        let authenticated = sent % 2 == 0;
        sent += 1;
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.proxied(authenticated).await;
            drop(permit);
        });
    }
    // Every request sent has answered once all permits are back.
    let _all = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await;
}

impl Shared {
    /// One proxied GET; records its latency, or an error for an unexpected answer.
    async fn proxied(&self, authenticated: bool) {
        let session = if authenticated {
            match self.pick_session() {
                Some(session) => Some(session),
                None => return self.error("no live session cookie to send".into()),
            }
        } else {
            None
        };
        let path = match session {
            Some(_) => &self.args.auth_path,
            None => &self.args.public_path,
        };
        let mut req = self
            .http
            .get(format!("{}{path}", self.args.base))
            .header("accept", "application/json");
        if let Some(session) = &session {
            req = req.header("cookie", &session.cookie);
        }
        let begun = Instant::now();
        let answer = match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                resp.bytes().await.map(|_| status)
            }
            Err(e) => Err(e),
        };
        let micros = begun.elapsed().as_micros() as u64;
        self.totals.proxied.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok(status) if status.is_success() => self.lock_window().record(authenticated, micros),
            Ok(status) if status == 401 && session.as_ref().is_some_and(|s| s.is_ending()) => {
                self.totals
                    .refused_while_ending
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(status) => self.error(format!("GET {path}: {status}")),
            Err(e) => self.error(format!("GET {path}: {e}")),
        }
    }

    /// A live cookie, round robin.
    fn pick_session(&self) -> Option<Arc<Session>> {
        let sessions = self.lock_sessions();
        if sessions.is_empty() {
            return None;
        }
        let i = self.next_session.fetch_add(1, Ordering::Relaxed) % sessions.len();
        sessions.get(i).cloned()
    }
}

// ---------------------------------------------------------------------------------------------
// The account driver

/// The registered users, each with its own soft authenticator, oldest first.
#[derive(Default)]
struct Accounts {
    users: VecDeque<VirtualUser>,
    registered: usize,
    next_login: usize,
}

async fn drive_accounts(
    shared: Arc<Shared>,
    mut accounts: Accounts,
    started: Instant,
    until: Instant,
) {
    let rotate_at = started
        + Duration::from_secs_f64(shared.args.rotate_at.unwrap_or(shared.args.duration / 2.0));
    let mut rotated = false;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(shared.args.ceremony_every));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut step = 0;
    while Instant::now() < until {
        tick.tick().await;
        let result = if !rotated && Instant::now() >= rotate_at {
            rotated = true;
            shared.rotate_keys().await
        } else {
            let op = CYCLE[step % CYCLE.len()];
            step += 1;
            accounts
                .run(&shared, op)
                .await
                .with_context(|| format!("{op:?}"))
        };
        let bounded = shared.bound_sessions().await;
        if let Err(e) = result.and(bounded) {
            shared.error(format!("{e:#}"));
        }
    }
}

impl Accounts {
    async fn run(&mut self, shared: &Shared, op: Op) -> anyhow::Result<()> {
        match op {
            Op::Register => self.register(shared).await,
            Op::Login => self.login(shared).await,
            Op::Logout => match shared.take_oldest() {
                Some(session) => shared.logout(&session).await,
                None => Ok(()),
            },
            Op::Revoke => shared.revoke_oldest_user().await,
        }
    }

    /// `user add` makes an enrollment link; the user's authenticator registers with its token.
    async fn register(&mut self, shared: &Shared) -> anyhow::Result<()> {
        let n = self.registered;
        let name = format!("soak-{}-{n}", std::process::id());
        let printed = shared.admin(&["user", "add", &name]).await?;
        let token = enrollment_token(&printed)?;
        let mut user = VirtualUser::new(
            Target::Gateway,
            shared.args.base.clone(),
            shared.origin.clone(),
            n,
        );
        // One connection pool for every user: the gateway's descriptors then follow the load,
        // not the number of users registered so far.
        user.http = shared.http.clone();
        let cookie = user
            .register(Some(&format!("{token} {name}")))
            .await?
            .ok_or_else(|| anyhow!("registration returned no cookie"))?;
        shared.add_session(name, cookie);
        self.users.push_back(user);
        self.registered += 1;
        shared.totals.registrations.fetch_add(1, Ordering::Relaxed);
        if self.users.len() > shared.args.max_users {
            if let Some(oldest) = self.users.pop_front() {
                let name = oldest.username.unwrap_or_default();
                shared.remove_user(&name).await?;
            }
        }
        Ok(())
    }

    /// The next user (round robin) signs in from a fresh browser: one more live session.
    async fn login(&mut self, shared: &Shared) -> anyhow::Result<()> {
        let n = self.users.len();
        let Some(user) = self.users.get_mut(self.next_login % n.max(1)) else {
            bail!("no registered user to sign in");
        };
        self.next_login += 1;
        let cookie = user.login().await?;
        let name = user.username.clone().unwrap_or_default();
        shared.add_session(name, cookie);
        shared.totals.logins.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The token of `enrollment link: https://…/passkeys/enroll#token=TOKEN` in `user add`'s output.
fn enrollment_token(printed: &str) -> anyhow::Result<&str> {
    printed
        .split_once("#token=")
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or_default())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| anyhow!("no enrollment link in: {printed}"))
}

impl Shared {
    fn add_session(&self, user: String, cookie: String) {
        self.lock_sessions().push_back(Arc::new(Session {
            user,
            cookie,
            ending: AtomicBool::new(false),
        }));
    }

    /// Removes the oldest live cookie and marks it ending (before its logout is sent).
    fn take_oldest(&self) -> Option<Arc<Session>> {
        let session = self.lock_sessions().pop_front()?;
        session.ending.store(true, Ordering::SeqCst);
        Some(session)
    }

    /// Logs the oldest sessions out until at most `--max-sessions` remain.
    async fn bound_sessions(&self) -> anyhow::Result<()> {
        while self.lock_sessions().len() > self.args.max_sessions {
            if let Some(session) = self.take_oldest() {
                self.logout(&session).await?;
            }
        }
        Ok(())
    }

    /// `POST /passkeys/logout` with the cookie; afterwards the cookie must be refused.
    async fn logout(&self, session: &Session) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(format!("{}/passkeys/logout", self.args.base))
            .header("cookie", &session.cookie)
            .header("origin", self.origin.origin().ascii_serialization())
            .send()
            .await
            .context("logout")?;
        if !resp.status().is_success() {
            bail!("logout: {}", resp.status());
        }
        self.totals.logouts.fetch_add(1, Ordering::Relaxed);
        self.check_refused(session).await
    }

    /// `session revoke --user` for the oldest cookie's user; all its cookies must be refused.
    async fn revoke_oldest_user(&self) -> anyhow::Result<()> {
        let Some(user) = self.lock_sessions().front().map(|s| s.user.clone()) else {
            return Ok(());
        };
        let ended = self.take_sessions_of(&user);
        self.admin(&["session", "revoke", "--user", &user]).await?;
        self.totals.revokes.fetch_add(1, Ordering::Relaxed);
        self.check_all_refused(&ended).await
    }

    /// `user remove`: the user, its passkey and sessions go; its cookies must be refused.
    async fn remove_user(&self, user: &str) -> anyhow::Result<()> {
        let ended = self.take_sessions_of(user);
        self.admin(&["user", "remove", user]).await?;
        self.totals.removals.fetch_add(1, Ordering::Relaxed);
        self.check_all_refused(&ended).await
    }

    /// Removes `user`'s live cookies, marked ending (before the command that ends them).
    fn take_sessions_of(&self, user: &str) -> Vec<Arc<Session>> {
        let mut sessions = self.lock_sessions();
        let ended: Vec<_> = sessions
            .iter()
            .filter(|s| s.user == user)
            .cloned()
            .collect();
        sessions.retain(|s| s.user != user);
        for session in &ended {
            session.ending.store(true, Ordering::SeqCst);
        }
        ended
    }

    async fn check_all_refused(&self, ended: &[Arc<Session>]) -> anyhow::Result<()> {
        for session in ended {
            self.check_refused(session).await?;
        }
        Ok(())
    }

    async fn rotate_keys(&self) -> anyhow::Result<()> {
        self.admin(&["keys", "rotate"]).await?;
        self.totals.rotations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// An ended session's cookie must get 401 on the authenticated route.
    async fn check_refused(&self, session: &Session) -> anyhow::Result<()> {
        let status = self
            .http
            .get(format!("{}{}", self.args.base, self.args.auth_path))
            .header("cookie", &session.cookie)
            .header("accept", "application/json")
            .send()
            .await
            .context("request with an ended cookie")?
            .status();
        if status != 401 {
            bail!("an ended session's cookie answered {status}, not 401");
        }
        Ok(())
    }

    /// Runs `passkey-gateway --config CONFIG ARGS…` (through the running gateway's admin socket).
    async fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(&self.args.gateway)
            .arg("--config")
            .arg(&self.args.config)
            .args(args)
            .output()
            .await
            .with_context(|| format!("running {}", self.args.gateway.display()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            bail!(
                "passkey-gateway {}: {}: {stderr}",
                args.join(" "),
                out.status
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// Tallies and samples

impl Session {
    fn is_ending(&self) -> bool {
        self.ending.load(Ordering::SeqCst)
    }
}

impl Shared {
    fn error(&self, what: String) {
        let n = self.totals.errors.fetch_add(1, Ordering::Relaxed);
        self.lock_window().errors += 1;
        // The first few on stderr as they happen, the first one in every sample.
        if n < 20 {
            eprintln!("soak error: {what}");
        }
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(what);
    }

    /// One sample line: this window's requests and latency, the process, the totals so far.
    fn sample(&self, probe: &Probe, index: u32, started: Instant) -> Value {
        let window = std::mem::replace(&mut *self.lock_window(), Window::new());
        let mut line = window.to_json();
        line["type"] = json!("sample");
        line["index"] = json!(index);
        line["t_s"] = json!(started.elapsed().as_secs_f64());
        line["live_sessions"] = json!(self.lock_sessions().len());
        merge(&mut line, probe.read());
        merge(&mut line, self.totals_json());
        line
    }

    fn summary(&self, started: Instant) -> Value {
        let mut line = json!({
            "type": "summary",
            "seconds": started.elapsed().as_secs_f64(),
            "rate": self.args.rate,
            "ceremony_every": self.args.ceremony_every,
            "cycle": format!("{CYCLE:?}"),
        });
        merge(&mut line, self.totals_json());
        line
    }

    fn totals_json(&self) -> Value {
        let t = &self.totals;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "proxied_total": get(&t.proxied),
            "errors_total": get(&t.errors),
            "refused_while_ending": get(&t.refused_while_ending),
            "registrations": get(&t.registrations),
            "logins": get(&t.logins),
            "logouts": get(&t.logouts),
            "revokes": get(&t.revokes),
            "removals": get(&t.removals),
            "rotations": get(&t.rotations),
            "first_error": self.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        })
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The shared client, keeping at most a few idle connections: after a burst of slow answers
/// the extra connections close at once instead of idling, so the gateway's descriptor count
/// follows the load rather than its last spike.
fn pooled_client() -> reqwest::Client {
    crate::client_builder()
        .pool_max_idle_per_host(8)
        .build()
        .expect("an HTTP client")
}

/// Copies `extra`'s fields into `line` (both objects).
fn merge(line: &mut Value, extra: Value) {
    if let (Some(line), Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
}
