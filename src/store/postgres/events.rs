//! The audit log on PostgreSQL.
//!
//! An event is written in its operation's transaction with a private `key` from a sequence and
//! no public id; it is *numbered* after that transaction commits (migration 4). The numberer runs
//! one at a time under an advisory lock, takes every committed row not numbered yet, in key
//! order, and gives them the next ids from the `event_clock` row: ids increase by one in the
//! order rows become visible, and `at` never goes backwards, whichever replica writes. So a
//! reader tailing by id never skips an event that commits later, as with redb, and no append
//! holds a shared lock through its commit (that queued every replica's sign-ins behind one WAL
//! flush at a time). The numberer is the SQL function `number_events` (one round trip). The
//! writer numbers right after its commit; readers number before reading, which also numbers the
//! rows of a writer that died between its commit and its numbering.
//!
//! Failed sign-ins are tallied per period, client network and user exactly as in the redb
//! backend (`store/events.rs` holds the keys).

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::cached::Cached;
use super::{json, record, PostgresStore};
use crate::store::backend::EventStore;
use crate::store::events::{period_prefix, tally_key, MAX_TALLIES, TALLY_PERIOD_SECS};
use crate::store::model::{Event, EventKind, LoginFailure, NewEvent};
use crate::store::rules::{appended_event, new_tally};
use crate::store::StoreError;

/// Events deleted by one purge at most, so one upkeep's transaction stays short.
const PURGE_BATCH: i64 = 10_000;

/// Rows one numbering takes at most; a writer whose rows were left out numbers again.
const NUMBER_BATCH: i32 = 1_000;

/// The advisory lock key of the failure tallies ("pkgw-tly").
const TALLY_LOCK: i64 = 0x706b_6777_2d74_6c79;

/// Events a transaction appended, with their row keys: numbered and logged once it commits
/// (see [`PostgresStore::published`]).
pub(super) type Appended = Vec<(i64, Event)>;

#[async_trait]
impl EventStore for PostgresStore {
    async fn record_login_failure(
        &self,
        failure: LoginFailure,
        now: i64,
    ) -> Result<Event, StoreError> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let tallied = tally(&txn, failure, now).await?;
        txn.commit().await?;
        let mut events = self.published(&conn, vec![tallied]).await;
        Ok(events.remove(0))
    }

    async fn events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn().await?;
        number(&conn, &[]).await?;
        let rows = conn
            .rows(
                "SELECT id, at, record FROM events WHERE id IS NOT NULL
                 ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
            .await?;
        rows.iter().map(event_of).collect()
    }

    async fn record_event(&self, new: NewEvent, now: i64) -> Result<Event, StoreError> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut appended = Vec::new();
        append(&txn, new, now, &mut appended).await?;
        txn.commit().await?;
        let mut events = self.published(&conn, appended).await;
        Ok(events.remove(0))
    }

    // Only numbered rows are read, and numbering follows visibility (see the module comment),
    // so a reader tailing by id never skips an event that commits later.
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn().await?;
        number(&conn, &[]).await?;
        let rows = conn
            .rows(
                "SELECT id, at, record FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await?;
        rows.iter().map(event_of).collect()
    }

    async fn purge_events(&self, cutoff: i64, now: i64) -> Result<usize, StoreError> {
        let current = period_prefix(now);
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // `at` never decreases with the id, so the oldest ids are the old events. Rows not
        // numbered yet are left for the numberer: a tailer sees every event before it goes.
        let old = txn
            .run(
                "DELETE FROM events WHERE key IN
                     (SELECT key FROM events WHERE id IS NOT NULL AND at < $1
                      ORDER BY id LIMIT $2)",
                &[&cutoff, &PURGE_BATCH],
            )
            .await?;
        txn.run(
            "DELETE FROM event_tallies WHERE key COLLATE \"C\" < $1",
            &[&current],
        )
        .await?;
        txn.commit().await?;
        self.committed();
        Ok(usize::try_from(old).unwrap_or(usize::MAX))
    }
}

impl PostgresStore {
    /// After a commit that appended `appended`: counts the write, numbers the rows (with any
    /// others waiting), logs the events and returns them. The write stands whatever happens
    /// here: should the numbering fail, the events are logged and returned with id 0, and the
    /// next reader numbers them.
    pub(super) async fn published(
        &self,
        conn: &deadpool_postgres::Object,
        appended: Appended,
    ) -> Vec<Event> {
        self.committed();
        logged(numbered(conn, &appended).await, appended)
    }
}

/// Logs committed events as `numbering` returned them, numbered; if it failed, as `appended`,
/// with id 0 (the next reader numbers them). Returns what it logged.
pub(super) fn logged<E: std::fmt::Display>(
    numbering: Result<Vec<Event>, E>,
    appended: Appended,
) -> Vec<Event> {
    let events = match numbering {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "audit events committed but not numbered yet");
            appended.into_iter().map(|(_, event)| event).collect()
        }
    };
    for event in &events {
        crate::store::writer::log_event(event);
    }
    events
}

/// Appends an event in `txn`; operations call it last, after their checks. The event and its
/// row key go to `appended`, to be numbered and logged once the transaction commits.
pub(super) async fn append(
    txn: &Transaction<'_>,
    new: NewEvent,
    now: i64,
    appended: &mut Appended,
) -> Result<(), StoreError> {
    appended.push(written(txn, new, now).await?);
    Ok(())
}

/// As [`append`], returning the row key and event (for a caller that pipelines it with other
/// statements).
pub(super) async fn written(
    txn: &Transaction<'_>,
    new: NewEvent,
    now: i64,
) -> Result<(i64, Event), StoreError> {
    let event = appended_event(new, 0, now);
    let key = insert(txn, &event).await?;
    Ok((key, event))
}

/// Writes a new, unnumbered row; returns its key.
async fn insert(txn: &Transaction<'_>, event: &Event) -> Result<i64, StoreError> {
    let row = txn
        .one(
            "INSERT INTO events (at, record) VALUES ($1, $2) RETURNING key",
            &[&event.at, &json(event)],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// `appended` with the ids and times the numberer gave them.
pub(super) async fn numbered(
    conn: &deadpool_postgres::Object,
    appended: &Appended,
) -> Result<Vec<Event>, StoreError> {
    let mut slots = HashMap::new();
    let mut waiting: Vec<i64> = appended
        .iter()
        .filter(|(_, event)| event.id == 0)
        .map(|(key, _)| *key)
        .collect();
    // A row left out of one numbering's batch is among the oldest left for the next.
    while !waiting.is_empty() {
        slots.extend(number(conn, &waiting).await?);
        waiting.retain(|key| !slots.contains_key(key));
    }
    Ok(appended
        .iter()
        .map(|(key, event)| match slots.get(key) {
            Some(&(id, at)) => Event {
                id,
                at,
                last_at: event.last_at.map(|last| last.max(at)),
                ..event.clone()
            },
            None => event.clone(),
        })
        .collect())
}

/// One numbering (`number_events` in migration 4, one round trip); returns key -> (id, at) for
/// the rows of `wanted` that have an id now.
async fn number(
    conn: &deadpool_postgres::Object,
    wanted: &[i64],
) -> Result<HashMap<i64, (u64, i64)>, StoreError> {
    let rows = conn
        .rows(
            "SELECT event_key, event_id, event_at FROM number_events($1, $2)",
            &[&wanted, &NUMBER_BATCH],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, slot(row.try_get(1)?, row.try_get(2)?)?)))
        .collect()
}

/// Takes the numberer's lock until `txn` ends: whoever gives ids holds it (the numberer, and
/// `store migrate` copying numbered events in).
pub(super) async fn hold_numbering(txn: &Transaction<'_>) -> Result<(), StoreError> {
    txn.run("SELECT hold_event_numbering()", &[]).await?;
    Ok(())
}

fn slot(id: i64, at: i64) -> Result<(u64, i64), StoreError> {
    let id = u64::try_from(id).map_err(|_| StoreError::Corrupt("a negative event id".into()))?;
    Ok((id, at))
}

/// An event row: its record, with the id and time from its columns (the numberer sets them).
fn event_of(row: &Row) -> Result<Event, StoreError> {
    let mut event: Event = record(row, "events")?;
    let id: Option<i64> = row.try_get("id")?;
    let (id, at) = slot(id.unwrap_or(0), row.try_get("at")?)?;
    event.id = id;
    event.at = at;
    event.last_at = event.last_at.map(|last| last.max(at));
    Ok(event)
}

/// Adds one failure to its row, creating the row (or using the overflow row) when needed;
/// returns the row's key and event.
async fn tally(
    txn: &Transaction<'_>,
    failure: LoginFailure,
    now: i64,
) -> Result<(i64, Event), StoreError> {
    // Tallies run one at a time (a lock of their own, not the numberer's), so the per-period
    // row count is exact.
    txn.run("SELECT pg_advisory_xact_lock($1)", &[&TALLY_LOCK])
        .await?;
    let kind = EventKind::LoginFailed;
    let client = failure.client.clone().unwrap_or_else(|| "-".into());
    let own = tally_key(now, kind, &client, failure.user_id);
    let overflow =
        tally_of(txn, &own).await?.is_none() && period_rows(txn, now).await? >= MAX_TALLIES;
    let key = if overflow {
        tally_key(now, kind, "*", None)
    } else {
        own
    };
    let found = match tally_of(txn, &key).await? {
        Some(row_key) => txn
            .opt(
                "SELECT key, id, at, record FROM events WHERE key = $1",
                &[&row_key],
            )
            .await?
            .map(|row| Ok::<_, StoreError>((row_key, event_of(&row)?)))
            .transpose()?,
        None => None,
    };
    if let Some((row_key, mut event)) = found {
        event.count = event.count.saturating_add(1);
        event.last_at = Some(now.max(event.at));
        // Only the record: the numberer owns the id and `at` columns.
        txn.run(
            "UPDATE events SET record = $2 WHERE key = $1",
            &[&row_key, &json(&event)],
        )
        .await?;
        return Ok((row_key, event));
    }
    // No row yet, or retention purged it meanwhile: start a new one.
    let event = new_tally((0, now), kind, failure, client, overflow);
    let row_key = insert(txn, &event).await?;
    txn.run(
        "INSERT INTO event_tallies (key, event_key) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET event_key = excluded.event_key",
        &[&key, &row_key],
    )
    .await?;
    Ok((row_key, event))
}

async fn tally_of(txn: &Transaction<'_>, key: &str) -> Result<Option<i64>, StoreError> {
    let row = txn
        .opt(
            "SELECT event_key FROM event_tallies WHERE key = $1",
            &[&key],
        )
        .await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}

/// Rows the current period already has.
async fn period_rows(txn: &Transaction<'_>, now: i64) -> Result<usize, StoreError> {
    let start = period_prefix(now);
    let end = period_prefix(now + TALLY_PERIOD_SECS);
    let row = txn
        .one(
            "SELECT count(*) FROM event_tallies
             WHERE key COLLATE \"C\" >= $1 AND key COLLATE \"C\" < $2",
            &[&start, &end],
        )
        .await?;
    Ok(usize::try_from(row.try_get::<_, i64>(0)?).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::tests::pg::TestDatabase;

    fn new_event(detail: &str) -> NewEvent {
        NewEvent {
            kind: EventKind::KeysRotated,
            user_id: None,
            passkey_id: None,
            detail: detail.into(),
        }
    }

    fn details(events: &[Event]) -> Vec<(u64, &str)> {
        events.iter().map(|e| (e.id, e.detail.as_str())).collect()
    }

    // The interleaving the old clock row prevented by making every other append wait: an event
    // written before others but committed after a tailer read them.
    #[tokio::test]
    async fn an_event_committed_late_is_numbered_after_those_already_read() {
        let database = TestDatabase::create().await;
        let (store, other) = (database.store().await, database.store().await);
        let mut conn = store.conn().await.unwrap();
        let txn = conn.transaction().await.unwrap();
        let mut late = Vec::new();
        append(&txn, new_event("late"), 1_000, &mut late)
            .await
            .unwrap();

        let early = other.record_event(new_event("early"), 1_001).await.unwrap();
        assert_eq!((early.id, early.at), (1, 1_001));
        let read = other.events_after(0, 10).await.unwrap();
        assert_eq!(details(&read), [(1, "early")]);

        txn.commit().await.unwrap();
        let late = store.published(&conn, late).await;
        // The next id, and a time no earlier than the event before it.
        assert_eq!((late[0].id, late[0].at), (2, 1_001));
        let read = other.events_after(1, 10).await.unwrap();
        assert_eq!(details(&read), [(2, "late")]);
    }

    // A writer that commits and dies before numbering: its event is numbered by the next reader.
    #[tokio::test]
    async fn a_reader_numbers_events_whose_writer_did_not() {
        let database = TestDatabase::create().await;
        let store = database.store().await;
        let mut conn = store.conn().await.unwrap();
        let txn = conn.transaction().await.unwrap();
        let mut orphan = Vec::new();
        append(&txn, new_event("orphan"), 1_000, &mut orphan)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        drop(conn);

        let other = database.store().await;
        assert_eq!(details(&other.events(10).await.unwrap()), [(1, "orphan")]);
        let next = other.record_event(new_event("next"), 999).await.unwrap();
        assert_eq!((next.id, next.at), (2, 1_000));
    }
}
