//! The account page's self-service in a real browser: one person in two browser contexts (a
//! laptop and a phone), the add-a-device link and its QR code, "Where you're signed in" with
//! "This device", the inline re-authentication that credential changes ask for, provider
//! names, the WebAuthn Signal API calls, and an accessibility check (axe-core) of every state,
//! with screenshots at desktop and phone widths.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::web_authn::AuthenticatorTransport;
use serde_json::Value;

use super::chromium::{js, Chromium, Tab};
use crate::support::aaguid::with_aaguid;
use crate::support::passkeys::{enroll, Browser};
use crate::support::qr::decode_png;
use crate::support::{EchoUpstream, TestGateway};

/// Google Password Manager's AAGUID in `reference/aaguid-names.json`.
const GOOGLE: &str = "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4";

/// Past the default `[session] reauth_window` (5 minutes).
const PAST_WINDOW: Duration = Duration::from_secs(5 * 60 + 1);

/// Records each Signal API call in `sessionStorage` when the tab asked for it
/// (`test-signal` = `record`), or removes the functions (`absent`), as in browsers before
/// Chromium 132.
const SIGNAL_HOOK: &str = "(() => { if (!window.PublicKeyCredential) return; \
    let mode = null; try { mode = sessionStorage.getItem('test-signal'); } catch (e) {} \
    const names = ['signalUnknownCredential', 'signalAllAcceptedCredentials', \
                   'signalCurrentUserDetails']; \
    for (const name of names) { \
      if (mode === 'absent') { try { delete PublicKeyCredential[name]; } catch (e) {} \
        PublicKeyCredential[name] = undefined; } \
      else if (mode === 'record') { PublicKeyCredential[name] = (options) => { \
        const calls = JSON.parse(sessionStorage.getItem('test-signals') || '[]'); \
        calls.push({ name, options }); \
        sessionStorage.setItem('test-signals', JSON.stringify(calls)); \
        return Promise.resolve(); }; } } })()";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn account_self_service_in_a_real_browser() {
    let started = Instant::now();
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let chromium = Chromium::launch().await;
    let laptop = chromium.tab(&gw.base(), None).await;
    laptop
        .add_authenticator(AuthenticatorTransport::Internal)
        .await;
    laptop.init_script(SIGNAL_HOOK).await;
    laptop.open("/passkeys/login", "/passkeys/login").await;
    set_session_item(&laptop, "test-signal", "record").await;

    // 1. Enrolled on the laptop; the account page shows the passkey's provider and one session.
    step("1", started);
    let (alice, token) = enroll(&gw.gw, "alice", &[]).await;
    laptop
        .open(
            &format!("/passkeys/enroll#token={token}"),
            "/passkeys/enroll",
        )
        .await;
    laptop.type_into("#passkey-name", "Laptop").await;
    laptop.click("#create").await;
    laptop.wait_for_path("/").await;
    laptop.open("/passkeys/account", "/passkeys/account").await;
    laptop.wait_text("#who", "alice").await;
    laptop.wait_count("#passkeys > li[data-id]", 1).await;
    laptop.wait_count("#sessions > li[data-id]", 1).await;
    let listed: Value = laptop.fetch_json("/passkeys/credentials").await;
    let provider = listed[0]["provider"].as_str().unwrap_or("Unknown provider");
    assert_eq!(laptop.text("#passkeys .provider").await, provider);
    assert_eq!(
        laptop.text("#sessions .this-device").await,
        "This device",
        "the one session is this one"
    );
    let credential_id = listed[0]["credential_id"].as_str().expect("id").to_string();
    let signals = wait_signals(&laptop, "signalAllAcceptedCredentials", 1).await;
    let accepted = last_of(&signals, "signalAllAcceptedCredentials");
    assert_eq!(accepted["rpId"], "localhost");
    assert_eq!(
        accepted["allAcceptedCredentialIds"],
        serde_json::json!([credential_id])
    );
    let details = last_of(&signals, "signalCurrentUserDetails");
    assert_eq!(details["name"], "alice");
    assert_eq!(details["displayName"], "alice (display)");
    let handle = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(alice.id.as_bytes())
    };
    assert_eq!(details["userId"], handle.as_str());
    // Two more passkeys on the same account, made by a soft authenticator with the laptop's
    // session: one whose attestation names Google Password Manager's AAGUID, one all zeros.
    let mut soft = Browser::new(&gw.base());
    soft.cookie = laptop.cookie("passkey_session").await;
    let (ceremony, options) = soft.begin_registration(None, "").await;
    let credential = with_aaguid(soft.create(options), GOOGLE);
    let made = soft
        .post(
            "/passkeys/register/complete",
            serde_json::json!({"session_id": ceremony, "credential": credential}),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert_eq!(soft.register(None, "Zeros").await.status, 201);
    laptop.open("/passkeys/account", "/passkeys/account").await;
    laptop.wait_count("#passkeys > li[data-id]", 3).await;
    let google_item = r#"#passkeys > li[data-name="Google Password Manager"]"#;
    assert_eq!(
        laptop.text(&format!("{google_item} .provider")).await,
        "Google Password Manager",
        "named after its provider, and shown"
    );
    assert_eq!(
        laptop
            .text(r#"#passkeys > li[data-name="Zeros"] .provider"#)
            .await,
        "Unknown provider"
    );
    check_accessibility(&laptop, "the account page").await;
    laptop.set_dark(true).await;
    check_accessibility(&laptop, "the account page in dark mode").await;
    laptop.set_dark(false).await;
    shots(&laptop, "account-self-service").await;

    // 2. An add-a-device link: its QR code, read from the screen, is the link.
    step("2", started);
    laptop.click("#make-link").await;
    laptop.wait_text("#status", "Your link is ready").await;
    let url: String = laptop
        .wait_for(
            "the link",
            "document.querySelector('#link-url').value || null",
        )
        .await;
    assert!(
        url.starts_with(&format!("{}/passkeys/enroll#token=", gw.base())),
        "{url}"
    );
    laptop
        .wait_until(
            "the QR code to load",
            "document.querySelector('#link-qr img')?.complete",
        )
        .await;
    check_accessibility(&laptop, "the add-a-device link").await;
    shots(&laptop, "account-link").await;
    // The image as Chromium rendered it, drawn onto a canvas and read back as a PNG.
    let data_url: String = laptop
        .eval(
            "(() => { const img = document.querySelector('#link-qr img'); \
               const canvas = document.createElement('canvas'); \
               canvas.width = img.naturalWidth; canvas.height = img.naturalHeight; \
               canvas.getContext('2d').drawImage(img, 0, 0); \
               return canvas.toDataURL('image/png'); })()",
        )
        .await;
    let png = {
        use base64::Engine;
        let b64 = data_url.trim_start_matches("data:image/png;base64,");
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64 png")
    };
    assert_eq!(decode_png(&png), url, "the QR code encodes the link");

    // 3. The phone (another browser context, its own authenticator) enrolls with it.
    step("3", started);
    let phone_context = chromium.new_context().await;
    let phone = chromium.tab(&gw.base(), Some(phone_context)).await;
    phone
        .add_authenticator(AuthenticatorTransport::Internal)
        .await;
    let path = &url[gw.base().len()..];
    phone.open(path, "/passkeys/enroll").await;
    phone.type_into("#passkey-name", "Phone").await;
    phone.click("#create").await;
    phone.wait_for_path("/").await;
    let phone_me: Value = phone.fetch_json("/passkeys/me").await;
    assert_eq!(phone_me["username"], "alice");
    // A second use of the same link is refused.
    phone.open(path, "/passkeys/enroll").await;
    phone.click("#create").await;
    phone
        .wait_text(
            "#status",
            "This enrollment link has expired or was already used",
        )
        .await;

    // 4. Both devices are listed; each page marks its own as "This device".
    step("4", started);
    laptop.open("/passkeys/account", "/passkeys/account").await;
    laptop.wait_count("#sessions > li[data-id]", 2).await;
    let laptop_me: Value = laptop.fetch_json("/passkeys/me").await;
    let mine = laptop_me["session"]["id"]
        .as_str()
        .expect("sid")
        .to_string();
    let current: String = laptop
        .eval("document.querySelector('#sessions li[data-current=\"true\"]').dataset.id")
        .await;
    assert_eq!(current, mine);
    let badge_hidden: bool = laptop
        .eval(&format!(
            "document.querySelector({}).hidden",
            js(&format!("#sessions li[data-id=\"{mine}\"] .this-device"))
        ))
        .await;
    assert!(!badge_hidden, "the badge is on the laptop's own row");
    phone.open("/passkeys/account", "/passkeys/account").await;
    phone.wait_count("#sessions > li[data-id]", 2).await;
    let phone_sid = phone_me["session"]["id"].as_str().expect("sid").to_string();
    let phone_current: String = phone
        .eval("document.querySelector('#sessions li[data-current=\"true\"]').dataset.id")
        .await;
    assert_eq!(phone_current, phone_sid);
    shots(&phone, "account-sessions").await;

    // 5. Past the re-authentication window, signing the phone out asks for the passkey
    //    inline; after it, the same action goes through and the phone is signed out at once.
    step("5", started);
    gw.gw.clock().advance(PAST_WINDOW);
    laptop.open("/passkeys/account", "/passkeys/account").await;
    laptop.wait_count("#sessions > li[data-id]", 2).await;
    let other_row = format!("#sessions li[data-id=\"{phone_sid}\"]");
    laptop.click(&format!("{other_row} button.end")).await;
    laptop
        .wait_until(
            "the re-authentication prompt",
            "!document.querySelector('#reauth').hidden",
        )
        .await;
    laptop.wait_text("#status", "Confirm it’s you").await;
    let phone_still: Value = phone.fetch_json("/passkeys/me").await;
    assert_eq!(
        phone_still["username"], "alice",
        "nothing ended without the passkey"
    );
    check_accessibility(&laptop, "the re-authentication prompt").await;
    shots(&laptop, "account-reauth").await;
    laptop.click("#reauth-go").await;
    laptop.wait_text("#status", "Signed out").await;
    laptop.wait_count("#sessions > li[data-id]", 1).await;
    let gone: Value = phone
        .eval("fetch('/passkeys/me').then(r => r.status)")
        .await;
    assert_eq!(gone, 401, "the phone is signed out on its next request");

    // 6. Deleting a passkey past the window: refused until the inline passkey check, then
    //    deleted, and the browser is told to forget it (signalUnknownCredential).
    step("6", started);
    gw.gw.clock().advance(PAST_WINDOW);
    laptop.open("/passkeys/account", "/passkeys/account").await;
    laptop.wait_count("#passkeys > li[data-id]", 4).await;
    let phone_key = r#"#passkeys > li[data-name="Phone"]"#;
    let phone_credential: String = laptop
        .eval(&format!(
            "document.querySelector({}).dataset.credentialId",
            js(phone_key)
        ))
        .await;
    laptop.click(&format!("{phone_key} .delete")).await;
    laptop.click(&format!("{phone_key} .confirm-delete")).await;
    laptop
        .wait_until(
            "the re-authentication prompt",
            "!document.querySelector('#reauth').hidden",
        )
        .await;
    assert_eq!(
        laptop
            .eval::<usize>("document.querySelectorAll('#passkeys > li[data-id]').length")
            .await,
        4,
        "not deleted yet"
    );
    laptop.click("#reauth-go").await;
    laptop.wait_text("#status", "Deleted “Phone”").await;
    laptop.wait_count("#passkeys > li[data-id]", 3).await;
    let signals = wait_signals(&laptop, "signalUnknownCredential", 1).await;
    let unknown = last_of(&signals, "signalUnknownCredential");
    assert_eq!(unknown["rpId"], "localhost");
    assert_eq!(unknown["credentialId"], phone_credential.as_str());

    // The phone still holds the deleted passkey; signing in with it, the login page hears
    // `unknown_credential` and tells the browser to forget it.
    phone.init_script(SIGNAL_HOOK).await;
    phone.open("/passkeys/login", "/passkeys/login").await;
    set_session_item(&phone, "test-signal", "record").await;
    phone
        .open(
            "/passkeys/login?return_to=%2F",
            "/passkeys/login?return_to=%2F",
        )
        .await;
    phone.click("#signin").await;
    phone
        .wait_text("#status", "That passkey could not sign you in")
        .await;
    let signals = wait_signals(&phone, "signalUnknownCredential", 1).await;
    let forgotten = last_of(&signals, "signalUnknownCredential");
    assert_eq!(forgotten["rpId"], "localhost");
    assert_eq!(forgotten["credentialId"], phone_credential.as_str());

    // 7. Adding a passkey past the window asks too; Cancel changes nothing.
    step("7", started);
    gw.gw.clock().advance(PAST_WINDOW);
    laptop.open("/passkeys/account", "/passkeys/account").await;
    laptop.wait_count("#passkeys > li[data-id]", 3).await;
    laptop.type_into("#add-name", "Key").await;
    laptop.click("#add").await;
    laptop
        .wait_until(
            "the re-authentication prompt",
            "!document.querySelector('#reauth').hidden",
        )
        .await;
    laptop.click("#reauth-cancel").await;
    laptop.wait_text("#status", "Nothing was changed").await;
    let passkeys: Value = laptop.fetch_json("/passkeys/credentials").await;
    assert_eq!(passkeys.as_array().map(Vec::len), Some(3));

    // 8. Without the Signal API (browsers before Chromium 132) the page works the same.
    step("8", started);
    set_session_item(&laptop, "test-signal", "absent").await;
    laptop.open("/passkeys/account", "/passkeys/account").await;
    laptop.wait_count("#passkeys > li[data-id]", 3).await;
    laptop.wait_count("#sessions > li[data-id]", 1).await;
    let absent: bool = laptop
        .eval("typeof PublicKeyCredential.signalAllAcceptedCredentials !== 'function'")
        .await;
    assert!(absent, "the hook removed the functions");
    // By keyboard alone: focus the button, Enter; the prompt takes focus; Enter again.
    let _: Value = laptop
        .eval("(() => { document.querySelector('#make-link').focus(); return null; })()")
        .await;
    laptop.press("Enter").await;
    laptop
        .wait_until(
            "the re-authentication prompt, focused",
            "!document.querySelector('#reauth').hidden && document.activeElement?.id === 'reauth-go'",
        )
        .await;
    laptop.press("Enter").await;
    laptop.wait_text("#status", "Your link is ready").await;
    let focused: String = laptop.eval("document.activeElement.id").await;
    assert_eq!(focused, "link-url", "focus moves to the new link");

    chromium.close().await;
    eprintln!("account browser test took {:.1?}", started.elapsed());
}

async fn set_session_item(tab: &Tab, key: &str, value: &str) {
    let _: Value = tab
        .eval(&format!(
            "(() => {{ sessionStorage.setItem({}, {}); return null; }})()",
            js(key),
            js(value)
        ))
        .await;
}

/// The recorded Signal API calls, once at least `n` of `name` are in.
async fn wait_signals(tab: &Tab, name: &str, n: usize) -> Vec<Value> {
    tab.wait_for(
        &format!("{n} call(s) of {name}"),
        &format!(
            "(() => {{ const calls = JSON.parse(sessionStorage.getItem('test-signals') || '[]'); \
               return calls.filter(c => c.name === {}).length >= {n} ? calls : null; }})()",
            js(name)
        ),
    )
    .await
}

fn last_of<'a>(calls: &'a [Value], name: &str) -> &'a Value {
    &calls
        .iter()
        .rev()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {calls:?}"))["options"]
}

/// Desktop and phone-width (360 px) screenshots, and the phone width in dark mode.
async fn shots(tab: &Tab, name: &str) {
    tab.screenshot(name).await;
    tab.set_width(360).await;
    tab.screenshot(&format!("{name}-phone")).await;
    tab.set_dark(true).await;
    // Emulating a media feature resets the device metrics: lay out at phone width again.
    tab.set_width(360).await;
    tab.screenshot(&format!("{name}-phone-dark")).await;
    tab.set_dark(false).await;
    tab.set_width(1000).await;
}

/// axe-core, run in the page: no serious or critical violation.
async fn check_accessibility(tab: &Tab, what: &str) {
    let source = std::fs::read_to_string(axe_path()).expect("axe-core");
    let _: Value = tab.eval(&format!("{source};\nnull")).await;
    let violations: Vec<Value> = tab
        .eval(
            "axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations \
               .filter(v => v.impact === 'serious' || v.impact === 'critical') \
               .map(v => ({ id: v.id, impact: v.impact, help: v.help, \
                            nodes: v.nodes.map(n => n.html).slice(0, 3) })))",
        )
        .await;
    assert!(violations.is_empty(), "{what}: {violations:#?}");
}

/// `$AXE_CORE`, or the copy `.ci/run` installs with npm under `target/axe`.
fn axe_path() -> PathBuf {
    let path = std::env::var_os("AXE_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/axe/node_modules/axe-core/axe.min.js")
        });
    assert!(
        path.exists(),
        "axe-core not found at {}: install it with `npm install --prefix target/axe axe-core@4` \
         (`.ci/run` does), or set AXE_CORE to axe.min.js",
        path.display()
    );
    path
}

fn step(n: &str, started: Instant) {
    eprintln!(
        "account browser test: step {n} at {:.1?}",
        started.elapsed()
    );
}
