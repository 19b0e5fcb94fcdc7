//! The embedded backend: [`RedbStore`], every store operation on one redb file.
//!
//! Reads that look up one record run inline in their own read transaction; scans run on
//! tokio's blocking pool; writes go to one writer thread that commits whatever is queued in a
//! single transaction (group commit, see `writer.rs`) and acknowledges each only once it is
//! durable. The operations themselves live in one file per noun beside this one.

use redb::{Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::backend::Storage;
use super::tables::{self, SCHEMA_KEY, SCHEMA_VERSION};
use super::writer::{Batch, Writer};
use super::{StoreError, WriteStats};
use crate::clock::Clock;

/// The store in one redb file; cheap to clone, all clones share one file and one writer.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

// Field order matters: the writer is dropped (and joined) before the database closes.
struct Inner {
    writer: Writer,
    db: Arc<Database>,
    path: PathBuf,
    /// Bounds scans in flight. Each runs on a tokio blocking thread, and every such thread keeps
    /// its own allocator heap: reads on blocking threads at concurrency 32 grew that pool to 64
    /// threads (+11 MiB of RSS), for no gain on 2 cores.
    scans: tokio::sync::Semaphore,
    /// What "now" is for expiry checks and the times records are stamped with.
    clock: Arc<Clock>,
}

/// Scans running at once (the rest wait their turn).
const CONCURRENT_SCANS: usize = 2;

/// redb's page cache: enough for the indexes and the pages in use.
const STORE_CACHE_BYTES: usize = 8 << 20;

impl RedbStore {
    /// Opens (or creates) the store file, checking and recording its schema version.
    ///
    /// Blocks while it opens the file; call it at startup or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>, clock: Arc<Clock>) -> Result<RedbStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path)?;
        // redb caches up to 1 GiB of pages by default. The gateway keeps what is hot (sessions)
        // in its own cache, so a large page cache would only hold a second copy of it: keep it
        // small (measured: -75 MiB of RSS with 100,000 live sessions, see BENCHMARKS.md).
        let db = match redb::Builder::new()
            .set_cache_size(STORE_CACHE_BYTES)
            .create(&path)
        {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::Locked { path }),
            Err(error) => return Err(StoreError::Storage(Arc::new(redb::Error::from(error)))),
        };
        check_schema(&db, &path)?;
        let db = Arc::new(db);
        let writer = Writer::start(db.clone())?;
        Ok(RedbStore {
            inner: Arc::new(Inner {
                writer,
                db,
                path,
                scans: tokio::sync::Semaphore::new(CONCURRENT_SCANS),
                clock,
            }),
        })
    }

    /// Now, by the store's clock.
    pub(super) fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// A point lookup (one record, or one user's few), run inline. redb serves it from its page
    /// cache or the OS's in microseconds; handing it to a blocking thread cost more than the read
    /// (two context switches): inline, logins went from ~1,770 to ~1,920/s (BENCHMARKS.md).
    pub(super) async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    {
        let txn = self.inner.db.begin_read()?;
        op(&txn)
    }

    /// A read that walks a whole table (admin listings), on a blocking thread.
    pub(super) async fn scan<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        // Never closed, so acquiring only waits.
        let _permit = self.inner.scans.acquire().await;
        // The clone keeps the database open for as long as the read runs.
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let txn = store.inner.db.begin_read()?;
            op(&txn)
        })
        .await
        .map_err(|_| {
            StoreError::Storage(Arc::new(std::io::Error::other("a store read panicked")))
        })?
    }

    /// Runs `op` in the next group-commit batch; returns once that batch is durable.
    pub(super) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Batch<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(true, op).await
    }

    /// As [`RedbStore::write`], for what may be lost in a crash (begun ceremonies): a batch of only
    /// such operations commits without an fsync; it becomes durable with the next durable one.
    pub(super) async fn write_volatile<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Batch<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(false, op).await
    }
}

#[async_trait::async_trait]
impl Storage for RedbStore {
    fn path(&self) -> Option<&Path> {
        Some(&self.inner.path)
    }

    fn write_stats(&self) -> WriteStats {
        let counters = self.inner.writer.counters();
        WriteStats {
            writes: counters.queued.load(Ordering::Relaxed),
            commits: counters.commits.load(Ordering::Relaxed),
        }
    }

    fn commit_time(&self) -> std::time::Duration {
        let micros = self
            .inner
            .writer
            .counters()
            .commit_micros
            .load(Ordering::Relaxed);
        std::time::Duration::from_micros(micros)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.read(|txn| {
            let meta = txn.open_table(tables::META)?;
            meta.get(SCHEMA_KEY)?;
            Ok(())
        })
        .await
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Creates a missing store file readable by its owner only (it holds emails and session
/// hashes); an existing file keeps the permissions its operator gave it.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::Storage(Arc::new(error))),
    }
}

/// Refuses files from a newer binary and stamps new files; creates missing tables.
fn check_schema(db: &Database, path: &Path) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(tables::META)?;
        let found = meta.get(SCHEMA_KEY)?.map(|guard| guard.value());
        match found {
            Some(found) if found > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    path: path.to_path_buf(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            // Older versions would be migrated here; version 1 is the first.
            Some(_) => {}
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
            }
        }
    }
    tables::create_all(&txn)?;
    txn.commit()?;
    Ok(())
}
