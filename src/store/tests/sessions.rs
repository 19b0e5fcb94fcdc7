//! Sessions and the purge: lookup by hash, absolute expiry, listing, revocation, batched
//! `last_seen` writes, and what `purge_expired` removes.

use super::{assert_err, now, World};
use crate::store::*;

#[test]
fn secrets_are_hashed_and_the_hash_round_trips_as_hex() {
    let hash = hash_secret("cookie value");
    assert_ne!(hash.0, [0; 32]);
    assert_eq!(hash, hash_secret("cookie value"));
    assert_ne!(hash, hash_secret("cookie valuf"));
    assert_eq!(hash.to_hex().len(), 64);
    assert_eq!(SecretHash::from_hex(&hash.to_hex()), Some(hash));
    assert_eq!(SecretHash::from_hex("zz"), None);
    let json = serde_json::to_string(&hash).unwrap();
    assert_eq!(serde_json::from_str::<SecretHash>(&json).unwrap(), hash);
    assert!(
        !format!("{hash:?}").contains(&hash.to_hex()),
        "Debug shows a prefix only"
    );
}

async fn sessions_are_listed_per_user_or_all_and_revoked(world: World) {
    let alice = world.user("alice").await;
    let bob = world.user("bob").await;
    let key_a = world.register(&alice, b"cred-a").await;
    let key_b = world.register(&bob, b"cred-b").await;
    let a1 = world.login(&key_a, "a1").await;
    let a2 = world.login(&key_a, "a2").await;
    let b1 = world.login(&key_b, "b1").await;

    assert_eq!(
        world.store.sessions_of(Some(alice.id)).await.unwrap().len(),
        2
    );
    assert_eq!(world.store.sessions_of(None).await.unwrap().len(), 3);

    let gone = world.store.delete_session(a1.id_hash).await.unwrap();
    assert_eq!(gone, a1);
    assert_err!(
        world.store.delete_session(a1.id_hash).await,
        StoreError::NotFound
    );
    assert_eq!(
        world.store.sessions_of(Some(alice.id)).await.unwrap(),
        vec![a2.clone()]
    );

    let revoked = world.store.delete_sessions_of(alice.id).await.unwrap();
    assert_eq!(revoked, vec![a2.id_hash]);
    assert!(world
        .store
        .sessions_of(Some(alice.id))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(world.store.sessions_of(None).await.unwrap(), vec![b1]);
    assert!(world
        .event_kinds()
        .await
        .contains(&EventKind::SessionRevoked));
}

async fn a_session_past_its_absolute_expiry_is_hidden(world: World) {
    let alice = world.user("alice").await;
    let key = world.register(&alice, b"cred-a").await;
    let ceremony = world.ceremony(CeremonyKind::Login, None).await;
    let mut session = super::session(&key, "cookie");
    session.expires_at = now() - 1;
    world
        .store
        .complete_login(super::login(ceremony, &key, session.clone()))
        .await
        .unwrap();
    assert_eq!(world.store.session(session.id_hash).await.unwrap(), None);
    assert!(world
        .store
        .sessions_of(Some(alice.id))
        .await
        .unwrap()
        .is_empty());
    assert!(world.store.sessions_of(None).await.unwrap().is_empty());
}

async fn touching_sessions_moves_last_seen_forward_only_and_skips_missing_ones(world: World) {
    let alice = world.user("alice").await;
    let key = world.register(&alice, b"cred-a").await;
    let one = world.login(&key, "one").await;
    let two = world.login(&key, "two").await;
    world
        .store
        .touch_sessions(vec![
            (one.id_hash, one.last_seen + 100),
            (two.id_hash, two.last_seen - 100),
            (hash_secret("never existed"), now()),
        ])
        .await
        .unwrap();
    let one_now = world.store.session(one.id_hash).await.unwrap().unwrap();
    let two_now = world.store.session(two.id_hash).await.unwrap().unwrap();
    assert_eq!(one_now.last_seen, one.last_seen + 100);
    assert_eq!(two_now.last_seen, two.last_seen);
    assert_eq!(
        world
            .store
            .session(hash_secret("never existed"))
            .await
            .unwrap(),
        None
    );
}

async fn purge_removes_only_what_expired(world: World) {
    let alice = world.user("alice").await;
    let key = world.register(&alice, b"cred-a").await;
    let t = now();
    let old_ceremony = world
        .ceremony_with(CeremonyKind::Login, None, None, t + 10)
        .await;
    let live_ceremony = world
        .ceremony_with(CeremonyKind::Login, None, None, t + 1000)
        .await;
    world
        .store
        .create_enrollment(alice.id, hash_secret("old"), t + 10)
        .await
        .unwrap();
    world
        .store
        .create_enrollment(alice.id, hash_secret("live"), t + 1000)
        .await
        .unwrap();
    let old_session = world.login(&key, "old").await;
    let live_session = world.login(&key, "live").await;
    let mut shortened = old_session.clone();
    shortened.expires_at = t + 10;
    // Re-insert the first session with a short life through a login completion.
    world
        .store
        .delete_session(old_session.id_hash)
        .await
        .unwrap();
    let ceremony = world.ceremony(CeremonyKind::Login, None).await;
    world
        .store
        .complete_login(super::login(ceremony, &key, shortened))
        .await
        .unwrap();

    let purged = world.store.purge_expired(t + 500).await.unwrap();
    // The fixture's other ceremonies were all spent, so only `old_ceremony` expired here.
    assert_eq!(
        purged,
        Purged {
            ceremonies: 1,
            enrollments: 1,
            sessions: 1
        }
    );
    assert_eq!(world.store.ceremony(old_ceremony).await.unwrap(), None);
    assert!(world.store.ceremony(live_ceremony).await.unwrap().is_some());
    assert!(world
        .store
        .enrollment(hash_secret("live"))
        .await
        .unwrap()
        .is_some());
    let sessions = world.store.sessions_of(Some(alice.id)).await.unwrap();
    assert_eq!(sessions, vec![live_session]);
    assert_eq!(
        world.store.purge_expired(t + 500).await.unwrap(),
        Purged::default()
    );
}

#[test]
fn a_session_stored_before_device_and_client_existed_still_loads() {
    let hash = hash_secret("old cookie");
    let old = format!(
        r#"{{"id_hash":"{}","user_id":"{}","passkey_id":"{}","created_at":1,"last_seen":2,"expires_at":3}}"#,
        hash.to_hex(),
        uuid::Uuid::nil(),
        uuid::Uuid::nil()
    );
    let mut record: SessionRecord = serde_json::from_str(&old).expect("an old record loads");
    assert_eq!((&record.device, &record.client), (&None, &None));
    record.device = Some("Firefox on Android".into());
    let again: SessionRecord =
        serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
    assert_eq!(again, record);
}

super::contract_tests!(
    sessions_are_listed_per_user_or_all_and_revoked,
    a_session_past_its_absolute_expiry_is_hidden,
    touching_sessions_moves_last_seen_forward_only_and_skips_missing_ones,
    purge_removes_only_what_expired,
);
