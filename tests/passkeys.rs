//! The passkey life cycle end to end through the in-process gateway, with a software
//! authenticator doing real WebAuthn: enrollment link → register → cookie → proxied request →
//! logout → login with username → usernameless login → second passkey → rename → delete →
//! session revoked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Method;
use serde_json::json;

use crate::support::passkeys::{enroll, Browser};
use crate::support::{client, EchoUpstream, Echoed, TestGateway};

async fn echoed(browser: &mut Browser, path: &str) -> Echoed {
    let mut req = client().get(format!("{}{path}", browser.base));
    if let Some(cookie) = &browser.cookie {
        req = req.header("cookie", format!("{cookie}; app_pref=dark"));
    }
    let resp = req.send().await.expect("request");
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.expect("echo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_passkey_life_cycle() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (alice, token) = enroll(&gw.gw, "alice", &["staff"]).await;
    let mut browser = Browser::new(&gw.base());

    // Enrollment link → first passkey → signed in.
    let registered = browser.register(Some(&token), "Laptop").await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    assert_eq!(registered.body["name"], "Laptop");
    let cookie = registered
        .set_cookie
        .clone()
        .expect("an enrollment signs in");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    let credential_id = URL_SAFE_NO_PAD
        .decode(registered.body["credential_id"].as_str().expect("id"))
        .expect("b64");

    // The token is spent: a second use is refused.
    let mut other = Browser::new(&gw.base());
    let reused = other
        .post("/passkeys/register/begin", json!({"token": token}))
        .await;
    assert_eq!(
        (reused.status.as_u16(), reused.body["error"].as_str()),
        (400, Some("enrollment_invalid"))
    );

    // The session reaches the app as an identity; the gateway's cookie does not.
    let seen = echoed(&mut browser, "/app/page").await;
    assert_eq!(seen.header("x-passkey-user"), Some("alice"));
    assert_eq!(
        seen.header("x-passkey-user-id"),
        Some(alice.id.to_string().as_str())
    );
    assert_eq!(seen.header("x-passkey-groups"), Some("staff"));
    assert!(seen
        .header("x-passkey-assertion")
        .is_some_and(|t| t.split('.').count() == 3));
    assert_eq!(
        seen.header("cookie"),
        Some("app_pref=dark"),
        "only the app's own cookie goes upstream"
    );

    let me = browser.get("/passkeys/me").await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["groups"], json!(["staff"]));

    // Logout ends the session server-side.
    let old_cookie = browser.cookie.clone();
    let out = browser.post("/passkeys/logout", json!({})).await;
    assert_eq!(out.status, 204);
    assert!(browser.cookie.is_none(), "the cookie is cleared");
    browser.cookie = old_cookie;
    assert_eq!(
        browser.get("/passkeys/me").await.status,
        401,
        "the old cookie is dead"
    );
    browser.cookie = None;

    // Login with a username.
    let login = browser.login("alice").await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    assert_eq!(login.body["redirect_to"], "/app");
    assert_eq!(login.body["user"]["username"], "alice");
    assert_eq!(
        echoed(&mut browser, "/app").await.header("x-passkey-user"),
        Some("alice")
    );

    // Usernameless login: the user handle names the user.
    browser.cookie = None;
    let discoverable = browser
        .login_discoverable(&credential_id, alice.id.as_bytes())
        .await;
    assert_eq!(discoverable.status, 200, "{:?}", discoverable.body);
    assert_eq!(discoverable.body["user"]["username"], "alice");

    // A second passkey from another authenticator, added with the session.
    let mut second = Browser::new(&gw.base());
    second.cookie = browser.cookie.clone();
    let added = second.register(None, "Phone").await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert!(
        added.set_cookie.is_none(),
        "adding a passkey does not start a new session"
    );
    let phone_id = added.body["id"].as_str().expect("id").to_string();

    let listed = browser.get("/passkeys/credentials").await;
    let names: Vec<&str> = listed
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["Phone", "Laptop"], "newest first");
    assert!(
        listed.body[1]["last_used_at"].is_string(),
        "the laptop has been used"
    );

    // Rename.
    let renamed = browser
        .send(
            Method::PATCH,
            &format!("/passkeys/credentials/{phone_id}"),
            Some(json!({"name": "Pixel"})),
        )
        .await;
    assert_eq!(
        (renamed.status.as_u16(), renamed.body["name"].as_str()),
        (200, Some("Pixel"))
    );

    // Sign in with the phone, then delete the phone from the laptop's session: the phone's
    // session dies with it, the laptop's lives on.
    second.cookie = None;
    let phone_login = second.login("alice").await;
    assert_eq!(phone_login.status, 200, "{:?}", phone_login.body);
    let deleted = browser
        .send(
            Method::DELETE,
            &format!("/passkeys/credentials/{phone_id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        second.get("/passkeys/me").await.status,
        401,
        "the deleted passkey's session is revoked"
    );
    assert_eq!(browser.get("/passkeys/me").await.status, 200);

    // The last passkey cannot be deleted by its owner.
    let laptop_id = browser.get("/passkeys/credentials").await.body[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let last = browser
        .send(
            Method::DELETE,
            &format!("/passkeys/credentials/{laptop_id}"),
            None,
        )
        .await;
    assert_eq!(
        (last.status.as_u16(), last.body["error"].as_str()),
        (409, Some("last_passkey"))
    );

    // Revoked by the store (as `session revoke` does): dead on the very next request.
    let live = gw
        .gw
        .store()
        .sessions_of(Some(alice.id))
        .await
        .expect("sessions");
    let hashes: Vec<_> = live.iter().map(|s| s.id_hash).collect();
    for hash in &hashes {
        gw.gw.sessions().end(*hash).await.expect("revoke");
    }
    assert_eq!(browser.get("/passkeys/me").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_passkey_is_not_found() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (_, token_a) = enroll(&gw.gw, "ann", &[]).await;
    let (_, token_b) = enroll(&gw.gw, "bob", &[]).await;
    let mut ann = Browser::new(&gw.base());
    let mut bob = Browser::new(&gw.base());
    let anns = ann.register(Some(&token_a), "A").await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(bob.register(Some(&token_b), "B").await.status, 201);
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"name": "mine now"}));
        let answer = bob
            .send(
                method.clone(),
                &format!("/passkeys/credentials/{anns}"),
                body,
            )
            .await;
        assert_eq!(answer.status, 404, "{method}");
    }
    let list = bob.get("/passkeys/credentials").await;
    assert_eq!(
        list.body.as_array().map(Vec::len),
        Some(1),
        "bob sees only his own"
    );
}
