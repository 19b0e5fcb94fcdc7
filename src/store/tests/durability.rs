//! The file and the writer: schema versions, reopening, the file lock, group commit under
//! concurrency, and batches where some operations fail.

use super::super::tables::{META, SCHEMA_KEY, SCHEMA_VERSION};
use super::crash::{acknowledge, child_dir, run_and_kill, test_name, wait_to_be_killed};
use super::{assert_err, World};
use crate::store::*;
use std::time::{Duration, Instant};

#[test]
fn a_file_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_KEY, SCHEMA_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let error = Store::open(&path).map(|_| ()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the store at {} was written by schema version {}; this binary reads up to {}",
            path.display(),
            SCHEMA_VERSION + 1,
            SCHEMA_VERSION
        )
    );
}

#[test]
fn a_file_open_elsewhere_is_reported_as_locked() {
    let world = World::new();
    let error = Store::open(world.path()).map(|_| ()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the store at {} is open in another process",
            world.path().display()
        )
    );
}

/// A clean close and reopen (what survives a crash is tested with a killed child below).
#[tokio::test]
async fn reopening_after_drop_keeps_everything() {
    let world = World::new();
    let alice = world.user("alice").await;
    let key = world.register(&alice, b"cred-a").await;
    let session = world.login(&key, "cookie").await;
    let token = hash_secret("link");
    world
        .store
        .create_enrollment(alice.id, token, super::now() + 600)
        .await
        .unwrap();
    let events = world.store.events(100).await.unwrap();
    let key = world.store.passkey(key.id).await.unwrap().unwrap();

    let World { dir, store, .. } = world;
    drop(store);
    let store = Store::open(dir.path().join("gateway.redb")).unwrap();
    store.health().await.unwrap();
    assert_eq!(
        store.user_by_name("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.passkeys_of(alice.id).await.unwrap(),
        vec![key.clone()]
    );
    assert_eq!(
        store.passkey_by_credential_id(b"cred-a").await.unwrap(),
        Some(key)
    );
    assert_eq!(store.session(session.id_hash).await.unwrap(), Some(session));
    assert!(store.enrollment(token).await.unwrap().is_some());
    assert_eq!(store.events(100).await.unwrap(), events);
}

/// Group commit groups concurrent registrations, and every one acknowledged survives SIGKILL of
/// the process that wrote it (a child process; see `crash.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_are_all_acknowledged_and_survive_kill_9() {
    const USERS: usize = 20;
    const PER_USER: usize = 10;
    let Some(parent) = child_dir() else {
        let dir = tempfile::tempdir().unwrap();
        let name = test_name(
            module_path!(),
            "concurrent_registrations_are_all_acknowledged_and_survive_kill_9",
        );
        let acknowledged = run_and_kill(&name, dir.path());
        let (path, keys) = acknowledged.split_first().expect("the store path");
        assert_eq!(
            keys.len(),
            USERS * PER_USER,
            "every registration was acknowledged"
        );
        let store = Store::open(path).expect("the store opens after kill -9");
        for key in keys {
            let id: uuid::Uuid = key.parse().unwrap();
            let kept = store.passkey(id).await.unwrap();
            assert!(kept.is_some(), "acknowledged passkey {id} was lost");
        }
        for user in store.list_users().await.unwrap() {
            assert_eq!(store.passkeys_of(user.id).await.unwrap().len(), PER_USER);
        }
        let registrations = store
            .events(10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|event| event.kind == EventKind::PasskeyRegistered)
            .count();
        assert_eq!(registrations, USERS * PER_USER);
        return;
    };

    // The child: registers concurrently, reports each acknowledgement, and is killed.
    let world = World::new_in(&parent);
    acknowledge(world.path().display());
    let mut users = Vec::new();
    for index in 0..USERS {
        users.push(world.user(&format!("user-{index}")).await);
    }
    let mut completions = Vec::new();
    for (index, user) in users.iter().enumerate() {
        for key in 0..PER_USER {
            completions.push(
                world
                    .registration(user, format!("cred-{index}-{key}").as_bytes())
                    .await,
            );
        }
    }
    let commits_before = world.store.write_stats().commits;
    let tasks: Vec<_> = completions
        .into_iter()
        .map(|completion| {
            let store = world.store.clone();
            tokio::spawn(async move { store.complete_registration(completion).await })
        })
        .collect();
    for task in tasks {
        acknowledge(task.await.unwrap().unwrap().id);
    }
    let commits = world.store.write_stats().commits - commits_before;
    assert!(
        commits < (USERS * PER_USER) as u64,
        "{commits} commits for {} writes: group commit did not group",
        USERS * PER_USER
    );
    wait_to_be_killed();
}

/// Holds the writer inside one operation until `release` is sent, so that the operations
/// queued meanwhile all land in the next batch together. Returns once the writer is inside it:
/// an operation queued before then could still join the blocker's own batch.
async fn block_writer(
    store: &RedbStore,
) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let (entered, inside) = tokio::sync::oneshot::channel::<()>();
    let blocker = store.clone();
    let held = tokio::spawn(async move {
        blocker
            .write(move |_batch| {
                let _ = entered.send(());
                let _ = gate.recv_timeout(Duration::from_secs(10));
                Ok(())
            })
            .await
            .unwrap();
    });
    inside.await.unwrap();
    (release, held)
}

/// Waits (bounded) until the writer has been handed `count` operations in total.
async fn wait_until_queued(store: &Store, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.write_stats().writes < count {
        assert!(Instant::now() < deadline, "operations were never queued");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_operation_does_not_spoil_its_batch() {
    let (world, redb) = World::with_redb();
    let alice = world.user("alice").await;
    let bob = world.user("bob").await;
    let good_1 = world.registration(&alice, b"cred-1").await;
    let duplicate = world.registration(&bob, b"cred-1").await;
    let good_2 = world.registration(&bob, b"cred-2").await;
    let WriteStats {
        writes: queued,
        commits,
    } = world.store.write_stats();

    let (release, held) = block_writer(&redb).await;
    wait_until_queued(&world.store, queued + 1).await;
    let spawn = |completion: RegistrationCompletion| {
        let store = world.store.clone();
        tokio::spawn(async move { store.complete_registration(completion).await })
    };
    let first = spawn(good_1);
    wait_until_queued(&world.store, queued + 2).await;
    let second = spawn(duplicate);
    let third = spawn(good_2);
    wait_until_queued(&world.store, queued + 4).await;
    release.send(()).unwrap();
    held.await.unwrap();

    assert!(first.await.unwrap().is_ok());
    assert_err!(second.await.unwrap(), StoreError::DuplicateCredential);
    assert!(third.await.unwrap().is_ok());
    assert_eq!(
        world.store.write_stats().commits,
        commits + 2,
        "one batch held, one batch of three"
    );
    assert_eq!(world.store.passkeys_of(alice.id).await.unwrap().len(), 1);
    assert_eq!(world.store.passkeys_of(bob.id).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_operation_aborts_its_batch_and_the_writer_goes_on() {
    let (world, redb) = World::with_redb();
    let queued = world.store.write_stats().writes;
    let (release, held) = block_writer(&redb).await;
    wait_until_queued(&world.store, queued + 1).await;
    let store = world.store.clone();
    let innocent = tokio::spawn(async move {
        store
            .create_user(NewUser {
                username: "innocent".into(),
                display_name: "In the same batch".into(),
                email: None,
                groups: vec![],
            })
            .await
    });
    wait_until_queued(&world.store, queued + 2).await;
    let store = redb.clone();
    let panicking = tokio::spawn(async move {
        store
            .write(|_batch| -> Result<(), StoreError> { panic!("a bug in an operation") })
            .await
    });
    wait_until_queued(&world.store, queued + 3).await;
    release.send(()).unwrap();
    held.await.unwrap();

    assert_err!(panicking.await.unwrap(), StoreError::Storage(_));
    assert_err!(innocent.await.unwrap(), StoreError::Storage(_));
    assert_eq!(world.store.user_by_name("innocent").await.unwrap(), None);
    world.user("afterwards").await;
}

#[cfg(unix)]
#[test]
fn a_new_store_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new();
    let mode = std::fs::metadata(world.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(format!("{:?}", world.store).contains("gateway.redb"));
}
