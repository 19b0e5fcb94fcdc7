//! Enrollment links on PostgreSQL (token hashes only) and the purge of what expired. Reads hide
//! expired records already, so the purge only reclaims space.

use async_trait::async_trait;
use uuid::Uuid;

use super::cached::Cached;
use super::events::append;
use super::{json, record, PostgresStore};
use crate::store::backend::EnrollmentStore;
use crate::store::model::{Enrollment, EventKind, NewEvent, SecretHash};
use crate::store::{Purged, StoreError};

#[async_trait]
impl EnrollmentStore for PostgresStore {
    async fn create_enrollment(
        &self,
        user_id: Uuid,
        token_hash: SecretHash,
        expires_at: i64,
    ) -> Result<Enrollment, StoreError> {
        let now = self.now();
        let enrollment = Enrollment {
            token_hash,
            user_id,
            created_at: now,
            expires_at,
        };
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // Shared: a concurrent removal of the user waits, or runs first and we see it gone.
        txn.opt("SELECT 1 FROM users WHERE id = $1 FOR SHARE", &[&user_id])
            .await?
            .ok_or(StoreError::NotFound)?;
        txn.run(
            "INSERT INTO enrollments (token_hash, user_id, expires_at, record)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (token_hash) DO UPDATE SET
                 user_id = excluded.user_id, expires_at = excluded.expires_at,
                 record = excluded.record",
            &[
                &&token_hash.0[..],
                &user_id,
                &expires_at,
                &json(&enrollment),
            ],
        )
        .await?;
        let new = NewEvent {
            kind: EventKind::EnrollmentCreated,
            user_id: Some(user_id),
            passkey_id: None,
            detail: format!("valid until {expires_at}"),
        };
        let mut emitted = Vec::new();
        append(&txn, new, now, &mut emitted).await?;
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(enrollment)
    }

    async fn enrollment(&self, token_hash: SecretHash) -> Result<Option<Enrollment>, StoreError> {
        let now = self.now();
        let conn = self.conn().await?;
        let row = conn
            .opt(
                "SELECT record FROM enrollments WHERE token_hash = $1 AND expires_at > $2",
                &[&&token_hash.0[..], &now],
            )
            .await?;
        row.map(|row| record(&row, "enrollments")).transpose()
    }

    async fn purge_expired(&self, now: i64) -> Result<Purged, StoreError> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let ceremonies = super::ceremonies::purge_ceremonies(&txn, now).await?;
        let enrollments = txn
            .run("DELETE FROM enrollments WHERE expires_at <= $1", &[&now])
            .await?;
        let sessions = txn
            .run("DELETE FROM sessions WHERE expires_at <= $1", &[&now])
            .await?;
        txn.commit().await?;
        self.committed();
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Purged {
            ceremonies: count(ceremonies),
            enrollments: count(enrollments),
            sessions: count(sessions),
        })
    }
}
