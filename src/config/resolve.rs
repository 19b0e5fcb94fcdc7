//! The parts of the config that touch the outside world, done once at load: upstream host names
//! are resolved (pingora's `HttpPeer::new` would resolve synchronously and panic on failure) and
//! TLS files are read and parsed (a bad PEM must stop start-up with a message, not a panic).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use super::file::{RawConfig, RouteConfig, TlsConfig};
use super::{Config, Route};
use crate::policy::AccessRule;

/// An upstream with its address resolved.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// As configured, for logs and messages.
    pub url: url::Url,
    pub addr: SocketAddr,
    pub tls: bool,
    /// Host name for SNI and certificate checks.
    pub sni: String,
}

/// TLS material that has been read and parsed once: what a listener serves (`tls.rs`).
#[derive(Clone)]
pub struct LoadedTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The chain and the key, checked to go together.
    pub certified: std::sync::Arc<rustls::sign::CertifiedKey>,
}

impl std::fmt::Debug for LoadedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The paths only: the key's bytes never reach a log.
        f.debug_struct("LoadedTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

type Resolved<T> = Result<T, (String, String)>;

pub(super) fn resolve(path: &Path, raw: RawConfig) -> Resolved<Config> {
    let mut store = raw.store;
    super::store::resolve_password(&mut store)?;
    let tls = raw.server.tls.as_ref().map(load_tls).transpose()?;
    let routes = raw
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| resolve_route(i, r))
        .collect::<Resolved<Vec<_>>>()?;
    Ok(Config {
        source: path.to_path_buf(),
        public_url: raw.public_url,
        server: raw.server,
        webauthn: raw.webauthn,
        enrollment: raw.enrollment,
        session: raw.session,
        identity: raw.identity,
        audit: raw.audit,
        events: raw.events,
        routes,
        tls,
        store,
    })
}

fn resolve_route(i: usize, r: &RouteConfig) -> Resolved<Route> {
    Ok(Route {
        name: r.name.clone(),
        // Checked valid; compared with requests in the same canonical form (`policy::host`).
        host: r.host.as_deref().and_then(crate::policy::canonical_host),
        path: r.path.clone(),
        upstream: r
            .upstream
            .as_ref()
            .map(|url| resolve_upstream(&format!("route[{i}].upstream"), url))
            .transpose()?,
        rule: AccessRule {
            access: r.access,
            allow_users: r.allow_users.clone(),
            allow_groups: r.allow_groups.clone(),
            public_paths: r.public_paths.clone(),
        },
        audience: r.audience.clone().unwrap_or_else(|| r.name.clone()),
        websockets: r.websockets,
    })
}

fn resolve_upstream(key: &str, url: &url::Url) -> Resolved<Upstream> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    // `url` keeps IPv6 literals bracketed; the resolver wants them bare.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (bare, port)
        .to_socket_addrs()
        .map_err(|e| (key.to_string(), format!("cannot resolve `{host}`: {e}")))?
        .next()
        .ok_or_else(|| (key.to_string(), format!("`{host}` resolves to no address")))?;
    Ok(Upstream {
        url: url.clone(),
        addr,
        tls: url.scheme() == "https",
        sni: bare.to_string(),
    })
}

fn load_tls(tls: &TlsConfig) -> Resolved<LoadedTls> {
    let read = |key: &str, path: &Path| {
        std::fs::read(path).map_err(|e| {
            (
                key.to_string(),
                format!("cannot read `{}`: {e}", path.display()),
            )
        })
    };
    let cert_pem = read("server.tls.cert", &tls.cert)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            (
                "server.tls.cert".to_string(),
                format!("`{}` is not valid PEM: {e}", tls.cert.display()),
            )
        })?;
    if certs.is_empty() {
        return Err((
            "server.tls.cert".to_string(),
            format!("`{}` holds no CERTIFICATE block", tls.cert.display()),
        ));
    }
    let key_pem = read("server.tls.key", &tls.key)?;
    match rustls_pemfile::private_key(&mut key_pem.as_slice()) {
        Ok(Some(key)) => {
            let certified = crate::tls::certified_key(certs, key).map_err(|e| {
                (
                    "server.tls.key".to_string(),
                    format!("`{}` does not fit the certificate: {e}", tls.key.display()),
                )
            })?;
            Ok(LoadedTls {
                cert: tls.cert.clone(),
                key: tls.key.clone(),
                certified,
            })
        }
        Ok(None) => Err((
            "server.tls.key".to_string(),
            format!("`{}` holds no PRIVATE KEY block", tls.key.display()),
        )),
        Err(e) => Err((
            "server.tls.key".to_string(),
            format!("`{}` is not valid PEM: {e}", tls.key.display()),
        )),
    }
}
