//! Rules around accounts: cloned authenticators, disabled users, the passkey cap, rate limits,
//! and cross-site requests with a valid cookie.

use reqwest::Method;
use serde_json::json;

use passkey_gateway::gateway::unix_now;
use passkey_gateway::store::{Ceremony, CeremonyKind, LoginCompletion};

use crate::support::config;
use crate::support::passkeys::{enroll, Browser};
use crate::support::{client, EchoUpstream, TestGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_count_behind_one_stored_before_the_ceremony_flags_a_clone() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (gina, token) = enroll(&gw.gw, "gina", &[]).await;
    let mut browser = Browser::new(&gw.base());
    let registered = browser.register(Some(&token), "K").await;
    let passkey_id: uuid::Uuid = registered.body["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");

    // The original authenticator signed in elsewhere, ten seconds ago, with a count of 100; this
    // browser's authenticator (a copy of its key, at count 1) is the clone. A genuine
    // authenticator could never sign below a count stored before its ceremony began. (Nothing
    // signs in before that: a later use would stay the passkey's time of last use, as the store
    // never moves it back.)
    let earlier = unix_now() - 10;
    let ceremony_id = uuid::Uuid::new_v4();
    gw.gw
        .store()
        .put_ceremony(
            Ceremony {
                id: ceremony_id,
                kind: CeremonyKind::Login,
                user_id: None,
                enrollment_token_hash: None,
                state: Vec::new(),
                passkey_name: None,
                expires_at: earlier + 300,
            },
            u64::MAX,
        )
        .await
        .expect("ceremony");
    let (_, session) = gw.gw.sessions().mint(gina.id, passkey_id, earlier);
    gw.gw
        .store()
        .complete_login(LoginCompletion {
            ceremony_id,
            passkey_id,
            new_sign_count: 100,
            backup_state: false,
            backup_eligible: false,
            credential: None,
            new_session: session,
            now: earlier,
        })
        .await
        .expect("the original signs in");

    browser.cookie = None;
    let refused = browser.login("gina").await;
    assert_eq!(
        (refused.status.as_u16(), refused.body["error"].as_str()),
        (400, Some("login_failed"))
    );

    let passkey = gw
        .gw
        .store()
        .passkey(passkey_id)
        .await
        .expect("read")
        .expect("passkey");
    assert!(passkey.clone_suspected, "the passkey is flagged");
    let events = gw.gw.store().events(20).await.expect("events");
    assert!(events
        .iter()
        .any(|e| e.kind.as_str() == "clone_suspected" && e.passkey_id == Some(passkey_id)));
    // A flagged passkey no longer signs in, even with a fresh, higher count.
    let (id, options) = browser.begin_login(None).await;
    let credential = browser.assert(crate::support::passkeys::with_allowed(
        options,
        &browser.authenticator_credential_id(),
    ));
    let user = gw
        .gw
        .store()
        .user_by_name("gina")
        .await
        .expect("read")
        .expect("user");
    let credential = crate::support::passkeys::with_user_handle(credential, user.id.as_bytes());
    assert_eq!(
        browser.complete_login(&id, &credential, "/").await.status,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_is_out_at_once() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (harry, token) = enroll(&gw.gw, "harry", &[]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    assert_eq!(browser.get("/app/x").await.status, 200);

    // The product's own path: the real CLI, which reaches this running gateway through its
    // admin socket; nothing in the test touches the session cache.
    let socket = gw.gw.config().server.data_dir.join("admin.sock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "no admin socket");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(&gw.config_path)
        .args(["user", "disable", "harry"])
        .output()
        .await
        .expect("run the binary");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "disabled harry (1 sessions revoked)"
    );
    assert!(
        gw.gw
            .store()
            .user(harry.id)
            .await
            .expect("read")
            .expect("user")
            .disabled
    );
    assert_eq!(
        browser.get("/app/x").await.status,
        401,
        "the very next request"
    );

    // Cannot sign in again, and the answer to `begin` still looks normal.
    browser.cookie = None;
    let (id, options) = browser.begin_login(Some("harry")).await;
    assert!(!options.public_key.allow_credentials.is_empty());
    let signed = browser.authenticator_credential_id();
    let credential = crate::support::passkeys::with_user_handle(
        browser.assert(crate::support::passkeys::with_allowed(options, &signed)),
        harry.id.as_bytes(),
    );
    let refused = browser.complete_login(&id, &credential, "/").await;
    assert_eq!(refused.status, 400);
    assert!(refused.set_cookie.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_passkey_cap_is_enforced() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "max_passkeys_per_user = 1").await;
    let (_, token) = enroll(&gw.gw, "ivy", &[]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    let more = browser
        .post("/passkeys/register/begin", json!({"name": "second"}))
        .await;
    assert_eq!(
        (more.status.as_u16(), more.body["error"].as_str()),
        (409, Some("too_many_passkeys"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceremonies_are_rate_limited_per_address() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::start(&config(
        "ceremony_rate_per_minute = 3",
        &format!(
            r#"
        [[route]]
        name = "app"
        upstream = "http://{}"
        "#,
            up.addr
        ),
    ))
    .await;
    let mut browser = Browser::new(&gw.base());
    for _ in 0..3 {
        assert_eq!(
            browser
                .post("/passkeys/login/begin", json!({}))
                .await
                .status,
            200
        );
    }
    let resp = client()
        .post(gw.url("/passkeys/login/begin"))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait));
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_requests_from_other_origins_are_refused() {
    let up = EchoUpstream::start().await;
    other_origins_are_refused(&TestGateway::app(up.addr, "").await).await;
}

/// Cookie-carrying requests from other origins refused on `gw` (a world of
/// [`crate::support::app_routes`]), over whatever [`client`] negotiates with it.
pub(crate) async fn other_origins_are_refused(gw: &TestGateway) {
    let (_, token) = enroll(&gw.gw, "jack", &[]).await;
    let mut browser = Browser::new(&gw.base());
    let registered = browser.register(Some(&token), "K").await;
    let id = registered.body["id"].as_str().expect("id").to_string();
    let cookie = browser.cookie.clone().expect("cookie");
    let attacks = [
        (
            Method::POST,
            "/passkeys/logout".to_string(),
            Some("http://evil.example"),
        ),
        (Method::POST, "/passkeys/logout".to_string(), None),
        (
            Method::PATCH,
            format!("/passkeys/credentials/{id}"),
            Some("http://evil.example"),
        ),
        (Method::DELETE, format!("/passkeys/credentials/{id}"), None),
        (
            Method::POST,
            "/passkeys/register/begin".to_string(),
            Some("null"),
        ),
    ];
    for (method, path, origin) in attacks {
        let mut req = client()
            .request(method.clone(), gw.url(&path))
            .header("cookie", &cookie)
            .json(&json!({"name": "x"}));
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 403, "{method} {path} from {origin:?}");
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["error"], "bad_origin");
    }
    assert_eq!(
        browser.get("/passkeys/me").await.status,
        200,
        "the session survived"
    );
    assert_eq!(
        browser.get("/passkeys/credentials").await.body[0]["name"],
        "K",
        "nothing was renamed"
    );
}
