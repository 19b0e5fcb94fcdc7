//! Passkeys after registration: listing order, ownership, the last-passkey rule, and that
//! deleting a passkey revokes exactly the sessions it created.

use super::{assert_err, login, session, World};
use crate::store::*;
use uuid::Uuid;

async fn a_users_passkeys_are_listed_newest_first(world: World) {
    let alice = world.user("alice").await;
    let mut ids = Vec::new();
    for (age, credential) in [(30, b"old"), (10, b"new"), (20, b"mid")] {
        let mut completion = world.registration(&alice, credential).await;
        completion.passkey.created_at -= age;
        ids.push((age, completion.passkey.id));
        world.store.complete_registration(completion).await.unwrap();
    }
    ids.sort();
    let listed: Vec<Uuid> = world
        .store
        .passkeys_of(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.id)
        .collect();
    assert_eq!(
        listed,
        ids.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    );
}

/// What a sign-in's begin reads in one call: the user and their passkeys, newest first, as the
/// two separate reads give them; a user without passkeys with none; nothing for an unknown name.
async fn a_user_is_found_by_name_with_their_passkeys(world: World) {
    let alice = world.user("alice").await;
    let found = world.store.user_by_name_with_passkeys("alice").await;
    assert_eq!(found.unwrap(), Some((alice.clone(), vec![])));
    for (age, credential) in [(20, b"old"), (10, b"new")] {
        let mut completion = world.registration(&alice, credential).await;
        completion.passkey.created_at -= age;
        world.store.complete_registration(completion).await.unwrap();
    }
    let bob = world.user("bob").await;
    world.register(&bob, b"bobs").await;

    let found = world.store.user_by_name_with_passkeys("alice").await;
    let (user, passkeys) = found.unwrap().expect("alice");
    assert_eq!(user, alice);
    assert_eq!(passkeys, world.store.passkeys_of(alice.id).await.unwrap());
    assert_eq!(passkeys.len(), 2);
    let found = world.store.user_by_name_with_passkeys("nobody").await;
    assert_eq!(found.unwrap(), None);
}

async fn a_passkey_is_found_by_id_and_by_credential_id(world: World) {
    let alice = world.user("alice").await;
    let key = world.register(&alice, b"cred-a").await;
    assert_eq!(
        world.store.passkey(key.id).await.unwrap(),
        Some(key.clone())
    );
    let by_credential = world
        .store
        .passkey_by_credential_id(b"cred-a")
        .await
        .unwrap();
    assert_eq!(by_credential, Some(key));
    assert_eq!(
        world
            .store
            .passkey_by_credential_id(b"other")
            .await
            .unwrap(),
        None
    );
}

async fn only_the_owner_can_rename_a_passkey(world: World) {
    let alice = world.user("alice").await;
    let mallory = world.user("mallory").await;
    let key = world.register(&alice, b"cred-a").await;

    let renamed = world
        .store
        .rename_passkey(alice.id, key.id, "laptop".into())
        .await
        .unwrap();
    assert_eq!(renamed.name, "laptop");
    assert_eq!(
        world.store.passkey(key.id).await.unwrap().unwrap().name,
        "laptop"
    );
    assert_err!(
        world
            .store
            .rename_passkey(mallory.id, key.id, "mine".into())
            .await,
        StoreError::NotFound
    );
    assert_err!(
        world
            .store
            .rename_passkey(alice.id, Uuid::new_v4(), "x".into())
            .await,
        StoreError::NotFound
    );
    assert_eq!(
        world.store.passkey(key.id).await.unwrap().unwrap().name,
        "laptop"
    );
}

async fn another_users_passkey_cannot_be_deleted(world: World) {
    let alice = world.user("alice").await;
    let mallory = world.user("mallory").await;
    let key = world.register(&alice, b"cred-a").await;
    world.register(&alice, b"cred-b").await;
    world.register(&mallory, b"cred-m").await;
    world.register(&mallory, b"cred-n").await;
    assert_err!(
        world.store.delete_passkey(mallory.id, key.id).await,
        StoreError::NotFound
    );
    assert!(world.store.passkey(key.id).await.unwrap().is_some());
}

async fn the_owner_cannot_delete_the_last_passkey_but_an_admin_can_revoke_it(world: World) {
    let alice = world.user("alice").await;
    let key = world.register(&alice, b"cred-a").await;
    let session = world.login(&key, "cookie").await;
    assert_err!(
        world.store.delete_passkey(alice.id, key.id).await,
        StoreError::LastPasskey
    );
    assert!(world.store.passkey(key.id).await.unwrap().is_some());

    let revoked = world.store.revoke_passkey(key.id).await.unwrap();
    assert_eq!(revoked, vec![session.id_hash]);
    assert_eq!(world.store.passkey(key.id).await.unwrap(), None);
    assert_eq!(
        world
            .store
            .passkey_by_credential_id(b"cred-a")
            .await
            .unwrap(),
        None
    );
    assert_eq!(world.store.session(session.id_hash).await.unwrap(), None);
    assert_err!(
        world.store.revoke_passkey(key.id).await,
        StoreError::NotFound
    );
}

async fn deleting_a_passkey_revokes_exactly_the_sessions_it_created(world: World) {
    let alice = world.user("alice").await;
    let doomed = world.register(&alice, b"cred-a").await;
    let kept = world.register(&alice, b"cred-b").await;
    let doomed_1 = world.login(&doomed, "cookie-1").await;
    let doomed_2 = world.login(&doomed, "cookie-2").await;
    let survivor = world.login(&kept, "cookie-3").await;

    let mut revoked = world
        .store
        .delete_passkey(alice.id, doomed.id)
        .await
        .unwrap();
    revoked.sort();
    let mut expected = vec![doomed_1.id_hash, doomed_2.id_hash];
    expected.sort();
    assert_eq!(revoked, expected);
    assert_eq!(world.store.session(doomed_1.id_hash).await.unwrap(), None);
    assert_eq!(world.store.session(doomed_2.id_hash).await.unwrap(), None);
    assert!(world
        .store
        .session(survivor.id_hash)
        .await
        .unwrap()
        .is_some());
    let left = world.store.passkeys_of(alice.id).await.unwrap();
    assert_eq!(left.iter().map(|key| key.id).collect::<Vec<_>>(), [kept.id]);
    // The credential id is free again.
    world.register(&alice, b"cred-a").await;

    let deleted = world.store.events(10).await.unwrap();
    let event = deleted
        .iter()
        .find(|event| event.kind == EventKind::PasskeyDeleted)
        .expect("a passkey_deleted event");
    assert_eq!(event.passkey_id, Some(doomed.id));
    assert_eq!(event.user_id, Some(alice.id));
}

/// Two sign-ins verified against the same stored count: the one with the higher count commits
/// first; the other's lower count, older credential and earlier time must not overwrite it.
async fn a_login_that_was_overtaken_never_moves_the_count_back(world: World) {
    let user = world.user("tabs").await;
    let passkey = world.register(&user, b"tabs").await;
    let mut later = login(
        world.ceremony(CeremonyKind::Login, None).await,
        &passkey,
        session(&passkey, "later"),
    );
    later.new_sign_count = 7;
    later.credential = Some(b"credential at 7".to_vec());
    let mut earlier = login(
        world.ceremony(CeremonyKind::Login, None).await,
        &passkey,
        session(&passkey, "earlier"),
    );
    earlier.new_sign_count = 6;
    earlier.credential = Some(b"credential at 6".to_vec());
    // Its complete was computed first, too: the time of last use must not go back either (the
    // login's clone check reads it, see `rules::record_sign_in`).
    earlier.now = later.now - 5;
    let later_now = later.now;
    world.store.complete_login(later).await.unwrap();
    world.store.complete_login(earlier).await.unwrap();

    let stored = world.store.passkey(passkey.id).await.unwrap().unwrap();
    assert_eq!(stored.sign_count, 7);
    assert_eq!(stored.credential, b"credential at 7");
    assert_eq!(stored.last_used_at, Some(later_now));
}

super::contract_tests!(
    a_users_passkeys_are_listed_newest_first,
    a_user_is_found_by_name_with_their_passkeys,
    a_passkey_is_found_by_id_and_by_credential_id,
    only_the_owner_can_rename_a_passkey,
    another_users_passkey_cannot_be_deleted,
    the_owner_cannot_delete_the_last_passkey_but_an_admin_can_revoke_it,
    deleting_a_passkey_revokes_exactly_the_sessions_it_created,
    a_login_that_was_overtaken_never_moves_the_count_back,
);
