//! The real pages in a real browser: Debian's Chromium, headless, driven over the DevTools
//! protocol (chromiumoxide) with CDP virtual authenticators, clicking through the login,
//! enrollment and account pages of an in-process gateway in front of the demo's whoami app,
//! which verifies every assertion against the gateway's JWKS.
//!
//! Every wait polls the page with a deadline. Chromium missing is a failure, not a skip: CI
//! installs it (`.ci/run`). Screenshots land in `target/screenshots/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser as Chrome, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::cdp::browser_protocol::web_authn::{
    AddVirtualAuthenticatorParams, AuthenticatorId, AuthenticatorProtocol, AuthenticatorTransport,
    EnableParams, SetAutomaticPresenceSimulationParams, VirtualAuthenticatorOptions,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use passkey_gateway::demo::{self, Trust};
use passkey_gateway::gateway::unix_now;
use passkey_gateway::store::hash_secret;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::support::passkeys::enroll;
use crate::support::TestGateway;

/// How long any one thing may take to appear in the browser.
const WAIT: Duration = Duration::from_secs(20);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkeys_in_a_real_browser() {
    let started = Instant::now();
    let app_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
    let app = app_listener.local_addr().expect("app addr");
    // The demo's own route: `/` to the whoami app, signed-in users only.
    let gw = TestGateway::start(&format!(
        r#"
        public_url = "http://localhost:{{port}}"
        [server]
        data_dir = "{{data_dir}}"
        [webauthn]
        rp_id = "localhost"
        [[route]]
        name = "{audience}"
        path = "/"
        upstream = "http://{app}"
        access = "authenticated"
        "#,
        audience = demo::DEMO_AUDIENCE,
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
        .store
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
    let printed = demo.wait_for_banner().await;
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
    let printed = demo.wait_for_banner().await;
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

// ---------------------------------------------------------------------------------------------
// Chromium over the DevTools protocol

/// One headless Chromium with a fresh profile.
struct Chromium {
    browser: Chrome,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn launch() -> Chromium {
        let executable = std::env::var_os("CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        assert!(
            executable.exists(),
            "Chromium not found at {}: this test drives a real browser and does not skip. \
             Install Debian's package (`apt-get install -y chromium`; `.ci/run` does it), or set \
             CHROMIUM to a Chrome/Chromium binary.",
            executable.display()
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable(&executable)
            .user_data_dir(profile.path())
            .disable_default_args()
            .no_sandbox()
            .args([
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                // Containers often have a tiny /dev/shm; Chromium's renderer crashes on it.
                "--disable-dev-shm-usage",
            ])
            .window_size(1000, 1000)
            .viewport(None)
            .launch_timeout(Duration::from_secs(30))
            .build()
            .expect("browser config");
        let (browser, mut events) = Chrome::launch(config)
            .await
            .unwrap_or_else(|e| panic!("cannot launch {}: {e}", executable.display()));
        // The CDP connection makes progress only while its handler is polled.
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Chromium {
            browser,
            handler,
            _profile: profile,
        }
    }

    /// A fresh browser context: its own cookies and storage, like a separate profile.
    async fn new_context(&self) -> BrowserContextId {
        self.browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .expect("browser context")
    }

    /// A new tab on `base`, in `context` (or the default one).
    async fn tab(&self, base: &str, context: Option<BrowserContextId>) -> Tab {
        let mut params = CreateTargetParams::new("about:blank");
        params.browser_context_id = context;
        let page = self.browser.new_page(params).await.expect("new tab");
        // Chrome's virtual authenticator answers a conditional (autofill) request by itself, which
        // would sign in before any button is pressed: report autofill as unavailable, so that the
        // buttons are what the test exercises.
        page.evaluate_on_new_document(AddScriptToEvaluateOnNewDocumentParams::new(
            "if (window.PublicKeyCredential) { \
               PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false); }",
        ))
        .await
        .expect("init script");
        page.execute(EnableParams::default())
            .await
            .expect("WebAuthn.enable");
        Tab {
            page,
            base: base.to_string(),
        }
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = tokio::time::timeout(WAIT, self.browser.wait()).await;
        self.handler.abort();
    }
}

/// One tab, and what the test does in it.
struct Tab {
    page: Page,
    base: String,
}

/// A value as a JavaScript literal (a selector or text inside an expression).
fn js(text: &str) -> String {
    serde_json::to_string(text).expect("a string is JSON")
}

impl Tab {
    /// An authenticator (ctap2, resident keys, user verified, always present) on `transport`:
    /// `Internal` is the platform's own (Chrome allows one per tab), `Usb` a security key.
    async fn add_authenticator(&self, transport: AuthenticatorTransport) -> AuthenticatorId {
        let options = VirtualAuthenticatorOptions::builder()
            .protocol(AuthenticatorProtocol::Ctap2)
            .transport(transport)
            .has_resident_key(true)
            .has_user_verification(true)
            .is_user_verified(true)
            .automatic_presence_simulation(true)
            .build()
            .expect("authenticator options");
        self.page
            .execute(AddVirtualAuthenticatorParams::new(options))
            .await
            .expect("WebAuthn.addVirtualAuthenticator")
            .result
            .authenticator_id
    }

    /// Whether touching `authenticator` happens by itself.
    async fn set_presence(&self, authenticator: &AuthenticatorId, present: bool) {
        self.page
            .execute(SetAutomaticPresenceSimulationParams::new(
                authenticator.clone(),
                present,
            ))
            .await
            .expect("WebAuthn.setAutomaticPresenceSimulation");
    }

    /// Navigates to `path` and waits until the page that ends up loaded is `expect_path`.
    async fn open(&self, path: &str, expect_path: &str) {
        self.page
            .goto(format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("navigate to {path}: {e}"));
        self.wait_for_path(expect_path).await;
    }

    /// Waits until the loaded page's path (with the query when `path` has one) is `path`.
    async fn wait_for_path(&self, path: &str) {
        let here = if path.contains('?') {
            "location.pathname + location.search"
        } else {
            "location.pathname"
        };
        self.wait_until(
            &format!("the page {path}"),
            &format!(
                "{here} === {} && document.readyState === 'complete'",
                js(path)
            ),
        )
        .await;
    }

    /// Polls the JavaScript expression `ready` until it is truthy.
    async fn wait_until(&self, what: &str, ready: &str) {
        let _: Value = self.wait_for(what, &format!("(({ready}) || null)")).await;
    }

    /// Polls `expression` until it evaluates to something other than `null`/`undefined`
    /// (evaluation errors, e.g. during a navigation, count as not yet).
    async fn wait_for<T: DeserializeOwned>(&self, what: &str, expression: &str) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = self.try_eval(expression).await {
                if !value.is_null() {
                    return serde_json::from_value(value.clone())
                        .unwrap_or_else(|e| panic!("{what}: unexpected {value}: {e}"));
                }
            }
            if Instant::now() >= deadline {
                self.fail(what).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Gives up on `what`, with the page's state and a screenshot to look at.
    async fn fail(&self, what: &str) -> ! {
        let state = self
            .try_eval(
                "({url: location.href, status: document.querySelector('#status')?.textContent, \
                   body: document.body?.innerText?.slice(0, 600)})",
            )
            .await;
        let shot = screenshot_dir().join("failure.png");
        let _ = self
            .page
            .save_screenshot(ScreenshotParams::builder().full_page(true).build(), &shot)
            .await;
        panic!(
            "timed out after {WAIT:?} waiting for {what}; the page: {state:#?} (screenshot: {})",
            shot.display()
        );
    }

    async fn try_eval(&self, expression: &str) -> Option<Value> {
        let params = EvaluateParams::builder()
            .expression(expression)
            .await_promise(true)
            .return_by_value(true)
            .build()
            .ok()?;
        let result = tokio::time::timeout(WAIT, self.page.evaluate_expression(params))
            .await
            .ok()?
            .ok()?;
        Some(result.value().cloned().unwrap_or(Value::Null))
    }

    /// Evaluates `expression` once and reads its value.
    async fn eval<T: DeserializeOwned>(&self, expression: &str) -> T {
        let value = self
            .try_eval(expression)
            .await
            .unwrap_or_else(|| panic!("cannot evaluate {expression}"));
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{expression} gave {value}: {e}"))
    }

    /// GETs `path` from inside the page (same origin, with its cookies) and parses the JSON.
    async fn fetch_json<T: DeserializeOwned>(&self, path: &str) -> T {
        self.eval(&format!(
            "fetch({}, {{headers: {{accept: 'application/json'}}}}).then(r => r.json())",
            js(path)
        ))
        .await
    }

    /// The trimmed text of the element `selector` (which must exist).
    async fn text(&self, selector: &str) -> String {
        self.wait_for(
            &format!("{selector} to exist"),
            &format!(
                "document.querySelector({})?.textContent.trim()",
                js(selector)
            ),
        )
        .await
    }

    /// Waits until the element `selector` contains `needle`; returns its whole text.
    async fn wait_text(&self, selector: &str, needle: &str) -> String {
        self.wait_for(
            &format!("{selector} to say {needle:?}"),
            &format!(
                "(() => {{ const t = document.querySelector({})?.textContent.trim(); \
                    return t && t.includes({}) ? t : null; }})()",
                js(selector),
                js(needle)
            ),
        )
        .await
    }

    /// Waits until exactly `n` elements match `selector`.
    async fn wait_count(&self, selector: &str, n: usize) {
        self.wait_until(
            &format!("{n} × {selector}"),
            &format!("document.querySelectorAll({}).length === {n}", js(selector)),
        )
        .await;
    }

    /// Waits until `selector` is visible and enabled, then clicks its centre with the mouse.
    async fn click(&self, selector: &str) {
        self.wait_until(
            &format!("{selector} to be clickable"),
            &format!(
                "(() => {{ const e = document.querySelector({}); \
                    return e && !e.disabled && e.checkVisibility(); }})()",
                js(selector)
            ),
        )
        .await;
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("find {selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Clicks into `selector` and types `text` key by key.
    async fn type_into(&self, selector: &str, text: &str) {
        self.click(selector).await;
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("find {selector}: {e}"))
            .type_str(text)
            .await
            .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    /// Empties the input `selector`.
    async fn clear(&self, selector: &str) {
        let _: Value = self
            .eval(&format!(
                "(() => {{ document.querySelector({}).value = ''; return null; }})()",
                js(selector)
            ))
            .await;
    }

    /// Signs out from the account page; ends on the login page.
    async fn sign_out(&self) {
        self.open("/passkeys/account", "/passkeys/account").await;
        self.wait_text("#who", "Signed in as").await;
        self.click("#signout").await;
        self.wait_for_path("/passkeys/login").await;
    }

    /// Saves a full-page screenshot as `target/screenshots/{name}.png`.
    async fn screenshot(&self, name: &str) {
        let path = screenshot_dir().join(format!("{name}.png"));
        self.page
            .save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
            .await
            .unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    }
}

/// `$CARGO_TARGET_DIR/screenshots`, or `target/screenshots` in the package.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}
