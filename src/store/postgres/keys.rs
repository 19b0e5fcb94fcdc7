//! The sealed signing-key ring on PostgreSQL: one row, replaced by compare-and-swap on its
//! version, so two replicas rotating at once cannot both win (the loser re-reads and retries).
//! The store never sees the plaintext: sealing is `identity::shared`'s business.

use super::cached::Cached;
use super::PostgresStore;
use crate::store::StoreError;

impl PostgresStore {
    /// The sealed ring and its version, if one was stored.
    pub(super) async fn read_sealed_keys(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .opt("SELECT version, sealed FROM signing_keys", &[])
            .await?;
        Ok(row
            .map(|row| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?)))
            .transpose()?)
    }

    /// Stores `sealed` as version `expected + 1` (or 1 when `expected` is `None`) if the stored
    /// version is still `expected`; false when another replica changed it first.
    pub(super) async fn swap_sealed_keys(
        &self,
        expected: Option<i64>,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let changed = match expected {
            None => {
                conn.run(
                    "INSERT INTO signing_keys (version, sealed) VALUES (1, $1)
                     ON CONFLICT (only_row) DO NOTHING",
                    &[&sealed],
                )
                .await?
            }
            Some(version) => {
                conn.run(
                    "UPDATE signing_keys SET version = version + 1, sealed = $2
                     WHERE version = $1",
                    &[&version, &sealed],
                )
                .await?
            }
        };
        Ok(changed == 1)
    }
}
