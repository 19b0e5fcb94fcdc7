//! User operations: create, look up, list, disable/enable, change groups, remove.
//!
//! Usernames are unique through the `usernames` index, compared exactly as given (callers
//! normalize). Disabling and removing revoke the user's sessions in the same transaction, and
//! return the revoked session hashes so a caller's session cache can drop them at once.

use super::backend::UserStore;
use super::events::append;
use super::model::{EventKind, NewEvent, NewUser, SecretHash, User};
use super::rules::new_user;
use super::tables::{all_by_id, encode, get_by_id, USERNAMES, USERS};
use super::writer::Batch;
use super::{passkeys, sessions, RedbStore, StoreError};
use async_trait::async_trait;
use redb::{ReadableMultimapTable, ReadableTable};
use uuid::Uuid;

#[async_trait]
impl UserStore for RedbStore {
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let now = self.now();
        self.write(move |batch| {
            if batch.usernames.get(new.username.as_str())?.is_some() {
                return Err(StoreError::Conflict("username"));
            }
            let user = new_user(new, now);
            put(batch, &user)?;
            batch
                .usernames
                .insert(user.username.as_str(), user.id.as_u128())?;
            let detail = format!("username {:?}", user.username);
            append(batch, event(EventKind::UserCreated, &user, detail), now)?;
            Ok(user)
        })
        .await
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.read(move |txn| get_by_id(&txn.open_table(USERS)?, id))
            .await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let username = username.to_owned();
        self.read(move |txn| {
            let names = txn.open_table(USERNAMES)?;
            let Some(id) = names.get(username.as_str())?.map(|guard| guard.value()) else {
                return Ok(None);
            };
            get_by_id(&txn.open_table(USERS)?, Uuid::from_u128(id))
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.scan(|txn| {
            let mut users: Vec<User> = all_by_id(&txn.open_table(USERS)?)?;
            users.sort_by(|a, b| a.username.cmp(&b.username));
            Ok(users)
        })
        .await
    }

    async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<Vec<SecretHash>, StoreError> {
        let username = username.to_owned();
        let now = self.now();
        self.write(move |batch| {
            let mut user = by_name(batch, &username)?.ok_or(StoreError::NotFound)?;
            let revoked = if disabled {
                sessions::of_user(&batch.user_sessions, &batch.sessions, user.id)?
            } else {
                Vec::new()
            };
            user.disabled = disabled;
            put(batch, &user)?;
            for session in &revoked {
                sessions::remove(batch, session)?;
            }
            let (kind, detail) = if disabled {
                let detail = format!("{} session(s) revoked", revoked.len());
                (EventKind::UserDisabled, detail)
            } else {
                (EventKind::UserEnabled, String::new())
            };
            append(batch, event(kind, &user, detail), now)?;
            Ok(revoked.iter().map(|session| session.id_hash).collect())
        })
        .await
    }

    async fn set_user_groups(
        &self,
        username: &str,
        groups: Vec<String>,
    ) -> Result<User, StoreError> {
        let username = username.to_owned();
        let now = self.now();
        self.write(move |batch| {
            let mut user = by_name(batch, &username)?.ok_or(StoreError::NotFound)?;
            user.groups = groups;
            put(batch, &user)?;
            let detail = format!("groups {:?}", user.groups);
            append(
                batch,
                event(EventKind::UserGroupsChanged, &user, detail),
                now,
            )?;
            Ok(user)
        })
        .await
    }

    async fn remove_user(&self, username: &str) -> Result<Vec<SecretHash>, StoreError> {
        let username = username.to_owned();
        let now = self.now();
        self.write(move |batch| {
            let user = by_name(batch, &username)?.ok_or(StoreError::NotFound)?;
            let id = user.id.as_u128();
            let owned = passkeys::of_user(&batch.user_passkeys, &batch.passkeys, user.id)?;
            let revoked = sessions::of_user(&batch.user_sessions, &batch.sessions, user.id)?;
            let mut tokens = Vec::new();
            for token in batch.user_enrollments.get(id)? {
                tokens.push(*token?.value());
            }
            // Every read is done; from here on only writes.
            for passkey in &owned {
                passkeys::remove(batch, passkey)?;
            }
            for session in &revoked {
                sessions::remove(batch, session)?;
            }
            for token in &tokens {
                batch.enrollments.remove(token)?;
            }
            batch.user_enrollments.remove_all(id)?;
            batch.users.remove(id)?;
            batch.usernames.remove(user.username.as_str())?;
            let detail = format!(
                "username {:?}: {} passkey(s), {} session(s), {} enrollment link(s) removed",
                user.username,
                owned.len(),
                revoked.len(),
                tokens.len()
            );
            append(batch, event(EventKind::UserRemoved, &user, detail), now)?;
            Ok(revoked.iter().map(|session| session.id_hash).collect())
        })
        .await
    }
}

/// Looks a user up by name inside a write batch.
pub(super) fn by_name(batch: &Batch<'_>, username: &str) -> Result<Option<User>, StoreError> {
    match batch.usernames.get(username)?.map(|guard| guard.value()) {
        Some(id) => get_by_id(&batch.users, Uuid::from_u128(id)),
        None => Ok(None),
    }
}

/// Writes a user record (the username index is the caller's business).
fn put(batch: &mut Batch<'_>, user: &User) -> Result<(), StoreError> {
    batch
        .users
        .insert(user.id.as_u128(), encode(user)?.as_slice())?;
    Ok(())
}

fn event(kind: EventKind, user: &User, detail: String) -> NewEvent {
    NewEvent {
        kind,
        user_id: Some(user.id),
        passkey_id: None,
        detail,
    }
}
