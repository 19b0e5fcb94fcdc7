//! Session records on PostgreSQL: look-up by cookie hash, listing, revocation, batched
//! `last_seen`. `last_seen` is its own column, moved only forward (`GREATEST`), so a late batch
//! from one replica never shortens an idle timeout another replica extended.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use uuid::Uuid;

use super::cached::Cached;
use super::events::append;
use super::notify::publish;
use super::{json, record, PostgresStore};
use crate::store::backend::SessionStore;
use crate::store::model::{SecretHash, SessionRecord};
use crate::store::revocations::Revocation;
use crate::store::rules::revoked_event;
use crate::store::StoreError;

/// The columns a session is read back from.
const COLUMNS: &str = "record, last_seen";

#[async_trait]
impl SessionStore for PostgresStore {
    async fn session(&self, hash: SecretHash) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.now();
        let conn = self.conn().await?;
        let row = conn
            .opt(
                "SELECT record, last_seen FROM sessions WHERE id_hash = $1 AND expires_at > $2",
                &[&&hash.0[..], &now],
            )
            .await?;
        row.as_ref().map(session_of).transpose()
    }

    async fn sessions_of(&self, user_id: Option<Uuid>) -> Result<Vec<SessionRecord>, StoreError> {
        let now = self.now();
        let conn = self.conn().await?;
        let rows = match user_id {
            Some(user_id) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 AND expires_at > $2
                     ORDER BY created_at DESC"
                );
                conn.rows(&sql, &[&user_id, &now]).await?
            }
            None => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM sessions WHERE expires_at > $1 ORDER BY created_at DESC"
                );
                conn.rows(&sql, &[&now]).await?
            }
        };
        rows.iter().map(session_of).collect()
    }

    async fn delete_session(&self, hash: SecretHash) -> Result<SessionRecord, StoreError> {
        let now = self.now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let sql = format!("DELETE FROM sessions WHERE id_hash = $1 RETURNING {COLUMNS}");
        let row = txn
            .opt(&sql, &[&&hash.0[..]])
            .await?
            .ok_or(StoreError::NotFound)?;
        let session = session_of(&row)?;
        publish(&txn, &[Revocation::Session(hash)]).await?;
        let mut emitted = Vec::new();
        append(&txn, revoked_event(session.user_id, 1), now, &mut emitted).await?;
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(session)
    }

    async fn delete_sessions_of(&self, user_id: Uuid) -> Result<Vec<SecretHash>, StoreError> {
        let now = self.now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let revoked = super::users::delete_sessions_where(&txn, "user_id", user_id).await?;
        let mut emitted = Vec::new();
        if !revoked.is_empty() {
            publish(&txn, &[Revocation::User(user_id)]).await?;
            let new = revoked_event(user_id, revoked.len());
            append(&txn, new, now, &mut emitted).await?;
        }
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(revoked)
    }

    async fn expiring_sessions(
        &self,
        idle_cutoff: i64,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let conn = self.conn().await?;
        let sql =
            format!("SELECT {COLUMNS} FROM sessions WHERE expires_at <= $1 OR last_seen <= $2");
        let rows = conn.rows(&sql, &[&now, &idle_cutoff]).await?;
        rows.iter().map(session_of).collect()
    }

    async fn delete_sessions(
        &self,
        hashes: Vec<SecretHash>,
    ) -> Result<Vec<SecretHash>, StoreError> {
        let keys: Vec<&[u8]> = hashes.iter().map(|hash| &hash.0[..]).collect();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let rows = txn
            .rows(
                "DELETE FROM sessions WHERE id_hash = ANY($1) RETURNING id_hash",
                &[&keys],
            )
            .await?;
        let deleted = rows.iter().map(hash_of).collect::<Result<Vec<_>, _>>()?;
        let revoked: Vec<Revocation> = deleted.iter().copied().map(Revocation::Session).collect();
        publish(&txn, &revoked).await?;
        txn.commit().await?;
        self.committed();
        Ok(deleted)
    }

    async fn touch_sessions(&self, seen: Vec<(SecretHash, i64)>) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let keys: Vec<&[u8]> = seen.iter().map(|(hash, _)| &hash.0[..]).collect();
        let times: Vec<i64> = seen.iter().map(|(_, at)| *at).collect();
        let conn = self.conn().await?;
        // One statement for the whole batch; rows gone meanwhile simply do not join.
        conn.run(
            "UPDATE sessions SET last_seen = GREATEST(sessions.last_seen, seen.at)
             FROM unnest($1::bytea[], $2::bigint[]) AS seen(id_hash, at)
             WHERE sessions.id_hash = seen.id_hash",
            &[&keys, &times],
        )
        .await?;
        self.committed();
        Ok(())
    }
}

/// Inserts a session created by a ceremony's complete.
pub(super) async fn insert(
    txn: &Transaction<'_>,
    session: &SessionRecord,
) -> Result<(), StoreError> {
    insert_row(txn, session, "").await.map(|_| ())
}

/// Inserts one session row; `on_conflict` is appended to the statement (`store migrate` passes
/// `ON CONFLICT DO NOTHING` so a second run copies nothing twice). Returns the rows inserted.
pub(super) async fn insert_row(
    txn: &Transaction<'_>,
    session: &SessionRecord,
    on_conflict: &'static str,
) -> Result<u64, StoreError> {
    let statement = format!(
        "INSERT INTO sessions (id_hash, user_id, passkey_id, created_at, expires_at, last_seen, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7) {on_conflict}"
    );
    Ok(txn
        .run(
            statement.as_str(),
            &[
                &&session.id_hash.0[..],
                &session.user_id,
                &session.passkey_id,
                &session.created_at,
                &session.expires_at,
                &session.last_seen,
                &json(session),
            ],
        )
        .await?)
}

/// A session row (`record, last_seen`) as the record, with the column's newer `last_seen`.
fn session_of(row: &Row) -> Result<SessionRecord, StoreError> {
    let mut session: SessionRecord = record(row, "sessions")?;
    session.last_seen = row.try_get("last_seen")?;
    Ok(session)
}

/// The `id_hash` column of a row.
pub(super) fn hash_of(row: &Row) -> Result<SecretHash, StoreError> {
    let bytes: &[u8] = row.try_get("id_hash")?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("a session hash is not 32 bytes".into()))?;
    Ok(SecretHash(bytes))
}
