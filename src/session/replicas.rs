//! The session cache on a store that several replicas share. Another replica's revocation
//! reaches this cache through the store's feed (PostgreSQL LISTEN/NOTIFY) and is applied like a
//! local one: the sessions drop out, and no cache fill that read the store before lands.
//!
//! A lost notification must not keep a revoked session alive, so the cache trusts its entries
//! only while the feed has proved alive within [`REVOCATION_BOUND`]; past that, every check
//! reads the store (a 503 if it is down too), and when the feed comes back the cache is emptied,
//! since what happened meanwhile is unknown. On the hot path this costs one atomic load and a
//! monotonic clock read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use super::{Cache, Sessions};
use crate::store::{Revocation, RevocationSink, REVOCATION_BOUND};

/// When the feed last proved alive, as milliseconds since `base` (0: never).
pub(super) struct Feed {
    base: Instant,
    confirmed_ms: AtomicU64,
}

impl Feed {
    fn new() -> Feed {
        Feed {
            base: Instant::now(),
            confirmed_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // +1: a confirmation in the very first millisecond is not "never".
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    /// Whether cached entries may be trusted now.
    pub(super) fn fresh(&self) -> bool {
        let confirmed = self.confirmed_ms.load(Ordering::Acquire);
        confirmed != 0
            && self.now_ms().saturating_sub(confirmed)
                <= u64::try_from(REVOCATION_BOUND.as_millis()).unwrap_or(u64::MAX)
    }
}

/// What the store's feed calls: the cache (weakly: the feed outlives no gateway) and its clock.
struct Sink {
    sessions: Weak<Sessions>,
    feed: Arc<Feed>,
}

impl RevocationSink for Sink {
    fn revoked(&self, revocations: &[Revocation]) {
        if let Some(sessions) = self.sessions.upgrade() {
            sessions.drop_remote(|live| {
                revocations.iter().any(|revocation| match revocation {
                    Revocation::Session(hash) => live.hash == *hash,
                    Revocation::User(id) => live.user_id == *id,
                    Revocation::Passkey(id) => live.passkey_id == *id,
                })
            });
        }
    }

    fn confirmed(&self) {
        self.feed
            .confirmed_ms
            .store(self.feed.now_ms(), Ordering::Release);
    }

    fn resync(&self) {
        if let Some(sessions) = self.sessions.upgrade() {
            sessions.drop_remote(|_| true);
        }
    }
}

impl Sessions {
    /// Follows other replicas' revocations when the store is shared; call once, at start.
    pub fn follow_store(self: &Arc<Self>) {
        let feed = Arc::new(Feed::new());
        let sink = Arc::new(Sink {
            sessions: Arc::downgrade(self),
            feed: feed.clone(),
        });
        if self.store.follow_revocations(sink) {
            // Set once; a second call keeps the first feed.
            let _ = self.feed.set(feed);
        }
    }

    /// Whether a cached entry may answer a check without the store.
    pub(super) fn cache_trusted(&self) -> bool {
        self.feed.get().is_none_or(|feed| feed.fresh())
    }

    /// Drops the cached sessions `ended` selects, as a finished revocation: their unwritten
    /// `last_seen` is kept for the next flush, and fills that read the store before do not land.
    fn drop_remote(&self, ended: impl Fn(&super::LiveSession) -> bool) {
        let unflushed = {
            let mut cache = self.write();
            let Cache { map, finished, .. } = &mut *cache;
            let mut unflushed = Vec::new();
            map.retain(|_, live| {
                let gone = ended(live);
                if gone {
                    unflushed.extend(live.unflushed());
                }
                !gone
            });
            *finished += 1;
            unflushed
        };
        self.evicted().extend(unflushed);
    }
}

#[cfg(test)]
#[path = "replicas_tests.rs"]
mod tests;

/// The slot a `Sessions` keeps its feed in (empty for a store only this process uses).
pub(super) type FeedSlot = OnceLock<Arc<Feed>>;
