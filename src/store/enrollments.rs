//! Enrollment links (kept only as token hashes) and the periodic purge of everything that
//! expires: ceremonies, enrollment tokens and sessions.
//!
//! Reads already hide expired records, so the purge only reclaims space; it runs in one write
//! and touches nothing that is still live. Tokens are spent by `complete_registration`.

use super::backend::EnrollmentStore;
use super::events::append;
use super::model::{Ceremony, Enrollment, EventKind, NewEvent, SecretHash, SessionRecord};
use super::tables::{decode, encode, get_by_hash, get_by_id, ENROLLMENTS};
use super::{sessions, RedbStore, StoreError};
use async_trait::async_trait;
use redb::ReadableTable;
use uuid::Uuid;

/// How many expired records one `purge_expired` removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub ceremonies: usize,
    pub enrollments: usize,
    pub sessions: usize,
}

#[async_trait]
impl EnrollmentStore for RedbStore {
    async fn create_enrollment(
        &self,
        user_id: Uuid,
        token_hash: SecretHash,
        expires_at: i64,
    ) -> Result<Enrollment, StoreError> {
        let now = self.now();
        self.write(move |batch| {
            let user: Option<super::User> = get_by_id(&batch.users, user_id)?;
            if user.is_none() {
                return Err(StoreError::NotFound);
            }
            let enrollment = Enrollment {
                token_hash,
                user_id,
                created_at: now,
                expires_at,
            };
            let bytes = encode(&enrollment)?;
            batch.enrollments.insert(&token_hash.0, bytes.as_slice())?;
            batch
                .user_enrollments
                .insert(user_id.as_u128(), &token_hash.0)?;
            let detail = format!("valid until {expires_at}");
            let event = NewEvent {
                kind: EventKind::EnrollmentCreated,
                user_id: Some(user_id),
                passkey_id: None,
                detail,
            };
            append(batch, event, now)?;
            Ok(enrollment)
        })
        .await
    }

    async fn enrollment(&self, token_hash: SecretHash) -> Result<Option<Enrollment>, StoreError> {
        let now = self.now();
        self.read(move |txn| {
            let found: Option<Enrollment> =
                get_by_hash(&txn.open_table(ENROLLMENTS)?, &token_hash.0)?;
            Ok(found.filter(|enrollment| enrollment.expires_at > now))
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> Result<Purged, StoreError> {
        self.write(move |batch| {
            let mut ceremonies = Vec::new();
            for entry in batch.ceremonies.iter()? {
                let (key, value) = entry?;
                let ceremony: Ceremony = decode("ceremonies", value.value())?;
                if ceremony.expires_at <= now {
                    ceremonies.push(key.value());
                }
            }
            let mut enrollments = Vec::new();
            for entry in batch.enrollments.iter()? {
                let enrollment: Enrollment = decode("enrollments", entry?.1.value())?;
                if enrollment.expires_at <= now {
                    enrollments.push(enrollment);
                }
            }
            let mut expired_sessions = Vec::new();
            for entry in batch.sessions.iter()? {
                let session: SessionRecord = decode("sessions", entry?.1.value())?;
                if session.expires_at <= now {
                    expired_sessions.push(session);
                }
            }
            // Every read is done; from here on only writes.
            for key in &ceremonies {
                batch.ceremonies.remove(key)?;
            }
            for enrollment in &enrollments {
                batch.enrollments.remove(&enrollment.token_hash.0)?;
                batch
                    .user_enrollments
                    .remove(enrollment.user_id.as_u128(), &enrollment.token_hash.0)?;
            }
            for session in &expired_sessions {
                sessions::remove(batch, session)?;
            }
            Ok(Purged {
                ceremonies: ceremonies.len(),
                enrollments: enrollments.len(),
                sessions: expired_sessions.len(),
            })
        })
        .await
    }
}
