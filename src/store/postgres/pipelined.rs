//! A transaction whose `BEGIN` travels with its first statements and whose `COMMIT` travels with
//! its last: two round trips for a sign-in's complete instead of four. tokio-postgres sends a
//! request when its future is first polled and the server answers in order, so a `join!` that
//! polls in order (`biased`) sends in order.
//!
//! Only statements already prepared may go in a pipeline: preparing one on the way would send its
//! execution after whatever was polled next (a `COMMIT` included). [`Pipelined::prepared`] does
//! that first, once per connection (deadpool's statement cache).
//!
//! A `COMMIT` after a failed statement rolls back (the server answers `ROLLBACK`), so a write that
//! fails in the last batch leaves nothing behind. A transaction dropped while open (its caller
//! cancelled) takes its connection out of the pool: the server rolls back when it closes.

use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Object;
use tokio_postgres::Statement;

use crate::store::StoreError;

pub(super) struct Pipelined {
    conn: Option<Object>,
    /// The server ended the transaction (committed or rolled back).
    ended: AtomicBool,
}

impl Pipelined {
    /// Nothing is sent until [`Pipelined::begin`] is polled.
    pub(super) fn new(conn: Object) -> Pipelined {
        Pipelined {
            conn: Some(conn),
            ended: AtomicBool::new(false),
        }
    }

    /// The connection, to run the transaction's statements on.
    pub(super) fn conn(&self) -> &tokio_postgres::Client {
        self.object()
    }

    /// `sql` prepared on this connection (from its cache after the first time).
    pub(super) async fn prepared(&self, sql: &str) -> Result<Statement, StoreError> {
        Ok(self.object().prepare_cached(sql).await?)
    }

    /// Sends `BEGIN`; poll it before the first statements, in the same `join!`.
    pub(super) async fn begin(&self) -> Result<(), StoreError> {
        Ok(self.conn().batch_execute("BEGIN").await?)
    }

    /// Sends `COMMIT`; poll it after the last statements, in the same `join!`.
    pub(super) async fn commit(&self) -> Result<(), StoreError> {
        self.end("COMMIT").await
    }

    /// Rolls back (a refused complete).
    pub(super) async fn rollback(&self) {
        if let Err(e) = self.end("ROLLBACK").await {
            tracing::debug!(error = %e, "rolling back a refused transaction failed");
        }
    }

    async fn end(&self, how: &str) -> Result<(), StoreError> {
        self.conn().batch_execute(how).await?;
        self.ended.store(true, Ordering::Release);
        Ok(())
    }

    /// The pooled connection itself.
    pub(super) fn object(&self) -> &Object {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a pipelined transaction is used after it ended"),
        }
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        // Still open (or its end unanswered): the connection is not reused.
        if let Some(conn) = self.conn.take() {
            if !self.ended.load(Ordering::Acquire) {
                drop(Object::take(conn));
            }
        }
    }
}
