//! `StoreError`: every way a store operation can fail, in domain terms.
//!
//! Rule violations (`Conflict`, `DuplicateCredential`, ...) are decided before an operation
//! writes anything. Backend failures (`Storage`, `Corrupt`) abort the whole write batch they
//! happened in. No redb type appears in the public enum; the cause is kept as a source.

use std::path::PathBuf;
use std::sync::Arc;

/// A failed store operation.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The user, passkey or session does not exist (or is not the caller's).
    #[error("not found")]
    NotFound,
    /// A unique field is already taken; the payload names the field.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The credential id is already registered, to this user or another.
    #[error("this credential is already registered")]
    DuplicateCredential,
    /// As many ceremonies as allowed are already begun and unfinished.
    #[error("too many ceremonies are in progress")]
    TooManyCeremonies,
    /// The ceremony id is unknown, expired, already used, or of the other kind.
    #[error("the ceremony is unknown, expired or already used")]
    CeremonyNotFound,
    /// The enrollment token is unknown, expired, spent, or belongs to another user.
    #[error("the enrollment link is invalid, expired or already used")]
    EnrollmentInvalid,
    /// The user is disabled.
    #[error("the user is disabled")]
    UserDisabled,
    /// The user already has the maximum number of passkeys.
    #[error("the user already has {max} passkeys, the most allowed")]
    TooManyPasskeys { max: usize },
    /// Deleting this passkey would leave its owner unable to sign in.
    #[error("the last passkey of a user cannot be deleted by its owner")]
    LastPasskey,
    /// The caller passed inconsistent input (a bug in the caller, not the user's doing).
    #[error("inconsistent store request: {0}")]
    Invalid(&'static str),
    /// The file was written by a newer binary.
    #[error(
        "the store at {path} was written by schema version {found}; this binary reads up to {supported}"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    /// Another process (a running `serve`?) holds the file.
    #[error("the store at {path} is open in another process")]
    Locked { path: PathBuf },
    /// The storage backend failed; the operation (and its batch) was not applied.
    #[error("the store failed: {0}")]
    Storage(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// A stored record could not be read back.
    #[error("the store holds an unreadable record: {0}")]
    Corrupt(String),
    /// The store's writer has stopped (the store is shutting down or a batch panicked).
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// True for failures of the backend itself, which abort the whole write batch.
    pub fn is_backend_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Storage(_) | StoreError::Corrupt(_) | StoreError::Closed
        )
    }
}

// Each redb error type converts to `Storage`; listed one by one so redb stays out of the API.
macro_rules! from_redb {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::Storage(Arc::new(redb::Error::from(error)))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
);
