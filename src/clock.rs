//! The gateway's clock, in the unix seconds every record and ceremony is stamped with.
//!
//! One [`Clock`] per gateway, shared by the store and everything that asks what time it is, so
//! they agree; it is the wall clock plus an offset that only tests move (expiry without waiting).
//! Not here: the identity assertion's `iat`/`exp` and the JWKS overlap, which follow the wall
//! clock that upstreams verify against.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The wall clock, plus an offset that starts at zero.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    /// Now, in unix seconds.
    pub fn now(&self) -> i64 {
        unix_now().saturating_add(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Moves this clock forward by `by` (tests: a challenge or a session expires at once).
    pub fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

/// The wall clock: seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
