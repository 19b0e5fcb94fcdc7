//! `passkey-gateway store migrate --to postgres://…`: copies the redb store of this config
//! (users, passkeys, live sessions, audit events) and its signing keys into a PostgreSQL
//! database, migrating the schema first. Idempotent: what is already there is skipped, and the
//! counts printed say what was copied and what the database holds now, to compare.
//!
//! Not copied: begun ceremonies and unused enrollment links (short-lived: begin again, invite
//! again). The gateway must be stopped (it holds the redb file).

use std::sync::Arc;

use anyhow::Context;

use crate::cli::StoreMigrateArgs;
use crate::config::Config;
use crate::identity::{KeyEncryptionKey, KeyRing, SharedKeys};
use crate::store::{Export, PostgresOptions, PostgresStore, Store, STORE_FILE};

/// Runs the copy and returns the report to print.
pub async fn migrate(config: &Config, args: &StoreMigrateArgs) -> anyhow::Result<String> {
    let path = config.server.data_dir.join(STORE_FILE);
    let source = Store::open(&path)
        .with_context(|| format!("cannot open {} (stop the gateway first)", path.display()))?;
    let password = match &args.password_env {
        Some(name) => Some(
            std::env::var(name)
                .with_context(|| format!("environment variable {name} is not set"))?,
        ),
        None => None,
    };
    let options = PostgresOptions {
        url: args.to.clone(),
        password,
        pool_size: 2,
        statement_timeout: std::time::Duration::from_secs(300),
        connect_timeout: std::time::Duration::from_secs(10),
    };
    let target = PostgresStore::connect(&options, Arc::new(Default::default())).await?;
    let export = read_all(&source).await?;
    let imported = target.import(&export).await?;
    let keys = copy_keys(config, args, &target).await?;
    let target = Store::with_backend(target);
    let mut held = Export {
        users: target.list_users().await?,
        ..Export::default()
    };
    for user in &held.users {
        held.passkeys.extend(target.passkeys_of(user.id).await?);
    }
    held.sessions = target.sessions_of(None).await?;
    Ok(format!(
        "copied into PostgreSQL (new / read from redb / now in PostgreSQL):\n  users     {} / {} / {}\n  passkeys  {} / {} / {}\n  sessions  {} / {} / {}\n  events    {} / {}\n  signing keys: {keys}",
        imported.users,
        export.users.len(),
        held.users.len(),
        imported.passkeys,
        export.passkeys.len(),
        held.passkeys.len(),
        imported.sessions,
        export.sessions.len(),
        held.sessions.len(),
        imported.events,
        export.events.len(),
    ))
}

async fn read_all(source: &Store) -> anyhow::Result<Export> {
    let mut export = Export {
        users: source.list_users().await?,
        ..Export::default()
    };
    for user in &export.users {
        export.passkeys.extend(source.passkeys_of(user.id).await?);
    }
    export.sessions = source.sessions_of(None).await?;
    let mut events = source.events(usize::MAX).await?;
    events.reverse();
    export.events = events;
    Ok(export)
}

/// Seals the key file's ring into the database unless one is there already.
async fn copy_keys(
    config: &Config,
    args: &StoreMigrateArgs,
    target: &PostgresStore,
) -> anyhow::Result<&'static str> {
    let Some(ring) = KeyRing::load(&config.server.data_dir)? else {
        return Ok("none in the data directory");
    };
    let Some(path) = &args.key_encryption_key_file else {
        anyhow::bail!(
            "the data directory holds signing keys: pass --key-encryption-key-file (64 hex digits, \
             the file the replicas' store.key_encryption_key_file will name)"
        );
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let kek = KeyEncryptionKey::from_hex(&text).map_err(anyhow::Error::msg)?;
    let shared = SharedKeys::new(Store::with_backend(target.clone()), kek);
    if shared.version().await?.is_some() {
        // Already copied (or the database has its own): check it opens with this key.
        shared.load().await?;
        return Ok("already in PostgreSQL (kept)");
    }
    shared.store_ring(&ring).await?;
    Ok("copied (sealed)")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::identity::KeyAlgorithm;
    use crate::store::tests::pg::TestDatabase;
    use crate::store::tests::World;

    #[tokio::test]
    async fn a_redb_store_is_copied_once_and_the_counts_agree() {
        let world = World::new();
        let alice = world.user("alice").await;
        let key = world.register(&alice, b"alice-key").await;
        let session = world.login(&key, "alice's cookie").await;
        world.user("bob").await;
        let ring = KeyRing::load_or_create(world.dir.path(), KeyAlgorithm::Es256).unwrap();
        let kek = world.dir.path().join("kek");
        std::fs::write(&kek, "3c".repeat(32)).unwrap();
        let text = format!(
            "public_url = \"http://localhost:8080\"\n[server]\ndata_dir = {:?}\n[webauthn]\nrp_id = \"localhost\"\n",
            world.dir.path().display().to_string()
        );
        let config = Config::from_toml(std::path::Path::new("g.toml"), &text).unwrap();
        let World { dir, store, .. } = world;
        let key = store.passkey(key.id).await.unwrap().unwrap();
        drop(store);

        let database = TestDatabase::create().await;
        let args = StoreMigrateArgs {
            to: database.url.clone(),
            password_env: None,
            key_encryption_key_file: Some(kek.clone()),
        };
        let first = migrate(&config, &args).await.unwrap();
        assert!(first.contains("users     2 / 2 / 2"), "{first}");
        assert!(first.contains("passkeys  1 / 1 / 1"), "{first}");
        assert!(first.contains("sessions  1 / 1 / 1"), "{first}");
        assert!(first.contains("signing keys: copied (sealed)"), "{first}");
        let again = migrate(&config, &args).await.unwrap();
        assert!(again.contains("users     0 / 2 / 2"), "{again}");
        assert!(again.contains("events    0 /"), "{again}");
        assert!(again.contains("already in PostgreSQL (kept)"), "{again}");

        // What PostgreSQL holds is what redb held: the session signs in, the keys sign alike.
        let copied = database.handle().await;
        assert_eq!(
            copied.session(session.id_hash).await.unwrap(),
            Some(session.clone())
        );
        assert_eq!(copied.passkey(key.id).await.unwrap(), Some(key));
        let kek = KeyEncryptionKey::from_hex(&std::fs::read_to_string(&kek).unwrap()).unwrap();
        let (_, shared) = SharedKeys::new(copied.clone(), kek)
            .load()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(shared.current().kid(), ring.current().kid());
        // A new event continues after the copied ones.
        let newest = copied.events(1).await.unwrap()[0].id;
        copied.user_by_name("bob").await.unwrap().unwrap();
        copied
            .set_user_groups("bob", vec!["ops".into()])
            .await
            .unwrap();
        assert_eq!(copied.events(1).await.unwrap()[0].id, newest + 1);
        drop(dir);
    }
}
