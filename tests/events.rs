//! `passkey-gateway events`, as the real binary against a live gateway (through its admin
//! socket): a scripted sequence shows in order, the filters work, `--follow` sees a new sign-in.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::passkeys::{enroll, Browser};
use crate::support::{EchoUpstream, TestGateway};

/// Runs `events ARGS... --json` and returns the events it printed.
async fn events(config: &Path, args: &[&str]) -> Vec<Value> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(config)
        .arg("events")
        .args(args)
        .arg("--json")
        .output()
        .await
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "events failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_a_scripted_sequence_in_order_and_filters_it() {
    let upstream = EchoUpstream::start().await;
    let world = TestGateway::app(upstream.addr, "").await;
    let (_, token) = enroll(&world.gw, "alice", &[]).await;
    let mut alice = Browser::new(&world.base());
    assert_eq!(alice.register(Some(&token), "laptop").await.status, 201);
    assert_eq!(alice.login("alice").await.status, 200);
    // A failed sign-in: the answer to one challenge sent to complete another ceremony.
    let (_, signed) = alice.begin_login(Some("alice")).await;
    let (other, _) = alice.begin_login(Some("alice")).await;
    let credential = alice.assert(signed);
    let refused = alice.complete_login(&other, &credential, "/").await;
    assert!(refused.status.is_client_error());
    enroll(&world.gw, "bob", &[]).await;
    let rotated = std::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(&world.config_path)
        .args(["keys", "rotate"])
        .output()
        .expect("keys rotate");
    assert!(rotated.status.success());

    let all = events(&world.config_path, &[]).await;
    assert_eq!(
        kinds(&all),
        [
            "user_created",
            "enrollment_created",
            "enrollment_spent",
            "passkey_registered",
            "login",
            "session_revoked",
            "login_failed",
            "user_created",
            "enrollment_created",
            "keys_rotated",
        ]
    );
    let ids: Vec<u64> = all.iter().map(|e| e["id"].as_u64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    assert_eq!(all[0]["username"], "alice");

    let logins = events(&world.config_path, &["--kind", "login"]).await;
    assert_eq!(kinds(&logins), ["login"]);
    let bob = events(&world.config_path, &["--user", "bob"]).await;
    assert_eq!(kinds(&bob), ["user_created", "enrollment_created"]);
    assert!(bob.iter().all(|e| e["username"] == "bob"));
    let last_two = events(&world.config_path, &["--limit", "2"]).await;
    assert_eq!(kinds(&last_two), ["enrollment_created", "keys_rotated"]);

    // Two hours later (the gateway's clock), one more sign-in: `--since 1h` shows only it.
    world.gw.clock().advance(Duration::from_secs(2 * 3600));
    assert_eq!(alice.login("alice").await.status, 200);
    let recent = events(&world.config_path, &["--since", "1h"]).await;
    assert_eq!(kinds(&recent), ["login", "session_revoked"]);

    // A bad filter is a clear error, not an empty list.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(&world.config_path)
        .args(["events", "--kind", "nonsense"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown event kind"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_sees_a_new_sign_in() {
    let upstream = EchoUpstream::start().await;
    let world = TestGateway::app(upstream.addr, "").await;
    let (_, token) = enroll(&world.gw, "alice", &[]).await;
    let mut alice = Browser::new(&world.base());
    assert_eq!(alice.register(Some(&token), "laptop").await.status, 201);

    assert_eq!(alice.login("alice").await.status, 200);
    let mut follower = tokio::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(&world.config_path)
        .args(["events", "--follow", "--json", "--kind", "login"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn events --follow");
    let mut lines = BufReader::new(follower.stdout.take().expect("stdout")).lines();
    // The sign-in from before it started: printed once the follower has read the log.
    let before = next_event(&mut lines).await;
    assert_eq!(before["kind"], "login");

    // A sign-in after: the follower prints it, and only it.
    assert_eq!(alice.login("alice").await.status, 200);
    let after = next_event(&mut lines).await;
    assert_eq!(after["kind"], "login");
    assert_eq!(after["username"], "alice");
    assert!(after["id"].as_u64() > before["id"].as_u64());
    follower.kill().await.expect("stop the follower");
}

/// The next line the follower prints, as JSON, within a deadline.
async fn next_event(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a line within the deadline")
        .expect("read")
        .expect("a line, not the end");
    serde_json::from_str(&line).expect("json")
}
