//! Opening the store `[store]` names: the redb file in `server.data_dir`, or the PostgreSQL
//! database shared by replicas (connected and migrated before anything else starts, so an
//! unreachable database stops `serve` with a message instead of failing requests later).

use std::sync::Arc;

use super::{PostgresOptions, PostgresStore, Store, StoreError};
use crate::clock::Clock;
use crate::config::{Config, StoreBackend};

/// The store file's name inside `server.data_dir` (the redb backend).
pub const STORE_FILE: &str = "gateway.redb";

impl Store {
    /// Opens the configured backend, telling time by `clock`. Blocks (redb opens a file,
    /// PostgreSQL connects and migrates on a thread of its own).
    pub fn open_configured(config: &Config, clock: Arc<Clock>) -> Result<Store, StoreError> {
        match config.store.backend {
            StoreBackend::Redb => {
                Store::open_with_clock(config.server.data_dir.join(STORE_FILE), clock)
            }
            StoreBackend::Postgres => {
                let options = postgres_options(config)?;
                Ok(Store::with_backend(PostgresStore::connect_blocking(
                    &options, clock,
                )?))
            }
        }
    }
}

/// The PostgreSQL settings of `[store]`.
pub fn postgres_options(config: &Config) -> Result<PostgresOptions, StoreError> {
    let store = &config.store;
    let url = store
        .url
        .clone()
        .ok_or(StoreError::Invalid("store.url is required for PostgreSQL"))?;
    Ok(PostgresOptions {
        url,
        password: store.password.as_ref().map(|p| p.expose().to_string()),
        pool_size: store.pool_size,
        statement_timeout: store.statement_timeout,
        connect_timeout: store.connect_timeout,
    })
}
