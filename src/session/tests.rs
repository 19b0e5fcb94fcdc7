//! The session cache against a real store: eviction keeps it bounded without losing sessions or
//! their `last_seen`.

// Tests may unwrap: a failure is the report.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::clock::unix_now;
use crate::store::tests::World;

/// Shorter than the store world's sessions' absolute lifetime (1 h), so idle expiry is what the
/// tests reach.
const IDLE: i64 = 600;

fn sessions(world: &World, capacity: usize) -> Sessions {
    let cookie = CookieSpec::new("s", false, 86_400);
    Sessions::new(world.store.clone(), cookie, IDLE, 86_400, capacity)
}

/// Stores a user, their passkey and a session (through real completes); returns the cookie value.
/// The store's record of the session a cookie names.
async fn stored(world: &World, cookie: &str) -> crate::store::SessionRecord {
    world
        .store
        .session(hash_secret(cookie))
        .await
        .unwrap()
        .expect("the session is stored")
}

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
    assert!(!live.read().map.contains_key(&hash1), "user1 was evicted");
    assert!(live.read().map.contains_key(&hash_secret(&cookies[0])));

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

/// The order the issue found by reading the code: a login's store write commits, a `user disable`
/// commits (in the same group commit or the next) and runs its cache step, and only then does the
/// login put its session in the cache. The login's admission was taken before its write, so the
/// disable wins and the new session never works.
#[tokio::test]
async fn a_disable_between_a_logins_write_and_its_admit_wins() {
    let world = World::new();
    let live = Arc::new(sessions(&world, 16));
    let user = world.user("dora").await;
    let passkey = world.register(&user, b"dora").await;
    let cookie = new_session_value();

    let admission = live.admission();
    let record = world.login(&passkey, &cookie).await;
    assert_eq!(live.disable_user(&user).await.unwrap(), 1);
    live.admit(admission, &record, &user);

    assert_eq!(live.cached(), 0, "the revoked session was not cached");
    assert!(live.check(&cookie, unix_now()).await.unwrap().is_none());
}

/// A store read taken before a revocation finished (a cache miss racing a logout) cannot be cached
/// after it: the logout's delete may be what the read missed.
#[tokio::test]
async fn a_read_from_before_a_revocation_is_not_cached_after_it() {
    let world = World::new();
    let live = Arc::new(sessions(&world, 16));
    let cookie = signed_in(&world, "lena").await;
    let user = world.store.user_by_name("lena").await.unwrap().unwrap();
    let hash = hash_secret(&cookie);
    let record = world.store.session(hash).await.unwrap().unwrap();

    let admission = live.admission();
    assert!(live.end(hash).await.unwrap(), "the session existed");
    live.admit(admission, &record, &user);
    assert_eq!(live.cached(), 0);
    assert!(live.check(&cookie, unix_now()).await.unwrap().is_none());
    assert!(!live.end(hash).await.unwrap(), "already gone");
}

/// Expired sessions are refused at once and deleted by the upkeep, never from a request.
#[tokio::test]
async fn expired_sessions_are_deleted_by_the_upkeep_not_by_requests() {
    let world = World::new();
    let live = Arc::new(sessions(&world, 16));
    // Read before the sign-ins, so their `last_seen` is never behind it (a second may tick
    // between them on a loaded machine).
    let now = unix_now();
    let idle = signed_in(&world, "idle").await;
    let busy = signed_in(&world, "busy").await;
    // `busy` is in use, though the store's `last_seen` (not yet written) says otherwise.
    assert!(live.check(&busy, now + IDLE - 1).await.unwrap().is_some());

    let later = now + IDLE + 1;
    assert!(live.check(&idle, later).await.unwrap().is_none());
    let stored = world.store.session(hash_secret(&idle)).await.unwrap();
    assert!(stored.is_some(), "a request does not write");
    assert_eq!(
        live.list(None, later).await.unwrap().len(),
        1,
        "only `busy` is listed"
    );

    assert_eq!(live.end_expired(later).await.unwrap(), 1);
    assert!(world
        .store
        .session(hash_secret(&idle))
        .await
        .unwrap()
        .is_none());
    assert!(world
        .store
        .session(hash_secret(&busy))
        .await
        .unwrap()
        .is_some());
    assert!(live.check(&busy, later).await.unwrap().is_some());
}

/// A cached session is refused from the moment it has been idle for the idle timeout, counted
/// from its last use (kept in memory, not yet written), and is dropped from the cache.
#[tokio::test]
async fn a_cached_session_is_refused_once_idle() {
    let world = World::new();
    let live = sessions(&world, 16);
    let cookie = signed_in(&world, "idler").await;
    let record = stored(&world, &cookie).await;
    let start = record.last_seen;
    assert!(live.check(&cookie, start).await.unwrap().is_some());
    assert_eq!(live.cached(), 1, "in the cache from here on");

    // Used one second before the deadline: the deadline moves to that use plus the timeout.
    let used = start + IDLE - 1;
    assert!(live.check(&cookie, used).await.unwrap().is_some());
    assert!(
        live.check(&cookie, start + IDLE).await.unwrap().is_some(),
        "the use moved the deadline"
    );
    let deadline = start + IDLE + IDLE;
    assert!(
        deadline < record.expires_at,
        "idle, not absolute, is what ends it"
    );
    assert!(live.check(&cookie, deadline - 1).await.unwrap().is_some());
    assert_eq!(live.cached(), 1);
    // Idle from `deadline - 1` to `deadline - 1 + IDLE`.
    let idle_end = deadline - 1 + IDLE;
    assert!(live.check(&cookie, idle_end).await.unwrap().is_none());
    assert_eq!(live.cached(), 0, "an idle session leaves the cache");
    assert!(
        live.check(&cookie, idle_end).await.unwrap().is_none(),
        "and is not read back from the store"
    );
    assert!(live.list(None, idle_end).await.unwrap().is_empty());
}

/// A cached session in constant use is still refused at its absolute deadline.
#[tokio::test]
async fn a_cached_session_in_use_is_refused_at_its_absolute_deadline() {
    let world = World::new();
    let live = sessions(&world, 16);
    let cookie = signed_in(&world, "busy").await;
    let record = stored(&world, &cookie).await;
    // Used every half idle timeout, so idleness never ends it.
    let mut now = record.last_seen;
    while now < record.expires_at {
        assert!(
            live.check(&cookie, now).await.unwrap().is_some(),
            "in use at {} s of {} s",
            now - record.created_at,
            record.expires_at - record.created_at
        );
        assert_eq!(live.cached(), 1);
        now = (now + IDLE / 2).min(record.expires_at - 1).max(now + 1);
    }
    assert!(live
        .check(&cookie, record.expires_at)
        .await
        .unwrap()
        .is_none());
    assert_eq!(live.cached(), 0, "an expired session leaves the cache");
    assert!(live.list(None, record.expires_at).await.unwrap().is_empty());
    let live = Arc::new(live);
    assert_eq!(live.end_expired(record.expires_at).await.unwrap(), 1);
    assert!(world
        .store
        .session(hash_secret(&cookie))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn new_groups_reach_a_cached_session_at_once() {
    let world = World::new();
    let live = Arc::new(sessions(&world, 8));
    let cookie = signed_in(&world, "gwen").await;
    let now = unix_now();
    let before = live.check(&cookie, now).await.unwrap().unwrap();
    assert_eq!(before.identity.groups, ["staff"]);

    let user = world.store.user_by_name("gwen").await.unwrap().unwrap();
    let changed = live.set_user_groups(&user, vec!["admins".into()]).await;
    assert_eq!(changed.unwrap().groups, ["admins"]);
    let after = live.check(&cookie, now + 1).await.unwrap().unwrap();
    assert_eq!(
        after.identity.groups,
        ["admins"],
        "the cached identity was replaced"
    );
}
