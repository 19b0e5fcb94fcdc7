//! [`Gateway`]: all the state of one running gateway, built from a [`Config`]. No global state,
//! so every test builds a fresh one.

use std::sync::Arc;

use crate::config::Config;
use crate::routing::Router;

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// One gateway: config, routes, and (as later modules land) store, sessions and signing keys.
#[derive(Debug)]
pub struct Gateway {
    pub config: Arc<Config>,
    pub router: Router,
}

impl Gateway {
    /// Builds the gateway's state from a validated config.
    pub fn new(config: Config) -> Result<Arc<Gateway>, StartError> {
        let router = Router::new(config.routes.clone());
        Ok(Arc::new(Gateway {
            config: Arc::new(config),
            router,
        }))
    }
}
