//! Bad input gets the SPEC's JSON error and stores nothing: malformed or oversized bodies, wrong
//! content types, unknown/expired/replayed ceremonies, foreign origins, tampered signatures and
//! client data, mismatched user handles, unregistered credentials, and random bytes.

use std::time::Duration;

use rand::RngCore;
use serde_json::{json, Value};

use crate::support::passkeys::{enroll, with_allowed, with_user_handle, Answer, Browser};
use crate::support::{client, EchoUpstream, TestGateway};

/// Counts what a refused request must not have changed.
async fn footprint(gw: &TestGateway) -> (usize, usize) {
    let users = gw.gw.store().list_users().await.expect("users");
    let mut passkeys = 0;
    for u in &users {
        passkeys += gw
            .gw
            .store()
            .passkeys_of(u.id)
            .await
            .expect("passkeys")
            .len();
    }
    let sessions = gw
        .gw
        .store()
        .sessions_of(None)
        .await
        .expect("sessions")
        .len();
    (passkeys, sessions)
}

fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{:?}", answer.body);
    assert_eq!(answer.body["error"], code, "{:?}", answer.body);
    assert!(answer.body["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(
        answer.set_cookie.is_none(),
        "a refused request never signs in"
    );
}

async fn raw_post(gw: &TestGateway, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = client()
        .post(gw.url(path))
        .header("content-type", content_type)
        .header("origin", gw.base())
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_with_json_errors() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let before = footprint(&gw).await;
    let endpoints = [
        "/passkeys/login/begin",
        "/passkeys/login/complete",
        "/passkeys/register/begin",
        "/passkeys/register/complete",
    ];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{not json".to_vec(),
            400,
            "bad_request",
        ),
        ("application/json", b"[1,2,3]".to_vec(), 400, "bad_request"),
        (
            "application/json",
            br#"{"username": 5, "token": [], "session_id": 7}"#.to_vec(),
            400,
            "bad_request",
        ),
        ("text/plain", b"{}".to_vec(), 415, "unsupported_media_type"),
        (
            "application/x-www-form-urlencoded",
            b"username=a".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            vec![b' '; 64 * 1024 + 1],
            413,
            "payload_too_large",
        ),
    ];
    for path in endpoints {
        for (content_type, body, status, code) in &cases {
            let (got, body) = raw_post(&gw, path, content_type, body.clone()).await;
            assert_eq!(
                (got, body["error"].as_str()),
                (*status, Some(*code)),
                "{path} {content_type}"
            );
        }
    }
    // Missing fields.
    for path in ["/passkeys/login/complete", "/passkeys/register/complete"] {
        let (got, body) = raw_post(&gw, path, "application/json", b"{}".to_vec()).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (400, Some("bad_request")),
            "{path}"
        );
    }
    assert_eq!(footprint(&gw).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_never_break_the_gateway() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let mut rng = rand::rng();
    let paths = [
        "/passkeys/login/begin",
        "/passkeys/login/complete",
        "/passkeys/register/begin",
        "/passkeys/register/complete",
    ];
    for i in 0..200 {
        let mut body = vec![0u8; (rng.next_u32() % 2048) as usize];
        rng.fill_bytes(&mut body);
        if i % 2 == 0 {
            // Valid JSON envelope, garbage inside.
            body = serde_json::to_vec(&json!({"session_id": uuid::Uuid::new_v4(), "credential": String::from_utf8_lossy(&body)}))
                .expect("json");
        }
        let (status, reply) = raw_post(&gw, paths[i % paths.len()], "application/json", body).await;
        assert!((400..500).contains(&status), "status {status}: {reply}");
        assert!(reply["error"].is_string());
    }
    let health = client()
        .get(gw.url("/passkeys/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceremonies_are_single_use_and_expire() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, r#"challenge_timeout = "2s""#).await;
    let (_, token) = enroll(&gw.gw, "carol", &[]).await;
    let mut browser = Browser::new(&gw.base());

    // Unknown ceremony id.
    let (_, options) = browser.begin_registration(Some(&token), "K").await;
    let credential = browser.create(options);
    let unknown = browser
        .post(
            "/passkeys/register/complete",
            json!({"session_id": uuid::Uuid::new_v4(), "credential": credential}),
        )
        .await;
    assert_error(&unknown, 400, "ceremony_expired");

    // Replayed registration: the same complete twice.
    let (id, options) = browser.begin_registration(Some(&token), "K").await;
    let credential = browser.create(options);
    let body = json!({"session_id": id, "credential": credential});
    assert_eq!(
        browser
            .post("/passkeys/register/complete", body.clone())
            .await
            .status,
        201
    );
    browser.cookie = None;
    assert_error(
        &browser.post("/passkeys/register/complete", body).await,
        400,
        "ceremony_expired",
    );

    // Replayed login.
    let (id, options) = browser.begin_login(Some("carol")).await;
    let credential = browser.assert(options);
    assert_eq!(
        browser.complete_login(&id, &credential, "/").await.status,
        200
    );
    browser.cookie = None;
    assert_error(
        &browser.complete_login(&id, &credential, "/").await,
        400,
        "ceremony_expired",
    );

    // Expired: move the gateway's clock past the challenge timeout, then complete.
    let before = footprint(&gw).await;
    let (id, options) = browser.begin_login(Some("carol")).await;
    let credential = browser.assert(options);
    let ceremony_id: uuid::Uuid = id.parse().expect("uuid");
    gw.gw.clock().advance(Duration::from_secs(3));
    let ceremony = gw.gw.store().ceremony(ceremony_id).await.expect("read");
    assert!(ceremony.is_none(), "the ceremony expired");
    assert_error(
        &browser.complete_login(&id, &credential, "/").await,
        400,
        "ceremony_expired",
    );
    assert_eq!(footprint(&gw).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_assertions_are_refused_and_store_nothing() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (dave, token) = enroll(&gw.gw, "dave", &[]).await;
    let (erin, erin_token) = enroll(&gw.gw, "erin", &[]).await;
    let mut browser = Browser::new(&gw.base());
    let registered = browser.register(Some(&token), "K").await;
    assert_eq!(registered.status, 201);
    let mut erins = Browser::new(&gw.base());
    assert_eq!(erins.register(Some(&erin_token), "E").await.status, 201);
    browser.cookie = None;
    let before = footprint(&gw).await;

    // Tampered signature.
    let (id, options) = browser.begin_login(Some("dave")).await;
    let mut credential = browser.assert(options);
    if let Some(last) = credential.response.signature.last_mut() {
        *last ^= 0x01;
    }
    assert_error(
        &browser.complete_login(&id, &credential, "/").await,
        400,
        "login_failed",
    );

    // Tampered client data (the challenge inside no longer matches).
    let (id, options) = browser.begin_login(Some("dave")).await;
    let mut credential = browser.assert(options);
    let text = String::from_utf8(credential.response.client_data_json.to_vec()).expect("utf8");
    credential.response.client_data_json = text
        .replacen("webauthn.get", "webauthn.got", 1)
        .into_bytes();
    assert_error(
        &browser.complete_login(&id, &credential, "/").await,
        400,
        "login_failed",
    );

    // A user handle that names someone else.
    let credential_id = crate::support::passkeys::credential_id(&registered);
    let (id, options) = browser.begin_login(None).await;
    let credential = with_user_handle(
        browser.assert(with_allowed(options, &credential_id)),
        erin.id.as_bytes(),
    );
    assert_error(
        &browser.complete_login(&id, &credential, "/").await,
        400,
        "login_failed",
    );

    // Dave's ceremony answered with Erin's passkey.
    let (id, _) = browser.begin_login(Some("dave")).await;
    let (_, erin_options) = erins.begin_login(Some("erin")).await;
    let credential = erins.assert(erin_options);
    assert_error(
        &browser.complete_login(&id, &credential, "/").await,
        400,
        "login_failed",
    );

    // A credential registered nowhere here (made on another gateway).
    let elsewhere = TestGateway::app(up.addr, "").await;
    let (_, other_token) = enroll(&elsewhere.gw, "dave", &[]).await;
    let mut stranger = Browser::new(&elsewhere.base());
    assert_eq!(stranger.register(Some(&other_token), "S").await.status, 201);
    stranger.base = gw.base();
    stranger.origin = browser.origin.clone();
    stranger.cookie = None;
    let (id, options) = browser.begin_login(None).await;
    let foreign_id = stranger.authenticator_credential_id();
    let credential = with_user_handle(
        stranger.assert(with_allowed(options, &foreign_id)),
        dave.id.as_bytes(),
    );
    // Said apart, so the login page can tell the browser to forget it (Signal API); the words
    // are the same as every other failure's.
    assert_error(
        &stranger.complete_login(&id, &credential, "/").await,
        400,
        "unknown_credential",
    );

    // Dave's own passkey, but signed on another origin (a look-alike site relaying the challenge).
    let mut phisher = Browser::new(&gw.base());
    phisher.authenticator = std::mem::replace(
        &mut browser.authenticator,
        webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true),
    );
    let (id, options) = phisher.begin_login(Some("dave")).await;
    phisher.origin = format!("http://localhost:{}", gw.addr.port() ^ 1)
        .parse()
        .expect("url");
    let credential = phisher.assert(options);
    phisher.origin = browser.origin.clone();
    assert_error(
        &phisher.complete_login(&id, &credential, "/").await,
        400,
        "login_failed",
    );

    assert_eq!(footprint(&gw).await, before, "nothing was stored");
    let events = gw.gw.store().events(50).await.expect("events");
    assert!(
        events
            .iter()
            .filter(|e| e.kind.as_str() == "login_failed")
            .map(|e| e.count)
            .sum::<u64>()
            >= 5,
        "failures are audited (tallied per client network)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_usernames_look_like_known_ones() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (_, token) = enroll(&gw.gw, "frank", &[]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    let known = browser
        .post("/passkeys/login/begin", json!({"username": "frank"}))
        .await;
    let unknown = browser
        .post("/passkeys/login/begin", json!({"username": "nobody"}))
        .await;
    let again = browser
        .post("/passkeys/login/begin", json!({"username": "nobody"}))
        .await;
    for answer in [&known, &unknown] {
        assert_eq!(answer.status, 200);
        let allowed = answer.body["publicKey"]["allowCredentials"]
            .as_array()
            .expect("allowCredentials");
        assert!(
            !allowed.is_empty(),
            "both list credentials: {:?}",
            answer.body
        );
        assert!(allowed
            .iter()
            .all(|c| c["type"] == "public-key" && c["id"].is_string()));
    }
    // Whatever the name, a decoy lists at least one credential, as every real user's answer does.
    for i in 0..40 {
        let answer = browser
            .post(
                "/passkeys/login/begin",
                json!({"username": format!("ghost{i}")}),
            )
            .await;
        let allowed = answer.body["publicKey"]["allowCredentials"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(allowed > 0, "ghost{i}: {:?}", answer.body);
    }
    assert_eq!(
        unknown.body["publicKey"]["allowCredentials"], again.body["publicKey"]["allowCredentials"],
        "the decoy is stable, so repeating the question reveals nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_names_are_parsed_once_at_the_edge() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (_, token) = enroll(&gw.gw, "grace", &[]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    let typed = browser
        .post("/passkeys/login/begin", json!({"username": "  GRACE "}))
        .await;
    let exact = browser
        .post("/passkeys/login/begin", json!({"username": "grace"}))
        .await;
    assert_eq!(typed.status, 200);
    assert_eq!(
        typed.body["publicKey"]["allowCredentials"], exact.body["publicKey"]["allowCredentials"],
        "a name is trimmed and lowercased before the lookup"
    );
    // A name no user can have is refused as such: that tells nothing about who exists.
    for malformed in ["a b", "zoë", "a/b", &"x".repeat(65)] {
        let answer = browser
            .post("/passkeys/login/begin", json!({ "username": malformed }))
            .await;
        assert_eq!(answer.status, 400, "{malformed:?}: {:?}", answer.body);
        assert_eq!(answer.body["error"], "bad_username", "{:?}", answer.body);
    }
    let blank = browser
        .post("/passkeys/login/begin", json!({"username": "  "}))
        .await;
    assert_eq!(blank.status, 200, "a blank name is a usernameless login");
}
