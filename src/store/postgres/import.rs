//! Copying records into PostgreSQL as they are (ids, times, counters kept): what
//! `store migrate --to` uses to move a redb store. Each insert skips a record that is already
//! there, so running it again copies nothing twice; the counts say what was new.

use deadpool_postgres::Transaction;

use super::cached::Cached;
use super::{json, PostgresStore};
use crate::store::model::{Event, Passkey, SessionRecord, User};
use crate::store::StoreError;

/// Everything a copy brings, read from the source store.
#[derive(Debug, Default)]
pub struct Export {
    pub users: Vec<User>,
    pub passkeys: Vec<Passkey>,
    pub sessions: Vec<SessionRecord>,
    pub events: Vec<Event>,
}

/// How many of each were new in the database (the rest were there already).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub users: u64,
    pub passkeys: u64,
    pub sessions: u64,
    pub events: u64,
}

impl PostgresStore {
    /// Inserts what is not there yet, all in one transaction.
    pub async fn import(&self, export: &Export) -> Result<Imported, StoreError> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut imported = Imported::default();
        for user in &export.users {
            imported.users += txn
                .run(
                    "INSERT INTO users (id, username, record) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[&user.id, &user.username, &json(user)],
                )
                .await?;
        }
        for passkey in &export.passkeys {
            imported.passkeys += txn
                .run(
                    "INSERT INTO passkeys (id, user_id, credential_id, created_at, record)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &passkey.id,
                        &passkey.user_id,
                        &passkey.credential_id,
                        &passkey.created_at,
                        &json(passkey),
                    ],
                )
                .await?;
        }
        for session in &export.sessions {
            imported.sessions += import_session(&txn, session).await?;
        }
        super::events::hold_numbering(&txn).await?;
        for event in &export.events {
            let id = i64::try_from(event.id)
                .map_err(|_| StoreError::Invalid("an event id beyond i64"))?;
            imported.events += txn
                .run(
                    "INSERT INTO events (id, at, record) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO NOTHING",
                    &[&id, &event.at, &json(event)],
                )
                .await?;
        }
        // New events continue after the copied ones, never before them.
        txn.run(
            "UPDATE event_clock SET
                 last_id = GREATEST(last_id, (SELECT coalesce(max(id), 0) FROM events)),
                 last_at = GREATEST(last_at, (SELECT coalesce(max(at), 0) FROM events))",
            &[],
        )
        .await?;
        txn.commit().await?;
        Ok(imported)
    }
}

async fn import_session(txn: &Transaction<'_>, session: &SessionRecord) -> Result<u64, StoreError> {
    super::sessions::insert_row(txn, session, "ON CONFLICT DO NOTHING").await
}
