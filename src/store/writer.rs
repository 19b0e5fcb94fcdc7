//! Group commit: the one thread that writes to the redb file.
//!
//! Every write operation is queued here. The thread takes everything queued, applies each
//! operation in turn inside ONE write transaction, commits once (one fsync for the lot), and
//! only then answers each caller: nothing is acknowledged before its commit returned.
//! A batch made only of *volatile* operations (begun ceremonies) commits without the fsync:
//! redb makes it durable with the next durable commit, and a crash before that loses only
//! challenges in flight, which the browser asks for again.
//!
//! An operation checks all its rules before it writes, so one that fails a rule leaves nothing
//! behind and the others in the batch go on. A backend failure (or a panic) poisons the
//! transaction: the batch is aborted and every caller in it gets the error. This module knows
//! nothing about users or passkeys; the operations are closures from the other `store` files.

use super::error::StoreError;
use super::model::Event;
use super::tables::*;
use redb::{Database, Durability, MultimapTable, Table, WriteTransaction};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

// Bounds one transaction's size, so a flood of writers still sees commits at a steady pace.
const MAX_BATCH: usize = 512;

/// Every table, opened once per batch, plus the audit events the current batch appended.
pub(super) struct Batch<'txn> {
    pub(super) users: Table<'txn, u128, &'static [u8]>,
    pub(super) usernames: Table<'txn, &'static str, u128>,
    pub(super) passkeys: Table<'txn, u128, &'static [u8]>,
    pub(super) credential_ids: Table<'txn, &'static [u8], u128>,
    pub(super) user_passkeys: MultimapTable<'txn, u128, u128>,
    pub(super) ceremonies: Table<'txn, u128, &'static [u8]>,
    pub(super) enrollments: Table<'txn, &'static [u8; 32], &'static [u8]>,
    pub(super) user_enrollments: MultimapTable<'txn, u128, &'static [u8; 32]>,
    pub(super) sessions: Table<'txn, &'static [u8; 32], &'static [u8]>,
    pub(super) user_sessions: MultimapTable<'txn, u128, &'static [u8; 32]>,
    pub(super) events: Table<'txn, u64, &'static [u8]>,
    pub(super) event_tallies: Table<'txn, &'static str, u64>,
    /// Events appended by the operation now running; logged once the batch commits.
    pub(super) emitted: Vec<Event>,
}

impl<'txn> Batch<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Batch {
            users: txn.open_table(USERS)?,
            usernames: txn.open_table(USERNAMES)?,
            passkeys: txn.open_table(PASSKEYS)?,
            credential_ids: txn.open_table(CREDENTIAL_IDS)?,
            user_passkeys: txn.open_multimap_table(USER_PASSKEYS)?,
            ceremonies: txn.open_table(CEREMONIES)?,
            enrollments: txn.open_table(ENROLLMENTS)?,
            user_enrollments: txn.open_multimap_table(USER_ENROLLMENTS)?,
            sessions: txn.open_table(SESSIONS)?,
            user_sessions: txn.open_multimap_table(USER_SESSIONS)?,
            events: txn.open_table(EVENTS)?,
            event_tallies: txn.open_table(EVENT_TALLIES)?,
            emitted: Vec::new(),
        })
    }
}

/// The sending side of the queue; dropping it stops the thread after its last batch.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// Running totals, to observe that group commit groups (tests, later metrics).
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Operations handed to the writer.
    pub(super) queued: AtomicU64,
    /// Transactions committed (each one fsync).
    pub(super) commits: AtomicU64,
    /// Time spent in those commits, microseconds (the `store_commit_seconds` metric).
    pub(super) commit_micros: AtomicU64,
}

impl Writer {
    /// Starts the writer thread over an open database.
    pub(super) fn start(db: Arc<Database>) -> Result<Writer, StoreError> {
        let (queue, jobs) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&db, &jobs, &thread_counters))
            .map_err(|e| StoreError::Storage(Arc::new(e)))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            counters,
        })
    }

    /// Runs `op` in the next batch and returns its result once that batch is committed: durable
    /// if `durable` or if any other operation in the batch is.
    pub(super) async fn write<T, F>(&self, durable: bool, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Batch<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or(StoreError::Closed)?;
        queue
            .send(Box::new(Pending { op, reply, durable }))
            .map_err(|_| StoreError::Closed)?;
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The writer's running totals.
    pub(super) fn counters(&self) -> &Counters {
        &self.counters
    }
}

impl Drop for Writer {
    // Joining makes "drop the Store, reopen the file" work: the thread holds the database,
    // and so the file lock, until it has finished its last batch.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // Never join ourselves (a Store dropped by an operation would otherwise hang).
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn run(db: &Database, jobs: &mpsc::Receiver<Box<dyn Job>>, counters: &Counters) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        apply(db, batch, counters);
    }
}

/// Applies and commits one batch; true if it committed. The commit is counted before any caller
/// is answered, so a caller that reads the counters after its reply sees its own batch.
fn apply(db: &Database, jobs: Vec<Box<dyn Job>>, counters: &Counters) -> bool {
    let mut txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(error) => return fail_all(jobs, error.into()),
    };
    if !jobs.iter().any(|job| job.durable()) {
        // Refused only with persistent savepoints (we make none); then it stays durable.
        let _ = txn.set_durability(Durability::None);
    }
    let mut batch = match Batch::open(&txn) {
        Ok(batch) => batch,
        // Dropping the unused transaction aborts it.
        Err(error) => return fail_all(jobs, error),
    };
    let mut settles = Vec::with_capacity(jobs.len());
    let mut poison = None;
    for job in jobs {
        let (settle, failure) = job.run(&mut batch);
        settles.push(settle);
        poison = poison.or(failure);
    }
    drop(batch);
    let commit = match poison {
        Some(error) => {
            drop(txn.abort());
            Err(error)
        }
        None => {
            let started = std::time::Instant::now();
            let done = txn.commit().map_err(StoreError::from);
            let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            counters.commit_micros.fetch_add(took, Ordering::Relaxed);
            done
        }
    };
    if let Err(error) = &commit {
        tracing::warn!(%error, "store write batch not committed");
    }
    let committed = commit.is_ok();
    if committed {
        counters.commits.fetch_add(1, Ordering::Relaxed);
    }
    for settle in settles {
        settle.settle(commit.clone());
    }
    committed
}

fn fail_all(jobs: Vec<Box<dyn Job>>, error: StoreError) -> bool {
    tracing::warn!(%error, "store write batch could not start");
    for job in jobs {
        job.fail(error.clone());
    }
    false
}

/// A queued operation, with its result type erased so one queue carries them all.
trait Job: Send {
    /// Applies the operation; also returns the error that must abort the batch, if any.
    fn run(self: Box<Self>, batch: &mut Batch<'_>) -> (Box<dyn Settle>, Option<StoreError>);
    /// Answers the caller without running (the batch could not start).
    fn fail(self: Box<Self>, error: StoreError);
    /// Whether its commit must be durable before the caller is answered.
    fn durable(&self) -> bool;
}

/// An applied operation waiting for its batch's commit.
trait Settle: Send {
    fn settle(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Pending<T, F> {
    op: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
    durable: bool,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut Batch<'_>) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, batch: &mut Batch<'_>) -> (Box<dyn Settle>, Option<StoreError>) {
        let Pending { op, reply, .. } = *self;
        batch.emitted.clear();
        let result = match catch_unwind(AssertUnwindSafe(|| op(batch))) {
            Ok(result) => result,
            Err(_) => Err(StoreError::Storage(Arc::new(std::io::Error::other(
                "a store operation panicked",
            )))),
        };
        // Only a backend failure can leave a half-applied operation; rule violations are
        // decided before any write, so they leave the batch intact.
        let poison = match &result {
            Err(error) if error.is_backend_failure() => Some(error.clone()),
            _ => None,
        };
        let events = std::mem::take(&mut batch.emitted);
        (
            Box::new(Applied {
                result,
                events,
                reply,
            }),
            poison,
        )
    }

    fn durable(&self) -> bool {
        self.durable
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

struct Applied<T> {
    result: Result<T, StoreError>,
    events: Vec<Event>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send> Settle for Applied<T> {
    fn settle(self: Box<Self>, commit: Result<(), StoreError>) {
        let outcome = commit.and(self.result);
        if outcome.is_ok() {
            for event in &self.events {
                log_event(event);
            }
        }
        // The caller may have given up waiting; the write stands either way.
        let _ = self.reply.send(outcome);
    }
}

// Audit events also go to the log, after they are durable. Never a secret in any field.
pub(super) fn log_event(event: &Event) {
    tracing::info!(
        event_id = event.id,
        kind = %event.kind,
        user_id = ?event.user_id,
        passkey_id = ?event.passkey_id,
        detail = %event.detail,
        count = event.count,
        client = event.client.as_deref().unwrap_or("-"),
        "audit"
    );
}
