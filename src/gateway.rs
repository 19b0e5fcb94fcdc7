//! [`Gateway`]: all the state of one running gateway, built from a [`Config`]. No global state,
//! so every test builds a fresh one.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::SystemTime;

pub use crate::clock::unix_now;
use crate::clock::Clock;
use crate::config::Config;
use crate::identity::{AssertionSigner, IdentityError, KeyRing, SharedKeys};
use crate::limits::CeremonyLimiter;
use crate::metrics::{Metrics, Pulled};
use crate::passkey::{Ceremonies, RelyingPartyError};
use crate::reload::{Live, ReloadError};
use crate::session::Sessions;
use crate::store::{Store, StoreError};

/// How often [`Gateway::upkeep`] runs.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// The store's file name inside `server.data_dir`.
pub use crate::store::STORE_FILE;

/// Why a gateway could not be built. Causes are sources (`main` prints the chain), so no
/// message repeats its cause's text.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {cause}")]
    Listen {
        addr: std::net::SocketAddr,
        cause: std::io::Error,
    },
    #[error("TLS")]
    Tls(#[source] Box<pingora::Error>),
    #[error("cannot create the data directory {path}: {cause}")]
    DataDir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("store")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    RelyingParty(#[from] RelyingPartyError),
}

/// One gateway: config, routes, store, sessions, ceremonies and signing keys.
pub struct Gateway {
    /// The configuration and its routes, swapped whole by a reload (`reload.rs`).
    live: Arc<ArcSwap<Live>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    store: Store,
    sessions: Arc<Sessions>,
    ceremonies: Ceremonies,
    signer: Arc<AssertionSigner>,
    /// Ceremony attempts per client network; `None` when unlimited.
    limiter: Option<CeremonyLimiter>,
    /// The one clock: the store, the sessions, the ceremonies and the upkeep ask it the time.
    clock: Arc<Clock>,
    /// The pushed Prometheus metrics (`metrics`), shared with the proxy.
    metrics: Arc<Metrics>,
    /// What `/readyz` checks besides the store (`health.rs`).
    readiness: crate::health::Readiness,
    /// The signing keys in the store, shared by replicas, and the version installed (`None`
    /// when the keys live in the data directory's file).
    shared_keys: Option<(SharedKeys, std::sync::atomic::AtomicI64)>,
    /// What the TLS listeners serve, when `[server.tls]` is set; a reload installs new files.
    certificate: Option<Arc<crate::tls::ServedCertificate>>,
}

/// The narrow handles the proxy's phases use (see [`Gateway::proxy_handles`]).
pub(crate) struct ProxyHandles {
    pub live: Arc<ArcSwap<Live>>,
    pub sessions: Arc<Sessions>,
    pub signer: Arc<AssertionSigner>,
    pub clock: Arc<Clock>,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("public_url", &self.config().public_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Opens the store and keys in `server.data_dir` and builds the gateway's state.
    pub fn new(config: Config) -> Result<Arc<Gateway>, StartError> {
        let dir = config.server.data_dir.clone();
        create_private_dir(&dir)?;
        let clock = Arc::new(Clock::default());
        let store = Store::open_configured(&config, clock.clone())?;
        let (keys, shared_keys) = load_keys(&config, &store)?;
        let signer =
            AssertionSigner::new(&keys, config.public_origin(), config.identity.token_ttl)?;
        let sessions = Arc::new(Sessions::for_config(store.clone(), &config));
        sessions.follow_store();
        let ceremonies = Ceremonies::new(&config, store.clone(), sessions.clone())?;
        let server = &config.server;
        let limiter = CeremonyLimiter::new(
            server.ceremony_rate_per_minute,
            server.rate_limit_ipv6_prefix,
            server.rate_limit_max_clients,
        );
        let metrics = Arc::new(Metrics::new());
        metrics.loaded(clock.now());
        let certificate = config
            .tls
            .as_ref()
            .map(|tls| Arc::new(crate::tls::ServedCertificate::new(tls.certified.clone())));
        let live = Live::new(Arc::new(config), &metrics);
        Ok(Arc::new(Gateway {
            live: Arc::new(ArcSwap::from_pointee(live)),
            reloading: tokio::sync::Mutex::new(()),
            store,
            sessions,
            ceremonies,
            signer: Arc::new(signer),
            limiter,
            clock,
            metrics,
            readiness: crate::health::Readiness::default(),
            shared_keys,
            certificate,
        }))
    }

    /// The configuration now: the one it was built from, or the last one reloaded.
    pub fn config(&self) -> Arc<Config> {
        self.live.load().config.clone()
    }

    /// The config and routes now, as one snapshot: a caller that reads both (a decision, then
    /// the route it chose) keeps the same snapshot across a reload.
    pub(crate) fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// Re-reads the configuration file and applies it whole, or changes nothing and says why
    /// (logged and counted either way). In-flight requests finish with what they started with.
    pub async fn reload(&self) -> Result<String, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let result = self.try_reload().await;
        self.metrics.reload(result.is_ok(), self.now());
        match &result {
            Ok(summary) => tracing::info!(%summary, "configuration reloaded"),
            Err(e) => tracing::error!(error = %e, "configuration reload refused"),
        }
        result
    }

    async fn try_reload(&self) -> Result<String, ReloadError> {
        let current = self.config();
        let path = current.source.clone();
        // Resolving upstream host names blocks: off the async threads.
        let new = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|_| ReloadError::Interrupted)??;
        let keys = crate::reload::restart_only_changes(&current, &new);
        if !keys.is_empty() {
            return Err(ReloadError::NeedsRestart {
                file: current.source.clone(),
                keys,
            });
        }
        let webauthn = Ceremonies::prepare(&new).map_err(|cause| ReloadError::RelyingParty {
            file: current.source.clone(),
            cause,
        })?;
        let summary = crate::reload::summary(&new);
        // Everything is ready: from here on, only swaps.
        self.ceremonies.install(webauthn);
        // TLS on or off is a restart (checked above), so both sides are `Some` or both `None`.
        if let (Some(served), Some(tls)) = (&self.certificate, &new.tls) {
            served.install(tls.certified.clone());
        }
        self.live
            .store(Arc::new(Live::new(Arc::new(new), &self.metrics)));
        Ok(summary)
    }

    /// The certificate the TLS listeners serve (`None` without `[server.tls]`).
    pub fn served_certificate(&self) -> Option<Arc<crate::tls::ServedCertificate>> {
        self.certificate.clone()
    }

    /// Users, passkeys, ceremonies and events. Sessions change only through [`Gateway::sessions`].
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The one owner of sessions: issuing, checking and ending them, store and cache together.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The WebAuthn ceremonies.
    pub fn ceremonies(&self) -> &Ceremonies {
        &self.ceremonies
    }

    /// Signs the identity assertions; owns the key ring.
    pub fn signer(&self) -> &AssertionSigner {
        &self.signer
    }

    /// Ceremony attempts per client network; `None` when unlimited.
    pub fn limiter(&self) -> Option<&CeremonyLimiter> {
        self.limiter.as_ref()
    }

    /// What the proxy's phases use, shared with the gateway, so the proxy holds no more.
    pub(crate) fn proxy_handles(&self) -> ProxyHandles {
        ProxyHandles {
            live: self.live.clone(),
            sessions: self.sessions.clone(),
            signer: self.signer.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// The pushed Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What `/readyz` reports besides the store: whether the listeners accept yet.
    pub fn readiness(&self) -> &crate::health::Readiness {
        &self.readiness
    }

    /// The metrics read from their owners at scrape time. Counting stored sessions scans them
    /// (on the blocking pool), which is a scrape's cost, never a request's.
    pub async fn pulled_metrics(&self) -> Pulled {
        let stats = self.store.write_stats();
        let stored = match self.store.sessions_of(None).await {
            Ok(sessions) => Some(u64::try_from(sessions.len()).unwrap_or(u64::MAX)),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: could not count stored sessions");
                None
            }
        };
        Pulled {
            sessions_cached: u64::try_from(self.sessions.cached()).unwrap_or(u64::MAX),
            sessions_stored: stored,
            revocations: self.sessions.revoked(),
            store_writes: stats.writes,
            store_commits: stats.commits,
            store_commit_seconds: self.store.commit_time().as_secs_f64(),
        }
    }

    /// Now, in unix seconds, by the gateway's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The gateway's clock (tests move it forward instead of waiting).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The JWKS document: current and still-published previous keys (the signer's ring, so it
    /// always matches the key that signs).
    pub fn jwks(&self) -> serde_json::Value {
        self.signer.jwks()
    }

    /// Switches to a new signing key; the old one stays published for `identity.key_overlap`.
    pub fn rotate_keys(&self) -> Result<String, IdentityError> {
        let ring = match &self.shared_keys {
            Some((shared, installed)) => {
                let config = self.config();
                let identity = &config.identity;
                let (version, ring) =
                    shared.rotate_blocking(identity.algorithm, identity.key_overlap)?;
                installed.store(version, std::sync::atomic::Ordering::Relaxed);
                ring
            }
            None => rotate_key_file(&self.config())?,
        };
        self.signer.install(&ring);
        Ok(ring.current().kid().to_string())
    }

    /// Periodic upkeep every [`UPKEEP_INTERVAL`]; some tasks run every few rounds. Runs until
    /// the task is dropped.
    pub async fn upkeep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        for round in 0u64.. {
            tick.tick().await;
            self.upkeep_round(round, self.now()).await;
        }
    }

    /// Every upkeep task at once as of `now`, as the first round runs them.
    pub async fn upkeep_once(&self, now: i64) {
        self.upkeep_round(0, now).await;
    }

    /// One round of upkeep: lazy `last_seen` writes, expired sessions, ceremonies and links,
    /// audit events past `audit.retention`, rate-limiter memory, and (hourly) the decoys.
    /// Failures are logged and retried next round.
    async fn upkeep_round(&self, round: u64, now: i64) {
        // Hourly (and at start): the decoys follow how real users' passkeys look.
        if round % 240 == 0 {
            if let Err(e) = self.ceremonies.refresh_decoys().await {
                tracing::warn!(error = %e, "could not sample passkeys for the decoys");
            }
        }
        self.follow_shared_keys().await;
        if let Err(e) = self.sessions.flush_last_seen(now).await {
            tracing::warn!(error = %e, "could not write session activity");
        }
        // Off the request path (a request only refuses an expired session), once a minute:
        // it scans every session, and until then `session list` already hides them.
        // On a shared store, one replica at a time runs each purge (`exclusive_job`).
        if round % 4 == 0 {
            if let Some(_held) = self.job("end_expired").await {
                if let Err(e) = self.sessions.end_expired(now).await {
                    tracing::warn!(error = %e, "could not delete expired sessions");
                }
            }
        }
        if let Some(_held) = self.job("purge_expired").await {
            if let Err(e) = self.store.purge_expired(now).await {
                tracing::warn!(error = %e, "could not purge expired records");
            }
        }
        let retention = i64::try_from(self.config().audit.retention.as_secs()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(retention);
        if let Some(_held) = self.job("purge_events").await {
            if let Err(e) = self.store.purge_events(cutoff, now).await {
                tracing::warn!(error = %e, "could not purge old audit events");
            }
        }
        if let Some(limiter) = &self.limiter {
            limiter.upkeep();
        }
    }
}

impl Gateway {
    /// The store's guard for a periodic job, or `None` when another replica runs it now (or
    /// the store cannot say: the job waits for the next round).
    async fn job(&self, job: &'static str) -> Option<Box<dyn Send + Sync>> {
        match self.store.exclusive_job(job).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, job, "could not take a periodic job's lock");
                None
            }
        }
    }

    /// Installs the shared ring when another replica rotated it (one cheap read per round).
    async fn follow_shared_keys(&self) {
        let Some((shared, installed)) = &self.shared_keys else {
            return;
        };
        let current = installed.load(std::sync::atomic::Ordering::Relaxed);
        match shared.version().await {
            Ok(Some(version)) if version != current => match shared.load().await {
                Ok(Some((version, ring))) => {
                    self.signer.install(&ring);
                    installed.store(version, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(
                        kid = ring.current().kid(),
                        "installed the shared signing key"
                    );
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not load the shared signing keys"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not check the shared signing keys"),
        }
    }
}

/// The signing keys: from the store when it keeps them (shared by replicas, sealed with
/// `store.key_encryption_key_*`), else from the data directory's key file.
#[allow(clippy::type_complexity)]
fn load_keys(
    config: &Config,
    store: &Store,
) -> Result<(KeyRing, Option<(SharedKeys, std::sync::atomic::AtomicI64)>), StartError> {
    let alg = config.identity.algorithm;
    if !store.keeps_signing_keys() {
        return Ok((KeyRing::load_or_create(&config.server.data_dir, alg)?, None));
    }
    let shared = shared_keys(config, store)?;
    let (version, ring) = shared.load_or_create_blocking(alg)?;
    Ok((ring, Some((shared, version.into()))))
}

/// The store's shared ring, sealed with the configured key-encryption key.
pub fn shared_keys(config: &Config, store: &Store) -> Result<SharedKeys, IdentityError> {
    let kek = config.store.key_encryption_key.clone().ok_or_else(|| {
        IdentityError::Shared("store.key_encryption_key_file (or _env) is not set".into())
    })?;
    Ok(SharedKeys::new(store.clone(), kek))
}

/// Rotates the signing key file in `config`'s data directory and returns the new ring: the one
/// rotation, which the live gateway then installs and the offline `keys rotate` leaves for the
/// next start.
pub fn rotate_key_file(config: &Config) -> Result<KeyRing, IdentityError> {
    KeyRing::rotate(
        &config.server.data_dir,
        config.identity.algorithm,
        config.identity.key_overlap,
        SystemTime::now(),
    )
}

/// The data directory holds keys and the admin socket: owner-only.
pub fn create_private_dir(dir: &std::path::Path) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    let fail = |cause| StartError::DataDir {
        path: dir.to_path_buf(),
        cause,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    Ok(())
}
