//! Sign-in events numbered and logged off the sign-in's path.
//!
//! A writer that waits for its rows' ids (see [`PostgresStore::published`]) pays one more round
//! trip and one more commit, with its WAL flush, per operation: on a sign-in that was a sixth of
//! the database's CPU and a queue on the numberer's lock. A sign-in does not need its event's id,
//! so `complete_login` hands its rows to this replica's numberer instead: one task per store that
//! numbers every row handed to it since its last round, at most one round per [`PACE`], and logs
//! them. Readers number before they read (`events.rs`), so no tailer ever waits for this task; a
//! replica that stops with rows still here leaves them to the next reader, and only their log
//! lines are lost.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TryRecvError, UnboundedReceiver, UnboundedSender};
use tokio::time::MissedTickBehavior;

use super::events::{logged, numbered, Appended};
use super::PostgresStore;
use crate::store::model::Event;

/// The shortest time between two rounds: under load each round numbers every sign-in of the
/// last `PACE` with one call and one commit; when idle, a row is numbered as soon as it comes.
const PACE: Duration = Duration::from_millis(10);

/// The store's handle on its numberer, started by the first row handed to it (so in the runtime
/// that serves, not the one that connected).
#[derive(Default)]
pub(super) struct Numberer {
    rows: OnceLock<UnboundedSender<(i64, Event)>>,
}

impl PostgresStore {
    /// As [`PostgresStore::published`] without waiting for the ids: the events are numbered and
    /// logged by this store's numberer. Falls back to numbering here when that task is gone (its
    /// runtime shut down).
    pub(super) async fn published_later(
        &self,
        conn: &deadpool_postgres::Object,
        appended: Appended,
    ) {
        let rows = self.inner.numberer.rows.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(run(self.inner.pool.clone(), receiver));
            sender
        });
        let mut orphans = Vec::new();
        for row in appended {
            if let Err(refused) = rows.send(row) {
                orphans.push(refused.0);
            }
        }
        if orphans.is_empty() {
            self.committed();
        } else {
            self.published(conn, orphans).await;
        }
    }
}

/// The numberer's loop: ends once every sender is gone and what they sent is numbered.
async fn run(pool: deadpool_postgres::Pool, mut receiver: UnboundedReceiver<(i64, Event)>) {
    let mut pace = tokio::time::interval(PACE);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pending = Vec::new();
    loop {
        match receiver.recv().await {
            Some(row) => pending.push(row),
            None => return,
        }
        pace.tick().await;
        let open = take_waiting(&mut receiver, &mut pending);
        round(&pool, std::mem::take(&mut pending)).await;
        if !open {
            return;
        }
    }
}

/// Moves every row already sent into `pending`; false once the channel is closed and empty.
fn take_waiting(
    receiver: &mut UnboundedReceiver<(i64, Event)>,
    pending: &mut Vec<(i64, Event)>,
) -> bool {
    loop {
        match receiver.try_recv() {
            Ok(row) => pending.push(row),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}

/// Numbers and logs `pending`. On failure the events are logged without ids: they are committed,
/// and the next reader numbers them.
async fn round(pool: &deadpool_postgres::Pool, pending: Appended) {
    logged(number(pool, &pending).await, pending);
}

async fn number(
    pool: &deadpool_postgres::Pool,
    pending: &Appended,
) -> Result<Vec<Event>, Box<dyn std::error::Error + Send + Sync>> {
    let conn = pool.get().await?;
    Ok(numbered(&conn, pending).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::store::tests::World;

    // Nothing reads the log here, so only the numberer can give the sign-ins their ids.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_ins_are_numbered_without_a_reader() {
        let world = World::postgres().await;
        let alice = world.user("alice").await;
        let key = world.register(&alice, b"cred-a").await;
        for n in 0..20 {
            world.login(&key, &format!("cookie {n}")).await;
        }
        let admin = world.database.as_ref().unwrap().admin().await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let (rows, top) = loop {
            let row = admin
                .query_one(
                    "SELECT count(*) FILTER (WHERE id IS NULL), count(*), max(id) FROM events",
                    &[],
                )
                .await
                .unwrap();
            let waiting: i64 = row.get(0);
            if waiting == 0 {
                break (row.get::<_, i64>(1), row.get::<_, Option<i64>>(2));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{waiting} never numbered"
            );
            tokio::task::yield_now().await;
        };
        // The user, the passkey, the 20 sign-ins: ids 1..=22, no gap.
        assert_eq!((rows, top), (22, Some(22)));
    }
}
