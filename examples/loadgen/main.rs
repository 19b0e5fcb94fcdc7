//! loadgen: the benchmark's load client. It drives real WebAuthn ceremonies with a software
//! authenticator (`webauthn-authenticator-rs` `SoftPasskey`: real P-256 keys and signatures)
//! against either passkey-gateway's JSON API or fastapi-passkeys' (through a small adapter for
//! its request shapes), and reports completed ceremonies per second, latency percentiles and its
//! own CPU time (getrusage), so a reader can see whether the client was the bottleneck.
//!
//! Commands (all print one JSON object on stdout):
//! - `enroll`: one real registration with an enrollment token; prints the session cookie.
//! - `ceremonies`: login or registration ceremonies for a duration at a concurrency.
//! - `touch`: one authenticated request per session cookie (fills the gateway's session cache).
//! - `ready`: polls a health URL until it answers 200; prints the time since a given instant.
//! - `soak`: a steady mixed load for minutes (bench/soak.sh), one JSON line per sample
//!   (`soak.rs`).
//!
//! Not here: starting servers or computing medians (bench/run.sh and bench/report.py do that).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

mod soak;
mod soak_probe;

#[derive(Debug, Parser)]
#[command(about = "passkey benchmark load client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register one user with the next enrollment token; print its cookie as `name=value`.
    Enroll {
        #[arg(long)]
        base: String,
        #[arg(long)]
        tokens: PathBuf,
        /// The WebAuthn origin the "browser" is on (defaults to the base URL).
        #[arg(long)]
        origin: Option<String>,
    },
    /// Run ceremonies for `--duration` seconds with `--concurrency` virtual users.
    Ceremonies {
        #[arg(long, value_enum)]
        target: Target,
        /// Base URLs, comma-separated; virtual user i sticks to base i % n (fastapi-passkeys'
        /// in-memory repository lives in one process, so a user must stay on it).
        #[arg(long, value_delimiter = ',')]
        base: Vec<String>,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Gateway only: enrollment tokens (one per line); a cursor file beside it records how
        /// many were spent, so successive runs against one store use fresh ones.
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// The WebAuthn origin the "browser" is on (defaults to the first base URL).
        #[arg(long)]
        origin: Option<String>,
        /// A label included in the output.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// GET `url` once with each cookie value in `cookies`; every answer must be 200.
    Touch {
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "passkey_session")]
        cookie_name: String,
        #[arg(long)]
        cookies: PathBuf,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Poll `url` until 200; print the milliseconds since `--since-ns` (unix nanoseconds).
    Ready {
        #[arg(long)]
        url: String,
        #[arg(long)]
        since_ns: u128,
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// A steady mixed load against a running gateway (bench/soak.sh); JSON lines on stdout.
    Soak(soak::SoakArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    /// passkey-gateway: /passkeys/{register,login}/{begin,complete}
    Gateway,
    /// fastapi-passkeys (bench/fastapi_app.py): /auth/passkeys/{register,authenticate}/{begin,finish}
    Fastapi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Login,
    Register,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Two worker threads: the machine has two cores, and the client shares them with the server.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let out = runtime.block_on(async move {
        match cli.command {
            Command::Enroll {
                base,
                tokens,
                origin,
            } => enroll(&base, &tokens, origin.as_deref().unwrap_or(&base)).await,
            Command::Ceremonies {
                target,
                base,
                kind,
                concurrency,
                duration,
                tokens,
                origin,
                label,
            } => {
                let origin = origin.unwrap_or_else(|| base[0].clone());
                let spec = RunSpec {
                    target,
                    bases: base,
                    kind,
                    concurrency,
                    duration: Duration::from_secs_f64(duration),
                    tokens,
                    origin: Url::parse(&origin).context("--origin")?,
                    label,
                };
                ceremonies(spec).await
            }
            Command::Touch {
                url,
                cookie_name,
                cookies,
                concurrency,
            } => touch(&url, &cookie_name, &cookies, concurrency).await,
            Command::Ready {
                url,
                since_ns,
                timeout,
            } => ready(&url, since_ns, timeout).await,
            Command::Soak(args) => soak::run(args).await,
        }
    })?;
    println!("{out}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Ceremonies

struct RunSpec {
    target: Target,
    bases: Vec<String>,
    kind: Kind,
    concurrency: usize,
    duration: Duration,
    tokens: Option<PathBuf>,
    origin: Url,
    label: String,
}

/// What every virtual user adds up.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u64>,
    tokens_exhausted: bool,
}

async fn ceremonies(spec: RunSpec) -> anyhow::Result<Value> {
    let spec = Arc::new(spec);
    let pool = match (&spec.tokens, spec.target) {
        (Some(path), Target::Gateway) => Some(Arc::new(TokenPool::open(path)?)),
        (None, Target::Gateway) => bail!("--tokens is required for the gateway"),
        _ => None,
    };
    // Setup (not timed): a login needs a registered passkey per virtual user.
    let mut users = Vec::with_capacity(spec.concurrency);
    for vu in 0..spec.concurrency {
        let base = spec.bases[vu % spec.bases.len()].clone();
        let mut user = VirtualUser::new(spec.target, base, spec.origin.clone(), vu);
        if spec.kind == Kind::Login {
            let token = match &pool {
                Some(pool) => Some(pool.next().ok_or_else(|| anyhow!("out of tokens"))?),
                None => None,
            };
            user.register(token.as_deref())
                .await
                .with_context(|| format!("setup registration for virtual user {vu}"))?;
        }
        users.push(user);
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let deadline = started + spec.duration;
    let mut tasks = Vec::new();
    for mut user in users {
        let spec = spec.clone();
        let pool = pool.clone();
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut local = Tally::default();
            while Instant::now() < deadline {
                let token = match (&pool, spec.kind) {
                    (Some(pool), Kind::Register) => match pool.next() {
                        Some(token) => Some(token),
                        None => {
                            local.tokens_exhausted = true;
                            break;
                        }
                    },
                    _ => None,
                };
                let begun = Instant::now();
                let result = match spec.kind {
                    Kind::Login => user.login().await.map(drop),
                    Kind::Register => user.register(token.as_deref()).await.map(drop),
                };
                match result {
                    Ok(()) => {
                        local.ok += 1;
                        local.latencies_us.push(begun.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        local.errors += 1;
                        local.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            let mut all = tally.lock().unwrap_or_else(|p| p.into_inner());
            all.ok += local.ok;
            all.errors += local.errors;
            all.tokens_exhausted |= local.tokens_exhausted;
            if all.first_error.is_none() {
                all.first_error = local.first_error;
            }
            all.latencies_us.extend(local.latencies_us);
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    if let Some(pool) = &pool {
        pool.save()?;
    }
    let mut tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow!("tally still shared"))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    tally.latencies_us.sort_unstable();
    Ok(json!({
        "label": spec.label,
        "target": format!("{:?}", spec.target).to_lowercase(),
        "kind": format!("{:?}", spec.kind).to_lowercase(),
        "concurrency": spec.concurrency,
        "ok": tally.ok,
        "errors": tally.errors,
        "first_error": tally.first_error,
        "tokens_exhausted": tally.tokens_exhausted,
        "seconds": elapsed,
        "per_sec": tally.ok as f64 / elapsed,
        "p50_ms": percentile(&tally.latencies_us, 0.50),
        "p99_ms": percentile(&tally.latencies_us, 0.99),
        "client_cpu_s": cpu,
        // Share of the machine's two cores the client used while measuring.
        "client_cpu_pct_of_machine": 100.0 * cpu / (elapsed * cores() as f64),
    }))
}

/// One browser with one software authenticator, speaking one target's API.
struct VirtualUser {
    target: Target,
    base: String,
    origin: Url,
    http: reqwest::Client,
    authenticator: SoftPasskey,
    /// The username (gateway) or user id (fastapi) once registered.
    username: Option<String>,
    name_prefix: String,
    registrations: usize,
}

impl VirtualUser {
    fn new(target: Target, base: String, origin: Url, vu: usize) -> VirtualUser {
        VirtualUser {
            target,
            base,
            origin,
            http: client(),
            authenticator: SoftPasskey::new(true),
            username: None,
            name_prefix: format!("vu{vu}-{}", std::process::id()),
            registrations: 0,
        }
    }

    /// One complete registration. The gateway's is an enrollment (token), which also signs in:
    /// its session cookie (`name=value`) is returned; fastapi-passkeys' sets none.
    async fn register(&mut self, enrollment: Option<&str>) -> anyhow::Result<Option<String>> {
        self.registrations += 1;
        match self.target {
            Target::Gateway => {
                // A pool line is `token username`.
                let enrollment = enrollment.ok_or_else(|| anyhow!("no enrollment token"))?;
                let mut parts = enrollment.split_whitespace();
                let token = parts.next().unwrap_or_default();
                let username = parts.next();
                let begun = self
                    .post(
                        "/passkeys/register/begin",
                        json!({"token": token, "name": "bench"}),
                        None,
                    )
                    .await?;
                let credential = self.create(&begun.body)?;
                let done = self
                    .post(
                        "/passkeys/register/complete",
                        json!({"session_id": begun.body["session_id"], "credential": credential, "name": "bench"}),
                        None,
                    )
                    .await?;
                let Some(cookie) = done.cookie else {
                    bail!("register/complete set no session cookie");
                };
                self.username = username.map(str::to_string);
                Ok(Some(cookie))
            }
            Target::Fastapi => {
                let user = format!("{}-r{}", self.name_prefix, self.registrations);
                let begun = self
                    .post("/auth/passkeys/register/begin", json!({}), Some(&user))
                    .await?;
                let credential = self.create(&begun.body)?;
                self.post(
                    "/auth/passkeys/register/finish",
                    json!({"state": begun.body["state"], "credential": credential, "deviceName": "bench"}),
                    None,
                )
                .await?;
                self.username = Some(user);
                Ok(None)
            }
        }
    }

    /// One complete username-scoped login: begin → the authenticator signs → complete → the
    /// session cookie (`name=value`).
    async fn login(&mut self) -> anyhow::Result<String> {
        let user = self
            .username
            .clone()
            .ok_or_else(|| anyhow!("not registered"))?;
        match self.target {
            Target::Gateway => {
                let begun = self
                    .post("/passkeys/login/begin", json!({"username": user}), None)
                    .await?;
                let credential = self.assert(&begun.body)?;
                let done = self
                    .post(
                        "/passkeys/login/complete",
                        json!({"session_id": begun.body["session_id"], "credential": credential, "return_to": "/app"}),
                        None,
                    )
                    .await?;
                done.cookie
                    .ok_or_else(|| anyhow!("login/complete set no session cookie"))
            }
            Target::Fastapi => {
                let begun = self
                    .post(
                        "/auth/passkeys/authenticate/begin",
                        json!({"userId": user}),
                        None,
                    )
                    .await?;
                let credential = self.assert(&begun.body)?;
                let done = self
                    .post(
                        "/auth/passkeys/authenticate/finish",
                        json!({"state": begun.body["state"], "credential": credential}),
                        None,
                    )
                    .await?;
                done.cookie
                    .ok_or_else(|| anyhow!("authenticate/finish set no session cookie"))
            }
        }
    }

    fn create(&mut self, begun: &Value) -> anyhow::Result<Value> {
        let options: CreationChallengeResponse =
            serde_json::from_value(json!({"publicKey": begun["publicKey"]}))
                .context("creation options")?;
        let credential = self
            .authenticator
            .do_registration(self.origin.clone(), options)
            .map_err(|e| anyhow!("authenticator registration: {e:?}"))?;
        Ok(serde_json::to_value(credential)?)
    }

    fn assert(&mut self, begun: &Value) -> anyhow::Result<Value> {
        let options: RequestChallengeResponse =
            serde_json::from_value(json!({"publicKey": begun["publicKey"]}))
                .context("request options")?;
        let credential = self
            .authenticator
            .do_authentication(self.origin.clone(), options)
            .map_err(|e| anyhow!("authenticator assertion: {e:?}"))?;
        Ok(serde_json::to_value(credential)?)
    }

    async fn post(
        &self,
        path: &str,
        body: Value,
        bench_user: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("origin", self.origin.origin().ascii_serialization())
            .json(&body);
        if let Some(user) = bench_user {
            req = req.header("x-bench-user", user);
        }
        Answer::read(path, req.send().await.with_context(|| path.to_string())?).await
    }
}

struct Answer {
    body: Value,
    /// `name=value` of a Set-Cookie with a value.
    cookie: Option<String>,
}

impl Answer {
    /// A 2xx answer, or an error naming the path, the status and the body.
    async fn read(path: &str, resp: reqwest::Response) -> anyhow::Result<Answer> {
        let status = resp.status();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .filter(|pair| pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let short: String = text.chars().take(300).collect();
            bail!("{path}: {status}: {short}");
        }
        Ok(Answer {
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            cookie,
        })
    }
}

/// Enrollment tokens with a persistent cursor (`FILE.cursor`): each token is spent once.
struct TokenPool {
    tokens: Vec<String>,
    next: AtomicUsize,
    cursor_path: PathBuf,
}

impl TokenPool {
    fn open(path: &PathBuf) -> anyhow::Result<TokenPool> {
        let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
        let tokens: Vec<String> = text.lines().map(str::to_string).collect();
        let cursor_path = PathBuf::from(format!("{}.cursor", path.display()));
        let start = std::fs::read_to_string(&cursor_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Ok(TokenPool {
            tokens,
            next: AtomicUsize::new(start),
            cursor_path,
        })
    }

    fn next(&self) -> Option<String> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.tokens.get(i).cloned()
    }

    fn save(&self) -> anyhow::Result<()> {
        let used = self.next.load(Ordering::Relaxed).min(self.tokens.len());
        std::fs::write(&self.cursor_path, used.to_string())?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// enroll, touch, ready

async fn enroll(base: &str, tokens: &PathBuf, origin: &str) -> anyhow::Result<Value> {
    let pool = TokenPool::open(tokens)?;
    let line = pool.next().ok_or_else(|| anyhow!("out of tokens"))?;
    pool.save()?;
    let token = line.split_whitespace().next().unwrap_or_default();
    let mut user = VirtualUser::new(Target::Gateway, base.to_string(), Url::parse(origin)?, 0);
    let begun = user
        .post(
            "/passkeys/register/begin",
            json!({"token": token, "name": "bench"}),
            None,
        )
        .await?;
    let credential = user.create(&begun.body)?;
    let done = user
        .post(
            "/passkeys/register/complete",
            json!({"session_id": begun.body["session_id"], "credential": credential}),
            None,
        )
        .await?;
    let cookie = done
        .cookie
        .ok_or_else(|| anyhow!("register/complete set no cookie"))?;
    Ok(json!({ "cookie": cookie }))
}

async fn touch(
    url: &str,
    cookie_name: &str,
    cookies: &PathBuf,
    concurrency: usize,
) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(cookies).with_context(|| cookies.display().to_string())?;
    let values: Arc<Vec<String>> = Arc::new(text.lines().map(str::to_string).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let http = client();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (values, next, http) = (values.clone(), next.clone(), http.clone());
        let (url, cookie_name) = (url.to_string(), cookie_name.to_string());
        tasks.push(tokio::spawn(async move {
            let mut failures = 0u64;
            let mut first = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(value) = values.get(i) else { break };
                let sent = http
                    .get(&url)
                    .header("cookie", format!("{cookie_name}={value}"))
                    .header("accept", "application/json")
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                    }
                    Ok(resp) => {
                        failures += 1;
                        first.get_or_insert(format!("status {}", resp.status()));
                    }
                    Err(e) => {
                        failures += 1;
                        first.get_or_insert(e.to_string());
                    }
                }
            }
            (failures, first)
        }));
    }
    let mut failures = 0;
    let mut first_error = None;
    for task in tasks {
        let (f, first) = task.await?;
        failures += f;
        if first_error.is_none() {
            first_error = first;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(json!({
        "sessions": values.len(),
        "errors": failures,
        "first_error": first_error,
        "seconds": elapsed,
        "per_sec": values.len() as f64 / elapsed,
    }))
}

async fn ready(url: &str, since_ns: u128, timeout: f64) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_millis(500))
        .build()?;
    let give_up = Instant::now() + Duration::from_secs_f64(timeout);
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        if let Ok(resp) = http.get(url).send().await {
            if resp.status().is_success() {
                let now_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
                let ms = now_ns.saturating_sub(since_ns) as f64 / 1e6;
                return Ok(json!({ "ready_ms": ms, "attempts": attempts }));
            }
        }
        if Instant::now() > give_up {
            bail!("{url} not ready after {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// helpers

fn client() -> reqwest::Client {
    client_builder().build().expect("an HTTP client")
}

/// A browser-like client: no redirects followed, no proxy, a 30 s timeout per request.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
}

fn percentile(sorted_us: &[u64], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let index = ((sorted_us.len() as f64 - 1.0) * q).round() as usize;
    Some(sorted_us[index] as f64 / 1000.0)
}

/// User + system CPU seconds of this process (getrusage RUSAGE_SELF).
fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(usage.user_time()) + t(usage.system_time())
        }
        Err(_) => f64::NAN,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
