//! Passkey operations after registration: list, look up, rename, delete (owner) and revoke
//! (admin). Registering and logging in are the atomic completes in `ceremonies.rs`.
//!
//! Ownership is checked here: another user's passkey id answers `NotFound`, exactly like a
//! missing one, so ids cannot be probed. Deleting a passkey revokes, in the same transaction,
//! the sessions that passkey created, and returns their hashes.

use super::backend::PasskeyStore;
use super::events::append;
use super::model::{EventKind, NewEvent, Passkey, SecretHash, SessionRecord};
use super::tables::{encode, get_by_id, CREDENTIAL_IDS, PASSKEYS, USER_PASSKEYS};
use super::writer::Batch;
use super::{sessions, RedbStore, StoreError};
use async_trait::async_trait;
use redb::{ReadableMultimapTable, ReadableTable};
use uuid::Uuid;

#[async_trait]
impl PasskeyStore for RedbStore {
    async fn passkeys_of(&self, user_id: Uuid) -> Result<Vec<Passkey>, StoreError> {
        self.read(move |txn| {
            let index = txn.open_multimap_table(USER_PASSKEYS)?;
            of_user(&index, &txn.open_table(PASSKEYS)?, user_id)
        })
        .await
    }

    async fn passkey(&self, id: Uuid) -> Result<Option<Passkey>, StoreError> {
        self.read(move |txn| get_by_id(&txn.open_table(PASSKEYS)?, id))
            .await
    }

    async fn passkey_by_credential_id(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<Passkey>, StoreError> {
        let credential_id = credential_id.to_vec();
        self.read(move |txn| {
            let index = txn.open_table(CREDENTIAL_IDS)?;
            let Some(id) = index
                .get(credential_id.as_slice())?
                .map(|guard| guard.value())
            else {
                return Ok(None);
            };
            get_by_id(&txn.open_table(PASSKEYS)?, Uuid::from_u128(id))
        })
        .await
    }

    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: String,
    ) -> Result<Passkey, StoreError> {
        let now = self.now();
        self.write(move |batch| {
            let mut passkey = owned(batch, user_id, id)?;
            passkey.name = name;
            put(batch, &passkey)?;
            let detail = format!("renamed to {:?}", passkey.name);
            append(
                batch,
                event(EventKind::PasskeyRenamed, &passkey, detail),
                now,
            )?;
            Ok(passkey)
        })
        .await
    }

    async fn delete_passkey(&self, user_id: Uuid, id: Uuid) -> Result<Vec<SecretHash>, StoreError> {
        let now = self.now();
        self.write(move |batch| {
            let passkey = owned(batch, user_id, id)?;
            if batch.user_passkeys.get(user_id.as_u128())?.len() <= 1 {
                return Err(StoreError::LastPasskey);
            }
            delete(batch, &passkey, "deleted by its owner", now)
        })
        .await
    }

    async fn revoke_passkey(&self, id: Uuid) -> Result<Vec<SecretHash>, StoreError> {
        let now = self.now();
        self.write(move |batch| {
            let passkey: Passkey = get_by_id(&batch.passkeys, id)?.ok_or(StoreError::NotFound)?;
            delete(batch, &passkey, "revoked by an administrator", now)
        })
        .await
    }
}

/// A user's passkeys through the `user_passkeys` index (any transaction), newest first.
pub(super) fn of_user(
    index: &impl ReadableMultimapTable<u128, u128>,
    passkeys: &impl ReadableTable<u128, &'static [u8]>,
    user_id: Uuid,
) -> Result<Vec<Passkey>, StoreError> {
    let mut found = Vec::new();
    for id in index.get(user_id.as_u128())? {
        if let Some(passkey) = get_by_id::<Passkey>(passkeys, Uuid::from_u128(id?.value()))? {
            found.push(passkey);
        }
    }
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(found)
}

/// Writes a passkey record (indexes are the caller's business).
pub(super) fn put(batch: &mut Batch<'_>, passkey: &Passkey) -> Result<(), StoreError> {
    batch
        .passkeys
        .insert(passkey.id.as_u128(), encode(passkey)?.as_slice())?;
    Ok(())
}

/// Inserts a new passkey with both its indexes.
pub(super) fn insert(batch: &mut Batch<'_>, passkey: &Passkey) -> Result<(), StoreError> {
    put(batch, passkey)?;
    batch
        .credential_ids
        .insert(passkey.credential_id.as_slice(), passkey.id.as_u128())?;
    batch
        .user_passkeys
        .insert(passkey.user_id.as_u128(), passkey.id.as_u128())?;
    Ok(())
}

/// Deletes a passkey with both its indexes (its sessions are the caller's business).
pub(super) fn remove(batch: &mut Batch<'_>, passkey: &Passkey) -> Result<(), StoreError> {
    batch.passkeys.remove(passkey.id.as_u128())?;
    batch
        .credential_ids
        .remove(passkey.credential_id.as_slice())?;
    batch
        .user_passkeys
        .remove(passkey.user_id.as_u128(), passkey.id.as_u128())?;
    Ok(())
}

/// The passkey `id` if `user_id` owns it; anything else is `NotFound`.
fn owned(batch: &Batch<'_>, user_id: Uuid, id: Uuid) -> Result<Passkey, StoreError> {
    let passkey: Option<Passkey> = get_by_id(&batch.passkeys, id)?;
    passkey
        .filter(|passkey| passkey.user_id == user_id)
        .ok_or(StoreError::NotFound)
}

/// Removes a passkey and the sessions it created, and records why.
fn delete(
    batch: &mut Batch<'_>,
    passkey: &Passkey,
    why: &str,
    now: i64,
) -> Result<Vec<SecretHash>, StoreError> {
    let revoked: Vec<SessionRecord> =
        sessions::of_user(&batch.user_sessions, &batch.sessions, passkey.user_id)?
            .into_iter()
            .filter(|session| session.passkey_id == passkey.id)
            .collect();
    // Every read is done; from here on only writes.
    remove(batch, passkey)?;
    for session in &revoked {
        sessions::remove(batch, session)?;
    }
    let detail = format!(
        "{:?} {why}; {} session(s) revoked",
        passkey.name,
        revoked.len()
    );
    append(
        batch,
        event(EventKind::PasskeyDeleted, passkey, detail),
        now,
    )?;
    Ok(revoked.iter().map(|session| session.id_hash).collect())
}

fn event(kind: EventKind, passkey: &Passkey, detail: String) -> NewEvent {
    NewEvent {
        kind,
        user_id: Some(passkey.user_id),
        passkey_id: Some(passkey.id),
        detail,
    }
}
