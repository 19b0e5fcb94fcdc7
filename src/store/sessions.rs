//! Session records: look-up by cookie hash, listing, revocation, and batched `last_seen` writes.
//!
//! Sessions are created only by the atomic completes (`ceremonies.rs`). The `user_sessions`
//! index lets disabling a user, removing one, or deleting a passkey find the sessions to
//! revoke in the same transaction. Idle timeouts are the session module's policy; the store
//! hides only sessions past their absolute `expires_at`.

use super::backend::SessionStore;
use super::events::append;
use super::model::{SecretHash, SessionRecord};
use super::rules::revoked_event;
use super::tables::{decode, encode, get_by_hash, SESSIONS, USER_SESSIONS};
use super::writer::Batch;
use super::{RedbStore, StoreError};
use async_trait::async_trait;
use redb::{ReadableMultimapTable, ReadableTable};
use uuid::Uuid;

#[async_trait]
impl SessionStore for RedbStore {
    async fn session(&self, hash: SecretHash) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.now();
        self.read(move |txn| {
            let session: Option<SessionRecord> = get_by_hash(&txn.open_table(SESSIONS)?, &hash.0)?;
            Ok(session.filter(|session| session.expires_at > now))
        })
        .await
    }

    async fn sessions_of(&self, user_id: Option<Uuid>) -> Result<Vec<SessionRecord>, StoreError> {
        let now = self.now();
        self.read(move |txn| {
            let sessions = txn.open_table(SESSIONS)?;
            let mut found = match user_id {
                Some(user_id) => {
                    of_user(&txn.open_multimap_table(USER_SESSIONS)?, &sessions, user_id)?
                }
                None => {
                    let mut all = Vec::new();
                    for entry in sessions.iter()? {
                        all.push(decode("sessions", entry?.1.value())?);
                    }
                    all
                }
            };
            found.retain(|session: &SessionRecord| session.expires_at > now);
            found.sort_by_key(|session: &SessionRecord| std::cmp::Reverse(session.created_at));
            Ok(found)
        })
        .await
    }

    async fn delete_session(&self, hash: SecretHash) -> Result<SessionRecord, StoreError> {
        let now = self.now();
        self.write(move |batch| {
            let session: SessionRecord =
                get_by_hash(&batch.sessions, &hash.0)?.ok_or(StoreError::NotFound)?;
            remove(batch, &session)?;
            append(batch, revoked_event(session.user_id, 1), now)?;
            Ok(session)
        })
        .await
    }

    async fn delete_sessions_of(&self, user_id: Uuid) -> Result<Vec<SecretHash>, StoreError> {
        let now = self.now();
        self.write(move |batch| {
            let revoked = of_user(&batch.user_sessions, &batch.sessions, user_id)?;
            for session in &revoked {
                remove(batch, session)?;
            }
            if !revoked.is_empty() {
                append(batch, revoked_event(user_id, revoked.len()), now)?;
            }
            Ok(revoked.iter().map(|session| session.id_hash).collect())
        })
        .await
    }

    async fn expiring_sessions(
        &self,
        idle_cutoff: i64,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.scan(move |txn| {
            let mut found = Vec::new();
            for entry in txn.open_table(SESSIONS)?.iter()? {
                let session: SessionRecord = decode("sessions", entry?.1.value())?;
                if session.expires_at <= now || session.last_seen <= idle_cutoff {
                    found.push(session);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn delete_sessions(
        &self,
        hashes: Vec<SecretHash>,
    ) -> Result<Vec<SecretHash>, StoreError> {
        self.write(move |batch| {
            let mut found = Vec::new();
            for hash in hashes {
                if let Some(session) = get_by_hash::<SessionRecord>(&batch.sessions, &hash.0)? {
                    found.push(session);
                }
            }
            // Every read is done; from here on only writes.
            for session in &found {
                remove(batch, session)?;
            }
            Ok(found.iter().map(|session| session.id_hash).collect())
        })
        .await
    }

    async fn touch_sessions(&self, seen: Vec<(SecretHash, i64)>) -> Result<(), StoreError> {
        // An empty flush would still cost a commit.
        if seen.is_empty() {
            return Ok(());
        }
        self.write(move |batch| {
            let mut updated = Vec::with_capacity(seen.len());
            for (hash, last_seen) in seen {
                let found: Option<SessionRecord> = get_by_hash(&batch.sessions, &hash.0)?;
                if let Some(mut session) = found {
                    if last_seen > session.last_seen {
                        session.last_seen = last_seen;
                        updated.push(encode(&session).map(|bytes| (hash, bytes))?);
                    }
                }
            }
            for (hash, bytes) in updated {
                batch.sessions.insert(&hash.0, bytes.as_slice())?;
            }
            Ok(())
        })
        .await
    }
}

/// A user's sessions, read through the `user_sessions` index (any transaction).
pub(super) fn of_user(
    index: &impl ReadableMultimapTable<u128, &'static [u8; 32]>,
    sessions: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    user_id: Uuid,
) -> Result<Vec<SessionRecord>, StoreError> {
    let mut found = Vec::new();
    for hash in index.get(user_id.as_u128())? {
        let hash = *hash?.value();
        if let Some(session) = get_by_hash(sessions, &hash)? {
            found.push(session);
        }
    }
    Ok(found)
}

/// Inserts a session and its index entry.
pub(super) fn insert(batch: &mut Batch<'_>, session: &SessionRecord) -> Result<(), StoreError> {
    let bytes = encode(session)?;
    batch
        .sessions
        .insert(&session.id_hash.0, bytes.as_slice())?;
    batch
        .user_sessions
        .insert(session.user_id.as_u128(), &session.id_hash.0)?;
    Ok(())
}

/// Deletes a session and its index entry.
pub(super) fn remove(batch: &mut Batch<'_>, session: &SessionRecord) -> Result<(), StoreError> {
    batch.sessions.remove(&session.id_hash.0)?;
    batch
        .user_sessions
        .remove(session.user_id.as_u128(), &session.id_hash.0)?;
    Ok(())
}
