//! Benchmark seeding: fills a gateway store *directly* (through `passkey_gateway::store::Store`,
//! the same typed interface the gateway uses), before the gateway starts (redb holds a file lock).
//!
//! Two things the benchmark needs that the HTTP API cannot make quickly:
//! - enrollment tokens (`--tokens N`): N users, each with a one-time enrollment link, written one
//!   `token username` per line to `--tokens-out`; the load client spends them on real registrations;
//! - a large store (`--users N --passkeys-per-user K --sessions`): N users with K passkeys each
//!   and, with `--sessions`, one live session per user whose cookie values go to `--cookies-out`.
//!
//! Passkeys made here carry a placeholder credential: they exist to give the store its size and
//! are never used to sign in. Every write goes through the store's group-commit writer, durably.
//!
//! `cargo run --release --example bench_seed -- --data-dir DIR --tokens 1000 --tokens-out t.txt`

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use futures_util::stream::{self, StreamExt};
use passkey_gateway::gateway::{unix_now, STORE_FILE};
use passkey_gateway::session::new_session_value;
use passkey_gateway::store::{
    hash_secret, Ceremony, CeremonyKind, NewUser, Passkey, RegistrationCompletion, SessionRecord,
    Store,
};
use passkey_gateway::Config;
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    /// The gateway's `server.data_dir` (the store file is created inside it).
    #[arg(long, required_unless_present = "config")]
    data_dir: Option<PathBuf>,
    /// Users that each get an enrollment token.
    #[arg(long, default_value_t = 0)]
    tokens: usize,
    /// Where the enrollment tokens go, one per line.
    #[arg(long)]
    tokens_out: Option<PathBuf>,
    /// Users with passkeys (and sessions).
    #[arg(long, default_value_t = 0)]
    users: usize,
    #[arg(long, default_value_t = 2)]
    passkeys_per_user: usize,
    /// One live session per seeded user.
    #[arg(long)]
    sessions: bool,
    /// Where the session cookie values go, one per line.
    #[arg(long)]
    cookies_out: Option<PathBuf>,
    /// Store operations in flight at once (the writer groups them into commits).
    #[arg(long, default_value_t = 512)]
    parallel: usize,
    /// Instead of seeding: read the session and user of every cookie in this file through the
    /// store (as the gateway's session-cache misses do) and report this process's RSS, to show
    /// what the store's read cache costs on its own.
    #[arg(long)]
    read_cookies: Option<PathBuf>,
    /// Prefix of generated usernames, so several seedings of one store do not collide.
    #[arg(long, default_value = "seed")]
    prefix: String,
    /// Opens the store this gateway config names (redb in its data_dir, or PostgreSQL) instead
    /// of the redb file in `--data-dir`.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = match &args.config {
        Some(path) => {
            let config = Config::load(path)?;
            std::fs::create_dir_all(&config.server.data_dir)?;
            Store::open_configured(&config, Default::default())?
        }
        None => {
            let dir = args.data_dir.clone().unwrap_or_default();
            std::fs::create_dir_all(&dir)?;
            Store::open(dir.join(STORE_FILE))?
        }
    };
    let started = Instant::now();

    if let Some(path) = &args.read_cookies {
        let rss_before = rss_kib();
        let text = std::fs::read_to_string(path)?;
        let mut found = 0usize;
        for cookie in text.lines() {
            if let Some(session) = store.session(hash_secret(cookie)).await? {
                if store.user(session.user_id).await?.is_some() {
                    found += 1;
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "read {found} sessions and their users in {seconds:.1} s; RSS {} KiB before, {} KiB after",
            rss_before,
            rss_kib()
        );
        // What one session-cache miss costs in the store, one lookup at a time.
        println!(
            "{}",
            serde_json::json!({"lookups": found, "seconds": seconds,
                "us_per_lookup": seconds * 1e6 / found.max(1) as f64})
        );
        return Ok(());
    }

    if args.tokens > 0 {
        let path = args
            .tokens_out
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--tokens needs --tokens-out"))?;
        let tokens: Vec<String> = stream::iter(0..args.tokens)
            .map(|i| token_user(&store, format!("{}-t{i}", args.prefix)))
            .buffer_unordered(args.parallel)
            .collect::<Vec<anyhow::Result<String>>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        write_lines(&path, &tokens)?;
    }

    if args.users > 0 {
        let cookies: Vec<Option<String>> = stream::iter(0..args.users)
            .map(|i| {
                full_user(
                    &store,
                    format!("{}-u{i}", args.prefix),
                    args.passkeys_per_user,
                    args.sessions,
                )
            })
            .buffer_unordered(args.parallel)
            .collect::<Vec<anyhow::Result<Option<String>>>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        if let Some(path) = &args.cookies_out {
            let cookies: Vec<String> = cookies.into_iter().flatten().collect();
            write_lines(path, &cookies)?;
        }
    }

    let stats = store.write_stats();
    eprintln!(
        "seeded {} token users, {} users x {} passkeys (sessions: {}) in {:.1} s; {} writes in {} commits",
        args.tokens,
        args.users,
        args.passkeys_per_user,
        args.sessions,
        started.elapsed().as_secs_f64(),
        stats.writes,
        stats.commits
    );
    Ok(())
}

/// A user and a one-time enrollment token for them, as `user add` does.
async fn token_user(store: &Store, username: String) -> anyhow::Result<String> {
    let user = store.create_user(new_user(username)).await?;
    let token = new_session_value();
    store
        .create_enrollment(user.id, hash_secret(&token), unix_now() + 7 * 86_400)
        .await?;
    Ok(format!("{token} {}", user.username))
}

/// A user with `passkeys` placeholder passkeys; the first one carries a session when asked.
async fn full_user(
    store: &Store,
    username: String,
    passkeys: usize,
    with_session: bool,
) -> anyhow::Result<Option<String>> {
    let user = store.create_user(new_user(username)).await?;
    let now = unix_now();
    let mut cookie = None;
    for n in 0..passkeys {
        let ceremony_id = Uuid::new_v4();
        store
            .put_ceremony(
                Ceremony {
                    id: ceremony_id,
                    kind: CeremonyKind::Registration,
                    user_id: Some(user.id),
                    enrollment_token_hash: None,
                    state: Vec::new(),
                    passkey_name: None,
                    expires_at: now + 300,
                },
                u64::MAX,
            )
            .await?;
        let passkey = Passkey {
            id: Uuid::new_v4(),
            user_id: user.id,
            name: format!("seeded key {n}"),
            credential_id: Uuid::new_v4().as_bytes().to_vec(),
            // A placeholder of realistic size (a serialized webauthn-rs Passkey is ~400 bytes).
            credential: vec![b'x'; 400],
            aaguid: None,
            transports: vec!["internal".into()],
            backup_eligible: false,
            backup_state: false,
            discoverable: true,
            sign_count: 0,
            clone_suspected: false,
            created_at: now,
            last_used_at: None,
        };
        let new_session = (with_session && n == 0).then(|| {
            let value = new_session_value();
            let record = SessionRecord {
                id_hash: hash_secret(&value),
                user_id: user.id,
                passkey_id: passkey.id,
                created_at: now,
                last_seen: now,
                expires_at: now + 7 * 86_400,
                device: None,
                client: None,
            };
            cookie = Some(value);
            record
        });
        store
            .complete_registration(RegistrationCompletion {
                ceremony_id,
                passkey,
                spend_enrollment: None,
                new_session,
                max_passkeys_per_user: passkeys.max(1),
                now,
            })
            .await?;
    }
    Ok(cookie)
}

fn new_user(username: String) -> NewUser {
    NewUser {
        display_name: format!("Bench user {username}"),
        email: Some(format!("{username}@bench.example")),
        groups: vec!["staff".into()],
        username,
    }
}

/// This process's resident set size (VmRSS), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn write_lines(path: &PathBuf, lines: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
