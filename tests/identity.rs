//! The signed identity an upstream receives, checked by an independent verifier that has only
//! `/passkeys/jwks.json`: claims, refusals, key rotation with overlap, EdDSA, reuse per audience.

use passkey_gateway::gateway::unix_now;
use serde_json::{json, Value};

use crate::support::config;
use crate::support::passkeys::{enroll, Browser};
use crate::support::verifier::{verify, with_header, Expect};
use crate::support::{client, EchoUpstream, Echoed, TestGateway};

async fn jwks(gw: &TestGateway) -> Value {
    let resp = client()
        .get(gw.url("/passkeys/jwks.json"))
        .send()
        .await
        .expect("jwks");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.expect("json")
}

async fn assertion(browser: &Browser, path: &str) -> String {
    let resp = client()
        .get(format!("{}{path}", browser.base))
        .header("cookie", browser.cookie.clone().expect("signed in"))
        .send()
        .await
        .expect("request");
    let seen: Echoed = resp.json().await.expect("echo");
    seen.header("x-passkey-assertion")
        .expect("an assertion")
        .to_string()
}

async fn signed_in() -> (TestGateway, Browser, passkey_gateway::store::User) {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (user, token) = enroll(&gw.gw, "alice", &["staff", "ops"]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    (gw, browser, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assertion_verifies_with_only_the_jwks() {
    let (gw, browser, alice) = signed_in().await;
    let token = assertion(&browser, "/app/x").await;
    let keys = jwks(&gw).await;
    let now = unix_now();
    let iss = gw.base();
    let claims = verify(
        &token,
        &keys,
        &Expect {
            iss: &iss,
            aud: "app",
            now,
        },
    )
    .expect("verifies");
    assert_eq!(claims["sub"], alice.id.to_string());
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["name"], "alice (display)");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["groups"], json!(["staff", "ops"]));
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        60
    );
    assert!(claims["sid"].as_str().is_some_and(|s| s.len() == 32));
    assert!(claims["amr"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(
        !token.contains(
            browser
                .cookie
                .as_deref()
                .unwrap_or("-")
                .split('=')
                .nth(1)
                .unwrap_or("-")
        ),
        "the cookie is not in the token"
    );

    let refusals: Vec<(&str, String, Expect)> = vec![
        (
            "wrong aud",
            token.clone(),
            Expect {
                iss: &iss,
                aud: "admin",
                now,
            },
        ),
        (
            "wrong iss",
            token.clone(),
            Expect {
                iss: "http://evil.example",
                aud: "app",
                now,
            },
        ),
        (
            "expired",
            token.clone(),
            Expect {
                iss: &iss,
                aud: "app",
                now: now + 61,
            },
        ),
        (
            "alg changed to HS256",
            with_header(&token, "alg", json!("HS256")),
            Expect {
                iss: &iss,
                aud: "app",
                now,
            },
        ),
        (
            "alg changed to none",
            with_header(&token, "alg", json!("none")),
            Expect {
                iss: &iss,
                aud: "app",
                now,
            },
        ),
        (
            "unknown kid",
            with_header(&token, "kid", json!("not-a-key")),
            Expect {
                iss: &iss,
                aud: "app",
                now,
            },
        ),
    ];
    for (case, token, expect) in refusals {
        assert!(
            verify(&token, &keys, &expect).is_err(),
            "{case} must be refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_are_reused_per_audience_and_survive_rotation() {
    let (gw, browser, _) = signed_in().await;
    let first = assertion(&browser, "/app/a").await;
    assert_eq!(
        assertion(&browser, "/app/b").await,
        first,
        "reused while fresh: no signature per request"
    );
    let public = assertion(&browser, "/elsewhere").await;
    assert_ne!(public, first, "another route, another audience");

    let old_kid = gw.gw.signer().kid();
    let new_kid = gw.gw.rotate_keys().expect("rotate");
    assert_ne!(old_kid, new_kid);
    let keys = jwks(&gw).await;
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    let iss = gw.base();
    let expect = Expect {
        iss: &iss,
        aud: "app",
        now: unix_now(),
    };
    verify(&first, &keys, &expect).expect("a token from the old key verifies during the overlap");
    let fresh = assertion(&browser, "/app/c").await;
    assert_ne!(fresh, first);
    verify(&fresh, &keys, &expect).expect("the new key verifies");
    assert!(fresh.split('.').next().is_some_and(|h| {
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap_or_default();
        String::from_utf8_lossy(&header).contains(&new_kid)
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_assertions_verify_too() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::start(&config(
        "",
        &format!(
            r#"
        [identity]
        algorithm = "EdDSA"
        headers = "remote"
        [[route]]
        name = "app"
        upstream = "http://{}"
        audience = "my-app"
        "#,
            up.addr
        ),
    ))
    .await;
    let (_, token) = enroll(&gw.gw, "eve", &["g1"]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    let resp = client()
        .get(gw.url("/x"))
        .header("cookie", browser.cookie.clone().expect("cookie"))
        .send()
        .await
        .expect("request");
    let seen: Echoed = resp.json().await.expect("echo");
    assert_eq!(seen.header("remote-user"), Some("eve"));
    assert_eq!(seen.header("remote-groups"), Some("g1"));
    assert_eq!(
        seen.header("x-passkey-user"),
        None,
        "only the configured preset"
    );
    let keys = jwks(&gw).await;
    assert_eq!(keys["keys"][0]["alg"], "EdDSA");
    let iss = gw.base();
    let claims = verify(
        seen.header("x-passkey-assertion").expect("assertion"),
        &keys,
        &Expect {
            iss: &iss,
            aud: "my-app",
            now: unix_now(),
        },
    )
    .expect("EdDSA verifies");
    assert_eq!(claims["preferred_username"], "eve");
}
