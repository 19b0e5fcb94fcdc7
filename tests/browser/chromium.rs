//! Headless Chromium over the DevTools protocol (chromiumoxide), and what a test does in one tab:
//! open a page, wait for a selector, text, count or path (every wait polls with a deadline and
//! fails with the page's state and a screenshot), click, type, evaluate, fetch, screenshot.
//! Virtual WebAuthn authenticators are added per tab through CDP. Nothing here knows the
//! gateway's pages beyond the sign-out path.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser as Chrome, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::emulation::{
    MediaFeature, SetDeviceMetricsOverrideParams, SetEmulatedMediaParams,
};
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
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long any one thing may take to appear in the browser.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// One headless Chromium with a fresh profile.
pub struct Chromium {
    browser: Chrome,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub async fn launch() -> Chromium {
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
    pub async fn new_context(&self) -> BrowserContextId {
        self.browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .expect("browser context")
    }

    /// A new tab on `base`, in `context` (or the default one).
    pub async fn tab(&self, base: &str, context: Option<BrowserContextId>) -> Tab {
        let mut params = CreateTargetParams::new("about:blank");
        params.browser_context_id = context;
        let page = self.browser.new_page(params).await.expect("new tab");
        // Chrome's virtual authenticator answers a conditional (autofill) request by itself, which
        // would sign in before any button is pressed: report autofill as unavailable, so that the
        // buttons are what the test exercises, unless the tab turned autofill on for its origin
        // (`Tab::set_autofill`); then each `navigator.credentials.get` records its mediation.
        page.evaluate_on_new_document(AddScriptToEvaluateOnNewDocumentParams::new(
            "(() => { if (!window.PublicKeyCredential) return; \
               let autofill = false; \
               try { autofill = sessionStorage.getItem('test-autofill') === 'on'; } catch (e) {} \
               if (!autofill) { \
                 PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false); \
                 return; } \
               const get = navigator.credentials.get.bind(navigator.credentials); \
               navigator.credentials.get = (options) => { \
                 sessionStorage.setItem('test-mediation', String(options && options.mediation)); \
                 return get(options); }; })()",
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

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = tokio::time::timeout(WAIT, self.browser.wait()).await;
        self.handler.abort();
    }
}

/// One tab, and what the test does in it.
pub struct Tab {
    page: Page,
    base: String,
}

/// A value as a JavaScript literal (a selector or text inside an expression).
pub fn js(text: &str) -> String {
    serde_json::to_string(text).expect("a string is JSON")
}

impl Tab {
    /// An authenticator (ctap2, resident keys, user verified, always present) on `transport`:
    /// `Internal` is the platform's own (Chrome allows one per tab), `Usb` a security key.
    pub async fn add_authenticator(&self, transport: AuthenticatorTransport) -> AuthenticatorId {
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
    pub async fn set_presence(&self, authenticator: &AuthenticatorId, present: bool) {
        self.page
            .execute(SetAutomaticPresenceSimulationParams::new(
                authenticator.clone(),
                present,
            ))
            .await
            .expect("WebAuthn.setAutomaticPresenceSimulation");
    }

    /// Navigates to `path` and waits until the page that ends up loaded is `expect_path`.
    pub async fn open(&self, path: &str, expect_path: &str) {
        self.page
            .goto(format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("navigate to {path}: {e}"));
        self.wait_for_path(expect_path).await;
    }

    /// Waits until the loaded page's path (with the query when `path` has one) is `path`.
    pub async fn wait_for_path(&self, path: &str) {
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
    pub async fn wait_until(&self, what: &str, ready: &str) {
        let _: Value = self.wait_for(what, &format!("(({ready}) || null)")).await;
    }

    /// Polls `expression` until it evaluates to something other than `null`/`undefined`
    /// (evaluation errors, e.g. during a navigation, count as not yet).
    pub async fn wait_for<T: DeserializeOwned>(&self, what: &str, expression: &str) -> T {
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
    pub async fn eval<T: DeserializeOwned>(&self, expression: &str) -> T {
        let value = self
            .try_eval(expression)
            .await
            .unwrap_or_else(|| panic!("cannot evaluate {expression}"));
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{expression} gave {value}: {e}"))
    }

    /// GETs `path` from inside the page (same origin, with its cookies) and parses the JSON.
    pub async fn fetch_json<T: DeserializeOwned>(&self, path: &str) -> T {
        self.eval(&format!(
            "fetch({}, {{headers: {{accept: 'application/json'}}}}).then(r => r.json())",
            js(path)
        ))
        .await
    }

    /// The trimmed text of the element `selector` (which must exist).
    pub async fn text(&self, selector: &str) -> String {
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
    pub async fn wait_text(&self, selector: &str, needle: &str) -> String {
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
    pub async fn wait_count(&self, selector: &str, n: usize) {
        self.wait_until(
            &format!("{n} × {selector}"),
            &format!("document.querySelectorAll({}).length === {n}", js(selector)),
        )
        .await;
    }

    /// Waits until `selector` is visible and enabled, then clicks its centre with the mouse.
    pub async fn click(&self, selector: &str) {
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
    pub async fn type_into(&self, selector: &str, text: &str) {
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
    pub async fn clear(&self, selector: &str) {
        let _: Value = self
            .eval(&format!(
                "(() => {{ document.querySelector({}).value = ''; return null; }})()",
                js(selector)
            ))
            .await;
    }

    /// Signs out from the account page; ends on the login page.
    /// Turns passkey autofill (conditional mediation) on or off for this tab's origin, from the
    /// next page load on.
    pub async fn set_autofill(&self, on: bool) {
        let _: Value = self
            .eval(if on {
                "(() => { sessionStorage.setItem('test-autofill', 'on'); return null; })()"
            } else {
                "(() => { sessionStorage.removeItem('test-autofill'); return null; })()"
            })
            .await;
    }

    pub async fn sign_out(&self) {
        self.open("/passkeys/account", "/passkeys/account").await;
        self.wait_text("#who", "Signed in as").await;
        self.click("#signout").await;
        self.wait_for_path("/passkeys/login").await;
    }

    /// Adds a script every later document in this tab runs before its own (a test hook).
    pub async fn init_script(&self, source: &str) {
        self.page
            .evaluate_on_new_document(AddScriptToEvaluateOnNewDocumentParams::new(source))
            .await
            .expect("init script");
    }

    /// The `name=value` pair of this tab's cookie `name` (HttpOnly ones too), if it has one.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.page.get_cookies().await.expect("Network.getCookies");
        cookies
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| format!("{}={}", c.name, c.value))
    }

    /// Presses `key` (e.g. "Enter") on the keyboard, with focus wherever the page put it.
    pub async fn press(&self, key: &str) {
        self.page
            .find_element(":focus")
            .await
            .unwrap_or_else(|e| panic!("nothing has focus: {e}"))
            .press_key(key)
            .await
            .unwrap_or_else(|e| panic!("press {key}: {e}"));
    }

    /// Whether the page sees `prefers-color-scheme: dark`.
    pub async fn set_dark(&self, dark: bool) {
        let feature =
            MediaFeature::new("prefers-color-scheme", if dark { "dark" } else { "light" });
        self.page
            .execute(
                SetEmulatedMediaParams::builder()
                    .features(vec![feature])
                    .build(),
            )
            .await
            .expect("Emulation.setEmulatedMedia");
    }

    /// Lays the page out `width` CSS pixels wide (360: a phone), as a mobile browser would.
    pub async fn set_width(&self, width: i64) {
        let mobile = width < 600;
        self.page
            .execute(SetDeviceMetricsOverrideParams::new(width, 900, 1.0, mobile))
            .await
            .expect("Emulation.setDeviceMetricsOverride");
    }

    /// Saves a full-page screenshot as `target/screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) {
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
