//! The serde shape of `gateway.toml`: field names, types and defaults. Nothing here looks at two
//! fields at once; that is `check.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::ConfigError;
use crate::identity::{HeaderPreset, KeyAlgorithm};
use crate::policy::Access;

/// The file as written, before cross-field checks and resolution.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub public_url: url::Url,
    #[serde(default)]
    pub server: ServerConfig,
    pub webauthn: WebauthnConfig,
    #[serde(default)]
    pub enrollment: EnrollmentConfig,
    #[serde(default)]
    pub session: SessionConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub events: super::events::EventsConfig,
    #[serde(default)]
    pub store: super::store::StoreConfig,
}

/// `[server]`: sockets, storage, trust and process settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Addresses to listen on: one string or a list.
    #[serde(deserialize_with = "super::listen::one_or_many")]
    pub listen: Vec<SocketAddr>,
    /// Where the redb store, the signing keys and the admin socket live.
    pub data_dir: PathBuf,
    /// Peers whose `X-Forwarded-*` headers are believed (CIDRs or single addresses).
    pub trusted_proxies: Vec<IpNet>,
    /// Worker threads for the proxy.
    pub threads: usize,
    /// How long a shutdown waits for in-flight requests.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// Largest request body the gateway's own JSON endpoints accept, in bytes.
    pub max_body_bytes: usize,
    /// Request log format.
    pub log_format: LogFormat,
    /// Login and registration attempts allowed per client address per minute (0 = unlimited).
    pub ceremony_rate_per_minute: u32,
    /// IPv6 clients are rate-limited per network of this prefix length (one /64 is one client).
    pub rate_limit_ipv6_prefix: u8,
    /// Client addresses the rate limiter remembers at most; beyond it new ones share one budget.
    pub rate_limit_max_clients: usize,
    /// How long a kept-alive connection may sit idle between requests.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// How long a whole request header may take to arrive (slow headers are cut).
    #[serde(with = "humantime_serde")]
    pub request_header_timeout: Duration,
    /// Open client connections at most; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); off when absent.
    pub admin_listen: Option<SocketAddr>,
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            data_dir: PathBuf::from("./data"),
            trusted_proxies: Vec::new(),
            threads: 2,
            grace_period: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            log_format: LogFormat::Text,
            ceremony_rate_per_minute: 60,
            rate_limit_ipv6_prefix: 64,
            rate_limit_max_clients: 65_536,
            keepalive_timeout: Duration::from_secs(60),
            request_header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            admin_listen: None,
            tls: None,
        }
    }
}

/// `[server.tls]`: PEM files, checked at load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Human-readable or JSON log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[webauthn]`: the relying party.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnConfig {
    /// The relying party id: the registrable domain passkeys are bound to.
    pub rp_id: String,
    /// Shown by authenticators and as the pages' title.
    #[serde(default = "default_rp_name")]
    pub rp_name: String,
    /// Origins allowed in ceremonies; empty means `public_url` alone.
    #[serde(default)]
    pub origins: Vec<url::Url>,
    /// Origins published at `/.well-known/webauthn` (WebAuthn related origin requests).
    #[serde(default)]
    pub related_origins: Vec<url::Url>,
    #[serde(default = "default_challenge_timeout", with = "humantime_serde")]
    pub challenge_timeout: Duration,
    #[serde(default = "default_max_passkeys")]
    pub max_passkeys_per_user: usize,
    /// Begun, unfinished ceremonies held at once, for everyone together; beyond it `begin`
    /// answers 503 until some finish or expire.
    #[serde(default = "default_max_ceremonies")]
    pub max_live_ceremonies: u64,
}

fn default_rp_name() -> String {
    "Passkey Gateway".to_string()
}
fn default_challenge_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_max_passkeys() -> usize {
    10
}
fn default_max_ceremonies() -> u64 {
    10_000
}

/// `[audit]`: how long audit events are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Events older than this are deleted by the periodic upkeep.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// `[enrollment]`: one-time enrollment links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrollmentConfig {
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Lifetime of a link a signed-in person makes for their own account ("add a device"):
    /// short, since it is meant to be scanned from the screen next to it.
    #[serde(with = "humantime_serde")]
    pub self_service_ttl: Duration,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        EnrollmentConfig {
            token_ttl: Duration::from_secs(24 * 3600),
            self_service_ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// Default `[session] cache_size`: ~8 MiB of sessions in memory (BENCHMARKS.md, footprint).
pub const DEFAULT_SESSION_CACHE: usize = 16_384;

/// `[session]`: the session cookie and where logins may return to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Base name; on https it is sent as `__Host-{cookie_name}`.
    pub cookie_name: String,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// Hosts (besides our own origin) that `return_to` may point at, over https.
    pub allowed_return_hosts: Vec<String>,
    /// Sessions held in memory at most; the least recently used beyond it are read from the
    /// store again when next used.
    pub cache_size: usize,
    /// How long after a passkey assertion a session may change credentials (add, rename or
    /// delete passkeys, revoke other sessions, make an add-a-device link).
    #[serde(with = "humantime_serde")]
    pub reauth_window: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie_name: "passkey_session".to_string(),
            idle_timeout: Duration::from_secs(12 * 3600),
            absolute_timeout: Duration::from_secs(7 * 24 * 3600),
            allowed_return_hosts: Vec::new(),
            cache_size: DEFAULT_SESSION_CACHE,
            reauth_window: Duration::from_secs(5 * 60),
        }
    }
}

/// `[identity]`: the signed assertion and convenience headers sent upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    pub algorithm: KeyAlgorithm,
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    pub headers: HeaderPreset,
    /// How long a rotated-out key stays in the JWKS.
    #[serde(with = "humantime_serde")]
    pub key_overlap: Duration,
    /// More request headers to remove before forwarding, beyond the built-in list.
    pub strip_headers: Vec<String>,
    /// Headers of the built-in drop list that a trusted proxy may still pass (e.g. `Forwarded`).
    pub trusted_proxy_headers: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            algorithm: KeyAlgorithm::Es256,
            token_ttl: Duration::from_secs(60),
            headers: HeaderPreset::Passkey,
            key_overlap: Duration::from_secs(7 * 24 * 3600),
            strip_headers: Vec::new(),
            trusted_proxy_headers: Vec::new(),
        }
    }
}

/// One `[[route]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    /// Host to match (without port); absent matches every host.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_route_path")]
    pub path: String,
    /// Required unless `forward_auth_only`.
    #[serde(default)]
    pub upstream: Option<url::Url>,
    #[serde(default = "default_access")]
    pub access: Access,
    #[serde(default)]
    pub allow_users: Vec<String>,
    #[serde(default)]
    pub allow_groups: Vec<String>,
    #[serde(default)]
    pub public_paths: Vec<String>,
    /// The assertion's `aud`; defaults to the route name.
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default = "default_true")]
    pub websockets: bool,
    /// Decided only for a fronting proxy (`GET /passkeys/auth`); the inline proxy answers 404
    /// and no `upstream` may be set.
    #[serde(default)]
    pub forward_auth_only: bool,
}

fn default_route_path() -> String {
    "/".to_string()
}
fn default_access() -> Access {
    Access::Authenticated
}
fn default_true() -> bool {
    true
}

/// Deserializes with the dotted path of the failing key and its line and column.
pub(super) fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    let whole_file = |e: toml::de::Error| ConfigError {
        file: path.to_path_buf(),
        position: e.span().map(|s| line_col(text, s.start)),
        key: String::new(),
        reason: e.message().trim().to_string(),
    };
    let de = toml::Deserializer::parse(text).map_err(whole_file)?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        ConfigError {
            file: path.to_path_buf(),
            position: inner.span().map(|s| line_col(text, s.start)),
            key: if key == "." { String::new() } else { key },
            reason: inner.message().trim().to_string(),
        }
    })
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
