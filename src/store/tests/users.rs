//! Users: unique usernames, disable/enable, groups, removal with everything the user owned.

use super::{assert_err, now, World};
use crate::store::*;

async fn usernames_are_unique(world: World) {
    let alice = world.user("alice").await;
    let again = world
        .store
        .create_user(NewUser {
            username: "alice".into(),
            display_name: "Another Alice".into(),
            email: None,
            groups: vec![],
        })
        .await;
    assert_err!(again, StoreError::Conflict("username"));
    assert_eq!(
        again.map(|_| ()).unwrap_err().to_string(),
        "username is already taken"
    );
    let found = world.store.user_by_name("alice").await.unwrap();
    assert_eq!(found, Some(alice.clone()));
    assert_eq!(world.store.user(alice.id).await.unwrap(), Some(alice));
    assert_eq!(world.store.user_by_name("bob").await.unwrap(), None);
}

async fn users_are_listed_by_name(world: World) {
    world.user("carol").await;
    world.user("alice").await;
    world.user("bob").await;
    let names: Vec<String> = world
        .store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|user| user.username)
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
}

async fn disabling_revokes_sessions_and_refuses_login_and_registration(world: World) {
    let alice = world.user("alice").await;
    let key = world.register(&alice, b"cred-a").await;
    let first = world.login(&key, "cookie-1").await;
    let second = world.login(&key, "cookie-2").await;

    let mut revoked = world.store.set_user_disabled("alice", true).await.unwrap();
    revoked.sort();
    let mut expected = vec![first.id_hash, second.id_hash];
    expected.sort();
    assert_eq!(revoked, expected);
    assert_eq!(world.store.session(first.id_hash).await.unwrap(), None);
    assert!(world.store.user(alice.id).await.unwrap().unwrap().disabled);

    let ceremony = world.ceremony(CeremonyKind::Login, None).await;
    let login = super::login(ceremony, &key, super::session(&key, "cookie-3"));
    assert_err!(
        world.store.complete_login(login).await,
        StoreError::UserDisabled
    );
    let registration = world.registration(&alice, b"cred-b").await;
    assert_err!(
        world.store.complete_registration(registration).await,
        StoreError::UserDisabled
    );

    let revoked = world.store.set_user_disabled("alice", false).await.unwrap();
    assert!(revoked.is_empty());
    world.login(&key, "cookie-4").await;
    let kinds = world.event_kinds().await;
    assert!(kinds.contains(&EventKind::UserDisabled) && kinds.contains(&EventKind::UserEnabled));
}

async fn disabling_or_removing_an_unknown_user_is_not_found(world: World) {
    assert_err!(
        world.store.set_user_disabled("nobody", true).await,
        StoreError::NotFound
    );
    assert_err!(
        world.store.remove_user("nobody").await,
        StoreError::NotFound
    );
    assert_err!(
        world.store.set_user_groups("nobody", vec![]).await,
        StoreError::NotFound
    );
}

async fn groups_can_be_replaced(world: World) {
    world.user("alice").await;
    let groups = vec!["admins".to_string(), "ops".to_string()];
    let user = world
        .store
        .set_user_groups("alice", groups.clone())
        .await
        .unwrap();
    assert_eq!(user.groups, groups);
    let stored = world.store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(stored.groups, groups);
}

async fn removing_a_user_removes_everything_it_owned(world: World) {
    let alice = world.user("alice").await;
    let bob = world.user("bob").await;
    let key_a = world.register(&alice, b"cred-a").await;
    let key_b = world.register(&bob, b"cred-b").await;
    let alice_session = world.login(&key_a, "cookie-a").await;
    let bob_session = world.login(&key_b, "cookie-b").await;
    let token = hash_secret("alice-link");
    world
        .store
        .create_enrollment(alice.id, token, now() + 600)
        .await
        .unwrap();

    let revoked = world.store.remove_user("alice").await.unwrap();
    assert_eq!(revoked, vec![alice_session.id_hash]);
    assert_eq!(world.store.user(alice.id).await.unwrap(), None);
    assert_eq!(world.store.user_by_name("alice").await.unwrap(), None);
    assert_eq!(world.store.passkey(key_a.id).await.unwrap(), None);
    assert_eq!(
        world
            .store
            .passkey_by_credential_id(b"cred-a")
            .await
            .unwrap(),
        None
    );
    assert!(world.store.passkeys_of(alice.id).await.unwrap().is_empty());
    assert_eq!(
        world.store.session(alice_session.id_hash).await.unwrap(),
        None
    );
    assert_eq!(world.store.enrollment(token).await.unwrap(), None);

    // Bob is untouched, and the name and credential id are free again.
    assert!(world
        .store
        .session(bob_session.id_hash)
        .await
        .unwrap()
        .is_some());
    let bob_keys = world.store.passkeys_of(bob.id).await.unwrap();
    assert_eq!(
        bob_keys.iter().map(|key| key.id).collect::<Vec<_>>(),
        [key_b.id]
    );
    let new_alice = world.user("alice").await;
    world.register(&new_alice, b"cred-a").await;
    assert!(world.event_kinds().await.contains(&EventKind::UserRemoved));
}

super::contract_tests!(
    usernames_are_unique,
    users_are_listed_by_name,
    disabling_revokes_sessions_and_refuses_login_and_registration,
    disabling_or_removing_an_unknown_user_is_not_found,
    groups_can_be_replaced,
    removing_a_user_removes_everything_it_owned,
);
