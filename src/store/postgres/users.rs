//! User operations on PostgreSQL. A user's row is the lock that orders everything about that
//! user: disabling or removing takes it `FOR UPDATE`, a login `FOR SHARE`, so a login racing a
//! disable either commits first (and its session is revoked with the rest) or sees the user
//! disabled.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::cached::Cached;
use super::events::append;
use super::notify::publish;
use super::{is_unique_violation, json, record, records, PostgresStore};
use crate::store::backend::UserStore;
use crate::store::model::{EventKind, NewEvent, NewUser, SecretHash, User};
use crate::store::revocations::Revocation;
use crate::store::rules::new_user;
use crate::store::StoreError;

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let now = self.now();
        let user = new_user(new, now);
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let inserted = txn
            .run(
                "INSERT INTO users (id, username, record) VALUES ($1, $2, $3)
                 ON CONFLICT (username) DO NOTHING",
                &[&user.id, &user.username, &json(&user)],
            )
            .await;
        match inserted {
            Ok(0) => return Err(StoreError::Conflict("username")),
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict("username")),
            Err(e) => return Err(e.into()),
        }
        let mut emitted = Vec::new();
        let detail = format!("username {:?}", user.username);
        append(
            &txn,
            event(EventKind::UserCreated, &user, detail),
            now,
            &mut emitted,
        )
        .await?;
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(user)
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .opt("SELECT record FROM users WHERE id = $1", &[&id])
            .await?;
        row.map(|row| record(&row, "users")).transpose()
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .opt("SELECT record FROM users WHERE username = $1", &[&username])
            .await?;
        row.map(|row| record(&row, "users")).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .rows(
                "SELECT record FROM users ORDER BY username COLLATE \"C\"",
                &[],
            )
            .await?;
        records(&rows, "users")
    }

    async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<Vec<SecretHash>, StoreError> {
        let now = self.now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut user = locked_by_name(&txn, username).await?;
        let revoked = if disabled {
            delete_sessions_where(&txn, "user_id", user.id).await?
        } else {
            Vec::new()
        };
        user.disabled = disabled;
        put(&txn, &user).await?;
        if disabled {
            publish(&txn, &[Revocation::User(user.id)]).await?;
        }
        let (kind, detail) = if disabled {
            let detail = format!("{} session(s) revoked", revoked.len());
            (EventKind::UserDisabled, detail)
        } else {
            (EventKind::UserEnabled, String::new())
        };
        let mut emitted = Vec::new();
        append(&txn, event(kind, &user, detail), now, &mut emitted).await?;
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(revoked)
    }

    async fn set_user_groups(
        &self,
        username: &str,
        groups: Vec<String>,
    ) -> Result<User, StoreError> {
        let now = self.now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let mut user = locked_by_name(&txn, username).await?;
        user.groups = groups;
        put(&txn, &user).await?;
        // Other replicas drop the user's cached identities, as this one does.
        publish(&txn, &[Revocation::User(user.id)]).await?;
        let mut emitted = Vec::new();
        let detail = format!("groups {:?}", user.groups);
        let new = event(EventKind::UserGroupsChanged, &user, detail);
        append(&txn, new, now, &mut emitted).await?;
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(user)
    }

    async fn remove_user(&self, username: &str) -> Result<Vec<SecretHash>, StoreError> {
        let now = self.now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let user = locked_by_name(&txn, username).await?;
        let revoked = delete_sessions_where(&txn, "user_id", user.id).await?;
        let passkeys = txn
            .run("DELETE FROM passkeys WHERE user_id = $1", &[&user.id])
            .await?;
        let links = txn
            .run("DELETE FROM enrollments WHERE user_id = $1", &[&user.id])
            .await?;
        txn.run("DELETE FROM users WHERE id = $1", &[&user.id])
            .await?;
        publish(&txn, &[Revocation::User(user.id)]).await?;
        let detail = format!(
            "username {:?}: {passkeys} passkey(s), {} session(s), {links} enrollment link(s) removed",
            user.username,
            revoked.len(),
        );
        let mut emitted = Vec::new();
        append(
            &txn,
            event(EventKind::UserRemoved, &user, detail),
            now,
            &mut emitted,
        )
        .await?;
        txn.commit().await?;
        self.published(&conn, emitted).await;
        Ok(revoked)
    }
}

/// The user named `username`, its row locked for update; `NotFound` when there is none.
async fn locked_by_name(txn: &Transaction<'_>, username: &str) -> Result<User, StoreError> {
    let row = txn
        .opt(
            "SELECT record FROM users WHERE username = $1 FOR UPDATE",
            &[&username],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    record(&row, "users")
}

/// The user `id` if it exists and is not disabled, its row locked against a concurrent
/// disable or removal (`FOR SHARE`) or against everything (`FOR UPDATE`).
pub(super) async fn active_user(
    txn: &Transaction<'_>,
    id: Uuid,
    exclusive: bool,
) -> Result<User, StoreError> {
    let sql = if exclusive {
        "SELECT record FROM users WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT record FROM users WHERE id = $1 FOR SHARE"
    };
    active(txn.opt(sql, &[&id]).await?)
}

/// The owner of passkey `$1`, locked for share (its passkeys change under it, not its record).
pub(super) const ACTIVE_OWNER: &str =
    "SELECT record FROM users WHERE id = (SELECT user_id FROM passkeys WHERE id = $1) FOR SHARE";

/// The user of an owner's row, unless absent (`NotFound`) or disabled.
pub(super) fn active(row: Option<tokio_postgres::Row>) -> Result<User, StoreError> {
    let user: User = record(&row.ok_or(StoreError::NotFound)?, "users")?;
    if user.disabled {
        return Err(StoreError::UserDisabled);
    }
    Ok(user)
}

async fn put(txn: &Transaction<'_>, user: &User) -> Result<(), StoreError> {
    txn.run(
        "UPDATE users SET record = $2 WHERE id = $1",
        &[&user.id, &json(user)],
    )
    .await?;
    Ok(())
}

/// Deletes the sessions whose `column` (`user_id` or `passkey_id`) is `id`; returns their hashes.
pub(super) async fn delete_sessions_where(
    txn: &Transaction<'_>,
    column: &'static str,
    id: Uuid,
) -> Result<Vec<SecretHash>, StoreError> {
    let sql = match column {
        "user_id" => "DELETE FROM sessions WHERE user_id = $1 RETURNING id_hash",
        "passkey_id" => "DELETE FROM sessions WHERE passkey_id = $1 RETURNING id_hash",
        _ => {
            return Err(StoreError::Invalid(
                "sessions are deleted by user or passkey",
            ))
        }
    };
    let rows = txn.rows(sql, &[&id]).await?;
    rows.iter().map(super::sessions::hash_of).collect()
}

fn event(kind: EventKind, user: &User, detail: String) -> NewEvent {
    NewEvent {
        kind,
        user_id: Some(user.id),
        passkey_id: None,
        detail,
    }
}
