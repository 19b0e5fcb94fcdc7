//! Every way a session ends, as one operation that keeps the store and the cache in agreement:
//! logout, a login that replaces a session, deleting or revoking its passkey, disabling or
//! removing its user, `session revoke ID | --user`, and expiry (from the upkeep).
//!
//! The race this closes: a request that misses the cache reads the store, and a revocation
//! deletes from the store. Had the read happened before the delete committed, inserting what it
//! read would bring the session back as a ghost. So a revocation
//! 1. counts itself running and drops what it ends from the cache (one lock),
//! 2. runs its store write, on a task of its own, so that dropping the caller cannot skip 3,
//! 3. drops what the write deleted from the cache again, counts itself finished and not running.
//!
//! An insert (a cache-miss load, or a login's [`Sessions::admit`]) takes an [`Admission`] before it
//! touches the store and lands only if, under the same lock, no revocation is running and none
//! finished since. So an insert either lands before step 1 (and is dropped by it) or read the store
//! after step 3, when the delete had committed. Deletes of many sessions (a user's, a passkey's)
//! work the same way: their scope (the user, the passkey) is known before the write.

use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;

use super::{Cache, LiveSession, Sessions};
use crate::store::{SecretHash, SessionRecord, StoreError, User};

/// A revocation count read before a store read or write whose result may be cached; see the
/// module comment for why it makes cache inserts safe against concurrent revocations.
#[derive(Clone, Copy, Debug)]
pub struct Admission(u64);

/// What a revocation ends, known before its store write.
#[derive(Clone, Debug)]
enum Scope {
    Sessions(Vec<SecretHash>),
    User(Uuid),
    Passkey(Uuid),
}

impl Scope {
    fn covers(&self, live: &LiveSession) -> bool {
        match self {
            Scope::Sessions(hashes) => hashes.contains(&live.hash),
            Scope::User(user_id) => live.user_id == *user_id,
            Scope::Passkey(passkey_id) => live.passkey_id == *passkey_id,
        }
    }
}

impl Cache {
    /// Whether something read since `admission` was taken may be inserted now.
    pub(super) fn admits(&self, admission: Admission) -> bool {
        self.running == 0 && self.finished == admission.0
    }

    /// Drops every cached session in `scope` or in `deleted`; returns their unwritten `last_seen`.
    fn drop_ended(&mut self, scope: &Scope, deleted: &[SecretHash]) -> Vec<(SecretHash, i64)> {
        let mut unflushed = Vec::new();
        self.map.retain(|hash, live| {
            let ended = scope.covers(live) || deleted.contains(hash);
            if ended {
                unflushed.extend(live.unflushed());
            }
            !ended
        });
        unflushed
    }
}

/// Step 3 of a revocation, run when its store write is over, however it ended (error, panic).
struct Finish {
    sessions: Arc<Sessions>,
    scope: Scope,
    deleted: Vec<SecretHash>,
}

impl Finish {
    /// Step 1: counts the revocation as running and drops its scope from the cache.
    fn begin(sessions: &Arc<Sessions>, scope: Scope) -> Finish {
        let unflushed = {
            let mut cache = sessions.write();
            cache.running += 1;
            cache.drop_ended(&scope, &[])
        };
        // A revocation that fails (say, the last passkey) must not shorten an idle timeout.
        sessions.evicted().extend(unflushed);
        Finish {
            sessions: sessions.clone(),
            scope,
            deleted: Vec::new(),
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let mut cache = self.sessions.write();
        cache.drop_ended(&self.scope, &self.deleted);
        cache.finished += 1;
        cache.running -= 1;
    }
}

impl Sessions {
    /// Taken before a store access whose result may be cached; see [`Admission`].
    pub fn admission(&self) -> Admission {
        Admission(self.read().finished)
    }

    /// Puts a just-stored session in the cache, so the first request after login is in memory,
    /// unless a revocation ran since `admission` (taken before the store write): it may have
    /// deleted this very session (`user disable` in the same group commit), and then the next
    /// request asks the store.
    pub fn admit(&self, admission: Admission, record: &SessionRecord, user: &User) {
        let live = Arc::new(LiveSession::new(record, user));
        let mut cache = self.write();
        if cache.admits(admission) {
            self.make_room(&mut cache.map);
            cache.map.insert(record.id_hash, live);
        }
    }

    /// Runs `write`, a store write that deletes sessions and returns the hashes it deleted along
    /// with its own result, as one revocation of `scope` (the steps in the module comment).
    async fn revoke<T, W>(self: &Arc<Self>, scope: Scope, write: W) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: Future<Output = Result<(T, Vec<SecretHash>), StoreError>> + Send + 'static,
    {
        let mut finish = Finish::begin(self, scope);
        let this = self.clone();
        // Its own task: the store write goes on if our caller is dropped, and step 3 must follow it.
        let task = tokio::spawn(async move {
            let result = write.await;
            if let Ok((_, deleted)) = &result {
                finish.deleted.clone_from(deleted);
                this.count_revoked(deleted.len());
            }
            drop(finish);
            result.map(|(value, _)| value)
        });
        task.await.map_err(|_| {
            StoreError::Storage(Arc::new(std::io::Error::other("a revocation panicked")))
        })?
    }

    /// Replaces `user`'s groups. Not an ending: the user's sessions stay, but their cached
    /// identities are dropped as a revocation of the user would drop them (and no cache fill
    /// that read the old groups can land), so the next request of each sees the new groups.
    pub async fn set_user_groups(
        self: &Arc<Self>,
        user: &User,
        groups: Vec<String>,
    ) -> Result<User, StoreError> {
        let (store, name) = (self.store.clone(), user.username.clone());
        let write = async move { Ok((store.set_user_groups(&name, groups).await?, Vec::new())) };
        self.revoke(Scope::User(user.id), write).await
    }

    /// Ends one session (logout, a login replacing it, `session revoke ID`); whether it existed.
    pub async fn end(self: &Arc<Self>, hash: SecretHash) -> Result<bool, StoreError> {
        let store = self.store.clone();
        let write = async move {
            match store.delete_session(hash).await {
                Ok(_) => Ok((true, vec![hash])),
                Err(StoreError::NotFound) => Ok((false, Vec::new())),
                Err(e) => Err(e),
            }
        };
        self.revoke(Scope::Sessions(vec![hash]), write).await
    }

    /// Ends every session of a user (`session revoke --user`); how many.
    pub async fn end_all_of(self: &Arc<Self>, user_id: Uuid) -> Result<usize, StoreError> {
        let store = self.store.clone();
        let write = async move { counted(store.delete_sessions_of(user_id).await?) };
        self.revoke(Scope::User(user_id), write).await
    }

    /// Disables a user and ends all their sessions; how many.
    pub async fn disable_user(self: &Arc<Self>, user: &User) -> Result<usize, StoreError> {
        let (store, name) = (self.store.clone(), user.username.clone());
        let write = async move { counted(store.set_user_disabled(&name, true).await?) };
        self.revoke(Scope::User(user.id), write).await
    }

    /// Enables a disabled user (no session to end: disabling ended them all).
    pub async fn enable_user(&self, user: &User) -> Result<(), StoreError> {
        self.store
            .set_user_disabled(&user.username, false)
            .await
            .map(drop)
    }

    /// Removes a user with their passkeys and sessions; how many sessions ended.
    pub async fn remove_user(self: &Arc<Self>, user: &User) -> Result<usize, StoreError> {
        let (store, name) = (self.store.clone(), user.username.clone());
        let write = async move { counted(store.remove_user(&name).await?) };
        self.revoke(Scope::User(user.id), write).await
    }

    /// The owner deletes one of their passkeys (never the last); returns the sessions it ended.
    pub async fn delete_passkey(
        self: &Arc<Self>,
        user_id: Uuid,
        passkey_id: Uuid,
    ) -> Result<Vec<SecretHash>, StoreError> {
        let store = self.store.clone();
        let write = async move {
            let ended = store.delete_passkey(user_id, passkey_id).await?;
            Ok((ended.clone(), ended))
        };
        self.revoke(Scope::Passkey(passkey_id), write).await
    }

    /// An administrator revokes any passkey; how many sessions ended with it.
    pub async fn revoke_passkey(self: &Arc<Self>, passkey_id: Uuid) -> Result<usize, StoreError> {
        let store = self.store.clone();
        let write = async move { counted(store.revoke_passkey(passkey_id).await?) };
        self.revoke(Scope::Passkey(passkey_id), write).await
    }

    /// Deletes the sessions past their idle or absolute timeout (periodic upkeep); how many.
    /// Unwritten `last_seen` counts: a session in use is never ended here.
    pub async fn end_expired(self: &Arc<Self>, now: i64) -> Result<usize, StoreError> {
        let idle_cutoff = now - self.idle_secs;
        let candidates = self.store.expiring_sessions(idle_cutoff, now).await?;
        let due: Vec<SecretHash> = candidates
            .iter()
            .filter(|record| !self.alive(record, now))
            .map(|record| record.id_hash)
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        let store = self.store.clone();
        let hashes = due.clone();
        let write = async move { counted(store.delete_sessions(hashes).await?) };
        self.revoke(Scope::Sessions(due), write).await
    }
}

/// A write's result when all it returns is the hashes it deleted.
fn counted(deleted: Vec<SecretHash>) -> Result<(usize, Vec<SecretHash>), StoreError> {
    Ok((deleted.len(), deleted))
}
