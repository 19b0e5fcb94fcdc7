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
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::cached::Cached;
use super::events::{append, Appended};
use super::passkeys::{event, found, locked, put, LOCK_PASSKEY};
use super::pipelined::Pipelined;
use super::users::{active, active_user, ACTIVE_OWNER};
use super::{is_unique_violation, json, record, PostgresStore};
use crate::store::backend::CeremonyStore;
use crate::store::model::{
    Ceremony, CeremonyKind, Enrollment, Event, EventKind, LoginCompletion, Passkey,
    RegistrationCompletion, User,
};
use crate::store::rules::{
    appended_event, check_registration, check_session_source, record_sign_in, spendable,
};
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
        let txn = Pipelined::new(self.conn().await?);
        match login(&txn, completion).await {
            Ok((done, written)) => {
                // A sign-in does not wait for its event's id (see `numbering.rs`).
                self.published_later(txn.object(), vec![written]).await;
                Ok(done)
            }
            Err(refused) => {
                txn.rollback().await;
                Err(refused)
            }
        }
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

/// A sign-in's complete in two round trips (see `pipelined.rs`): `BEGIN` and the three locking
/// reads, then the writes and `COMMIT`. The server runs the reads in order, so the owner's row is
/// locked before the passkey's, the lock order; the owner is read through the passkey, it never
/// changes. Returns the result and the appended event's row, committed.
async fn login(
    txn: &Pipelined,
    mut completion: LoginCompletion,
) -> Result<((User, Passkey), (i64, Event)), StoreError> {
    let now = completion.now;
    let spend = txn.prepared(SPEND_CEREMONY).await?;
    let owner = txn.prepared(ACTIVE_OWNER).await?;
    let lock = txn.prepared(LOCK_PASSKEY).await?;
    let writes = txn.prepared(LOGIN_WRITES).await?;
    let conn = txn.conn();
    let slot = any_slot();
    let spend_params: [&(dyn ToSql + Sync); 2] = [&completion.ceremony_id, &slot];
    let passkey_param: [&(dyn ToSql + Sync); 1] = [&completion.passkey_id];
    let (begun, ceremony, user, passkey) = tokio::join!(
        biased;
        txn.begin(),
        conn.query_opt(&spend, &spend_params),
        conn.query_opt(&owner, &passkey_param),
        conn.query_opt(&lock, &passkey_param),
    );
    begun?;
    let ceremony = spent(ceremony?, CeremonyKind::Login, now)?;
    // A username-scoped login may only be completed by that user's passkey.
    let mut passkey = match found(passkey?) {
        Err(StoreError::NotFound) => return Err(StoreError::NotFound),
        Ok(passkey) if ceremony.user_id.is_some_and(|id| id != passkey.user_id) => {
            return Err(StoreError::NotFound)
        }
        passkey => passkey?,
    };
    let user = active(user?)?;
    check_session_source(&completion.new_session, &passkey)?;
    record_sign_in(&mut passkey, &mut completion);
    let detail = format!("with {:?}", passkey.name);
    let event = appended_event(event(EventKind::Login, &passkey, detail), 0, now);
    let session = &completion.new_session;
    let (passkey_json, session_json, event_json) = (json(&passkey), json(session), json(&event));
    let id_hash = &session.id_hash.0[..];
    let params: [&(dyn ToSql + Sync); 11] = [
        &passkey.id,
        &passkey_json,
        &id_hash,
        &session.user_id,
        &session.passkey_id,
        &session.created_at,
        &session.expires_at,
        &session.last_seen,
        &session_json,
        &event.at,
        &event_json,
    ];
    let (written, committed) = tokio::join!(
        biased;
        conn.query_one(&writes, &params),
        txn.commit(),
    );
    // A failed write made the COMMIT a rollback: its error is the one to report.
    let key: i64 = written?.try_get(0)?;
    committed?;
    Ok(((user, passkey), (key, event)))
}

/// Deletes the ceremony and returns it if it was live and of `kind`; else `CeremonyNotFound`
/// (and the caller's rollback puts it back).
async fn spend_ceremony(
    txn: &Transaction<'_>,
    id: Uuid,
    kind: CeremonyKind,
    now: i64,
) -> Result<Ceremony, StoreError> {
    spent(
        txn.opt(SPEND_CEREMONY, &[&id, &any_slot()]).await?,
        kind,
        now,
    )
}

/// The ceremony of a spent row if it was live and of `kind`; else `CeremonyNotFound`.
fn spent(row: Option<Row>, kind: CeremonyKind, now: i64) -> Result<Ceremony, StoreError> {
    let found: Option<Ceremony> = row.map(|row| record(&row, "ceremonies")).transpose()?;
    spendable(found, kind, now)
}

/// A sign-in's writes in one statement: passkey `$1`'s record, the new session (as
/// `sessions::insert_row`) and the event (as `events::written`, unnumbered); returns the event's
/// row key.
const LOGIN_WRITES: &str = "
    WITH used AS (UPDATE passkeys SET record = $2 WHERE id = $1),
    signed_in AS (
        INSERT INTO sessions
            (id_hash, user_id, passkey_id, created_at, expires_at, last_seen, record)
        VALUES ($3, $4, $5, $6, $7, $8, $9)
    )
    INSERT INTO events (at, record) VALUES ($10, $11) RETURNING key";

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
