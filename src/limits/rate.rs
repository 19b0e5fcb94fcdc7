//! [`CeremonyLimiter`]: ceremony attempts per client network (governor's GCRA), with the
//! limiter's own memory bounded.
//!
//! governor keeps one small state per key and only forgets keys when asked (`retain_recent`,
//! run by the periodic upkeep). Between two upkeeps an attacker with many networks could still
//! add keys at will, so the state store here is capped: once it holds `max_clients` keys, every
//! client it does not already know shares one overflow budget until upkeep frees room. Known
//! clients keep their own budget, so a flood of new networks cannot spend theirs.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use super::ClientPrefix;

/// Ceremony attempts allowed per client network.
pub struct CeremonyLimiter {
    limiter: RateLimiter<ClientPrefix, CappedStore, DefaultClock>,
    clock: DefaultClock,
    ipv6_prefix: u8,
}

impl CeremonyLimiter {
    /// `None` when `per_minute` is 0 (unlimited).
    pub fn new(per_minute: u32, ipv6_prefix: u8, max_clients: usize) -> Option<CeremonyLimiter> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        let clock = DefaultClock::default();
        let store = CappedStore {
            keys: DashMapStateStore::default(),
            max_keys: max_clients.max(1),
        };
        Some(CeremonyLimiter {
            limiter: RateLimiter::new(quota, store, clock.clone()),
            clock,
            ipv6_prefix,
        })
    }

    /// The key `addr` is counted under.
    pub fn key_of(&self, addr: IpAddr) -> ClientPrefix {
        ClientPrefix::of(addr, self.ipv6_prefix)
    }

    /// Counts one attempt from `addr`; `Err(wait)` when its budget is spent.
    pub fn check(&self, addr: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&self.key_of(addr))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Client networks currently remembered (the overflow key included).
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }

    /// Forgets clients whose budget is full again and gives the memory back.
    pub fn upkeep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Where clients go once the store is full: an address no client can have.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// governor's DashMap store with a cap on its keys.
struct CappedStore {
    keys: DashMapStateStore<ClientPrefix>,
    max_keys: usize,
}

impl StateStore for CappedStore {
    type Key = ClientPrefix;

    fn measure_and_replace<T, F, E>(&self, key: &ClientPrefix, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Racing inserts can overshoot the cap by the number of threads: still bounded.
        if self.keys.contains_key(key) || self.keys.len() < self.max_keys {
            return self.keys.measure_and_replace(key, f);
        }
        self.keys
            .measure_and_replace(&ClientPrefix::of(OVERFLOW, 128), f)
    }
}

impl ShrinkableKeyedStateStore<ClientPrefix> for CappedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.keys.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.keys);
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a failure is the report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_ipv6_network_is_one_budget() {
        let limiter = CeremonyLimiter::new(3, 64, 100).unwrap();
        for host in 1..=3 {
            let addr: IpAddr = format!("2001:db8:7:7::{host:x}").parse().unwrap();
            assert!(limiter.check(addr).is_ok());
        }
        let other_host: IpAddr = "2001:db8:7:7:dead:beef:1:2".parse().unwrap();
        assert!(
            limiter.check(other_host).is_err(),
            "the /64 shares one budget"
        );
        let other_net: IpAddr = "2001:db8:7:8::1".parse().unwrap();
        assert!(limiter.check(other_net).is_ok());
        assert_eq!(limiter.clients(), 2);
    }

    #[test]
    fn the_store_never_holds_more_than_its_cap() {
        let limiter = CeremonyLimiter::new(60, 64, 50).unwrap();
        let known: IpAddr = "192.0.2.1".parse().unwrap();
        limiter.check(known).unwrap();
        for i in 0..10_000u32 {
            let addr = IpAddr::from(Ipv6Addr::from(
                (0x2001_0db8_u128 << 96) | (u128::from(i) << 64),
            ));
            let _ = limiter.check(addr);
        }
        // The cap plus the overflow key.
        assert!(limiter.clients() <= 51, "{} keys", limiter.clients());
        // The known client keeps its own budget despite the flood.
        assert!(limiter.check(known).is_ok());
    }
}
