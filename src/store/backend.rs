//! The store seam: what the rest of the gateway needs from storage, one trait per noun, and
//! [`Storage`], which a backend implements as a whole. [`RedbStore`](super::RedbStore) is the
//! embedded backend; a PostgreSQL one implements the same traits and no caller changes.
//!
//! Every operation is in domain terms (users, passkeys, hashes of secrets) and fails with
//! [`StoreError`]; rules that span records (a single-use ceremony, unique credential ids, the
//! passkey cap, revoking a passkey's sessions with it) are each one atomic operation here, so a
//! backend must keep each one atomic. Methods that delete sessions are called only by the
//! `session` module, which keeps its cache in step with them.
//!
//! Not here: any backend's types, WebAuthn verification, session or idle-timeout policy.

use std::path::Path;

use async_trait::async_trait;
use uuid::Uuid;

use super::model::{
    Ceremony, Enrollment, Event, LoginCompletion, LoginFailure, NewEvent, NewUser, Passkey,
    RegistrationCompletion, SecretHash, SessionRecord, User,
};
use super::{Purged, StoreError, WriteStats};

/// A whole storage backend: every noun's operations plus health and statistics.
#[async_trait]
pub trait Storage:
    UserStore + PasskeyStore + CeremonyStore + EnrollmentStore + SessionStore + EventStore
{
    /// Succeeds when the backend answers a (cheap) read.
    async fn health(&self) -> Result<(), StoreError>;

    /// The live ceremony `ceremony_id` and the passkey registered with `credential_id`, each if
    /// any: what a sign-in's complete reads before it verifies. A backend for which that is one
    /// read instead of two says so.
    async fn ceremony_and_passkey(
        &self,
        ceremony_id: Uuid,
        credential_id: &[u8],
    ) -> Result<(Option<Ceremony>, Option<Passkey>), StoreError> {
        let ceremony = self.ceremony(ceremony_id).await?;
        let passkey = self.passkey_by_credential_id(credential_id).await?;
        Ok((ceremony, passkey))
    }

    /// The user with this exact username and their passkeys, newest first: what a sign-in's begin
    /// reads. A backend for which that is one read instead of two says so.
    async fn user_by_name_with_passkeys(
        &self,
        username: &str,
    ) -> Result<Option<(User, Vec<Passkey>)>, StoreError> {
        let Some(user) = self.user_by_name(username).await? else {
            return Ok(None);
        };
        let passkeys = self.passkeys_of(user.id).await?;
        Ok(Some((user, passkeys)))
    }

    /// How many writes were asked for and how many transactions carried them.
    fn write_stats(&self) -> WriteStats;

    /// The file the store lives in, for a backend that is one file.
    fn path(&self) -> Option<&Path>;

    /// Total time spent committing write transactions (the `store_commit_seconds` metric);
    /// zero for a backend that does not measure it.
    fn commit_time(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// For a backend other processes share: starts delivering their revocations to `sink`
    /// (see `revocations.rs`) and returns true. A backend only this process uses returns false.
    fn follow_revocations(&self, sink: std::sync::Arc<dyn super::RevocationSink>) -> bool {
        let _ = sink;
        false
    }

    /// For a periodic job that one process at a time should run on a shared store: a guard
    /// while this process may run `job`, `None` while another does. Always granted on a store
    /// only this process uses.
    async fn exclusive_job(
        &self,
        job: &'static str,
    ) -> Result<Option<Box<dyn Send + Sync>>, StoreError> {
        let _ = job;
        Ok(Some(Box::new(())))
    }

    /// Whether the identity signing keys live here, shared by replicas (sealed by the caller),
    /// rather than in the data directory's key file.
    fn keeps_signing_keys(&self) -> bool {
        false
    }

    /// The sealed signing-key ring and its version, if one is stored.
    async fn sealed_signing_keys(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        Ok(None)
    }

    /// Stores a sealed ring if the stored version is still `expected` (`None`: none stored);
    /// false when another process changed it first.
    async fn swap_sealed_signing_keys(
        &self,
        expected: Option<i64>,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let _ = (expected, sealed);
        Err(StoreError::Invalid("this backend keeps no signing keys"))
    }
}

/// Users: create, look up, list, disable or enable, change groups, remove.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; a taken username is `Conflict("username")`.
    async fn create_user(&self, new: NewUser) -> Result<User, StoreError>;

    /// The user with this id, if any.
    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    /// The user with this exact username, if any.
    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// Every user, by username.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;

    /// Disables or enables a user by name; disabling revokes all its sessions, returned here.
    async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<Vec<SecretHash>, StoreError>;

    /// Replaces a user's groups.
    async fn set_user_groups(
        &self,
        username: &str,
        groups: Vec<String>,
    ) -> Result<User, StoreError>;

    /// Removes a user with its passkeys, sessions and enrollment links; returns the revoked sessions.
    async fn remove_user(&self, username: &str) -> Result<Vec<SecretHash>, StoreError>;
}

/// Passkeys after registration: list, look up, rename, delete (owner), revoke (admin).
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// A user's passkeys, newest first.
    async fn passkeys_of(&self, user_id: Uuid) -> Result<Vec<Passkey>, StoreError>;

    /// The passkey with this id, whoever owns it.
    async fn passkey(&self, id: Uuid) -> Result<Option<Passkey>, StoreError>;

    /// The passkey registered with this WebAuthn credential id, if any.
    async fn passkey_by_credential_id(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<Passkey>, StoreError>;

    /// Renames one of the user's own passkeys.
    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: String,
    ) -> Result<Passkey, StoreError>;

    /// Deletes one of the user's own passkeys, never the last; returns the revoked sessions.
    async fn delete_passkey(&self, user_id: Uuid, id: Uuid) -> Result<Vec<SecretHash>, StoreError>;

    /// Revokes any passkey (admin), even a user's last; returns the revoked sessions.
    async fn revoke_passkey(&self, id: Uuid) -> Result<Vec<SecretHash>, StoreError>;
}

/// WebAuthn ceremony state and the atomic completes that spend it.
#[async_trait]
pub trait CeremonyStore: Send + Sync {
    /// Stores a begun ceremony until it is completed, discarded or expires; refused with
    /// `TooManyCeremonies` when `max_live` are stored already (expired ones count until purged).
    async fn put_ceremony(&self, ceremony: Ceremony, max_live: u64) -> Result<(), StoreError>;

    /// The ceremony with this id, unless missing or expired.
    async fn ceremony(&self, id: Uuid) -> Result<Option<Ceremony>, StoreError>;

    /// Ceremonies stored now, expired ones not yet purged included.
    async fn ceremony_count(&self) -> Result<u64, StoreError>;

    /// Deletes a ceremony whose response failed verification, so its challenge cannot be retried.
    async fn discard_ceremony(&self, id: Uuid) -> Result<(), StoreError>;

    /// Stores a verified registration: spends the ceremony (and enrollment token), adds the
    /// passkey and the optional session, all or nothing.
    async fn complete_registration(
        &self,
        completion: RegistrationCompletion,
    ) -> Result<Passkey, StoreError>;

    /// Stores a verified login: spends the ceremony, updates the passkey, adds the session.
    async fn complete_login(
        &self,
        completion: LoginCompletion,
    ) -> Result<(User, Passkey), StoreError>;

    /// Marks a passkey whose sign count went backwards and spends the ceremony that showed it.
    async fn flag_clone_suspected(
        &self,
        passkey_id: Uuid,
        ceremony_id: Uuid,
    ) -> Result<Passkey, StoreError>;
}

/// Enrollment links (by token hash) and the purge of everything that expires.
#[async_trait]
pub trait EnrollmentStore: Send + Sync {
    /// Stores a new enrollment link for an existing user, by the hash of its token.
    async fn create_enrollment(
        &self,
        user_id: Uuid,
        token_hash: SecretHash,
        expires_at: i64,
    ) -> Result<Enrollment, StoreError>;

    /// The enrollment link with this token hash, unless missing, spent or expired.
    async fn enrollment(&self, token_hash: SecretHash) -> Result<Option<Enrollment>, StoreError>;

    /// Deletes every ceremony, enrollment token and session that expired at or before `now`.
    async fn purge_expired(&self, now: i64) -> Result<Purged, StoreError>;
}

/// Session records by cookie hash. Created only by the ceremony completes.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The session with this cookie hash, unless missing or past its absolute expiry.
    async fn session(&self, hash: SecretHash) -> Result<Option<SessionRecord>, StoreError>;

    /// One user's live sessions, or everyone's with `None`; newest first.
    async fn sessions_of(&self, user_id: Option<Uuid>) -> Result<Vec<SessionRecord>, StoreError>;

    /// Revokes one session (logout, admin); `NotFound` if it does not exist.
    async fn delete_session(&self, hash: SecretHash) -> Result<SessionRecord, StoreError>;

    /// Revokes every session of a user; returns their hashes.
    async fn delete_sessions_of(&self, user_id: Uuid) -> Result<Vec<SecretHash>, StoreError>;

    /// Sessions past their absolute expiry at `now`, or last seen at or before `idle_cutoff` as
    /// far as the store knows (the session module weighs its own, newer `last_seen`).
    async fn expiring_sessions(
        &self,
        idle_cutoff: i64,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Deletes these sessions (expired ones, from the upkeep); returns those that were there.
    async fn delete_sessions(&self, hashes: Vec<SecretHash>)
        -> Result<Vec<SecretHash>, StoreError>;

    /// Records when sessions were last seen, in one write; sessions gone meanwhile are skipped.
    /// `last_seen` never moves backwards, so a late, stale batch cannot shorten an idle timeout.
    async fn touch_sessions(&self, seen: Vec<(SecretHash, i64)>) -> Result<(), StoreError>;
}

/// The audit log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Counts a failed sign-in in its period's row for that client network and user.
    async fn record_login_failure(
        &self,
        failure: LoginFailure,
        now: i64,
    ) -> Result<Event, StoreError>;

    /// The newest `limit` events, newest first.
    async fn events(&self, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// Deletes events from before `cutoff` (oldest first, a bounded number per call) and the
    /// tally index of periods before `now`'s; returns how many events went.
    async fn purge_events(&self, cutoff: i64, now: i64) -> Result<usize, StoreError>;

    /// Appends one event that no other write carries (a key rotation), durably, at `now` or
    /// later (times never go backwards).
    async fn record_event(&self, event: NewEvent, now: i64) -> Result<Event, StoreError>;

    /// Up to `limit` events with an id above `after`, oldest first: the cursor `events
    /// --follow` pages with. A tallied failure row appears once, when it is created.
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
}
