//! Account self-service through the API: the re-authentication gate on credential changes, a
//! person's own sessions, the add-a-device link and its QR code, provider names.
//! (The pages that drive these are in `browser/account_page.rs`.)

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::passkeys::{enroll, Answer, Browser};
use crate::support::{EchoUpstream, TestGateway};

/// Past the default `[session] reauth_window` of 5 minutes.
const PAST_WINDOW: Duration = Duration::from_secs(5 * 60 + 1);

fn error_of(answer: &Answer) -> (u16, Option<&str>) {
    (answer.status.as_u16(), answer.body["error"].as_str())
}

async fn signed_in(gw: &TestGateway, username: &str) -> Browser {
    let (_, token) = enroll(&gw.gw, username, &[]).await;
    let mut browser = Browser::new(&gw.base());
    let answer = browser.register(Some(&token), "first").await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    browser
}

/// Every credential change the gate covers, as (method, path, body).
fn gated(passkey_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/passkeys/register/begin".into(),
            Some(json!({"name": "more"})),
        ),
        (
            Method::PATCH,
            format!("/passkeys/credentials/{passkey_id}"),
            Some(json!({"name": "renamed"})),
        ),
        (
            Method::DELETE,
            format!("/passkeys/credentials/{passkey_id}"),
            None,
        ),
        (
            Method::POST,
            "/passkeys/enrollments".into(),
            Some(json!({})),
        ),
        (Method::DELETE, "/passkeys/sessions/others".into(), None),
        (
            Method::DELETE,
            format!("/passkeys/sessions/{}", "0".repeat(32)),
            None,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_changes_need_a_recent_assertion_and_a_sign_in_renews_it() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let mut alice = signed_in(&gw, "alice").await;
    let second = alice.register(None, "second").await;
    assert_eq!(
        second.status, 201,
        "fresh from enrollment: {:?}",
        second.body
    );
    let second_id = second.body["id"].as_str().expect("id").to_string();

    gw.gw.clock().advance(PAST_WINDOW);
    assert_eq!(
        alice.get("/passkeys/me").await.status,
        200,
        "still signed in"
    );
    for (method, path, body) in gated(&second_id) {
        let refused = alice.send(method.clone(), &path, body).await;
        assert_eq!(
            error_of(&refused),
            (403, Some("reauth_required")),
            "{method} {path}"
        );
    }
    let kept = alice
        .get(&format!("/passkeys/credentials/{second_id}"))
        .await;
    assert_eq!(kept.body["name"], "second", "nothing changed");

    // The inline re-authentication: a sign-in while signed in (a new session replaces the old).
    let old_cookie = alice.cookie.clone();
    assert_eq!(alice.login("alice").await.status, 200);
    assert_ne!(alice.cookie, old_cookie);
    let renamed = alice
        .send(
            Method::PATCH,
            &format!("/passkeys/credentials/{second_id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    // Delete the passkey this session did not sign in with (deleting that one signs it out).
    let used = alice.get("/passkeys/me").await.body["session"]["passkey_id"].clone();
    let passkeys = alice.get("/passkeys/credentials").await.body;
    let unused = passkeys
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] != used)
        .expect("two passkeys")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let deleted = alice
        .send(
            Method::DELETE,
            &format!("/passkeys/credentials/{unused}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);

    // The window is counted from that sign-in.
    gw.gw.clock().advance(PAST_WINDOW);
    let again = alice
        .post("/passkeys/register/begin", json!({"name": "x"}))
        .await;
    assert_eq!(error_of(&again), (403, Some("reauth_required")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_links_need_no_recent_assertion() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (_, token) = enroll(&gw.gw, "erin", &[]).await;
    gw.gw.clock().advance(PAST_WINDOW);
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "phone").await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_sessions_are_listed_with_this_device_and_ended_at_once() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let mut alice = signed_in(&gw, "alice").await;
    // A second device: another sign-in that does not replace the first session.
    let laptop_cookie = alice.cookie.take();
    assert_eq!(alice.login("alice").await.status, 200);
    let me = alice.get("/passkeys/me").await.body;
    let this_id = me["session"]["id"].as_str().expect("sid").to_string();

    let listed = alice.get("/passkeys/sessions").await;
    assert_eq!(listed.status, 200);
    let sessions = listed.body.as_array().expect("list").clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], this_id.as_str());
    assert_eq!(current[0]["client"], "127.0.0.1");
    assert_eq!(current[0]["passkey_name"], "first");
    let other = sessions
        .iter()
        .find(|s| s["current"] == false)
        .expect("the other device");
    let other_id = other["id"].as_str().expect("id");
    assert_eq!(other_id.len(), 32, "a public id, not the cookie");
    assert!(
        !laptop_cookie
            .as_deref()
            .unwrap_or_default()
            .contains(other_id),
        "the id is not the cookie value"
    );

    let ended = alice
        .send(
            Method::DELETE,
            &format!("/passkeys/sessions/{other_id}"),
            None,
        )
        .await;
    assert_eq!(ended.status, 204);
    assert!(ended.set_cookie.is_none(), "this device stays signed in");
    let mut laptop = Browser::new(&gw.base());
    laptop.cookie = laptop_cookie;
    assert_eq!(
        laptop.get("/passkeys/me").await.status,
        401,
        "ended at once"
    );
    assert_eq!(alice.get("/passkeys/me").await.status, 200);
    let left = alice.get("/passkeys/sessions").await.body;
    assert_eq!(left.as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_session_id_is_refused_like_one_that_does_not_exist() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let mut alice = signed_in(&gw, "alice").await;
    let mut bob = signed_in(&gw, "bob").await;
    let bob_id = bob.get("/passkeys/me").await.body["session"]["id"]
        .as_str()
        .expect("sid")
        .to_string();

    let theirs = alice
        .send(
            Method::DELETE,
            &format!("/passkeys/sessions/{bob_id}"),
            None,
        )
        .await;
    let nobody = alice
        .send(
            Method::DELETE,
            &format!("/passkeys/sessions/{}", "ab".repeat(16)),
            None,
        )
        .await;
    let garbage = alice
        .send(Method::DELETE, "/passkeys/sessions/not-an-id", None)
        .await;
    assert_eq!(error_of(&theirs), (404, Some("not_found")));
    assert_eq!((theirs.status, &theirs.body), (nobody.status, &nobody.body));
    assert_eq!(garbage.status, 404);
    assert_eq!(
        bob.get("/passkeys/me").await.status,
        200,
        "bob is untouched"
    );
    let listed = alice.get("/passkeys/sessions").await.body;
    assert!(
        !listed.to_string().contains(&bob_id),
        "only alice's own sessions are listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_everywhere_else_keeps_only_this_session() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let mut alice = signed_in(&gw, "alice").await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(alice.cookie.take());
        assert_eq!(alice.login("alice").await.status, 200);
    }
    let mut bob = signed_in(&gw, "bob").await;
    let answer = alice
        .send(Method::DELETE, "/passkeys/sessions/others", None)
        .await;
    assert_eq!(
        (answer.status.as_u16(), &answer.body),
        (200, &json!({"ended": 3}))
    );
    for cookie in others {
        let mut old = Browser::new(&gw.base());
        old.cookie = cookie;
        assert_eq!(old.get("/passkeys/me").await.status, 401);
    }
    assert_eq!(alice.get("/passkeys/me").await.status, 200);
    assert_eq!(bob.get("/passkeys/me").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_and_add_device_endpoints_follow_the_csrf_rules() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let mut alice = signed_in(&gw, "alice").await;
    let cookie = alice.cookie.clone().expect("cookie");
    let http = crate::support::client();
    for (method, path) in [
        (Method::DELETE, "/passkeys/sessions/others".to_string()),
        (Method::POST, "/passkeys/enrollments".to_string()),
    ] {
        for origin in [Some("http://evil.example"), None] {
            let mut req = http
                .request(method.clone(), gw.url(&path))
                .header("cookie", &cookie)
                .header("content-type", "application/json")
                .body("{}");
            if let Some(origin) = origin {
                req = req.header("origin", origin);
            }
            let resp = req.send().await.expect("send");
            assert_eq!(resp.status(), 403, "{method} {path} from {origin:?}");
            let body: Value = resp.json().await.expect("json");
            assert_eq!(body["error"], "bad_origin");
        }
    }
    assert_eq!(alice.get("/passkeys/me").await.status, 200);
    let sessions = alice.get("/passkeys/sessions").await.body;
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "nothing ended");
    let mut nobody = Browser::new(&gw.base());
    assert_eq!(nobody.get("/passkeys/sessions").await.status, 401);
    let refused = nobody.post("/passkeys/enrollments", json!({})).await;
    assert_eq!(refused.status, 401);
    let wrong = alice.post("/passkeys/sessions", json!({})).await;
    assert_eq!(wrong.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_device_link_is_one_time_short_lived_and_its_qr_code_reads_back() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let mut alice = signed_in(&gw, "alice").await;
    let made = alice.post("/passkeys/enrollments", json!({})).await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let url = made.body["url"].as_str().expect("url").to_string();
    assert!(url.starts_with(&format!("{}/passkeys/enroll#token=", gw.base())));
    let svg = made.body["qr_svg"].as_str().expect("svg");
    assert_eq!(crate::support::qr::decode_svg(svg), url);
    let token = url.split("#token=").nth(1).expect("token");

    let mut phone = Browser::new(&gw.base());
    let enrolled = phone.register(Some(token), "phone").await;
    assert_eq!(enrolled.status, 201, "{:?}", enrolled.body);
    let me = phone.get("/passkeys/me").await.body;
    assert_eq!(
        me["username"], "alice",
        "the link signs the phone in as alice"
    );
    let mut thief = Browser::new(&gw.base());
    let reuse = thief
        .post("/passkeys/register/begin", json!({"token": token}))
        .await;
    assert_eq!(error_of(&reuse), (400, Some("enrollment_invalid")));

    let events = gw.gw.store().events(50).await.expect("events");
    let alice_id = me["id"].as_str().expect("id");
    let created = events
        .iter()
        .filter(|e| e.kind.as_str() == "enrollment_created")
        .filter(|e| e.user_id.map(|u| u.to_string()).as_deref() == Some(alice_id))
        .count();
    assert_eq!(created, 2, "the admin's link and the self-made one");

    // Short-lived: `[enrollment] self_service_ttl` is 15 minutes.
    let later = alice.post("/passkeys/enrollments", json!({})).await;
    let url = later.body["url"].as_str().expect("url");
    let token = url.split("#token=").nth(1).expect("token");
    gw.gw.clock().advance(Duration::from_secs(15 * 60 + 1));
    let expired = thief
        .post("/passkeys/register/begin", json!({"token": token}))
        .await;
    assert_eq!(error_of(&expired), (400, Some("enrollment_invalid")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_aaguid_names_the_provider_and_the_default_name() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (_, token) = enroll(&gw.gw, "gail", &[]).await;
    let mut browser = Browser::new(&gw.base());
    let (session_id, options) = browser.begin_registration(Some(&token), "").await;
    let credential = browser.create(options);
    let google = "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4";
    let credential = crate::support::aaguid::with_aaguid(credential, google);
    let answer = browser
        .post(
            "/passkeys/register/complete",
            json!({"session_id": session_id, "credential": credential}),
        )
        .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert_eq!(answer.body["aaguid"], google);
    assert_eq!(answer.body["provider"], "Google Password Manager");
    assert_eq!(
        answer.body["name"], "Google Password Manager",
        "default name"
    );
    assert_eq!(answer.body["storage"], "device_bound");

    // The all-zero AAGUID of the plain soft authenticator: unknown, and a plain default name.
    let other = browser.register(None, "").await;
    assert_eq!(other.status, 201, "{:?}", other.body);
    assert_eq!(other.body["provider"], Value::Null);
    assert_eq!(other.body["aaguid"], Value::Null);
    assert_eq!(other.body["name"], "Passkey");
    // And it still signs in: only the attestation's label changed.
    browser.cookie = None;
    assert_eq!(browser.login("gail").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_self_made_link_raced_by_many_devices_enrolls_exactly_one() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    for round in 0..5 {
        let mut alice = signed_in(&gw, &format!("alice{round}")).await;
        let made = alice.post("/passkeys/enrollments", json!({})).await;
        let url = made.body["url"].as_str().expect("url").to_string();
        let token = url.split("#token=").nth(1).expect("token").to_string();
        let mut racers = Vec::new();
        for _ in 0..8 {
            let (base, token) = (gw.base(), token.clone());
            racers.push(tokio::spawn(async move {
                let mut device = Browser::new(&base);
                let begun = device
                    .post("/passkeys/register/begin", json!({"token": token}))
                    .await;
                if begun.status != 200 {
                    return begun.status.as_u16();
                }
                let session_id = begun.body["session_id"].as_str().expect("id").to_string();
                let options = serde_json::from_value(json!({"publicKey": begun.body["publicKey"]}))
                    .expect("options");
                let credential = device.create(options);
                let done = device
                    .post(
                        "/passkeys/register/complete",
                        json!({"session_id": session_id, "credential": credential}),
                    )
                    .await;
                done.status.as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for racer in racers {
            statuses.push(racer.await.expect("racer"));
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "round {round}: {statuses:?}"
        );
        let passkeys = alice.get("/passkeys/credentials").await.body;
        assert_eq!(passkeys.as_array().map(Vec::len), Some(2), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_session_ended_by_many_concurrent_requests_ends_once() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    for round in 0..5 {
        let mut alice = signed_in(&gw, &format!("alice{round}")).await;
        let other_cookie = alice.cookie.take();
        assert_eq!(alice.login(&format!("alice{round}")).await.status, 200);
        let sessions = alice.get("/passkeys/sessions").await.body;
        let other = sessions
            .as_array()
            .expect("list")
            .iter()
            .find(|s| s["current"] == false)
            .expect("other")["id"]
            .as_str()
            .expect("id")
            .to_string();
        let mut enders = Vec::new();
        for _ in 0..8 {
            let mut tab = Browser::new(&gw.base());
            tab.cookie = alice.cookie.clone();
            let path = format!("/passkeys/sessions/{other}");
            enders.push(tokio::spawn(async move {
                tab.send(Method::DELETE, &path, None).await.status.as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for ender in enders {
            statuses.push(ender.await.expect("ender"));
        }
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [204, 404, 404, 404, 404, 404, 404, 404],
            "round {round}"
        );
        let mut old = Browser::new(&gw.base());
        old.cookie = other_cookie;
        assert_eq!(old.get("/passkeys/me").await.status, 401);
        assert_eq!(alice.get("/passkeys/me").await.status, 200);
    }
}
