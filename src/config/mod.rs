//! `gateway.toml` → [`Config`]: the file format, its defaults, and every rule that spans fields.
//!
//! Parsing is strict (unknown keys are errors) and every error names the file, the dotted key and
//! the reason, with line and column when the TOML parser knows them. Things that can fail later in
//! surprising ways (upstream host names, TLS files) are resolved here, once, at load time.
//! This module does not start anything: it only describes what `serve` will do.

mod check;
mod events;
mod file;
mod listen;
mod resolve;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};

pub use events::{EventsConfig, WebhookConfig};
pub use file::{
    AuditConfig, EnrollmentConfig, IdentityConfig, LogFormat, RouteConfig, ServerConfig,
    SessionConfig, TlsConfig, WebauthnConfig,
};
pub use resolve::{LoadedTls, Upstream};
pub use store::{Password, StoreBackend, StoreConfig};

use crate::policy::AccessRule;

/// The whole validated configuration. Everything in it has been checked and resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub source: PathBuf,
    /// What browsers see, e.g. `https://app.example.com` (no path, no trailing slash).
    pub public_url: url::Url,
    pub server: ServerConfig,
    pub webauthn: WebauthnConfig,
    pub enrollment: EnrollmentConfig,
    pub session: SessionConfig,
    pub identity: IdentityConfig,
    pub audit: AuditConfig,
    /// Routes with their upstreams resolved to socket addresses.
    pub routes: Vec<Route>,
    /// The TLS certificate and key, parsed, when `[server.tls]` is set.
    pub tls: Option<LoadedTls>,
    /// `[events]`: webhooks the audit events are sent to.
    pub events: EventsConfig,
    /// `[store]`: the backend, and PostgreSQL's settings with the password resolved.
    pub store: StoreConfig,
}

/// One `[[route]]`, with its upstream resolved.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// `None` matches any host.
    pub host: Option<String>,
    pub path: String,
    /// `None` for a `forward_auth_only` route: decided for a fronting proxy, never proxied.
    pub upstream: Option<Upstream>,
    /// Who may pass: access level, allow lists, public sub-paths.
    pub rule: AccessRule,
    pub audience: String,
    pub websockets: bool,
}

/// A configuration error: which file, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Line and column (1-based), when known.
    pub position: Option<(usize, usize)>,
    /// The dotted key, e.g. `webauthn.origins[1]`; empty for whole-file errors.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads, parses, checks and resolves the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            position: None,
            key: String::new(),
            reason: format!("cannot read the file: {e}"),
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses `text` as if it were read from `path` (relative paths in it stay relative to the
    /// working directory, like every other tool's config).
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw = parse_checked(path, text)?;
        resolve::resolve(path, raw).map_err(|(key, reason)| key_error(path, key, reason))
    }

    /// The parsing and the cross-field checks of [`Config::from_toml`], without what touches the
    /// outside world (host name lookups, TLS files): what fuzzing exercises (`fuzz/checks.rs`).
    pub fn check_toml(path: &Path, text: &str) -> Result<(), ConfigError> {
        parse_checked(path, text).map(drop)
    }

    /// The origins WebAuthn accepts: `webauthn.origins`, or `public_url` when that is empty.
    pub fn origins(&self) -> Vec<url::Url> {
        if self.webauthn.origins.is_empty() {
            vec![self.public_url.clone()]
        } else {
            self.webauthn.origins.clone()
        }
    }

    /// Whether browsers reach the gateway over https (decides `Secure` and `__Host-` cookies).
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The public origin as a string without a trailing slash: the assertion's `iss`.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// A one-paragraph summary for `check`.
    pub fn summary(&self) -> String {
        let listen: Vec<String> = self.server.listen.iter().map(|a| a.to_string()).collect();
        format!(
            "{}: ok\n  public_url  {}\n  listen      {}{}\n  rp_id       {}\n  data_dir    {}\n  routes      {}",
            self.source.display(),
            self.public_origin(),
            listen.join(", "),
            if self.tls.is_some() { " (tls)" } else { "" },
            self.webauthn.rp_id,
            self.server.data_dir.display(),
            self.routes
                .iter()
                .map(|r| format!(
                    "{} {}{} -> {}",
                    r.name,
                    r.host.as_deref().unwrap_or("*"),
                    r.path,
                    r.upstream
                        .as_ref()
                        .map_or_else(|| "(forward-auth only)".to_string(), |u| u.url.to_string())
                ))
                .collect::<Vec<_>>()
                .join("\n              ")
        )
    }
}

/// Where a login may send the browser back to, besides its own origin.
impl Config {
    /// The hosts an `https://` `return_to` may name: `session.allowed_return_hosts` and every
    /// route's `host` (the apps this gateway decides for, inline or through forward-auth). Each
    /// is matched exactly, default port only, by `policy::safe_return_to`.
    pub fn return_hosts(&self) -> Vec<String> {
        let mut hosts = self.session.allowed_return_hosts.clone();
        let route_hosts = self.routes.iter().filter_map(|r| r.host.clone());
        for host in route_hosts {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        hosts
    }
}

#[cfg(test)]
mod tests;

fn parse_checked(path: &Path, text: &str) -> Result<file::RawConfig, ConfigError> {
    let raw = file::parse(path, text)?;
    check::check(&raw).map_err(|(key, reason)| key_error(path, key, reason))?;
    Ok(raw)
}

fn key_error(path: &Path, key: String, reason: String) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        position: None,
        key,
        reason,
    }
}
