//! The redb schema: every table as a `const` definition, the schema version, and the typed
//! get/put helpers over them. Nothing here is public outside `store`.
//!
//! Records are JSON in `&[u8]` values, keyed by `Uuid::as_u128`, by secret hash bytes, or by
//! the unique field they index. Indexes are kept by the same write that changes the record.

use super::error::StoreError;
use redb::{MultimapTableDefinition, ReadableTable, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

/// The schema this binary writes. Bump it with a migration in `Store::open` when a record or
/// table changes shape; a file with a higher number is refused rather than misread.
pub(super) const SCHEMA_VERSION: u64 = 1;

/// `"schema_version"` → the version the file was written with.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const SCHEMA_KEY: &str = "schema_version";

/// user id → `User`.
pub(super) const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
/// username → user id (uniqueness of usernames).
pub(super) const USERNAMES: TableDefinition<&str, u128> = TableDefinition::new("usernames");
/// passkey id → `Passkey`.
pub(super) const PASSKEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("passkeys");
/// credential id → passkey id (uniqueness of credential ids across users).
pub(super) const CREDENTIAL_IDS: TableDefinition<&[u8], u128> =
    TableDefinition::new("credential_ids");
/// user id → passkey ids.
pub(super) const USER_PASSKEYS: MultimapTableDefinition<u128, u128> =
    MultimapTableDefinition::new("user_passkeys");
/// ceremony id → `Ceremony`.
pub(super) const CEREMONIES: TableDefinition<u128, &[u8]> = TableDefinition::new("ceremonies");
/// token hash → `Enrollment`.
pub(super) const ENROLLMENTS: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("enrollments");
/// user id → token hashes (so removing a user spends its links).
pub(super) const USER_ENROLLMENTS: MultimapTableDefinition<u128, &[u8; 32]> =
    MultimapTableDefinition::new("user_enrollments");
/// session id hash → `SessionRecord`.
pub(super) const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");
/// user id → session id hashes (revocation on disable/remove/passkey delete).
pub(super) const USER_SESSIONS: MultimapTableDefinition<u128, &[u8; 32]> =
    MultimapTableDefinition::new("user_sessions");
/// event id → `Event`, ids increasing.
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// `"{period:016x}/{kind}/{client}/{user}"` → the id of the event that tallies those failures;
/// only the current period is needed, older ones are purged.
pub(super) const EVENT_TALLIES: TableDefinition<&str, u64> = TableDefinition::new("event_tallies");

/// Creates every table so that read transactions never meet a missing one.
pub(super) fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(USERS)?;
    txn.open_table(USERNAMES)?;
    txn.open_table(PASSKEYS)?;
    txn.open_table(CREDENTIAL_IDS)?;
    txn.open_multimap_table(USER_PASSKEYS)?;
    txn.open_table(CEREMONIES)?;
    txn.open_table(ENROLLMENTS)?;
    txn.open_multimap_table(USER_ENROLLMENTS)?;
    txn.open_table(SESSIONS)?;
    txn.open_multimap_table(USER_SESSIONS)?;
    txn.open_table(EVENTS)?;
    txn.open_table(EVENT_TALLIES)?;
    Ok(())
}

/// Serializes a record. Our own types always serialize; the error path exists for honesty.
pub(super) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(format!("encoding a record: {e}")))
}

/// Deserializes a record, naming the table when the bytes do not fit the type.
pub(super) fn decode<T: DeserializeOwned>(table: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("a record in table `{table}`: {e}")))
}

/// Reads the record stored under a uuid key.
pub(super) fn get_by_id<T: DeserializeOwned>(
    table: &impl ReadableTable<u128, &'static [u8]>,
    id: Uuid,
) -> Result<Option<T>, StoreError> {
    match table.get(id.as_u128())? {
        Some(guard) => Ok(Some(decode(&table_name::<T>(), guard.value())?)),
        None => Ok(None),
    }
}

/// Reads the record stored under a secret hash key.
pub(super) fn get_by_hash<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    hash: &[u8; 32],
) -> Result<Option<T>, StoreError> {
    match table.get(hash)? {
        Some(guard) => Ok(Some(decode(&table_name::<T>(), guard.value())?)),
        None => Ok(None),
    }
}

/// Every record of a uuid-keyed table, in key order.
pub(super) fn all_by_id<T: DeserializeOwned>(
    table: &impl ReadableTable<u128, &'static [u8]>,
) -> Result<Vec<T>, StoreError> {
    let mut records = Vec::with_capacity(usize::try_from(table.len()?).unwrap_or(0));
    for entry in table.iter()? {
        let (_, value) = entry?;
        records.push(decode(&table_name::<T>(), value.value())?);
    }
    Ok(records)
}

// Only for error messages: "a record in table `Passkey`" is enough to find the table.
fn table_name<T>() -> String {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full).to_owned()
}
