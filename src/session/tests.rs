//! The session cache against a real store: eviction keeps it bounded without losing sessions or
//! their `last_seen`.

// Tests may unwrap: a failure is the report.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::gateway::unix_now;
use crate::store::tests::World;

/// Shorter than the store world's sessions' absolute lifetime (1 h), so idle expiry is what the
/// tests reach.
const IDLE: i64 = 600;

fn sessions(world: &World, capacity: usize) -> Sessions {
    let cookie = CookieSpec::new("s", false, 86_400);
    Sessions::new(world.store.clone(), cookie, IDLE, 86_400, capacity)
}

/// Stores a user, their passkey and a session (through real completes); returns the cookie value.
async fn signed_in(world: &World, name: &str) -> String {
    let user = world.user(name).await;
    let passkey = world.register(&user, name.as_bytes()).await;
    let cookie = new_session_value();
    world.login(&passkey, &cookie).await;
    cookie
}

#[tokio::test]
async fn a_full_cache_evicts_the_least_recently_seen_and_reloads_them() {
    let world = World::new();
    let live = sessions(&world, 8);
    let now = unix_now();
    let mut cookies = Vec::new();
    for i in 0..8 {
        let cookie = signed_in(&world, &format!("user{i}")).await;
        // user0 is seen last, so it is the most recent of all.
        let seen = if i == 0 { now + 100 } else { now + i };
        assert!(live.check(&cookie, seen).await.unwrap().is_some());
        cookies.push(cookie);
    }
    assert_eq!(live.cached(), 8);

    let newcomer = signed_in(&world, "user8").await;
    assert!(live.check(&newcomer, now + 101).await.unwrap().is_some());
    // One eighth of 8 (the oldest: user1) made room; the capacity holds.
    assert_eq!(live.cached(), 8);
    let hash1 = hash_secret(&cookies[1]);
    assert!(!live.read().contains_key(&hash1), "user1 was evicted");
    assert!(live.read().contains_key(&hash_secret(&cookies[0])));

    // Evicted is not revoked: the next request reads it back from the store.
    let back = live.check(&cookies[1], now + 102).await.unwrap();
    assert_eq!(back.unwrap().identity.username, "user1");
    assert!(live.cached() <= 8);
}

#[tokio::test]
async fn an_evicted_sessions_last_seen_is_not_lost() {
    let world = World::new();
    let live = sessions(&world, 1);
    let now = unix_now();
    let first = signed_in(&world, "first").await;
    let second = signed_in(&world, "second").await;
    let later = now + IDLE - 10;
    live.check(&first, later).await.unwrap().unwrap();
    // Loading `second` evicts `first` before its `last_seen` was ever written.
    live.check(&second, now).await.unwrap().unwrap();
    assert_eq!(live.cached(), 1);

    // Reloaded before any flush: still alive past the stored `last_seen` + idle timeout.
    let back = live.check(&first, now + IDLE + 5).await.unwrap();
    assert!(back.is_some(), "eviction must not shorten the idle timeout");

    // And the flush writes it to the store.
    live.check(&second, now + 1).await.unwrap().unwrap(); // evicts `first` again
    assert!(live.flush_last_seen(now + IDLE + 100).await.unwrap() >= 1);
    let stored = world
        .store
        .session(hash_secret(&first))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_seen, now + IDLE + 5);
}
