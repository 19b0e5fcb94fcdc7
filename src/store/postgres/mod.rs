//! The PostgreSQL backend: [`PostgresStore`], every store operation on a database that several
//! gateway replicas share.
//!
//! Each table keeps its keys and constrained fields as columns and the serde record as `jsonb`
//! (`migrations/`). Every operation that spans records is one transaction that locks what it
//! checks (`FOR UPDATE`/`FOR SHARE`, or `DELETE … RETURNING` for what it spends), so the rules
//! the redb backend keeps by running one writer hold here across connections and replicas:
//! a ceremony completes once, a credential id is registered once, the passkey cap is exact,
//! a passkey's sessions go with it. The operations live in one file per noun beside this one.
//!
//! Connections come from a deadpool pool created empty: nothing connects until an operation
//! needs it, so a gateway built in one runtime serves from another. `connect` runs the
//! migrations first, on a connection of its own, and fails when the server does not answer.

mod cached;
mod ceremonies;
mod enrollments;
mod events;
mod import;
mod jobs;
mod keys;
mod migrations;
mod notify;
mod numbering;
mod passkeys;
mod pipelined;
mod sessions;
mod users;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::{de::DeserializeOwned, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use tokio_postgres::{NoTls, Row};

use super::backend::Storage;
use super::{StoreError, WriteStats};
use crate::clock::Clock;

pub use import::{Export, Imported};
pub use migrations::MIGRATIONS;
pub use notify::LISTENER_NAME;

/// How to reach the database (from `[store]`).
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// Overrides a password in the URL; from an environment variable or a file.
    pub password: Option<String>,
    pub pool_size: usize,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PostgresOptions {
    // The URL may hold a password: show where, not how.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("target", &target_of(&self.url))
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// The store in a PostgreSQL database; cheap to clone, all clones share one pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    /// `host:port/database`, for messages (never the password).
    target: String,
    clock: Arc<Clock>,
    writes: AtomicU64,
    commits: AtomicU64,
    numberer: numbering::Numberer,
}

impl PostgresStore {
    /// Connects, applies the migrations this binary knows (under an advisory lock, so replicas
    /// starting together apply each once), and returns the store with an empty pool.
    pub async fn connect(
        options: &PostgresOptions,
        clock: Arc<Clock>,
    ) -> Result<PostgresStore, StoreError> {
        let config = pg_config(options)?;
        let target = target_of(&options.url);
        migrations::apply(&config, &target).await?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // `Fast` trusts a connection the pool holds unless its socket closed; a query
                // that fails on a dead one is a 503 for one request, and the next gets a new one.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| storage(format!("cannot build the connection pool: {e}")))?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                config,
                target,
                clock,
                writes: AtomicU64::new(0),
                commits: AtomicU64::new(0),
                numberer: numbering::Numberer::default(),
            }),
        })
    }

    /// As [`PostgresStore::connect`], from synchronous code (start-up, inside or outside a
    /// runtime): runs on a thread of its own with a runtime of its own.
    pub fn connect_blocking(
        options: &PostgresOptions,
        clock: Arc<Clock>,
    ) -> Result<PostgresStore, StoreError> {
        let options = options.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| StoreError::Storage(Arc::new(e)))?;
            runtime.block_on(PostgresStore::connect(&options, clock))
        })
        .join()
        .map_err(|_| storage("connecting to PostgreSQL panicked".into()))?
    }

    /// `host:port/database`, for messages.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// Now, by the store's clock.
    pub(super) fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// A pooled connection.
    pub(super) async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(|e| {
            StoreError::Storage(Arc::new(PoolFailure {
                target: self.inner.target.clone(),
                message: e.to_string(),
            }))
        })
    }

    /// Counts a write transaction (for `write_stats`); call once it committed. One that
    /// appended events calls [`PostgresStore::published`] instead.
    pub(super) fn committed(&self) {
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.commits.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl Storage for PostgresStore {
    fn path(&self) -> Option<&Path> {
        None
    }

    fn write_stats(&self) -> WriteStats {
        WriteStats {
            writes: self.inner.writes.load(Ordering::Relaxed),
            commits: self.inner.commits.load(Ordering::Relaxed),
        }
    }

    fn keeps_signing_keys(&self) -> bool {
        true
    }

    async fn exclusive_job(
        &self,
        job: &'static str,
    ) -> Result<Option<Box<dyn Send + Sync>>, StoreError> {
        Ok(self
            .try_job_lock(job)
            .await?
            .map(|lock| Box::new(lock) as Box<dyn Send + Sync>))
    }

    async fn sealed_signing_keys(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        self.read_sealed_keys().await
    }

    async fn swap_sealed_signing_keys(
        &self,
        expected: Option<i64>,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.swap_sealed_keys(expected, sealed).await
    }

    fn follow_revocations(&self, sink: Arc<dyn super::RevocationSink>) -> bool {
        self.listen_for_revocations(sink);
        true
    }

    async fn user_by_name_with_passkeys(
        &self,
        username: &str,
    ) -> Result<Option<(crate::store::User, Vec<crate::store::Passkey>)>, StoreError> {
        self.owner_and_passkeys(username).await
    }

    async fn ceremony_and_passkey(
        &self,
        ceremony_id: uuid::Uuid,
        credential_id: &[u8],
    ) -> Result<
        (
            Option<crate::store::Ceremony>,
            Option<crate::store::Passkey>,
        ),
        StoreError,
    > {
        self.login_inputs(ceremony_id, credential_id).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.query_one("SELECT 1", &[]).await?;
        Ok(())
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.inner.target)
            .finish_non_exhaustive()
    }
}

/// The driver's settings from the options: password, timeouts, application name.
fn pg_config(options: &PostgresOptions) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|e| storage(format!("store.url is not a PostgreSQL URL: {e}")))?;
    if let Some(password) = &options.password {
        config.password(password.as_bytes());
    }
    if config.get_application_name().is_none() {
        config.application_name("passkey-gateway");
    }
    config.connect_timeout(options.connect_timeout);
    // The server cuts any statement (and any lock wait) that runs longer.
    config.options(format!(
        "-c statement_timeout={ms} -c lock_timeout={ms}",
        ms = options.statement_timeout.as_millis()
    ));
    Ok(config)
}

/// `host:port/database` of a URL, without user or password.
fn target_of(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let host = config
                .get_hosts()
                .first()
                .map(|host| match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let db = config.get_dbname().unwrap_or("");
            format!("{host}:{port}/{db}")
        }
        Err(_) => "an unparsable URL".into(),
    }
}

/// No connection could be had from the pool (server down, refused, timed out, bad password).
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL at {target} is not answering: {message}")]
struct PoolFailure {
    target: String,
    message: String,
}

pub(super) fn storage(message: String) -> StoreError {
    StoreError::Storage(Arc::new(std::io::Error::other(message)))
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        StoreError::Storage(Arc::new(error))
    }
}

/// Whether a statement failed on a unique constraint (a concurrent insert won the race).
pub(super) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// The `record` column of a row, as its serde type.
pub(super) fn record<T: DeserializeOwned>(row: &Row, table: &str) -> Result<T, StoreError> {
    row.try_get::<_, Json<T>>("record")
        .map(|json| json.0)
        .map_err(|e| StoreError::Corrupt(format!("a record in table `{table}`: {e}")))
}

/// Every row's `record`.
pub(super) fn records<T: DeserializeOwned>(
    rows: &[Row],
    table: &str,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|row| record(row, table)).collect()
}

/// A record as the `jsonb` parameter of a statement.
pub(super) fn json<T: Serialize>(value: &T) -> Json<&T> {
    Json(value)
}
