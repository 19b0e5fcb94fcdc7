//! `[store]`: which backend keeps the gateway's state, and how to reach PostgreSQL.
//!
//! redb (one file in `server.data_dir`) is the default. `postgres` is for several replicas
//! sharing one database. The password never has to be written in the file: it comes from an
//! environment variable or a file, read once at load (`resolve_password`), and is kept in a
//! [`Password`] whose `Debug` prints nothing.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Which backend keeps users, passkeys, ceremonies, sessions and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One redb file in `server.data_dir`.
    #[default]
    Redb,
    /// A PostgreSQL database shared by every replica.
    Postgres,
}

/// `[store]` as written, plus the password once resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// `postgres://user@host:port/database` (or `postgresql://`); its query may set
    /// `application_name` and the like. Required with `backend = "postgres"`.
    pub url: Option<String>,
    /// The environment variable holding the database password.
    pub password_env: Option<String>,
    /// A file holding the database password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Connections each replica keeps at most.
    pub pool_size: usize,
    /// The server aborts any statement that runs longer (a stuck query must not hold a request).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// How long opening a connection (and waiting for a free one) may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A file holding the key that seals the shared signing keys (64 hex digits).
    pub key_encryption_key_file: Option<PathBuf>,
    /// The environment variable holding that key instead.
    pub key_encryption_key_env: Option<String>,
    /// Filled by `resolve` from one of the two above.
    #[serde(skip)]
    pub key_encryption_key: Option<crate::identity::KeyEncryptionKey>,
    /// Filled by `resolve` from `password_env` or `password_file`; never from the file itself.
    #[serde(skip)]
    pub password: Option<Password>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Redb,
            url: None,
            password_env: None,
            password_file: None,
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            key_encryption_key_file: None,
            key_encryption_key_env: None,
            key_encryption_key: None,
            password: None,
        }
    }
}

/// A database password: readable by the store, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Password {
        Password(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

type Check = Result<(), (String, String)>;

fn fail(key: &str, reason: impl Into<String>) -> Check {
    Err((key.to_string(), reason.into()))
}

/// The `[store]` rules: pure, so fuzzing and `check` run them without a database.
pub(super) fn check(store: &StoreConfig) -> Check {
    if store.backend == StoreBackend::Redb {
        let postgres_only = [
            ("store.url", store.url.is_some()),
            ("store.password_env", store.password_env.is_some()),
            ("store.password_file", store.password_file.is_some()),
            (
                "store.key_encryption_key_file",
                store.key_encryption_key_file.is_some(),
            ),
            (
                "store.key_encryption_key_env",
                store.key_encryption_key_env.is_some(),
            ),
        ];
        for (key, set) in postgres_only {
            if set {
                return fail(key, "is only used with store.backend = \"postgres\"");
            }
        }
    } else {
        check_postgres(store)?;
    }
    if !(1..=1024).contains(&store.pool_size) {
        return fail("store.pool_size", "must be between 1 and 1024");
    }
    if store.statement_timeout < Duration::from_millis(100) {
        return fail("store.statement_timeout", "must be at least 100ms");
    }
    if store.connect_timeout < Duration::from_millis(100) {
        return fail("store.connect_timeout", "must be at least 100ms");
    }
    Ok(())
}

fn check_postgres(store: &StoreConfig) -> Check {
    let Some(url) = store.url.as_deref() else {
        return fail("store.url", "is required with store.backend = \"postgres\"");
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return fail("store.url", "must be a postgres:// or postgresql:// URL");
    }
    let parsed = url.parse::<tokio_postgres::Config>().map_err(|e| {
        (
            "store.url".to_string(),
            format!("is not a PostgreSQL URL: {e}"),
        )
    })?;
    if parsed.get_dbname().is_none() {
        return fail(
            "store.url",
            "must name the database (postgres://host/DATABASE)",
        );
    }
    if store.password_env.is_some() && store.password_file.is_some() {
        return fail(
            "store.password_file",
            "set either store.password_env or store.password_file, not both",
        );
    }
    if parsed.get_password().is_some()
        && (store.password_env.is_some() || store.password_file.is_some())
    {
        return fail(
            "store.url",
            "holds a password and store.password_env/password_file names another; keep one",
        );
    }
    match (
        &store.key_encryption_key_file,
        &store.key_encryption_key_env,
    ) {
        (None, None) => {
            return fail(
                "store.key_encryption_key_file",
                "is required with store.backend = \"postgres\" (or store.key_encryption_key_env): \
                 it seals the signing keys the replicas share",
            )
        }
        (Some(_), Some(_)) => return fail(
            "store.key_encryption_key_env",
            "set either store.key_encryption_key_file or store.key_encryption_key_env, not both",
        ),
        _ => {}
    }
    if store.password_env.as_deref() == Some("") {
        return fail("store.password_env", "must name an environment variable");
    }
    Ok(())
}

/// Reads the key-encryption key from its file or variable, once, at load.
fn resolve_kek(store: &mut StoreConfig) -> Check {
    let (key, text) = if let Some(path) = &store.key_encryption_key_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            (
                "store.key_encryption_key_file".to_string(),
                format!("cannot read `{}`: {e}", path.display()),
            )
        })?;
        ("store.key_encryption_key_file", text)
    } else if let Some(name) = &store.key_encryption_key_env {
        let text = std::env::var(name).map_err(|_| {
            (
                "store.key_encryption_key_env".to_string(),
                format!("the environment variable `{name}` is not set (or not UTF-8)"),
            )
        })?;
        ("store.key_encryption_key_env", text)
    } else {
        return Ok(());
    };
    let kek = crate::identity::KeyEncryptionKey::from_hex(&text)
        .map_err(|reason| (key.to_string(), reason))?;
    store.key_encryption_key = Some(kek);
    Ok(())
}

/// Reads the password from `password_env` or `password_file`, and the key-encryption key,
/// once, at load.
pub(super) fn resolve_password(store: &mut StoreConfig) -> Check {
    if let Some(name) = &store.password_env {
        let value = std::env::var(name).map_err(|_| {
            (
                "store.password_env".to_string(),
                format!("the environment variable `{name}` is not set (or not UTF-8)"),
            )
        })?;
        store.password = Some(Password::new(value));
    }
    if let Some(path) = &store.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            (
                "store.password_file".to_string(),
                format!("cannot read `{}`: {e}", path.display()),
            )
        })?;
        let value = text.trim_end_matches(['\r', '\n']);
        if value.is_empty() {
            return fail(
                "store.password_file",
                format!("`{}` is empty", path.display()),
            );
        }
        store.password = Some(Password::new(value));
    }
    resolve_kek(store)
}
