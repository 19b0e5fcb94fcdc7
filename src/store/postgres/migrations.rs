//! Versioned schema migrations: SQL files embedded in the binary, applied in order at start, each
//! in its own transaction, recorded in `schema_migrations`. Replicas starting together take
//! one session advisory lock first, so each migration runs exactly once; a database already
//! migrated by a newer binary is refused rather than misread.

use std::sync::Arc;

use super::storage;
use crate::store::StoreError;

/// Every migration this binary knows, oldest first: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "records", include_str!("migrations/0001_records.sql")),
    (
        2,
        "signing_keys",
        include_str!("migrations/0002_signing_keys.sql"),
    ),
    (
        3,
        "ceremony_count_unlocked",
        include_str!("migrations/0003_ceremony_count_unlocked.sql"),
    ),
    (
        4,
        "events_numbered_after_commit",
        include_str!("migrations/0004_events_numbered_after_commit.sql"),
    ),
    (
        5,
        "ceremony_slots",
        include_str!("migrations/0005_ceremony_slots.sql"),
    ),
    (
        6,
        "ceremony_slots_inline",
        include_str!("migrations/0006_ceremony_slots_inline.sql"),
    ),
];

/// The advisory lock key that serializes migrations ("pkgw-mig" as an integer).
const MIGRATION_LOCK: i64 = 0x706b_6777_2d6d_6967;

/// Opens one connection of its own (with its driver task on the current runtime).
pub(crate) async fn connect_once(
    config: &tokio_postgres::Config,
    target: &str,
) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(|e| {
        StoreError::Storage(Arc::new(Unreachable {
            target: target.to_string(),
            cause: e,
        }))
    })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Applies the migrations the database lacks, under the migration lock.
pub(super) async fn apply(config: &tokio_postgres::Config, target: &str) -> Result<(), StoreError> {
    let mut client = connect_once(config, target).await?;
    // A session lock: released when this connection closes, even if a migration fails.
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?;
    let found: i32 = row.try_get(0)?;
    let supported = MIGRATIONS.last().map_or(0, |m| m.0);
    if found > supported {
        return Err(storage(format!(
            "the database at {target} has schema version {found}; this binary knows up to {supported}"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let txn = client.transaction().await?;
        txn.batch_execute(sql).await?;
        txn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        txn.commit().await?;
        tracing::info!(version, name, "applied a store migration");
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    Ok(())
}

/// The server did not answer or refused the connection.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to PostgreSQL at {target}")]
pub(crate) struct Unreachable {
    target: String,
    #[source]
    cause: tokio_postgres::Error,
}
