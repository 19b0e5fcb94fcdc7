//! Passkey operations on PostgreSQL after registration: list, look up, rename, delete (owner),
//! revoke (admin). Another user's passkey answers `NotFound`, like a missing one. Deleting locks
//! the owner's row first, so two deletes of a user's last two passkeys cannot both succeed,
//! then the passkey's row, which a login holds while it adds a session for it.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::cached::Cached;
use super::events::{append, Appended};
use super::notify::publish;
use super::{json, record, records, PostgresStore};
use crate::store::backend::PasskeyStore;
use crate::store::model::{Ceremony, EventKind, NewEvent, Passkey, SecretHash, User};
use crate::store::revocations::Revocation;
use crate::store::StoreError;

#[async_trait]
impl PasskeyStore for PostgresStore {
    async fn passkeys_of(&self, user_id: Uuid) -> Result<Vec<Passkey>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .rows(
                "SELECT record FROM passkeys WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
                &[&user_id],
            )
            .await?;
        records(&rows, "passkeys")
    }

    async fn passkey(&self, id: Uuid) -> Result<Option<Passkey>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .opt("SELECT record FROM passkeys WHERE id = $1", &[&id])
            .await?;
        row.map(|row| record(&row, "passkeys")).transpose()
    }

    async fn passkey_by_credential_id(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<Passkey>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .opt(
                "SELECT record FROM passkeys WHERE credential_id = $1",
                &[&credential_id],
            )
            .await?;
        row.map(|row| record(&row, "passkeys")).transpose()
    }

    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: String,
    ) -> Result<Passkey, StoreError> {
        let now = self.now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut passkey = locked(&txn, id).await?;
        if passkey.user_id != user_id {
            return Err(StoreError::NotFound);
        }
        passkey.name = name;
        put(&txn, &passkey).await?;
        let mut emitted = Vec::new();
        let detail = format!("renamed to {:?}", passkey.name);
        let new = event(EventKind::PasskeyRenamed, &passkey, detail);
        append(&txn, new, now, &mut emitted).await?;
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(passkey)
    }

    async fn delete_passkey(&self, user_id: Uuid, id: Uuid) -> Result<Vec<SecretHash>, StoreError> {
        let now = self.now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // The owner's row orders concurrent deletes of the same user's passkeys.
        txn.opt("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user_id])
            .await?
            .ok_or(StoreError::NotFound)?;
        let passkey = locked(&txn, id).await?;
        if passkey.user_id != user_id {
            return Err(StoreError::NotFound);
        }
        let row = txn
            .one(
                "SELECT count(*) FROM passkeys WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        if row.try_get::<_, i64>(0)? <= 1 {
            return Err(StoreError::LastPasskey);
        }
        let revoked = delete(&txn, &passkey, "deleted by its owner", now).await?;
        txn.commit().await?;
        self.published(&conn, revoked.1).await;
        Ok(revoked.0)
    }

    async fn revoke_passkey(&self, id: Uuid) -> Result<Vec<SecretHash>, StoreError> {
        let now = self.now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let passkey = locked(&txn, id).await?;
        let revoked = delete(&txn, &passkey, "revoked by an administrator", now).await?;
        txn.commit().await?;
        self.published(&conn, revoked.1).await;
        Ok(revoked.0)
    }
}

/// The passkey `id`, its row locked for update; `NotFound` when there is none.
pub(super) async fn locked(txn: &Transaction<'_>, id: Uuid) -> Result<Passkey, StoreError> {
    found(txn.opt(LOCK_PASSKEY, &[&id]).await?)
}

impl PostgresStore {
    /// The user named `username` and their passkeys, newest first, in one statement (a sign-in's
    /// begin: one round trip instead of two).
    pub(super) async fn owner_and_passkeys(
        &self,
        username: &str,
    ) -> Result<Option<(User, Vec<Passkey>)>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .rows(
                "SELECT u.record AS owner, p.record AS passkey FROM users u
                 LEFT JOIN passkeys p ON p.user_id = u.id
                 WHERE u.username = $1 ORDER BY p.created_at DESC, p.id DESC",
                &[&username],
            )
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let owner = column::<User>(first, "owner", "users")?
            .ok_or_else(|| StoreError::Corrupt("a user row without a record".into()))?;
        let mut passkeys = Vec::with_capacity(rows.len());
        for row in &rows {
            passkeys.extend(column::<Passkey>(row, "passkey", "passkeys")?);
        }
        Ok(Some((owner, passkeys)))
    }
}

impl PostgresStore {
    /// The live ceremony and the passkey of a credential id, in one statement (a sign-in's
    /// complete, before it verifies: one round trip instead of two).
    pub(super) async fn login_inputs(
        &self,
        ceremony_id: Uuid,
        credential_id: &[u8],
    ) -> Result<(Option<Ceremony>, Option<Passkey>), StoreError> {
        let now = self.now();
        let conn = self.conn().await?;
        let row = conn
            .one(
                "SELECT (SELECT record FROM ceremonies WHERE id = $1 AND expires_at > $2)
                            AS ceremony,
                        (SELECT record FROM passkeys WHERE credential_id = $3) AS passkey",
                &[&ceremony_id, &now, &credential_id],
            )
            .await?;
        Ok((
            column(&row, "ceremony", "ceremonies")?,
            column(&row, "passkey", "passkeys")?,
        ))
    }
}

/// A nullable record column of a joined row, as its serde type.
fn column<T: serde::de::DeserializeOwned>(
    row: &tokio_postgres::Row,
    name: &str,
    table: &str,
) -> Result<Option<T>, StoreError> {
    row.try_get::<_, Option<tokio_postgres::types::Json<T>>>(name)
        .map(|json| json.map(|json| json.0))
        .map_err(|e| StoreError::Corrupt(format!("a record in table `{table}`: {e}")))
}

/// Passkey `$1`, locked for update.
pub(super) const LOCK_PASSKEY: &str = "SELECT record FROM passkeys WHERE id = $1 FOR UPDATE";

/// The passkey of a row, or `NotFound`.
pub(super) fn found(row: Option<tokio_postgres::Row>) -> Result<Passkey, StoreError> {
    record(&row.ok_or(StoreError::NotFound)?, "passkeys")
}

/// Rewrites a passkey's record (its key columns never change).
pub(super) async fn put(txn: &Transaction<'_>, passkey: &Passkey) -> Result<(), StoreError> {
    txn.run(
        "UPDATE passkeys SET record = $2 WHERE id = $1",
        &[&passkey.id, &json(passkey)],
    )
    .await?;
    Ok(())
}

/// Removes a passkey and the sessions it created, and records why; returns the revoked
/// sessions and the event to log once committed.
async fn delete(
    txn: &Transaction<'_>,
    passkey: &Passkey,
    why: &str,
    now: i64,
) -> Result<(Vec<SecretHash>, Appended), StoreError> {
    let revoked = super::users::delete_sessions_where(txn, "passkey_id", passkey.id).await?;
    txn.run("DELETE FROM passkeys WHERE id = $1", &[&passkey.id])
        .await?;
    publish(txn, &[Revocation::Passkey(passkey.id)]).await?;
    let detail = format!(
        "{:?} {why}; {} session(s) revoked",
        passkey.name,
        revoked.len()
    );
    let mut emitted = Vec::new();
    let new = event(EventKind::PasskeyDeleted, passkey, detail);
    append(txn, new, now, &mut emitted).await?;
    Ok((revoked, emitted))
}

pub(super) fn event(kind: EventKind, passkey: &Passkey, detail: String) -> NewEvent {
    NewEvent {
        kind,
        user_id: Some(passkey.user_id),
        passkey_id: Some(passkey.id),
        detail,
    }
}
