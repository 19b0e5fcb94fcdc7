//! The admin CLI, as the real binary: offline on the store, and online through the running
//! gateway's socket, where revocations reach the in-memory session cache at once.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use passkey_gateway::gateway::{unix_now, STORE_FILE};
use passkey_gateway::store::{hash_secret, Store};

use crate::support::passkeys::Browser;
use crate::support::{EchoUpstream, TestGateway};

/// Runs `passkey-gateway --config CONFIG ARGS...`; (success, stdout, stderr).
fn cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn token_of(output: &str) -> String {
    output
        .split("#token=")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("a link with a token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_user_management() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "public_url = \"http://localhost:8080\"\n[server]\ndata_dir = \"{}\"\n[enrollment]\ntoken_ttl = \"2h\"\n[webauthn]\nrp_id = \"localhost\"\n",
            data.display()
        ),
    )
    .expect("config");

    let (ok, out, err) = cli(
        &config,
        &[
            "user",
            "add",
            "Alice",
            "--email",
            "a@example.com",
            "--group",
            "admins",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("enrollment link: http://localhost:8080/passkeys/enroll#token="),
        "{out}"
    );
    assert!(out.contains("expires: "), "{out}");
    let token = token_of(&out);

    let (ok, _, err) = cli(&config, &["user", "add", "alice"]);
    assert!(!ok);
    assert_eq!(err, "error: a user named `alice` already exists");
    let (ok, _, err) = cli(&config, &["user", "add", "no spaces"]);
    assert!(!ok && err.contains("is not a valid username"), "{err}");
    let (ok, _, err) = cli(&config, &["user", "show", "no/slashes"]);
    assert!(
        !ok && err.contains("invalid value 'no/slashes'") && err.contains("not a valid username"),
        "{err}"
    );
    let (ok, _, err) = cli(&config, &["user", "show", "nobody"]);
    assert!(!ok);
    assert_eq!(err, "error: no user named `nobody`");

    let (_, list, _) = cli(&config, &["user", "list"]);
    assert!(
        list.starts_with("alice\t") && list.contains("enabled\tgroups=admins\tpasskeys=0"),
        "{list}"
    );
    let (_, show, _) = cli(&config, &["user", "show", "alice"]);
    assert!(
        show.contains("display_name: Alice") && show.contains("email: a@example.com"),
        "{show}"
    );
    let (ok, out, _) = cli(&config, &["user", "disable", "alice"]);
    assert!(ok && out.starts_with("disabled alice"), "{out}");

    // The store holds only the token's hash, valid for the configured two hours.
    let store = Store::open(data.join(STORE_FILE)).expect("open");
    let enrollment = store
        .enrollment(hash_secret(&token))
        .await
        .expect("read")
        .expect("the token's hash is stored");
    let ttl = enrollment.expires_at - unix_now();
    assert!((7100..=7200).contains(&ttl), "{ttl}");
    let user = store
        .user_by_name("alice")
        .await
        .expect("read")
        .expect("user");
    assert!(user.disabled);
    drop(store);

    let (ok, out, _) = cli(&config, &["user", "remove", "alice"]);
    assert!(ok, "{out}");
    let (_, list, _) = cli(&config, &["user", "list"]);
    assert_eq!(list, "");
    let (ok, out, _) = cli(&config, &["keys", "rotate"]);
    assert!(ok && out.starts_with("new signing key "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_commands_reach_the_running_gateway() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let socket = gw.gw.config().server.data_dir.join("admin.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the admin socket never appeared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // The store file is locked by the running gateway: this can only work through the socket.
    let config = gw.config_path.clone();
    let run = move |args: &'static [&'static str]| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || cli(&config, args))
    };
    let (ok, out, err) = run(&["user", "add", "kim", "--group", "staff"])
        .await
        .expect("cli");
    assert!(ok, "{err}");
    let mut browser = Browser::new(&gw.base());
    assert_eq!(
        browser.register(Some(&token_of(&out)), "K").await.status,
        201
    );
    assert_eq!(browser.get("/app/x").await.status, 200);

    let (_, sessions, _) = run(&["session", "list", "kim"]).await.expect("cli");
    assert_eq!(sessions.lines().count(), 1, "{sessions}");
    assert!(sessions.contains("\tkim\t"));
    // Where it signed in from: the address, and no device label (the test client sends no
    // User-Agent).
    assert!(
        sessions.contains("\tclient=127.0.0.1\tdevice=unknown"),
        "{sessions}"
    );

    let (ok, out, _) = run(&["user", "disable", "kim"]).await.expect("cli");
    assert!(ok && out.contains("1 sessions revoked"), "{out}");
    assert_eq!(
        browser.get("/app/x").await.status,
        401,
        "revoked on the very next request"
    );

    let (ok, _, _) = run(&["user", "enable", "kim"]).await.expect("cli");
    assert!(ok);
    browser.cookie = None;
    assert_eq!(browser.login("kim").await.status, 200);
    let (ok, out, _) = run(&["session", "revoke", "--user", "kim"])
        .await
        .expect("cli");
    assert!(ok && out.contains("revoked 1 sessions"), "{out}");
    assert_eq!(browser.get("/app/x").await.status, 401);

    browser.cookie = None;
    assert_eq!(browser.login("kim").await.status, 200);
    let (_, sessions, _) = run(&["session", "list"]).await.expect("cli");
    let id = sessions.split('\t').next().expect("id").to_string();
    let config = gw.config_path.clone();
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || cli(&config, &["session", "revoke", &id]))
            .await
            .expect("cli");
    assert!(ok, "{out} {err}");
    assert_eq!(browser.get("/app/x").await.status, 401);

    let (_, passkeys, _) = run(&["passkey", "list", "kim"]).await.expect("cli");
    // The soft authenticator's AAGUID is all zeros: no provider to name.
    assert!(
        passkeys.contains("\tprovider=unknown\tstorage=this device only\t"),
        "{passkeys}"
    );
    let passkey_id = passkeys.split('\t').next().expect("id").to_string();
    browser.cookie = None;
    assert_eq!(browser.login("kim").await.status, 200);
    let config = gw.config_path.clone();
    let (ok, out, _) =
        tokio::task::spawn_blocking(move || cli(&config, &["passkey", "revoke", &passkey_id]))
            .await
            .expect("cli");
    assert!(ok && out.contains("1 sessions revoked"), "{out}");
    assert_eq!(
        browser.get("/app/x").await.status,
        401,
        "the passkey's session died with it"
    );

    let old_kid = gw.gw.signer().kid();
    let (ok, out, _) = run(&["keys", "rotate"]).await.expect("cli");
    assert!(ok, "{out}");
    assert_ne!(gw.gw.signer().kid(), old_kid, "the live signer switched");
    let jwks = gw.gw.jwks().to_string();
    assert!(jwks.contains(&old_kid), "the old key stays published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_means_offline_and_a_silent_lock_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.toml");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data");
    std::fs::write(
        &config,
        format!("public_url = \"http://localhost:8080\"\n[server]\ndata_dir = \"{}\"\n[webauthn]\nrp_id = \"localhost\"\n", data.display()),
    )
    .expect("config");
    // A socket file left by a killed gateway: nobody accepts on it.
    let stale = std::os::unix::net::UnixListener::bind(data.join("admin.sock")).expect("bind");
    drop(stale);
    let (ok, out, err) = cli(&config, &["user", "add", "lee"]);
    assert!(ok, "works offline despite the stale socket: {err}");
    assert!(out.contains("created user lee"));

    // The store is locked by another process but no socket answers: say so.
    std::fs::remove_file(data.join("admin.sock")).expect("rm");
    let store = Store::open(data.join(STORE_FILE)).expect("open");
    let config_for_cli = config.clone();
    let (ok, _, err) = tokio::task::spawn_blocking(move || cli(&config_for_cli, &["user", "list"]))
        .await
        .expect("cli");
    assert!(!ok);
    assert!(
        err.contains("in use by a running gateway, but its admin socket"),
        "{err}"
    );
    drop(store);
}
