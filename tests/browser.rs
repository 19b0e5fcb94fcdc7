//! The real pages in a real browser: Debian's Chromium, headless, driven over the DevTools
//! protocol (chromiumoxide) with CDP virtual authenticators, clicking through the login,
//! enrollment and account pages of an in-process gateway in front of the demo's whoami app,
//! which verifies every assertion against the gateway's JWKS; and the real `demo` command, as a
//! newcomer first meets it. The browser plumbing is in `browser/chromium.rs`.
//!
//! Every wait polls the page with a deadline. Chromium missing is a failure, not a skip: CI
//! installs it (`.ci/run`). Screenshots land in `target/screenshots/`.

use std::time::Instant;

use chromiumoxide::cdp::browser_protocol::web_authn::AuthenticatorTransport;
use passkey_gateway::demo::{self, Trust};
use passkey_gateway::gateway::unix_now;
use passkey_gateway::store::hash_secret;
use serde_json::Value;
use tokio::net::TcpListener;

mod account_page;
mod chromium;

use chromium::{js, Chromium, WAIT};

use crate::support::config;
use crate::support::passkeys::enroll;
use crate::support::TestGateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkeys_in_a_real_browser() {
    let started = Instant::now();
    let app_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
    let app = app_listener.local_addr().expect("app addr");
    // The demo's own route: `/` to the whoami app, signed-in users only.
    let gw = TestGateway::start(&config(
        "",
        &format!(
            r#"
        [[route]]
        name = "{audience}"
        path = "/"
        upstream = "http://{app}"
        access = "authenticated"
        "#,
            audience = demo::DEMO_AUDIENCE,
        ),
    ))
    .await;
    tokio::spawn(demo::serve(
        app_listener,
        Trust {
            gateway: gw.addr,
            issuer: gw.base(),
            audience: demo::DEMO_AUDIENCE.to_string(),
        },
    ));
    let chromium = Chromium::launch().await;
    let alice_tab = chromium.tab(&gw.base(), None).await;
    let laptop = alice_tab
        .add_authenticator(AuthenticatorTransport::Internal)
        .await;

    // 1. Enrollment link → name the passkey → Create → the app, with a verified identity.
    step("1", started);
    let (alice, token) = enroll(&gw.gw, "alice", &[]).await;
    alice_tab
        .open(
            &format!("/passkeys/enroll#token={token}"),
            "/passkeys/enroll",
        )
        .await;
    alice_tab
        .wait_until("the token leaves the address bar", "location.hash === ''")
        .await;
    alice_tab.type_into("#passkey-name", "Laptop").await;
    alice_tab.screenshot("enroll").await;
    alice_tab.click("#create").await;
    alice_tab.wait_for_path("/").await;
    let verdict = alice_tab
        .wait_text("#verdict", "Assertion verified ✓")
        .await;
    assert!(verdict.contains(&gw.base()), "{verdict}");
    assert_eq!(alice_tab.text("#greeting").await, "Hello, alice (display)");
    let seen: Value = alice_tab.fetch_json("/whoami.json").await;
    assert_eq!(seen["assertion"]["verified"], true, "{seen:#}");
    assert_eq!(seen["assertion"]["claims"]["sub"], alice.id.to_string());
    assert_eq!(seen["assertion"]["claims"]["preferred_username"], "alice");
    assert_eq!(seen["assertion"]["claims"]["aud"], demo::DEMO_AUDIENCE);
    assert_eq!(seen["headers"]["x-passkey-user"], "alice");
    alice_tab.screenshot("app").await;

    // 2. Sign out; a protected page sends us to login; the button (no username) brings us back.
    step("2", started);
    alice_tab.sign_out().await;
    alice_tab
        .open("/reports/2024?sort=desc", "/passkeys/login")
        .await;
    let search: String = alice_tab.eval("location.search").await;
    assert_eq!(search, "?return_to=%2Freports%2F2024%3Fsort%3Ddesc");
    alice_tab.screenshot("login").await;
    alice_tab.click("#signin").await;
    alice_tab.wait_for_path("/reports/2024?sort=desc").await;
    alice_tab
        .wait_text("#verdict", "Assertion verified ✓")
        .await;
    assert_eq!(alice_tab.text("#path").await, "/reports/2024?sort=desc");

    // 3. Sign out, then in again with the username form.
    step("3", started);
    alice_tab.sign_out().await;
    alice_tab.type_into("#username", "alice").await;
    alice_tab.click("#signin-username").await;
    alice_tab.wait_for_path("/").await;
    alice_tab
        .wait_text("#verdict", "Assertion verified ✓")
        .await;

    // 3b. Passkey autofill: with conditional mediation available, the login page's conditional
    // request is answered by the authenticator holding alice's discoverable passkey, and she is
    // signed in to `return_to` without pressing anything.
    step("3b", started);
    alice_tab.sign_out().await;
    alice_tab.set_autofill(true).await;
    let _: Value = alice_tab
        .eval("(() => { location.assign('/passkeys/login?return_to=%2Fautofilled'); return null; })()")
        .await;
    alice_tab.wait_for_path("/autofilled").await;
    alice_tab
        .wait_text("#verdict", "Assertion verified ✓")
        .await;
    let mediation: String = alice_tab
        .eval("sessionStorage.getItem('test-mediation')")
        .await;
    assert_eq!(
        mediation, "conditional",
        "signed in by the autofill request"
    );
    alice_tab.set_autofill(false).await;

    // 4. The account page: rename, add a second passkey on a second authenticator, delete it.
    step("4", started);
    alice_tab
        .open("/passkeys/account", "/passkeys/account")
        .await;
    alice_tab.wait_text("#who", "alice").await;
    alice_tab.wait_count("#passkeys > li[data-id]", 1).await;
    let first = "#passkeys > li[data-id]:first-child";
    alice_tab.click(&format!("{first} .rename")).await;
    alice_tab
        .clear(&format!("{first} input.rename-input"))
        .await;
    alice_tab
        .type_into(&format!("{first} input.rename-input"), "Work laptop")
        .await;
    alice_tab
        .click(&format!("{first} button.rename-save"))
        .await;
    alice_tab.wait_text("#status", "Renamed to").await;
    alice_tab
        .wait_text(&format!("{first} .name"), "Work laptop")
        .await;

    // The laptop already holds a passkey the server excludes; as a person would, only the new
    // device (a security key) is touched.
    alice_tab
        .add_authenticator(AuthenticatorTransport::Usb)
        .await;
    alice_tab.set_presence(&laptop, false).await;
    alice_tab.type_into("#add-name", "Security key").await;
    alice_tab.click("#add").await;
    alice_tab.wait_text("#status", "Added “Security key”").await;
    alice_tab.wait_count("#passkeys > li[data-id]", 2).await;
    let names: Vec<String> = alice_tab
        .eval("[...document.querySelectorAll('#passkeys .name')].map(e => e.textContent)")
        .await;
    assert_eq!(names, ["Security key", "Work laptop"], "newest first");
    let key_item = r#"#passkeys > li[data-name="Security key"]"#;
    alice_tab.click(&format!("{key_item} .delete")).await;
    alice_tab
        .wait_until(
            "the delete confirmation",
            &format!(
                "!document.querySelector({}).hidden",
                js(&format!("{key_item} .confirm"))
            ),
        )
        .await;
    alice_tab.screenshot("account").await;
    alice_tab
        .click(&format!("{key_item} .confirm-delete"))
        .await;
    alice_tab
        .wait_text("#status", "Deleted “Security key”")
        .await;
    alice_tab.wait_count("#passkeys > li[data-id]", 1).await;
    assert_eq!(
        alice_tab.text(&format!("{first} .name")).await,
        "Work laptop"
    );
    alice_tab
        .wait_until(
            "the last passkey to be undeletable",
            "document.querySelector('#passkeys .delete').disabled",
        )
        .await;
    alice_tab.set_presence(&laptop, true).await;

    // 5. A second person in a separate browser context sees only their own identity and passkeys.
    step("5", started);
    let context = chromium.new_context().await;
    let bob_tab = chromium.tab(&gw.base(), Some(context)).await;
    bob_tab
        .add_authenticator(AuthenticatorTransport::Internal)
        .await;
    bob_tab.open("/", "/passkeys/login").await;
    let (bob, bob_token) = enroll(&gw.gw, "bob", &[]).await;
    bob_tab
        .open(
            &format!("/passkeys/enroll#token={bob_token}"),
            "/passkeys/enroll",
        )
        .await;
    bob_tab.type_into("#passkey-name", "Bob key").await;
    bob_tab.click("#create").await;
    bob_tab.wait_for_path("/").await;
    bob_tab.wait_text("#verdict", "Assertion verified ✓").await;
    assert_eq!(bob_tab.text("#greeting").await, "Hello, bob (display)");
    let seen: Value = bob_tab.fetch_json("/whoami.json").await;
    assert_eq!(seen["assertion"]["claims"]["sub"], bob.id.to_string());
    bob_tab.open("/passkeys/account", "/passkeys/account").await;
    bob_tab.wait_text("#who", "bob").await;
    bob_tab.wait_count("#passkeys > li[data-id]", 1).await;
    let bob_page: String = bob_tab.eval("document.body.innerText").await;
    assert!(
        !bob_page.contains("alice") && !bob_page.contains("Work laptop"),
        "{bob_page}"
    );
    let bob_passkeys: Value = bob_tab.fetch_json("/passkeys/credentials").await;
    assert_eq!(
        bob_passkeys.as_array().map(Vec::len),
        Some(1),
        "{bob_passkeys}"
    );
    assert_eq!(bob_passkeys[0]["name"], "Bob key");
    // ...and the first context is still alice.
    alice_tab.open("/", "/").await;
    assert_eq!(alice_tab.text("#greeting").await, "Hello, alice (display)");

    // 6. A spent link and an expired link both say so in #status.
    step("6", started);
    let spent_message = "This enrollment link has expired or was already used";
    bob_tab
        .open(
            &format!("/passkeys/enroll#token={token}"),
            "/passkeys/enroll",
        )
        .await;
    bob_tab.click("#create").await;
    bob_tab.wait_text("#status", spent_message).await;
    let expired = passkey_gateway::session::new_session_value();
    gw.gw
        .store()
        .create_enrollment(bob.id, hash_secret(&expired), unix_now() - 1)
        .await
        .expect("an expired enrollment");
    // Opened in the same tab, the new link differs only in its fragment (enroll.js already took
    // the old one out of the address bar): the page must notice and read the new token, or
    // #create would stay disabled from the spent one.
    bob_tab
        .open(
            &format!("/passkeys/enroll#token={expired}"),
            "/passkeys/enroll",
        )
        .await;
    bob_tab.click("#create").await;
    bob_tab.wait_text("#status", spent_message).await;
    bob_tab
        .wait_until(
            "the form is disabled",
            "document.querySelector('#create').disabled",
        )
        .await;
    bob_tab.screenshot("enroll-expired").await;

    chromium.close().await;
    eprintln!("browser test took {:.1?}", started.elapsed());
}

/// A newcomer's first run: the real `demo` command prints a link; the browser follows it, creates
/// a passkey and lands on the whoami page with a verified assertion. Run again on the same data,
/// the demo offers a new link and the way to sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_command_in_a_real_browser() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("demo-data");
    let port = free_port();
    let mut demo = DemoProcess::start(port, &data_dir).await;
    let printed = demo.wait_until_ready(port).await;
    let origin = format!("http://localhost:{port}");
    assert!(
        printed.contains("Open this link to register a passkey for user \"demo\":"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("Then visit {origin}/")),
        "{printed}"
    );
    assert!(!printed.contains("or sign in"), "{printed}");
    let link = printed
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{origin}/passkeys/enroll#token=")))
        .unwrap_or_else(|| panic!("no enrollment link in {printed}"))
        .to_string();

    let chromium = Chromium::launch().await;
    let tab = chromium.tab(&origin, None).await;
    tab.add_authenticator(AuthenticatorTransport::Internal)
        .await;
    tab.open(&link[origin.len()..], "/passkeys/enroll").await;
    tab.type_into("#passkey-name", "Demo laptop").await;
    tab.click("#create").await;
    tab.wait_for_path("/").await;
    let verdict = tab.wait_text("#verdict", "Assertion verified ✓").await;
    assert!(
        verdict.contains(&format!("{origin}/passkeys/jwks.json")),
        "{verdict}"
    );
    assert_eq!(tab.text("#greeting").await, "Hello, Demo User");

    // Again on the same data: a new link, and a pointer to the login page.
    demo.stop().await;
    let mut demo = DemoProcess::start(port, &data_dir).await;
    let printed = demo.wait_until_ready(port).await;
    assert!(
        printed.contains(&format!("or sign in at {origin}/passkeys/login")),
        "{printed}"
    );
    assert!(!printed.contains(&link), "a new link each time: {printed}");
    tab.sign_out().await;
    tab.click("#signin").await;
    tab.wait_for_path("/").await;
    tab.wait_text("#verdict", "Assertion verified ✓").await;
    demo.stop().await;
    chromium.close().await;
}

/// A port nobody listens on right now (the demo's origin must name a real port).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `passkey-gateway demo` as a child process; killed when dropped.
struct DemoProcess {
    child: tokio::process::Child,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl DemoProcess {
    async fn start(port: u16, data_dir: &std::path::Path) -> DemoProcess {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
            .args(["demo", "--port", &port.to_string(), "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the demo");
        let stdout = child.stdout.take().expect("stdout");
        DemoProcess {
            child,
            stdout: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)),
        }
    }

    /// Everything the demo printed up to its last line ("... Ctrl-C stops the demo.").
    /// The demo's banner, once the gateway also accepts connections on `port` (the banner is
    /// printed just before pingora's listeners start).
    async fn wait_until_ready(&mut self, port: u16) -> String {
        let printed = self.wait_for_banner().await;
        let deadline = std::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the demo never listened on {port}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        printed
    }

    async fn wait_for_banner(&mut self) -> String {
        let mut printed = String::new();
        let read = async {
            while let Ok(Some(line)) = self.stdout.next_line().await {
                printed.push_str(&line);
                printed.push('\n');
                if line.contains("Ctrl-C stops the demo") {
                    return true;
                }
            }
            false
        };
        let done = tokio::time::timeout(WAIT, read).await;
        if done != Ok(true) {
            let status = self.child.try_wait().ok().flatten();
            panic!(
                "the demo did not finish its banner (exit status: {status:?}, its stderr is above); \
                 it printed only: {printed:?}"
            );
        }
        printed
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Progress on stderr (shown with `--nocapture`, and in the output of a failed test).
fn step(n: &str, started: Instant) {
    eprintln!("browser test: step {n} at {:.1?}", started.elapsed());
}
