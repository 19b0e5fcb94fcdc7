//! The audit log: appending events inside a write batch, and reading the newest ones.
//!
//! Ids increase by one and times never go backwards, even if the wall clock does, so the log
//! reads in order. Each event is also logged with `tracing` once its batch commits
//! (`writer.rs`). Details are written by the operations here and never hold a secret.

use super::model::{Event, NewEvent};
use super::tables::{decode, encode, EVENTS};
use super::writer::Batch;
use super::{unix_now, Store, StoreError};
use redb::ReadableTable;

impl Store {
    /// Appends an event that no other operation records (such as `login_failed`).
    pub async fn record_event(&self, event: NewEvent) -> Result<Event, StoreError> {
        let now = unix_now();
        self.write(move |batch| append(batch, event, now)).await
    }

    /// The newest `limit` events, newest first.
    pub async fn events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
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
}

/// Appends an event to the batch's transaction. Operations call it last, after their checks.
pub(super) fn append(batch: &mut Batch<'_>, new: NewEvent, now: i64) -> Result<Event, StoreError> {
    let (id, at) = match batch.events.last()? {
        Some((key, value)) => {
            let last: Event = decode("events", value.value())?;
            (key.value() + 1, now.max(last.at))
        }
        None => (1, now),
    };
    let event = Event {
        id,
        at,
        kind: new.kind,
        user_id: new.user_id,
        passkey_id: new.passkey_id,
        detail: new.detail,
    };
    batch.events.insert(id, encode(&event)?.as_slice())?;
    batch.emitted.push(event.clone());
    Ok(event)
}
