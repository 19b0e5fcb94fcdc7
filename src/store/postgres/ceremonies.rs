//! Ceremonies on PostgreSQL and the atomic completes that spend them.
//!
//! A complete starts by `DELETE … RETURNING` its ceremony: of two completes racing with one id
//! (on two replicas, say), the second waits on the row and then finds nothing. Every check
//! follows inside the same transaction; a refused complete rolls back, the ceremony included,
//! so a refusal changes nothing, as with redb. Locks are taken in one order, user row before
//! passkey row, so completes, deletes and removals cannot deadlock one another.
//!
//! The live ceremonies are counted in `ceremony_slots` (migrations 5 and 6) by the statements
//! here that add and delete them, the only writers of the table; the slot row is locked in the
//! statement that spends, before any user or passkey row.

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

/// Stores a ceremony unless `$4` are live (the sum of the slots, none locked while read: a lock
/// held through each begin's commit queued every begin of every replica behind one another, so
/// the cap holds exactly up to the begins counting at the same instant, at most `pool_size` per
/// replica, which a cap against floods can spare), and counts it in slot `$5`. One statement.
///
/// Committed without waiting for its WAL flush: a ceremony lives minutes and is worth nothing
/// after a database crash, which at worst forgets the begins of its last moments (their sign-ins
/// start over). Every other write waits for its flush.
const PUT_CEREMONY: &str = "
    WITH durability AS (SELECT set_config('synchronous_commit', 'off', true)),
    added AS (
        INSERT INTO ceremonies (id, expires_at, record)
        SELECT $1, $2, $3 FROM durability
        WHERE (SELECT sum(live)::bigint FROM ceremony_slots) < $4
        RETURNING 1
    )
    UPDATE ceremony_slots SET live = live + 1
    WHERE slot = $5 AND EXISTS (SELECT 1 FROM added)";

/// Deletes ceremony `$1`, returning its record, and uncounts it in slot `$2`.
const SPEND_CEREMONY: &str = "
    WITH spent AS (DELETE FROM ceremonies WHERE id = $1 RETURNING record),
    uncounted AS (
        UPDATE ceremony_slots SET live = live - 1
        WHERE slot = $2 AND EXISTS (SELECT 1 FROM spent)
    )
    SELECT record FROM spent";

/// Deletes the ceremonies expired at `$1` and uncounts them in slot `$2`; returns how many.
const PURGE_CEREMONIES: &str = "
    WITH gone AS (DELETE FROM ceremonies WHERE expires_at <= $1 RETURNING 1),
    uncounted AS (
        UPDATE ceremony_slots SET live = live - (SELECT count(*) FROM gone)
        WHERE slot = $2 AND EXISTS (SELECT 1 FROM gone)
    )
    SELECT count(*) FROM gone";

#[async_trait]
impl CeremonyStore for PostgresStore {
    async fn put_ceremony(&self, ceremony: Ceremony, max_live: u64) -> Result<(), StoreError> {
        let max_live = i64::try_from(max_live).unwrap_or(i64::MAX);
        let conn = self.conn().await?;
        let stored = conn
            .run(
                PUT_CEREMONY,
                &[
                    &ceremony.id,
                    &ceremony.expires_at,
                    &json(&ceremony),
                    &max_live,
                    &any_slot(),
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
        conn.rows(SPEND_CEREMONY, &[&id, &any_slot()]).await?;
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
        // A sign-in does not wait for its event's id (see `numbering.rs`).
        self.published_later(&conn, emitted).await;
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
        txn.rows(SPEND_CEREMONY, &[&ceremony_id, &any_slot()])
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
    let row = txn.opt(SPEND_CEREMONY, &[&id, &any_slot()]).await?;
    let found: Option<Ceremony> = row.map(|row| record(&row, "ceremonies")).transpose()?;
    spendable(found, kind, now)
}

/// Deletes the expired ceremonies in `txn`; returns how many.
pub(super) async fn purge_ceremonies(txn: &Transaction<'_>, now: i64) -> Result<u64, StoreError> {
    let row = txn.one(PURGE_CEREMONIES, &[&now, &any_slot()]).await?;
    Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
}

/// A slot of `ceremony_slots` (migration 5) to count a change in. Any slot will do, only their
/// sum means anything; a random one makes two writers rarely wait on one row.
fn any_slot() -> i16 {
    rand::random_range(0..64)
}

/// A unique violation at insert or commit is a credential registered meanwhile.
fn duplicate_or(error: tokio_postgres::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::DuplicateCredential
    } else {
        error.into()
    }
}
