//! The audit log: appending events inside a write batch, tallying failed sign-ins, reading the
//! newest events, and deleting those past their retention.
//!
//! Ids increase by one and times never go backwards, even if the wall clock does, so the log
//! reads in order (and retention deletes from the front). Each event is also logged with
//! `tracing` once its batch commits (`writer.rs`). Details are written by the operations here
//! and never hold a secret.
//!
//! Anyone can fail a sign-in, so failures are not one row each: one row per (kind, client
//! network, user, tally period) carries a count. A period holds at most `MAX_TALLIES` such rows;
//! past that, its failures go to one overflow row (client `*`). So the log grows by at most
//! `MAX_TALLIES + 1` rows per period whatever the request rate, and retention bounds the rest.

use super::backend::EventStore;
use super::model::{Event, EventKind, LoginFailure, NewEvent};
use super::rules::{appended_event, new_tally};
use super::tables::{decode, encode, EVENTS};
use super::writer::Batch;
use super::{RedbStore, StoreError};
use async_trait::async_trait;
use redb::ReadableTable;

/// Length of one tally period, in seconds.
pub const TALLY_PERIOD_SECS: i64 = 3600;

/// Distinct failure rows one period may hold before the rest share the overflow row.
pub const MAX_TALLIES: usize = 100;

/// Events deleted by one purge at most, so one upkeep's transaction stays short.
const PURGE_BATCH: usize = 10_000;

#[async_trait]
impl EventStore for RedbStore {
    async fn record_login_failure(
        &self,
        failure: LoginFailure,
        now: i64,
    ) -> Result<Event, StoreError> {
        self.write(move |batch| tally(batch, failure, now)).await
    }

    async fn events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.scan(move |txn| {
            let table = txn.open_table(EVENTS)?;
            let mut events = Vec::with_capacity(limit.min(1024));
            for entry in table.iter()?.rev().take(limit) {
                let (_, value) = entry?;
                events.push(decode("events", value.value())?);
            }
            Ok(events)
        })
        .await
    }

    async fn record_event(&self, event: NewEvent, now: i64) -> Result<Event, StoreError> {
        self.write(move |batch| append(batch, event, now)).await
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.scan(move |txn| {
            let table = txn.open_table(EVENTS)?;
            let mut events = Vec::with_capacity(limit.min(1024));
            let start = after.saturating_add(1);
            for entry in table.range(start..)?.take(limit) {
                let (_, value) = entry?;
                events.push(decode("events", value.value())?);
            }
            Ok(events)
        })
        .await
    }

    async fn purge_events(&self, cutoff: i64, now: i64) -> Result<usize, StoreError> {
        self.write(move |batch| {
            let mut old = Vec::new();
            for entry in batch.events.iter()?.take(PURGE_BATCH) {
                let (key, value) = entry?;
                let event: Event = decode("events", value.value())?;
                // `at` never decreases with the id: the first young event ends the old ones.
                if event.at >= cutoff {
                    break;
                }
                old.push(key.value());
            }
            let current = period_prefix(now);
            let mut stale = Vec::new();
            for entry in batch.event_tallies.range(..current.as_str())? {
                stale.push(entry?.0.value().to_string());
            }
            // Every read is done; from here on only writes.
            for id in &old {
                batch.events.remove(id)?;
            }
            for key in &stale {
                batch.event_tallies.remove(key.as_str())?;
            }
            Ok(old.len())
        })
        .await
    }
}

/// Appends an event to the batch's transaction. Operations call it last, after their checks.
pub(super) fn append(batch: &mut Batch<'_>, new: NewEvent, now: i64) -> Result<Event, StoreError> {
    let (id, at) = next_slot(batch, now)?;
    let event = appended_event(new, id, at);
    put(batch, &event)?;
    Ok(event)
}

/// The next event id and a time no earlier than the last event's.
fn next_slot(batch: &Batch<'_>, now: i64) -> Result<(u64, i64), StoreError> {
    Ok(match batch.events.last()? {
        Some((key, value)) => {
            let last: Event = decode("events", value.value())?;
            (key.value() + 1, now.max(last.at))
        }
        None => (1, now),
    })
}

fn put(batch: &mut Batch<'_>, event: &Event) -> Result<(), StoreError> {
    batch.events.insert(event.id, encode(event)?.as_slice())?;
    batch.emitted.push(event.clone());
    Ok(())
}

/// Adds one failure to its row, creating the row (or using the overflow row) when needed.
fn tally(batch: &mut Batch<'_>, failure: LoginFailure, now: i64) -> Result<Event, StoreError> {
    let kind = EventKind::LoginFailed;
    let client = failure.client.clone().unwrap_or_else(|| "-".into());
    let own = tally_key(now, kind, &client, failure.user_id);
    let overflow = !has(batch, &own)? && period_rows(batch, now)? >= MAX_TALLIES;
    let key = if overflow {
        tally_key(now, kind, "*", None)
    } else {
        own
    };
    let existing = batch.event_tallies.get(key.as_str())?.map(|id| id.value());
    let found: Option<Event> = match existing {
        Some(id) => batch
            .events
            .get(id)?
            .map(|value| decode("events", value.value()))
            .transpose()?,
        None => None,
    };
    if let Some(mut event) = found {
        event.count = event.count.saturating_add(1);
        event.last_at = Some(now.max(event.at));
        put(batch, &event)?;
        return Ok(event);
    }
    // No row yet, or retention purged it meanwhile: start a new one.
    let (id, at) = next_slot(batch, now)?;
    let event = new_tally((id, at), kind, failure, client, overflow);
    put(batch, &event)?;
    batch.event_tallies.insert(key.as_str(), id)?;
    Ok(event)
}

fn has(batch: &Batch<'_>, key: &str) -> Result<bool, StoreError> {
    Ok(batch.event_tallies.get(key)?.is_some())
}

/// Rows the current period already has (at most `MAX_TALLIES + 1`, so the count is cheap).
fn period_rows(batch: &Batch<'_>, now: i64) -> Result<usize, StoreError> {
    let start = period_prefix(now);
    let end = period_prefix(now + TALLY_PERIOD_SECS);
    Ok(batch
        .event_tallies
        .range(start.as_str()..end.as_str())?
        .count())
}

/// Zero-padded hex sorts like the number, so one range covers one period.
pub(super) fn period_prefix(now: i64) -> String {
    format!("{:016x}/", now.div_euclid(TALLY_PERIOD_SECS).max(0))
}

pub(super) fn tally_key(
    now: i64,
    kind: EventKind,
    client: &str,
    user: Option<uuid::Uuid>,
) -> String {
    let user = user.map_or_else(|| "-".to_string(), |u| u.to_string());
    format!("{}{kind}/{client}/{user}", period_prefix(now))
}
