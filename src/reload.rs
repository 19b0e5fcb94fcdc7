//! Live reload (SIGHUP, `passkey-gateway reload`): the config-derived state a request reads,
//! swapped whole, and the rule for what a reload may change.
//!
//! A request loads the current [`Live`] once, when it starts, and keeps it to the end: an
//! in-flight request finishes with the routes it was routed by, the next one sees the new ones,
//! and no request ever mixes the two. A reload either applies every change or none: the file is
//! read and checked, restart-only settings are compared, the new relying party is built, and
//! only then is anything swapped.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, ConfigError, Route};
use crate::metrics::{Metrics, RouteCounters, NO_ROUTE};
use crate::passkey::RelyingPartyError;
use crate::routing::Router;

/// What one request reads from the configuration: the config, its routes, and each route's
/// request counters (resolved here, once per reload, never per request).
pub struct Live {
    pub config: Arc<Config>,
    pub router: Router,
    route_counters: Vec<RouteCounters>,
    unrouted: RouteCounters,
}

impl Live {
    pub fn new(config: Arc<Config>, metrics: &Metrics) -> Live {
        let route_counters = config
            .routes
            .iter()
            .map(|r| metrics.route(&r.name))
            .collect();
        Live {
            router: Router::new(config.routes.clone()),
            config,
            route_counters,
            unrouted: metrics.route(NO_ROUTE),
        }
    }

    /// The route at `index` of this router.
    pub fn route(&self, index: Option<usize>) -> Option<&Route> {
        index.and_then(|i| self.router.routes().get(i))
    }

    /// The counters of the route at `index`, or of unrouted requests.
    pub fn counters(&self, index: Option<usize>) -> &RouteCounters {
        index
            .and_then(|i| self.route_counters.get(i))
            .unwrap_or(&self.unrouted)
    }
}

/// Why a reload changed nothing. The running configuration keeps serving in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the new configuration is invalid; the running one keeps serving: {0}")]
    Invalid(#[from] ConfigError),
    #[error(
        "{}: {} changed, which needs a restart; nothing was applied (restart to apply, or undo the change)",
        file.display(),
        keys.join(", ")
    )]
    NeedsRestart { file: PathBuf, keys: Vec<String> },
    #[error("{}: `webauthn.origins`: the new origins are refused; the running ones keep serving", file.display())]
    RelyingParty {
        file: PathBuf,
        #[source]
        cause: RelyingPartyError,
    },
    #[error("the reload did not finish")]
    Interrupted,
}

/// The dotted keys whose change a reload cannot apply, because what they configure was built
/// once at start (sockets, TLS on or off, the store, keys, caches, the session cookie) or because changing
/// them live would strand what is stored (the relying party id).
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let mut compare = |key: &str, a: String, b: String| {
        if a != b {
            changed.push(format!("`{key}`"));
        }
    };
    macro_rules! same {
        ($key:literal, $($field:tt)+) => {
            compare($key, format!("{:?}", old.$($field)+), format!("{:?}", new.$($field)+))
        };
    }
    same!("public_url", public_url);
    same!("server.listen", server.listen);
    same!("server.data_dir", server.data_dir);
    same!("server.admin_listen", server.admin_listen);
    // TLS on or off changes the listeners; new files (or new paths) are served after a reload.
    same!("server.tls", server.tls.is_some());
    same!("server.threads", server.threads);
    same!("server.grace_period", server.grace_period);
    same!("server.log_format", server.log_format);
    same!(
        "server.ceremony_rate_per_minute",
        server.ceremony_rate_per_minute
    );
    same!(
        "server.rate_limit_ipv6_prefix",
        server.rate_limit_ipv6_prefix
    );
    same!(
        "server.rate_limit_max_clients",
        server.rate_limit_max_clients
    );
    same!("server.keepalive_timeout", server.keepalive_timeout);
    same!(
        "server.request_header_timeout",
        server.request_header_timeout
    );
    same!("server.max_connections", server.max_connections);
    same!("webauthn.rp_id", webauthn.rp_id);
    same!("webauthn.rp_name", webauthn.rp_name);
    same!("webauthn.challenge_timeout", webauthn.challenge_timeout);
    same!(
        "webauthn.max_passkeys_per_user",
        webauthn.max_passkeys_per_user
    );
    same!("webauthn.max_live_ceremonies", webauthn.max_live_ceremonies);
    same!("enrollment.token_ttl", enrollment.token_ttl);
    same!("session.cookie_name", session.cookie_name);
    same!("session.idle_timeout", session.idle_timeout);
    same!("session.absolute_timeout", session.absolute_timeout);
    same!("session.cache_size", session.cache_size);
    same!("identity.algorithm", identity.algorithm);
    same!("identity.token_ttl", identity.token_ttl);
    same!("identity.key_overlap", identity.key_overlap);
    same!("identity.strip_headers", identity.strip_headers);
    same!(
        "identity.trusted_proxy_headers",
        identity.trusted_proxy_headers
    );
    // The store (backend, database, pool, keys) is opened once, at start. Its password and
    // key-encryption key are compared by where they come from (`Debug` redacts the values).
    same!("store", store);
    // The webhook workers are built at start. The secrets are compared apart: `Debug` redacts
    // them, so the line above would miss a new secret.
    same!("events", events);
    let secrets = |c: &Config| -> Vec<String> {
        c.events.webhooks.iter().map(|w| w.secret.clone()).collect()
    };
    if secrets(old) != secrets(new) && !changed.iter().any(|k| k == "`events`") {
        changed.push("`events`".to_string());
    }
    changed
}

/// One line on what a successful reload applied.
pub fn summary(config: &Config) -> String {
    let routes: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    let tls = match &config.tls {
        Some(tls) => format!(", TLS certificate `{}`", tls.cert.display()),
        None => String::new(),
    };
    format!(
        "reloaded {}: {} route(s) [{}], identity headers {:?}, {} allowed origin(s){tls}",
        config.source.display(),
        routes.len(),
        routes.join(", "),
        config.identity.headers,
        config.origins().len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(route_path: &str, secret: &str) -> Config {
        let text = format!(
            "public_url = \"http://localhost:8080\"\n[webauthn]\nrp_id = \"localhost\"\n\
             [[events.webhook]]\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"{secret}\"\n\
             [[route]]\nname = \"app\"\npath = \"{route_path}\"\nupstream = \"http://127.0.0.1:9\"\n"
        );
        Config::from_toml(std::path::Path::new("g.toml"), &text).expect("valid")
    }

    #[test]
    fn routes_reload_but_a_new_webhook_secret_needs_a_restart() {
        let base = config("/", "0123456789abcdef0");
        assert!(restart_only_changes(&base, &config("/app", "0123456789abcdef0")).is_empty());
        assert_eq!(
            restart_only_changes(&base, &config("/", "another-secret-0123")),
            ["`events`"]
        );
    }

    #[test]
    fn a_store_change_needs_a_restart() {
        let base = config("/", "0123456789abcdef0");
        let mut moved = base.clone();
        moved.store.pool_size += 1;
        assert_eq!(restart_only_changes(&base, &moved), ["`store`"]);
    }
}
