//! A PostgreSQL database of its own for each test: created on a server found through
//! `PKGW_TEST_POSTGRES_URL` and dropped when the test's world is, so tests run in parallel.
//! No server is a failure that says how to start one, never a silent pass.

use std::sync::Arc;

use crate::store::{PostgresOptions, PostgresStore, Store};

/// Where the tests look for a server unless `PKGW_TEST_POSTGRES_URL` says otherwise.
pub(crate) const DEFAULT_URL: &str = "postgres://pkgw:pkgw@127.0.0.1:5432/postgres";

/// A database created for one test; dropped (connections and all) with this guard.
pub(crate) struct TestDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database, for a second store on it (another replica).
    pub(crate) url: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database.
    pub(crate) async fn create() -> TestDatabase {
        let admin_url =
            std::env::var("PKGW_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        let name = format!("pkgw_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database on {admin_url}: {e}"));
        let mut config: tokio_postgres::Config = admin_url.parse().expect("a PostgreSQL URL");
        config.dbname(&name);
        let url = with_dbname(&admin_url, &name);
        TestDatabase {
            admin_url,
            name,
            url,
        }
    }

    /// A store on this database (each call is one more replica's pool).
    pub(crate) async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&options(&self.url), Arc::new(Default::default()))
            .await
            .expect("connect to the test database")
    }

    /// A plain connection to this database (to inspect it, or cut other connections).
    pub(crate) async fn admin(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// As [`TestDatabase::store`], as a `Store` handle.
    pub(crate) async fn handle(&self) -> Store {
        Store::with_backend(self.store().await)
    }
}

/// Waits until no connection to `database` is inside a transaction: one a cancelled operation
/// left open would be a bug (its locks held, its pooled connection reused mid-transaction).
/// The server closes a transaction whose client went away when it notices, so this waits for
/// that, up to ten seconds.
pub(crate) async fn wait_for_no_open_transaction(database: &TestDatabase) {
    let admin = database.admin().await;
    let sql = "SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND state LIKE 'idle in transaction%'";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let open: i64 = admin
            .query_one(sql, &[])
            .await
            .expect("pg_stat_activity")
            .get(0);
        if open == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} connection(s) still inside a transaction"
        );
        tokio::task::yield_now().await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Dropped inside the test's runtime: do the drop on a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let admin = connect(&admin_url).await;
                admin.batch_execute(&sql).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

pub(crate) fn options(url: &str) -> PostgresOptions {
    PostgresOptions {
        url: url.to_string(),
        password: None,
        pool_size: 8,
        statement_timeout: std::time::Duration::from_secs(10),
        connect_timeout: std::time::Duration::from_secs(5),
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(e) => panic!(
            "no PostgreSQL answers at {url} ({e}). The store's tests need one: run `.ci/run`, or \
             start a server (Debian: `pg_ctlcluster 15 main start`) and create the role \
             (`su postgres -c \"psql -c \\\"CREATE ROLE pkgw LOGIN CREATEDB PASSWORD 'pkgw'\\\"\"`), \
             or set PKGW_TEST_POSTGRES_URL to a server where the user may CREATE DATABASE."
        ),
    };
    tokio::spawn(connection);
    client
}

/// `url` with its path (the database) replaced by `name`.
fn with_dbname(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("PKGW_TEST_POSTGRES_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}
