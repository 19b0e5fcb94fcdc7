//! Tests of the store, one module per noun: one contract suite run against both backends, a
//! real redb file in a temporary directory and a real PostgreSQL database of the test's own
//! (`pg.rs`; `contract_tests!` makes each test a `redb::` and a `postgres::` test). Each test
//! builds its own store; times come from the real clock because the read operations
//! (`ceremony`, `session`, `enrollment`) hide expired records by it. The writer, the file and
//! the crash tests are redb's own.

// Tests may unwrap: a failure is the report.
#![allow(clippy::unwrap_used)]

mod ceremonies;
mod crash;
mod durability;
mod events;
mod passkeys;
pub(crate) mod pg;
mod sessions;
mod users;

use super::*;
use std::path::PathBuf;
use tempfile::TempDir;
use uuid::Uuid;

/// A fresh store in its own directory; keep the `TempDir` alive as long as the store.
pub(crate) struct World {
    pub(crate) dir: TempDir,
    pub(crate) store: Store,
    /// The PostgreSQL database the store lives in, dropped after the store.
    pub(crate) database: Option<pg::TestDatabase>,
}

/// Runs each named contract test (`async fn name(world: World)`) on both backends.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod redb {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::store::tests::World::new()).await
                }
            )*
        }
        // Two workers: a store's background work (its audit numberer) may be connecting when
        // the test ends, and the database is dropped from a blocked worker; on a single one
        // that handshake would stall and hold the drop up for the server's login timeout.
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::store::tests::World::postgres().await).await
                }
            )*
        }
    };
}
pub(super) use contract_tests;

impl World {
    pub(crate) fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("gateway.redb")).expect("open store");
        World {
            dir,
            store,
            database: None,
        }
    }

    /// A fresh PostgreSQL database of this test's own, migrated, and a store on it.
    pub(crate) async fn postgres() -> World {
        let database = pg::TestDatabase::create().await;
        World {
            dir: tempfile::tempdir().expect("temp dir"),
            store: database.handle().await,
            database: Some(database),
        }
    }

    /// A fresh store in a new directory inside `parent` (a crash test's child writes there).
    pub(crate) fn new_in(parent: &std::path::Path) -> World {
        let dir = tempfile::tempdir_in(parent).expect("temp dir");
        let store = Store::open(dir.path().join("gateway.redb")).expect("open store");
        World {
            dir,
            store,
            database: None,
        }
    }

    /// A fresh world and its store as the redb backend, for tests of the writer itself.
    pub(super) fn with_redb() -> (World, RedbStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let redb = RedbStore::open(dir.path().join("gateway.redb"), Default::default())
            .expect("open store");
        let store = Store::with_backend(redb.clone());
        let world = World {
            dir,
            store,
            database: None,
        };
        (world, redb)
    }

    pub(super) fn path(&self) -> PathBuf {
        self.dir.path().join("gateway.redb")
    }

    /// Creates a user with no passkey yet.
    pub(crate) async fn user(&self, name: &str) -> User {
        self.store
            .create_user(NewUser {
                username: name.into(),
                display_name: format!("{name} Example"),
                email: Some(format!("{name}@example.com")),
                groups: vec!["staff".into()],
            })
            .await
            .expect("create user")
    }

    /// Stores a live ceremony of `kind` for `user_id` and returns its id.
    pub(crate) async fn ceremony(&self, kind: CeremonyKind, user_id: Option<Uuid>) -> Uuid {
        self.ceremony_with(kind, user_id, None, now() + 300).await
    }

    pub(super) async fn ceremony_with(
        &self,
        kind: CeremonyKind,
        user_id: Option<Uuid>,
        enrollment_token_hash: Option<SecretHash>,
        expires_at: i64,
    ) -> Uuid {
        let id = Uuid::new_v4();
        self.store
            .put_ceremony(
                Ceremony {
                    id,
                    kind,
                    user_id,
                    enrollment_token_hash,
                    state: b"opaque webauthn state".to_vec(),
                    passkey_name: None,
                    expires_at,
                },
                u64::MAX,
            )
            .await
            .expect("put ceremony");
        id
    }

    /// Registers a passkey for `user` through a real registration ceremony.
    pub(crate) async fn register(&self, user: &User, credential_id: &[u8]) -> Passkey {
        self.store
            .complete_registration(self.registration(user, credential_id).await)
            .await
            .expect("complete registration")
    }

    /// A registration completion (with a fresh ceremony) that is valid as it stands.
    pub(crate) async fn registration(
        &self,
        user: &User,
        credential_id: &[u8],
    ) -> RegistrationCompletion {
        let ceremony_id = self
            .ceremony(CeremonyKind::Registration, Some(user.id))
            .await;
        RegistrationCompletion {
            ceremony_id,
            passkey: passkey(user.id, credential_id),
            spend_enrollment: None,
            new_session: None,
            max_passkeys_per_user: 10,
            now: now(),
        }
    }

    /// Logs in with `passkey` and returns the session it created.
    pub(crate) async fn login(&self, passkey: &Passkey, cookie: &str) -> SessionRecord {
        let ceremony_id = self.ceremony(CeremonyKind::Login, None).await;
        let session = session(passkey, cookie);
        self.store
            .complete_login(login(ceremony_id, passkey, session.clone()))
            .await
            .expect("complete login");
        session
    }

    /// The kinds of all stored events, oldest first.
    pub(super) async fn event_kinds(&self) -> Vec<EventKind> {
        let mut events = self.store.events(10_000).await.expect("events");
        events.reverse();
        events.into_iter().map(|event| event.kind).collect()
    }
}

pub(super) fn now() -> i64 {
    unix_now()
}

pub(super) fn passkey(user_id: Uuid, credential_id: &[u8]) -> Passkey {
    Passkey {
        id: Uuid::new_v4(),
        user_id,
        name: format!("key {}", hex::encode(credential_id)),
        credential_id: credential_id.to_vec(),
        credential: b"opaque webauthn passkey".to_vec(),
        aaguid: None,
        transports: vec!["internal".into()],
        backup_eligible: true,
        backup_state: false,
        discoverable: true,
        sign_count: 0,
        clone_suspected: false,
        created_at: now(),
        last_used_at: None,
    }
}

pub(crate) fn session(passkey: &Passkey, cookie: &str) -> SessionRecord {
    SessionRecord {
        id_hash: hash_secret(cookie),
        user_id: passkey.user_id,
        passkey_id: passkey.id,
        created_at: now(),
        last_seen: now(),
        expires_at: now() + 3600,
        device: None,
        client: None,
    }
}

pub(crate) fn login(
    ceremony_id: Uuid,
    passkey: &Passkey,
    session: SessionRecord,
) -> LoginCompletion {
    LoginCompletion {
        ceremony_id,
        passkey_id: passkey.id,
        new_sign_count: passkey.sign_count + 1,
        backup_state: true,
        backup_eligible: true,
        credential: None,
        new_session: session,
        now: now(),
    }
}

/// Asserts a result is the given error variant, showing what it was otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
}
pub(super) use assert_err;
