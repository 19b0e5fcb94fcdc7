//! Ceremonies on PostgreSQL and the atomic completes that spend them.
//!
//! A complete starts by `DELETE … RETURNING` its ceremony: of two completes racing with one id
//! (on two replicas, say), the second waits on the row and then finds nothing. Every check
//! follows inside the same transaction; a refused complete rolls back, the ceremony included,
//! so a refusal changes nothing, as with redb. Locks are taken in one order, user row before
//! passkey row, so completes, deletes and removals cannot deadlock one another.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::cached::Cached;
use super::events::{append, written, Appended};
use super::passkeys::{event, locked, put};
use super::users::{active_owner, active_user};
use super::{is_unique_violation, json, record, PostgresStore};
use crate::store::backend::CeremonyStore;
use crate::store::model::{
    Ceremony, CeremonyKind, Enrollment, EventKind, LoginCompletion, Passkey,
    RegistrationCompletion, User,
};
use crate::store::rules::{check_registration, check_session_source, spendable};
use crate::store::StoreError;

#[async_trait]
impl CeremonyStore for PostgresStore {
    async fn put_ceremony(&self, ceremony: Ceremony, max_live: u64) -> Result<(), StoreError> {
        let max_live = i64::try_from(max_live).unwrap_or(i64::MAX);
        let conn = self.conn().await?;
        // One statement; the count is the sum of the slots (migration 5), none locked while
        // read: a lock held through each begin's commit (its WAL flush) queued every begin of
        // every replica behind one another. So the cap holds exactly up to the begins counting
        // at the same instant (at most `pool_size` per replica), which a cap against floods can
        // spare.
        let stored = conn
            .run(
                "INSERT INTO ceremonies (id, expires_at, record)
                 SELECT $1, $2, $3 WHERE (SELECT sum(live)::bigint FROM ceremony_slots) < $4",
                &[
                    &ceremony.id,
                    &ceremony.expires_at,
                    &json(&ceremony),
                    &max_live,
                ],
            )
            .await?;
        if stored == 0 {
            return Err(StoreError::TooManyCeremonies);
        }
        self.committed();
        Ok(())
    }

    async fn ceremony(&self, id: Uuid) -> Result<Option<Ceremony>, StoreError> {
        let now = self.now();
        let conn = self.conn().await?;
        let row = conn
            .opt(
                "SELECT record FROM ceremonies WHERE id = $1 AND expires_at > $2",
                &[&id, &now],
            )
            .await?;
        row.map(|row| record(&row, "ceremonies")).transpose()
    }

    async fn ceremony_count(&self) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .one("SELECT sum(live)::bigint FROM ceremony_slots", &[])
            .await?;
        Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
    }

    async fn discard_ceremony(&self, id: Uuid) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.run("DELETE FROM ceremonies WHERE id = $1", &[&id])
            .await?;
        self.committed();
        Ok(())
    }

    async fn complete_registration(
        &self,
        completion: RegistrationCompletion,
    ) -> Result<Passkey, StoreError> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut emitted = Vec::new();
        let passkey = register(&txn, completion, &mut emitted).await?;
        txn.commit().await.map_err(duplicate_or)?;
        self.published(&conn, emitted).await;
        Ok(passkey)
    }

    async fn complete_login(
        &self,
        completion: LoginCompletion,
    ) -> Result<(User, Passkey), StoreError> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut emitted = Vec::new();
        let done = login(&txn, completion, &mut emitted).await?;
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(done)
    }

    async fn flag_clone_suspected(
        &self,
        passkey_id: Uuid,
        ceremony_id: Uuid,
    ) -> Result<Passkey, StoreError> {
        let now = self.now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // Flag even when the ceremony is already gone: the signal matters more. Spent before the
        // passkey is locked: the lock order (migration 5).
        txn.run("DELETE FROM ceremonies WHERE id = $1", &[&ceremony_id])
            .await?;
        let mut passkey = locked(&txn, passkey_id).await?;
        passkey.clone_suspected = true;
        put(&txn, &passkey).await?;
        let detail = format!("{:?}: sign count went backwards", passkey.name);
        let mut emitted = Vec::new();
        let new = event(EventKind::CloneSuspected, &passkey, detail);
        append(&txn, new, now, &mut emitted).await?;
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(passkey)
    }
}

async fn register(
    txn: &Transaction<'_>,
    completion: RegistrationCompletion,
    emitted: &mut Appended,
) -> Result<Passkey, StoreError> {
    let RegistrationCompletion {
        ceremony_id,
        passkey,
        spend_enrollment,
        new_session,
        max_passkeys_per_user,
        now,
    } = completion;
    if let Some(session) = &new_session {
        check_session_source(session, &passkey)?;
    }
    let ceremony = spend_ceremony(txn, ceremony_id, CeremonyKind::Registration, now).await?;
    // A registration ceremony is begun for one user; it cannot be completed for another.
    if ceremony.user_id != Some(passkey.user_id) {
        return Err(StoreError::CeremonyNotFound);
    }
    // Exclusive: two registrations of one user run one after the other, so the cap is exact.
    active_user(txn, passkey.user_id, true).await?;
    let taken = txn
        .opt(
            "SELECT 1 FROM passkeys WHERE credential_id = $1 OR id = $2",
            &[&passkey.credential_id, &passkey.id],
        )
        .await?;
    if taken.is_some() {
        return Err(StoreError::DuplicateCredential);
    }
    let count: i64 = txn
        .one(
            "SELECT count(*) FROM passkeys WHERE user_id = $1",
            &[&passkey.user_id],
        )
        .await?
        .try_get(0)?;
    let held = usize::try_from(count).unwrap_or(usize::MAX);
    check_registration(held, max_passkeys_per_user, &ceremony, spend_enrollment)?;
    if let Some(hash) = spend_enrollment {
        let row = txn
            .opt(
                "DELETE FROM enrollments WHERE token_hash = $1 RETURNING record",
                &[&&hash.0[..]],
            )
            .await?;
        let token: Option<Enrollment> = row.map(|row| record(&row, "enrollments")).transpose()?;
        match token {
            Some(token) if token.expires_at > now && token.user_id == passkey.user_id => {}
            _ => return Err(StoreError::EnrollmentInvalid),
        }
    }
    txn.run(
        "INSERT INTO passkeys (id, user_id, credential_id, created_at, record)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &passkey.id,
            &passkey.user_id,
            &passkey.credential_id,
            &passkey.created_at,
            &json(&passkey),
        ],
    )
    .await
    .map_err(duplicate_or)?;
    if let Some(session) = &new_session {
        super::sessions::insert(txn, session).await?;
    }
    let how = if spend_enrollment.is_some() {
        "with an enrollment link"
    } else {
        "from a session"
    };
    let detail = format!("{:?} registered {how}", passkey.name);
    append(
        txn,
        event(EventKind::PasskeyRegistered, &passkey, detail),
        now,
        emitted,
    )
    .await?;
    Ok(passkey)
}

async fn login(
    txn: &Transaction<'_>,
    completion: LoginCompletion,
    emitted: &mut Appended,
) -> Result<(User, Passkey), StoreError> {
    let now = completion.now;
    // Three statements in one round trip (tokio-postgres pipelines what is sent before the
    // answers): the server still runs them in order, so the owner's row is locked before the
    // passkey's, the lock order. The owner is read through the passkey: it never changes.
    let (ceremony, user, passkey) = tokio::join!(
        spend_ceremony(txn, completion.ceremony_id, CeremonyKind::Login, now),
        active_owner(txn, completion.passkey_id),
        locked(txn, completion.passkey_id),
    );
    let ceremony = ceremony?;
    // A username-scoped login may only be completed by that user's passkey.
    let mut passkey = match passkey {
        Err(StoreError::NotFound) => return Err(StoreError::NotFound),
        Ok(passkey) if ceremony.user_id.is_some_and(|id| id != passkey.user_id) => {
            return Err(StoreError::NotFound)
        }
        passkey => passkey?,
    };
    let user = user?;
    check_session_source(&completion.new_session, &passkey)?;
    // Never backwards: a concurrent sign-in that overtook this one left a newer count; keep it.
    if completion.new_sign_count >= passkey.sign_count {
        passkey.sign_count = completion.new_sign_count;
        passkey.backup_state = completion.backup_state;
        passkey.backup_eligible = completion.backup_eligible;
        if let Some(credential) = completion.credential {
            passkey.credential = credential;
        }
    }
    passkey.last_used_at = Some(now);
    let detail = format!("with {:?}", passkey.name);
    let new = event(EventKind::Login, &passkey, detail);
    // The writes in one round trip too.
    let (_, _, written) = tokio::try_join!(
        put(txn, &passkey),
        super::sessions::insert(txn, &completion.new_session),
        written(txn, new, now),
    )?;
    emitted.push(written);
    Ok((user, passkey))
}

/// Deletes the ceremony and returns it if it was live and of `kind`; else `CeremonyNotFound`
/// (and the caller's rollback puts it back).
async fn spend_ceremony(
    txn: &Transaction<'_>,
    id: Uuid,
    kind: CeremonyKind,
    now: i64,
) -> Result<Ceremony, StoreError> {
    let row = txn
        .opt(
            "DELETE FROM ceremonies WHERE id = $1 RETURNING record",
            &[&id],
        )
        .await?;
    let found: Option<Ceremony> = row.map(|row| record(&row, "ceremonies")).transpose()?;
    spendable(found, kind, now)
}

/// A unique violation at insert or commit is a credential registered meanwhile.
fn duplicate_or(error: tokio_postgres::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::DuplicateCredential
    } else {
        error.into()
    }
}
