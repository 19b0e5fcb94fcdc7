//! Sessions on the hot path: a signed-in browser is checked in memory, never on disk. This module
//! is the one owner of a session's life: it mints, checks and ends sessions, store and cache
//! together, so no caller has to remember to drop a cache entry.
//!
//! The store holds every session (by the hash of its cookie value) for durability; this cache
//! holds the ones in use, up to `[session] cache_size`. A cache miss (first request after a
//! restart, or a session evicted as least recently used) reads the store once.
//! Every way a session ends (see `revoke.rs`) is one revocation that drops it from the cache before
//! and after its store delete commits, and no cache insert that read the store before the delete
//! can land (see [`Admission`]). `last_seen` is kept in an atomic and written back lazily, in
//! batches, at most once a minute per session (see [`Sessions::flush_last_seen`]); an evicted
//! session's unwritten `last_seen` waits for that batch too. Expired sessions are refused at once
//! and deleted from the store by the periodic upkeep ([`Sessions::end_expired`]), off the request
//! path.

mod cookie;
mod device;
mod replicas;
mod revoke;

pub use cookie::{new_session_value, CookieSpec};
pub use device::{device_label, SignedInFrom};
pub use revoke::Admission;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use uuid::Uuid;

use crate::config::Config;
use crate::identity::{convenience_headers, HeaderPreset, Identity};
use crate::store::{hash_secret, SecretHash, SessionRecord, Store, StoreError, User};

/// How often, at most, a session's `last_seen` is written to the store.
pub const LAST_SEEN_WRITE_INTERVAL: i64 = 60;

/// When the cache is full, this fraction of it (the least recently seen) is evicted at once, so
/// the scan that finds them runs once per `capacity / EVICT_FRACTION` inserts, not per insert.
const EVICT_FRACTION: usize = 8;

/// Most `last_seen` updates written in one transaction.
const FLUSH_SLICE: usize = 2_048;

/// A session the proxy can use: who, since when, until when. Kept small: the cache holds
/// tens of thousands of these.
#[derive(Debug)]
pub struct LiveSession {
    pub hash: SecretHash,
    /// `public_id(hash)`, derived once: every proxied request's assertion names it.
    sid: String,
    pub user_id: Uuid,
    /// Shared with the assertion cache, which compares it before reusing a token.
    pub identity: Arc<Identity>,
    pub passkey_id: Uuid,
    pub created_at: i64,
    pub expires_at: i64,
    last_seen: AtomicI64,
    flushed: AtomicI64,
    /// The convenience headers per preset (`Convenience`), built on first use: this entry's
    /// identity never changes, so neither do they, and every proxied request sends them.
    convenience: [OnceLock<Convenience>; 4],
}

/// A preset's unsigned identity headers, in a stable order (`identity::convenience_headers`).
pub type Convenience = Arc<[(&'static str, String)]>;

impl LiveSession {
    fn new(record: &SessionRecord, user: &User) -> LiveSession {
        LiveSession {
            hash: record.id_hash,
            sid: public_id(&record.id_hash),
            user_id: user.id,
            identity: Arc::new(identity_of(user)),
            passkey_id: record.passkey_id,
            created_at: record.created_at,
            expires_at: record.expires_at,
            last_seen: AtomicI64::new(record.last_seen),
            flushed: AtomicI64::new(record.last_seen),
            convenience: Default::default(),
        }
    }

    /// `identity::convenience_headers(preset, identity)`, built once per preset.
    pub fn convenience_headers(&self, preset: HeaderPreset) -> Convenience {
        let slot = &self.convenience[preset as usize];
        Arc::clone(slot.get_or_init(|| convenience_headers(preset, &self.identity).into()))
    }

    /// A public, non-secret id for this session (logs, `sid` claim, admin CLI).
    pub fn sid(&self) -> &str {
        &self.sid
    }

    pub fn last_seen(&self) -> i64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Whether this session's passkey ceremony (the login or enrollment that minted it) was at
    /// most `window` seconds before `now`. A re-authentication is a new login, which mints a new
    /// session, so the session's creation time is its authentication time.
    pub fn authenticated_within(&self, window: i64, now: i64) -> bool {
        now.saturating_sub(self.created_at) <= window
    }

    /// `(hash, last_seen)` if `last_seen` moved since it was last written.
    fn unflushed(&self) -> Option<(SecretHash, i64)> {
        let seen = self.last_seen();
        (seen > self.flushed.load(Ordering::Relaxed)).then_some((self.hash, seen))
    }
}

/// The identity a user presents upstream.
pub fn identity_of(user: &User) -> Identity {
    Identity {
        user_id: user.id.to_string(),
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        email: user.email.clone(),
        groups: user.groups.clone(),
    }
}

/// The public id of a session: the first 128 bits of its (already one-way) hash, in hex.
pub fn public_id(hash: &SecretHash) -> String {
    hex::encode(&hash.0[..16])
}

type LiveMap = HashMap<SecretHash, Arc<LiveSession>>;

/// The cached sessions and the revocation counters that order inserts against revocations; one
/// lock guards all three, so a revocation and an insert can never interleave half-way.
struct Cache {
    map: LiveMap,
    /// Revocations whose store write has returned, since start.
    finished: u64,
    /// Revocations begun whose store write has not returned yet.
    running: usize,
}

/// The session cache over the store.
pub struct Sessions {
    store: Store,
    cache: RwLock<Cache>,
    /// Most sessions the cache holds.
    capacity: usize,
    /// `last_seen` of evicted sessions, not yet written (the next flush writes it).
    evicted_seen: Mutex<HashMap<SecretHash, i64>>,
    idle_secs: i64,
    absolute_secs: i64,
    cookie: CookieSpec,
    /// Sessions ended by any revocation since start (the `session_revocations` metric).
    revoked: AtomicU64,
    /// Other replicas' revocations, when the store is shared (`replicas.rs`).
    feed: replicas::FeedSlot,
}

impl Sessions {
    pub fn new(
        store: Store,
        cookie: CookieSpec,
        idle_secs: i64,
        absolute_secs: i64,
        capacity: usize,
    ) -> Sessions {
        Sessions {
            store,
            cache: RwLock::new(Cache {
                map: HashMap::new(),
                finished: 0,
                running: 0,
            }),
            capacity: capacity.max(1),
            evicted_seen: Mutex::new(HashMap::new()),
            idle_secs,
            absolute_secs,
            cookie,
            revoked: AtomicU64::new(0),
            feed: Default::default(),
        }
    }

    /// The sessions `config` describes (cookie, timeouts, cache size) over `store`.
    pub fn for_config(store: Store, config: &Config) -> Sessions {
        let absolute = config.session.absolute_timeout.as_secs() as i64;
        let cookie = CookieSpec::new(&config.session.cookie_name, config.is_https(), absolute);
        let idle = config.session.idle_timeout.as_secs() as i64;
        Sessions::new(store, cookie, idle, absolute, config.session.cache_size)
    }

    /// The session cookie's name and attributes (the proxy strips it from requests upstream
    /// and from upstream responses).
    pub fn cookie(&self) -> &CookieSpec {
        &self.cookie
    }

    /// The `Set-Cookie` value that hands a newly issued session to the browser.
    pub fn set_cookie(&self, cookie_value: &str) -> String {
        self.cookie.set(cookie_value)
    }

    /// The `Set-Cookie` value that removes the session cookie from the browser.
    pub fn clear_cookie(&self) -> String {
        self.cookie.clear()
    }

    /// A new session record for `user` signed in with `passkey_id`, and the cookie value that
    /// names it. Nothing is stored yet: the caller stores it in the same transaction as the login.
    pub fn mint(&self, user_id: Uuid, passkey_id: Uuid, now: i64) -> (String, SessionRecord) {
        let value = new_session_value();
        let record = SessionRecord {
            id_hash: hash_secret(&value),
            user_id,
            passkey_id,
            created_at: now,
            last_seen: now,
            expires_at: now + self.absolute_secs,
            device: None,
            client: None,
        };
        (value, record)
    }

    /// The live session a cookie value names, if it is valid now. Touches `last_seen` in memory.
    pub async fn check(
        &self,
        cookie_value: &str,
        now: i64,
    ) -> Result<Option<Arc<LiveSession>>, StoreError> {
        let hash = hash_secret(cookie_value);
        // On a shared store, an entry is trusted only while revocations are known to arrive.
        let cached = if self.cache_trusted() {
            self.read().map.get(&hash).cloned()
        } else {
            None
        };
        let live = match cached {
            Some(live) => live,
            None => match self.load(hash).await? {
                Some(live) => live,
                None => return Ok(None),
            },
        };
        let idle_deadline = live.last_seen() + self.idle_secs;
        if now >= live.expires_at || now >= idle_deadline {
            // Refused from now on (time only moves forward); the upkeep deletes the record.
            self.write().map.remove(&hash);
            return Ok(None);
        }
        live.last_seen.fetch_max(now, Ordering::Relaxed);
        Ok(Some(live))
    }

    /// The live session named by the request's cookie, if it carries a valid one.
    pub async fn from_headers(
        &self,
        headers: &http::HeaderMap,
        now: i64,
    ) -> Result<Option<Arc<LiveSession>>, StoreError> {
        match self.cookie.find(headers) {
            Some(value) => self.check(&value, now).await,
            None => Ok(None),
        }
    }

    async fn load(&self, hash: SecretHash) -> Result<Option<Arc<LiveSession>>, StoreError> {
        let admission = self.admission();
        let Some(record) = self.store.session(hash).await? else {
            return Ok(None);
        };
        let Some(user) = self.store.user(record.user_id).await? else {
            return Ok(None);
        };
        if user.disabled {
            return Ok(None);
        }
        let live = LiveSession::new(&record, &user);
        // Evicted before its `last_seen` was written: the store's copy is behind.
        if let Some(seen) = self.evicted().get(&hash) {
            live.last_seen.fetch_max(*seen, Ordering::Relaxed);
        }
        let live = Arc::new(live);
        let mut cache = self.write();
        // A revocation ran while we read the store: what we read may be what it deletes. This
        // request started before that revocation returned, so it may still be answered, but the
        // record must not outlive it in the cache.
        if !cache.admits(admission) {
            return Ok(Some(live));
        }
        if !cache.map.contains_key(&hash) {
            self.make_room(&mut cache.map);
        }
        Ok(Some(cache.map.entry(hash).or_insert(live).clone()))
    }

    /// Evicts the least recently seen `1 / EVICT_FRACTION` of a full cache. Their unwritten
    /// `last_seen` is kept for the next flush, so eviction never shortens an idle timeout.
    fn make_room(&self, map: &mut LiveMap) {
        if map.len() < self.capacity {
            return;
        }
        let mut by_age: Vec<(i64, SecretHash)> =
            map.values().map(|l| (l.last_seen(), l.hash)).collect();
        let count = (self.capacity / EVICT_FRACTION).max(1).min(by_age.len());
        by_age.select_nth_unstable_by_key(count - 1, |(seen, _)| *seen);
        let mut unflushed = Vec::new();
        for (_, hash) in &by_age[..count] {
            if let Some(gone) = map.remove(hash) {
                unflushed.extend(gone.unflushed());
            }
        }
        self.evicted().extend(unflushed);
    }

    /// The live sessions of one user (or everyone's), newest first: what `check` would accept.
    pub async fn list(
        &self,
        user_id: Option<Uuid>,
        now: i64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut sessions = self.store.sessions_of(user_id).await?;
        sessions.retain(|record| self.alive(record, now));
        Ok(sessions)
    }

    /// Whether `check` would accept this stored session now, counting unwritten `last_seen`.
    fn alive(&self, record: &SessionRecord, now: i64) -> bool {
        now < record.expires_at && now < self.last_seen_of(record) + self.idle_secs
    }

    /// A stored session's last use, counting what is not written back yet.
    pub fn last_seen_of(&self, record: &SessionRecord) -> i64 {
        let cached = self.read().map.get(&record.id_hash).map(|l| l.last_seen());
        let evicted = self.evicted().get(&record.id_hash).copied();
        [Some(record.last_seen), cached, evicted]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(record.last_seen)
    }

    /// Writes back `last_seen` of sessions used since their last write, at most once a minute each,
    /// in one batch (one transaction, one fsync).
    pub async fn flush_last_seen(&self, now: i64) -> Result<usize, StoreError> {
        // Taken, not drained: a burst of evictions should not keep its table's capacity.
        let evicted = std::mem::take(&mut *self.evicted());
        let mut due: Vec<(SecretHash, i64)> = evicted.into_iter().collect();
        due.extend(self.read().map.values().filter_map(|live| {
            let flushed = live.flushed.load(Ordering::Relaxed);
            if now - flushed < LAST_SEEN_WRITE_INTERVAL {
                return None;
            }
            let (hash, seen) = live.unflushed()?;
            live.flushed.store(seen, Ordering::Relaxed);
            Some((hash, seen))
        }));
        let count = due.len();
        // In slices: one transaction rewriting 100,000 sessions held every dirty page in memory
        // at once (RSS swung by ~20 MiB depending on when the flush ran).
        for slice in due.chunks(FLUSH_SLICE) {
            self.store.touch_sessions(slice.to_vec()).await?;
        }
        Ok(count)
    }

    /// How many sessions are cached.
    pub fn cached(&self) -> usize {
        self.read().map.len()
    }

    /// How many sessions revocations have ended since start (logout, admin, expiry...).
    pub fn revoked(&self) -> u64 {
        self.revoked.load(Ordering::Relaxed)
    }

    pub(super) fn count_revoked(&self, n: usize) {
        self.revoked
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn evicted(&self) -> std::sync::MutexGuard<'_, HashMap<SecretHash, i64>> {
        self.evicted_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
