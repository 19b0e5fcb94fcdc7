//! The audit log on PostgreSQL. Ids and times come from the one `event_clock` row, locked by
//! each append until its transaction commits: ids increase by one in commit order and `at`
//! never goes backwards, whichever replica writes. Failed sign-ins are tallied per period,
//! client network and user exactly as in the redb backend (`store/events.rs` holds the keys).

use async_trait::async_trait;
use tokio_postgres::Transaction;

use super::{json, record, records, PostgresStore};
use crate::store::backend::EventStore;
use crate::store::events::{period_prefix, tally_key, MAX_TALLIES, TALLY_PERIOD_SECS};
use crate::store::model::{Event, EventKind, LoginFailure, NewEvent};
use crate::store::rules::{appended_event, new_tally};
use crate::store::StoreError;

/// Events deleted by one purge at most, so one upkeep's transaction stays short.
const PURGE_BATCH: i64 = 10_000;

#[async_trait]
impl EventStore for PostgresStore {
    async fn record_login_failure(
        &self,
        failure: LoginFailure,
        now: i64,
    ) -> Result<Event, StoreError> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let event = tally(&txn, failure, now).await?;
        txn.commit().await?;
        self.committed(std::slice::from_ref(&event));
        Ok(event)
    }

    async fn events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT record FROM events ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
            .await?;
        records(&rows, "events")
    }

    async fn record_event(&self, new: NewEvent, now: i64) -> Result<Event, StoreError> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut emitted = Vec::new();
        let event = append(&txn, new, now, &mut emitted).await?;
        txn.commit().await?;
        self.committed(&emitted);
        Ok(event)
    }

    // Ids increase in commit order (the `event_clock` row is locked until commit), so a reader
    // tailing by id never skips an event that commits later with a smaller id.
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT record FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await?;
        records(&rows, "events")
    }

    async fn purge_events(&self, cutoff: i64, now: i64) -> Result<usize, StoreError> {
        let current = period_prefix(now);
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // `at` never decreases with the id, so the oldest ids are the old events.
        let old = txn
            .execute(
                "DELETE FROM events WHERE id IN
                     (SELECT id FROM events WHERE at < $1 ORDER BY id LIMIT $2)",
                &[&cutoff, &PURGE_BATCH],
            )
            .await?;
        txn.execute(
            "DELETE FROM event_tallies WHERE key COLLATE \"C\" < $1",
            &[&current],
        )
        .await?;
        txn.commit().await?;
        self.committed(&[]);
        Ok(usize::try_from(old).unwrap_or(usize::MAX))
    }
}

/// Appends an event in `txn`; operations call it last, after their checks. The event is
/// pushed to `emitted`, to be logged once the transaction commits.
pub(super) async fn append(
    txn: &Transaction<'_>,
    new: NewEvent,
    now: i64,
    emitted: &mut Vec<Event>,
) -> Result<Event, StoreError> {
    let (id, at) = next_slot(txn, now).await?;
    let event = appended_event(new, id, at);
    insert(txn, &event).await?;
    emitted.push(event.clone());
    Ok(event)
}

/// The next event id and a time no earlier than the last event's; locks the clock row.
async fn next_slot(txn: &Transaction<'_>, now: i64) -> Result<(u64, i64), StoreError> {
    let row = txn
        .query_one(
            "UPDATE event_clock SET last_id = last_id + 1, last_at = GREATEST(last_at, $1)
             RETURNING last_id, last_at",
            &[&now],
        )
        .await?;
    let id: i64 = row.try_get(0)?;
    let id = u64::try_from(id).map_err(|_| StoreError::Corrupt("a negative event id".into()))?;
    Ok((id, row.try_get(1)?))
}

async fn insert(txn: &Transaction<'_>, event: &Event) -> Result<(), StoreError> {
    let id = event_id(event.id)?;
    txn.execute(
        "INSERT INTO events (id, at, record) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET record = excluded.record",
        &[&id, &event.at, &json(event)],
    )
    .await?;
    Ok(())
}

fn event_id(id: u64) -> Result<i64, StoreError> {
    i64::try_from(id).map_err(|_| StoreError::Invalid("an event id beyond i64"))
}

/// Adds one failure to its row, creating the row (or using the overflow row) when needed.
async fn tally(
    txn: &Transaction<'_>,
    failure: LoginFailure,
    now: i64,
) -> Result<Event, StoreError> {
    // Tallies run one at a time (the clock row), so the per-period row count is exact.
    txn.execute("SELECT 1 FROM event_clock FOR UPDATE", &[])
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
        Some(id) => txn
            .query_opt("SELECT record FROM events WHERE id = $1", &[&id])
            .await?
            .map(|row| record::<Event>(&row, "events"))
            .transpose()?,
        None => None,
    };
    if let Some(mut event) = found {
        event.count = event.count.saturating_add(1);
        event.last_at = Some(now.max(event.at));
        insert(txn, &event).await?;
        return Ok(event);
    }
    // No row yet, or retention purged it meanwhile: start a new one.
    let (id, at) = next_slot(txn, now).await?;
    let event = new_tally((id, at), kind, failure, client, overflow);
    insert(txn, &event).await?;
    txn.execute(
        "INSERT INTO event_tallies (key, event_id) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id",
        &[&key, &event_id(id)?],
    )
    .await?;
    Ok(event)
}

async fn tally_of(txn: &Transaction<'_>, key: &str) -> Result<Option<i64>, StoreError> {
    let row = txn
        .query_opt("SELECT event_id FROM event_tallies WHERE key = $1", &[&key])
        .await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}

/// Rows the current period already has.
async fn period_rows(txn: &Transaction<'_>, now: i64) -> Result<usize, StoreError> {
    let start = period_prefix(now);
    let end = period_prefix(now + TALLY_PERIOD_SECS);
    let row = txn
        .query_one(
            "SELECT count(*) FROM event_tallies
             WHERE key COLLATE \"C\" >= $1 AND key COLLATE \"C\" < $2",
            &[&start, &end],
        )
        .await?;
    Ok(usize::try_from(row.try_get::<_, i64>(0)?).unwrap_or(usize::MAX))
}
