//! Statements prepared once per pooled connection. tokio-postgres runs a statement given as text
//! in two round trips (prepare, then bind and execute); with deadpool's per-connection cache it
//! is one after the first use, and the server plans it once. Every store operation runs its
//! statements through these methods, on a pooled connection or a transaction of one.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

#[async_trait]
pub(super) trait Cached {
    /// Every row the statement returns.
    async fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error>;
    /// Exactly one row, else an error.
    async fn one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error>;
    /// At most one row.
    async fn opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error>;
    /// How many rows the statement changed.
    async fn run(&self, sql: &str, params: Params<'_>) -> Result<u64, Error>;
}

#[async_trait]
impl<C: GenericClient + Sync> Cached for C {
    async fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    async fn one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_one(&statement, params).await
    }

    async fn opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }

    async fn run(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }
}
