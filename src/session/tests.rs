//! The session cache against a real store: eviction keeps it bounded without losing sessions or
//! their `last_seen`.

// Tests may unwrap: a failure is the report.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::gateway::unix_now;
use crate::store::{Ceremony, CeremonyKind, NewUser, Passkey, RegistrationCompletion};

const IDLE: i64 = 3600;

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    sessions: Sessions,
}

fn world(capacity: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("gateway.redb")).unwrap();
    let cookie = CookieSpec::new("s", false, 86_400);
    let sessions = Sessions::new(store.clone(), cookie, IDLE, 86_400, capacity);
    World {
        _dir: dir,
        store,
        sessions,
    }
}

/// Stores a user with one passkey and one session (through a real registration), and returns
/// the cookie value.
async fn signed_in(w: &World, name: &str, now: i64) -> String {
    let user = w
        .store
        .create_user(NewUser {
            username: name.into(),
            display_name: name.into(),
            email: None,
            groups: vec![],
        })
        .await
        .unwrap();
    let ceremony_id = uuid::Uuid::new_v4();
    w.store
        .put_ceremony(Ceremony {
            id: ceremony_id,
            kind: CeremonyKind::Registration,
            user_id: Some(user.id),
            enrollment_token_hash: None,
            state: vec![],
            passkey_name: None,
            expires_at: now + 300,
        })
        .await
        .unwrap();
    let passkey = Passkey {
        id: uuid::Uuid::new_v4(),
        user_id: user.id,
        name: "key".into(),
        credential_id: name.as_bytes().to_vec(),
        credential: vec![],
        aaguid: None,
        transports: vec![],
        backup_eligible: false,
        backup_state: false,
        discoverable: false,
        sign_count: 0,
        clone_suspected: false,
        created_at: now,
        last_used_at: None,
    };
    let (value, record) = w.sessions.mint(user.id, passkey.id, now);
    w.store
        .complete_registration(RegistrationCompletion {
            ceremony_id,
            passkey,
            spend_enrollment: None,
            new_session: Some(record),
            max_passkeys_per_user: 10,
            now,
        })
        .await
        .unwrap();
    value
}

#[tokio::test]
async fn a_full_cache_evicts_the_least_recently_seen_and_reloads_them() {
    let w = world(8);
    let now = unix_now();
    let mut cookies = Vec::new();
    for i in 0..8 {
        let cookie = signed_in(&w, &format!("user{i}"), now).await;
        // user0 is seen last, so it is the most recent of all.
        let seen = if i == 0 { now + 100 } else { now + i };
        assert!(w.sessions.check(&cookie, seen).await.unwrap().is_some());
        cookies.push(cookie);
    }
    assert_eq!(w.sessions.cached(), 8);

    let newcomer = signed_in(&w, "user8", now).await;
    assert!(w
        .sessions
        .check(&newcomer, now + 101)
        .await
        .unwrap()
        .is_some());
    // One eighth of 8 (the oldest: user1) made room; the capacity holds.
    assert_eq!(w.sessions.cached(), 8);
    let hash1 = hash_secret(&cookies[1]);
    assert!(!w.sessions.read().contains_key(&hash1), "user1 was evicted");
    assert!(w.sessions.read().contains_key(&hash_secret(&cookies[0])));

    // Evicted is not revoked: the next request reads it back from the store.
    let back = w.sessions.check(&cookies[1], now + 102).await.unwrap();
    assert_eq!(back.unwrap().identity.username, "user1");
    assert!(w.sessions.cached() <= 8);
}

#[tokio::test]
async fn an_evicted_sessions_last_seen_is_not_lost() {
    let w = world(1);
    let now = unix_now();
    let first = signed_in(&w, "first", now).await;
    let second = signed_in(&w, "second", now).await;
    let later = now + IDLE - 10;
    w.sessions.check(&first, later).await.unwrap().unwrap();
    // Loading `second` evicts `first` before its `last_seen` was ever written.
    w.sessions.check(&second, now).await.unwrap().unwrap();
    assert_eq!(w.sessions.cached(), 1);

    // Reloaded before any flush: still alive past the stored `last_seen` + idle timeout.
    let back = w.sessions.check(&first, now + IDLE + 5).await.unwrap();
    assert!(back.is_some(), "eviction must not shorten the idle timeout");

    // And the flush writes it to the store.
    w.sessions.check(&second, now + 1).await.unwrap().unwrap(); // evicts `first` again
    assert!(w.sessions.flush_last_seen(now + IDLE + 100).await.unwrap() >= 1);
    let stored = w.store.session(hash_secret(&first)).await.unwrap().unwrap();
    assert_eq!(stored.last_seen, now + IDLE + 5);
}
