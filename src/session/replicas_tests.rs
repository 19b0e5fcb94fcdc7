//! Several replicas on one real PostgreSQL database (a `PostgresStore` and a `Sessions` each):
//! revocations on one reach the others' caches within the bound, also when the notification is
//! lost, and the completes keep their rules when replicas race.

// Tests may unwrap: a failure is the report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::session::{CookieSpec, Sessions};
use crate::store::tests::pg::TestDatabase;
use crate::store::tests::World;
use crate::store::{hash_secret, Store, StoreError, REVOCATION_BOUND};

struct Replica {
    store: Store,
    sessions: Arc<Sessions>,
}

async fn replica(database: &TestDatabase) -> Replica {
    let store = database.handle().await;
    let cookie = CookieSpec::new("pkgw_session", false, 3600);
    let sessions = Arc::new(Sessions::new(store.clone(), cookie, 3600, 3600, 1000));
    sessions.follow_store();
    Replica { store, sessions }
}

/// Polls `condition` every millisecond until it holds or `limit` passes; how long it took.
async fn within<F, Fut>(limit: Duration, mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Three replicas, each with its revocation feed confirmed, and a world (on the first) to
/// create users and sign them in.
async fn cluster() -> (World, Vec<Replica>) {
    let database = TestDatabase::create().await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&database).await);
    }
    for replica in &replicas {
        let confirmed = within(Duration::from_secs(10), || async {
            replica.sessions.cache_trusted()
        })
        .await;
        assert!(confirmed.is_some(), "a revocation feed never confirmed");
    }
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        store: replicas[0].store.clone(),
        database: Some(database),
    };
    (world, replicas)
}

/// Signs `name` in (on the store) and warms every replica's cache with the cookie.
async fn signed_in_everywhere(
    world: &World,
    replicas: &[Replica],
    name: &str,
) -> (String, uuid::Uuid) {
    let user = world.user(name).await;
    let key = world.register(&user, name.as_bytes()).await;
    let cookie = format!("cookie of {name}");
    world.login(&key, &cookie).await;
    let now = crate::clock::unix_now();
    for replica in replicas {
        assert!(replica
            .sessions
            .check(&cookie, now)
            .await
            .unwrap()
            .is_some());
    }
    (cookie, key.id)
}

async fn refused_everywhere_within_bound(replicas: &[Replica], cookie: &str) -> Duration {
    let now = crate::clock::unix_now();
    let mut slowest = Duration::ZERO;
    for replica in replicas {
        let took = within(REVOCATION_BOUND * 2, || async {
            replica.sessions.check(cookie, now).await.unwrap().is_none()
        })
        .await
        .expect("a revoked session was still accepted past the bound");
        slowest = slowest.max(took);
    }
    assert!(slowest <= REVOCATION_BOUND, "took {slowest:?}");
    slowest
}

#[tokio::test]
async fn a_logout_on_one_replica_is_refused_on_the_others_within_the_bound() {
    let (world, replicas) = cluster().await;
    let (cookie, _) = signed_in_everywhere(&world, &replicas, "alice").await;
    assert!(replicas[0]
        .sessions
        .end(hash_secret(&cookie))
        .await
        .unwrap());
    let took = refused_everywhere_within_bound(&replicas[1..], &cookie).await;
    eprintln!("revocation delay (logout, notified): {took:?}");
}

#[tokio::test]
async fn disabling_a_user_or_deleting_a_passkey_reaches_every_replica() {
    let (world, replicas) = cluster().await;
    let (alice, _) = signed_in_everywhere(&world, &replicas, "alice").await;
    let user = world.store.user_by_name("alice").await.unwrap().unwrap();
    replicas[1].sessions.disable_user(&user).await.unwrap();
    refused_everywhere_within_bound(&replicas, &alice).await;

    let (bob, bobs_key) = signed_in_everywhere(&world, &replicas, "bob").await;
    replicas[2].sessions.revoke_passkey(bobs_key).await.unwrap();
    refused_everywhere_within_bound(&replicas, &bob).await;
}

#[tokio::test]
async fn a_lost_notification_does_not_keep_a_revoked_session_alive() {
    let (world, replicas) = cluster().await;
    let (cookie, _) = signed_in_everywhere(&world, &replicas, "alice").await;
    // Cut every listener; the revocation below commits while they are away.
    let admin = world.database.as_ref().unwrap().admin().await;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND datname = current_database()",
            &[&crate::store::LISTENER_NAME],
        )
        .await
        .unwrap();
    let start = Instant::now();
    replicas[0]
        .store
        .delete_session(hash_secret(&cookie))
        .await
        .unwrap();
    let took = refused_everywhere_within_bound(&replicas[1..], &cookie).await;
    eprintln!(
        "revocation delay (listener cut): {took:?}, {:?} after the cut",
        start.elapsed()
    );
    // And the feeds come back by themselves.
    for replica in &replicas {
        let back = within(Duration::from_secs(10), || async {
            replica.sessions.cache_trusted()
        })
        .await;
        assert!(back.is_some(), "a revocation feed did not come back");
    }
}

#[tokio::test]
async fn a_ceremony_completes_on_exactly_one_replica() {
    let (world, replicas) = cluster().await;
    let alice = world.user("alice").await;
    for round in 0..20u8 {
        let mut completion = world.registration(&alice, &[round; 8]).await;
        completion.max_passkeys_per_user = 100;
        let racers = replicas.iter().map(|replica| {
            let store = replica.store.clone();
            let completion = completion.clone();
            tokio::spawn(async move { store.complete_registration(completion).await })
        });
        let mut won = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::CeremonyNotFound) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
    assert_eq!(world.store.passkeys_of(alice.id).await.unwrap().len(), 20);
}

#[tokio::test]
async fn concurrent_logins_with_one_passkey_keep_its_count_and_every_session() {
    let (world, replicas) = cluster().await;
    let alice = world.user("alice").await;
    let key = world.register(&alice, b"alice").await;
    let mut logins = Vec::new();
    for i in 0..30u32 {
        let ceremony = world
            .ceremony(crate::store::CeremonyKind::Login, None)
            .await;
        let session = crate::store::tests::session(&key, &format!("cookie {i}"));
        let mut completion = crate::store::tests::login(ceremony, &key, session);
        completion.new_sign_count = i + 1;
        let store = replicas[i as usize % replicas.len()].store.clone();
        logins.push(tokio::spawn(async move {
            store.complete_login(completion).await
        }));
    }
    for login in logins {
        login.await.unwrap().unwrap();
    }
    let stored = world.store.passkey(key.id).await.unwrap().unwrap();
    assert_eq!(stored.sign_count, 30, "the count never moves back");
    assert_eq!(
        world.store.sessions_of(Some(alice.id)).await.unwrap().len(),
        30
    );
}

#[tokio::test]
async fn the_passkey_cap_holds_when_replicas_race() {
    let (world, replicas) = cluster().await;
    let alice = world.user("alice").await;
    let mut racers = Vec::new();
    for i in 0..15u8 {
        let mut completion = world.registration(&alice, &[i; 4]).await;
        completion.max_passkeys_per_user = 5;
        let store = replicas[usize::from(i) % replicas.len()].store.clone();
        racers.push(tokio::spawn(async move {
            store.complete_registration(completion).await
        }));
    }
    let mut stored = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => stored += 1,
            Err(StoreError::TooManyPasskeys { max: 5 }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(world.store.passkeys_of(alice.id).await.unwrap().len(), 5);
}

#[tokio::test]
async fn one_replica_at_a_time_runs_a_periodic_job() {
    let database = TestDatabase::create().await;
    let (a, b) = (database.handle().await, database.handle().await);
    let held = a.exclusive_job("purge_expired").await.unwrap();
    assert!(held.is_some());
    assert!(b.exclusive_job("purge_expired").await.unwrap().is_none());
    // Another job is not held by it.
    assert!(b.exclusive_job("purge_events").await.unwrap().is_some());
    drop(held);
    // Released when its connection closes, which the server notices a moment later.
    let freed = within(Duration::from_secs(5), || async {
        b.exclusive_job("purge_expired").await.unwrap().is_some()
    })
    .await;
    assert!(freed.is_some(), "the lock outlived its guard");
}
