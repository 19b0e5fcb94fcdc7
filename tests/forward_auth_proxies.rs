//! The real nginx (`auth_request`) and Caddy (`forward_auth`) in front of an echo app, each
//! configured with the README's snippet (`contrib/forward-auth/`), the gateway behind them in
//! forward-auth mode: the login redirect and the 401, a passkey sign-in through the fronting
//! proxy, a verifiable assertion and identity headers at the app, 403 outside `allow_groups`,
//! forged identity headers never reaching the app, and `/passkeys/auth` closed to outsiders.

use passkey_gateway::gateway::unix_now;
use serde_json::Value;

use crate::forward_auth::gateway_toml;
use crate::support::fronting::{self, free_port, Front, Kind};
use crate::support::passkeys::{enroll, Browser};
use crate::support::verifier::{verify, Expect};
use crate::support::{client, EchoUpstream, Echoed, TestGateway};

struct World {
    front: Front,
    gw: TestGateway,
    _echo: EchoUpstream,
}

/// The gateway (trusting loopback), the echo app and `kind` in front, on a free port (another
/// one when the proxy could not bind it).
async fn world(kind: Kind) -> World {
    fronting::require(kind);
    for _ in 0..5 {
        let port = free_port();
        let echo = EchoUpstream::start().await;
        let gw = TestGateway::start(&gateway_toml(port, echo.addr)).await;
        if let Some(front) = fronting::start(kind, port, gw.addr, echo.addr).await {
            return World {
                front,
                gw,
                _echo: echo,
            };
        }
    }
    panic!("{} could not bind a free port in 5 tries", kind.binary());
}

/// Every identity header any preset uses, plus spellings that servers fold into them.
const FORGED: &[&str] = &[
    "X-Passkey-Assertion",
    "X-Passkey-User",
    "X-Passkey-User-Id",
    "X-Passkey-Email",
    "X-Passkey-Groups",
    "Remote-User",
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X_Passkey_User",
    "Remote_User",
];

const FORGED_VALUE: &str = "forged-by-client";

/// GET `path` through the front with every identity header forged; what the app received.
async fn forged_get(w: &World, path: &str, cookie: Option<&str>) -> Echoed {
    let mut req = client()
        .get(w.front.url(path))
        .header("accept", "application/json");
    for name in FORGED {
        req = req.header(*name, FORGED_VALUE);
    }
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let r = req.send().await.expect("answer");
    assert_eq!(r.status(), 200, "{path}: {}", w.front.log());
    r.json().await.expect("echo body")
}

fn assert_no_forgery(echoed: &Echoed, kind: Kind) {
    for (name, values) in &echoed.headers {
        for value in values {
            assert!(
                !value.contains(FORGED_VALUE),
                "{kind:?}: the app received the forged {name}: {value}"
            );
        }
    }
}

async fn scenario(kind: Kind) {
    let w = world(kind).await;
    let http = client();

    // Anonymous: a page navigation goes to the login page, with the original target to return to.
    let nav = http
        .get(w.front.url("/app/x?y=1"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("answer");
    assert_eq!(nav.status(), 302, "{kind:?}: {}", w.front.log());
    assert_eq!(
        nav.headers()["location"],
        "/passkeys/login?return_to=%2Fapp%2Fx%3Fy%3D1"
    );
    // Anonymous fetch: 401 naming the login page.
    let fetch = http
        .get(w.front.url("/app/x"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("answer");
    assert_eq!(fetch.status(), 401);
    let body: Value = fetch.json().await.expect("json 401");
    assert_eq!(body["login_url"], "/passkeys/login?return_to=%2Fapp%2Fx");

    // Anonymous on a public route: passed, and no forged identity reaches the app.
    let public = forged_get(&w, "/", None).await;
    assert_no_forgery(&public, kind);
    assert!(
        public.header("x-passkey-user").is_none_or(str::is_empty),
        "{kind:?}: {:?}",
        public.headers
    );

    // A passkey sign-in through the fronting proxy: enrollment, then a fresh login.
    let (_, token) = enroll(&w.gw.gw, "bob", &[]).await;
    let mut browser = Browser::new(&w.front.base());
    let registered = browser.register(Some(&token), "key").await;
    assert_eq!(registered.status, 201, "{kind:?}: {:?}", registered.body);
    browser.cookie = None;
    let login = browser.login("bob").await;
    assert_eq!(login.status, 200, "{kind:?}: {:?}", login.body);
    assert_eq!(login.body["redirect_to"], "/app");
    let cookie = browser.cookie.clone().expect("signed in");

    // Signed in: the app gets a verifiable assertion for its route and the identity headers,
    // and none of the forged values.
    let echoed = forged_get(&w, "/app/x", Some(&cookie)).await;
    assert_no_forgery(&echoed, kind);
    assert_eq!(echoed.path, "/app/x");
    let jwks: Value = http
        .get(w.front.url("/passkeys/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let token = echoed.header("x-passkey-assertion").expect("assertion");
    let claims = verify(
        token,
        &jwks,
        &Expect {
            iss: &w.gw.base(),
            aud: "app",
            now: unix_now(),
        },
    )
    .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    assert_eq!(claims["preferred_username"], "bob");
    assert_eq!(echoed.header("x-passkey-user"), Some("bob"));
    assert_eq!(echoed.header("x-passkey-email"), Some("bob@example.com"));

    // Signed in but outside the route's allow_groups.
    let admin = http
        .get(w.front.url("/admin"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answer");
    assert_eq!(admin.status(), 403);

    // A client cannot use the sub-request endpoint through the fronting proxy to describe a
    // request of its own.
    let described = http
        .get(w.front.url("/passkeys/auth"))
        .header("cookie", &cookie)
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "localhost")
        .header("x-forwarded-uri", "/app/x")
        .header("x-original-url", "http://localhost/app/x")
        .header("x-original-method", "GET")
        .send()
        .await
        .expect("answer");
    assert_eq!(described.status(), 404, "{kind:?}");
    assert!(described.headers().get("x-passkey-assertion").is_none());
}

#[tokio::test]
async fn nginx_auth_request_with_the_readme_snippet() {
    scenario(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_forward_auth_with_the_readme_snippet() {
    scenario(Kind::Caddy).await;
}
