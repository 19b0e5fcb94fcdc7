//! The numbers read from their owners at scrape time: the session cache and store, the
//! revocations `session` counted, and the store's group-commit totals.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// One scrape's pulled values.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pulled {
    /// Sessions held in the in-memory cache.
    pub sessions_cached: u64,
    /// Live sessions in the store; `None` when the store did not answer.
    pub sessions_stored: Option<u64>,
    /// Sessions ended by any revocation (logout, admin, passkey or user removal, expiry).
    pub revocations: u64,
    /// Write operations handed to the store.
    pub store_writes: u64,
    /// Write transactions committed (`store_writes / store_commits` is the batch size).
    pub store_commits: u64,
    /// Total time spent committing, seconds (`/ store_commits` is the mean commit latency).
    pub store_commit_seconds: f64,
}

impl Pulled {
    /// A registry of constant metrics holding these values, encoded after the pushed ones.
    pub(super) fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("passkey_gateway");
        r.register(
            "sessions_cached",
            "Sessions held in memory",
            ConstGauge::new(gauge(self.sessions_cached)),
        );
        if let Some(stored) = self.sessions_stored {
            r.register(
                "sessions_stored",
                "Sessions in the store",
                ConstGauge::new(gauge(stored)),
            );
        }
        r.register(
            "session_revocations",
            "Sessions ended by logout, an admin, a passkey or user removal, or expiry",
            ConstCounter::new(self.revocations),
        );
        r.register(
            "store_writes",
            "Write operations handed to the store",
            ConstCounter::new(self.store_writes),
        );
        r.register(
            "store_commits",
            "Store write transactions committed (writes / commits = batch size)",
            ConstCounter::new(self.store_commits),
        );
        r.register_with_unit(
            "store_commit",
            "Time spent committing store transactions (/ commits = mean commit latency)",
            Unit::Seconds,
            ConstCounter::new(self.store_commit_seconds),
        );
        r
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
