//! The gateway's storage: users, passkeys, WebAuthn ceremonies, enrollment tokens, sessions and
//! audit events in one redb file, behind a narrow set of typed domain operations.
//!
//! Callers hold a [`Store`], a handle on any backend that implements the traits of
//! `backend.rs` (the seam); [`RedbStore`] (`redb_store.rs` and one file per noun) is the
//! embedded one. No redb type leaves this module, so a PostgreSQL backend can offer the same
//! operations without touching a caller. Operations that must be atomic (completing a ceremony,
//! deleting a passkey with its sessions) are one call each, which checks every rule before it
//! writes anything.
//!
//! Not here: WebAuthn verification, cookie minting, policy such as idle timeouts or what a
//! clone-suspected passkey may still do; the callers decide those.

mod backend;
mod bytes;
mod ceremonies;
mod configured;
mod enrollments;
mod error;
mod events;
mod model;
mod passkeys;
mod postgres;
mod redb_store;
mod revocations;
mod rules;
mod sessions;
mod tables;
mod users;
mod writer;

// Its `World` also serves the session cache's tests.
#[cfg(test)]
pub(crate) mod tests;

pub use enrollments::Purged;
pub use error::StoreError;
pub use model::{
    hash_secret, Ceremony, CeremonyKind, Enrollment, Event, EventKind, LoginCompletion,
    LoginFailure, NewEvent, NewUser, Passkey, RegistrationCompletion, SecretHash, SessionRecord,
    User,
};

pub use backend::{
    CeremonyStore, EnrollmentStore, EventStore, PasskeyStore, SessionStore, Storage, UserStore,
};
pub use configured::{postgres_options, STORE_FILE};
pub use postgres::{Export, Imported, PostgresOptions, PostgresStore, LISTENER_NAME, MIGRATIONS};
pub use redb_store::RedbStore;
pub use revocations::{Revocation, RevocationSink, REVOCATION_BOUND};

use crate::clock::Clock;
// The store tests (`tests/`) read the wall clock through `super::*`.
#[cfg(test)]
use crate::clock::unix_now;
use std::path::Path;
use std::sync::Arc;

/// A handle on the open store, whatever its backend; cheap to clone, all clones share it.
///
/// Every operation is a method of [`Storage`] (and its per-noun traits), reached through
/// `Deref`, so callers write `store.user(id)` whichever backend answers.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Storage>,
}

impl Store {
    /// Opens (or creates) the embedded store file; see [`RedbStore::open`].
    ///
    /// Blocks while it opens the file; call it at startup or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with_clock(path, Arc::new(Clock::default()))
    }

    /// As [`Store::open`], telling time by `clock` (the gateway's).
    pub fn open_with_clock(path: impl AsRef<Path>, clock: Arc<Clock>) -> Result<Store, StoreError> {
        Ok(Store::with_backend(RedbStore::open(path, clock)?))
    }

    /// A handle on any backend.
    pub fn with_backend(backend: impl Storage + 'static) -> Store {
        Store {
            backend: Arc::new(backend),
        }
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Storage;

    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.backend.path())
            .finish_non_exhaustive()
    }
}

/// Totals since the store was opened; `writes / commits` is the group-commit batch size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Write operations handed to the writer.
    pub writes: u64,
    /// Write transactions committed.
    pub commits: u64,
}
