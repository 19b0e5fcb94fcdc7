//! Access policy through the real proxy: path confusion, open redirects, 302/401/403 by request
//! kind, allow lists, and forged identity headers alongside a real session.

use reqwest::Method;
use serde_json::json;

use crate::support::config;
use crate::support::passkeys::{enroll, Browser};
use crate::support::{client, h2, EchoUpstream, Echoed, TestGateway};

/// Request headers of one table row.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// A protected site whose only open part is `/public`.
async fn protected_site(up: std::net::SocketAddr) -> TestGateway {
    TestGateway::start(&config("", &protected_routes(up))).await
}

/// [`protected_site`]'s routes, for the same site over TLS (`tests/http2.rs`).
pub(crate) fn protected_routes(up: std::net::SocketAddr) -> String {
    format!(
        r#"
        [session]
        allowed_return_hosts = ["good.example"]
        [[route]]
        name = "site"
        upstream = "http://{up}"
        public_paths = ["/public"]
        [[route]]
        name = "staff"
        path = "/staff"
        upstream = "http://{up}"
        allow_users = ["alice"]
        [[route]]
        name = "admin"
        path = "/admin"
        upstream = "http://{up}"
        allow_groups = ["admins"]
        "#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_never_open_a_protected_path() {
    let up = EchoUpstream::start().await;
    path_tricks_are_refused(&protected_site(up.addr).await).await;
}

/// The path tricks on `gw` (HTTP/1.1 bytes, or HTTP/2 `:path` over TLS, see `support::h2`).
pub(crate) async fn path_tricks_are_refused(gw: &TestGateway) {
    let open = h2::request(gw, "GET", "/public/page", &[])
        .await
        .expect("sent");
    assert_eq!(
        open.status, 200,
        "the control case: the public path is open"
    );
    let tricks = [
        "/public/../admin",
        "/public/..%2fadmin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/%2e%2e/admin",
        "//admin",
        "/admin;/public",
        "/admin;jsessionid=x",
        "/admin?x=/public",
        "/admin%23/public",
        "/public%2f..%2fadmin",
        "/public%5c..%5cadmin",
        "/public/%252e%252e/admin",
        "/public%252f..%252fadmin",
        "/public/%2e%2e%2fadmin",
        "/public/.%2e/admin",
        "/public/./../admin",
        "/public\\..\\admin",
        "/PUBLIC/../admin",
        "/public/..;/admin",
        "/public/%00/../admin",
    ];
    for trick in tricks {
        let json = [("accept", "application/json")];
        // A target HTTP/2 cannot carry in `:path` never reaches the gateway from any h2 client.
        let Some(resp) = h2::request(gw, "GET", trick, &json).await else {
            continue;
        };
        assert!(
            matches!(resp.status, 400 | 401),
            "{trick}: {} must be refused, got {}",
            trick,
            resp.body
        );
        assert!(
            !resp.body.contains("\"upstream\""),
            "{trick} reached the upstream"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_is_302_for_pages_and_401_for_the_rest() {
    let up = EchoUpstream::start().await;
    no_session_answers(&protected_site(up.addr).await).await;
}

/// 302 for pages, 401 for the rest, on `gw` over whatever [`client`] negotiates with it.
pub(crate) async fn no_session_answers(gw: &TestGateway) {
    let cases: &[(&str, Headers, u16)] = &[
        ("GET", &[("sec-fetch-mode", "navigate")], 302),
        ("GET", &[("accept", "text/html,application/xhtml+xml")], 302),
        ("HEAD", &[("accept", "text/html")], 302),
        ("GET", &[("accept", "application/json")], 401),
        ("GET", &[("sec-fetch-mode", "cors"), ("accept", "*/*")], 401),
        ("POST", &[("accept", "text/html")], 401),
        ("DELETE", &[], 401),
    ];
    for (method, headers, want) in cases {
        let mut req = client().request(method.parse().expect("method"), gw.url("/docs/x?q=1&r=2"));
        for (k, v) in *headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.version(), h2::version(gw));
        assert_eq!(resp.status().as_u16(), *want, "{method} {headers:?}");
        if *want == 302 {
            assert_eq!(
                resp.headers()["location"],
                "/passkeys/login?return_to=%2Fdocs%2Fx%3Fq%3D1%26r%3D2"
            );
        } else if *method != "HEAD" {
            let body: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(body["error"], "unauthenticated");
            assert_eq!(
                body["login_url"],
                "/passkeys/login?return_to=%2Fdocs%2Fx%3Fq%3D1%26r%3D2"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_lists_by_user_and_group() {
    let up = EchoUpstream::start().await;
    let gw = protected_site(up.addr).await;
    let mut people = Vec::new();
    for (name, groups) in [
        ("alice", vec![]),
        ("bob", vec!["admins"]),
        ("carol", vec!["staff"]),
    ] {
        let (_, token) = enroll(&gw.gw, name, &groups).await;
        let mut browser = Browser::new(&gw.base());
        assert_eq!(browser.register(Some(&token), "K").await.status, 201);
        people.push((name, browser));
    }
    let expected = [
        // (user, path, status)
        ("alice", "/staff/x", 200),
        ("alice", "/admin/x", 403),
        ("bob", "/staff/x", 403),
        ("bob", "/admin/x", 200),
        ("carol", "/staff/x", 403),
        ("carol", "/admin/x", 403),
        ("carol", "/docs", 200),
    ];
    for (who, path, status) in expected {
        let browser = &mut people
            .iter_mut()
            .find(|(n, _)| *n == who)
            .expect("person")
            .1;
        let answer = browser.send(Method::GET, path, None).await;
        assert_eq!(answer.status.as_u16(), status, "{who} {path}");
        if status == 403 {
            assert_eq!(answer.body["error"], "forbidden");
        }
    }
    // A refused navigation gets a page, not JSON.
    let carol = &people[2].1;
    let page = client()
        .get(gw.url("/admin/x"))
        .header("cookie", carol.cookie.clone().expect("cookie"))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .expect("request");
    assert_eq!(page.status(), 403);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/html"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_to_only_leads_home_or_to_allowed_hosts() {
    let up = EchoUpstream::start().await;
    return_to_leads_home_or_to_allowed_hosts(&protected_site(up.addr).await).await;
}

/// The `return_to` table through sign-ins on `gw`.
pub(crate) async fn return_to_leads_home_or_to_allowed_hosts(gw: &TestGateway) {
    let (_, token) = enroll(&gw.gw, "alice", &[]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    let cases = [
        ("//evil.com", "/"),
        ("/\\evil.com", "/"),
        ("\\/evil.com", "/"),
        ("/%5Cevil.com", "/"),
        ("%2F%2Fevil.com", "/"),
        ("https:evil.com", "/"),
        ("http://evil.com", "/"),
        ("https://good.example@evil.com", "/"),
        ("https://good.example.evil.com", "/"),
        ("javascript:alert(1)", "/"),
        ("data:text/html,x", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("/ok%0d%0aX: y", "/"),
        ("/\tevil.com", "/"),
        ("/\t/evil.com", "/"),
        (" //evil.com", "/"),
        ("/docs?page=2", "/docs?page=2"),
        ("https://good.example/x", "https://good.example/x"),
    ];
    for (return_to, want) in cases {
        browser.cookie = None;
        let (id, options) = browser.begin_login(Some("alice")).await;
        let credential = browser.assert(options);
        let answer = browser.complete_login(&id, &credential, return_to).await;
        assert_eq!(answer.status, 200, "{return_to:?}");
        assert_eq!(answer.body["redirect_to"], want, "{return_to:?}");
    }
}

/// With a real session, a client's own identity headers are replaced by the gateway's: the
/// upstream sees exactly one value, the true one, on every kind of route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_headers_next_to_a_real_session_are_replaced() {
    let up = EchoUpstream::start().await;
    forged_headers_are_replaced(&TestGateway::app(up.addr, "").await).await;
}

/// The forged-header check on a world of [`crate::support::app_routes`]. The app's own cookies
/// around the session cookie reach the upstream without it, in one `Cookie` header, however the
/// client split them (HTTP/2 sends one field per pair).
pub(crate) async fn forged_headers_are_replaced(gw: &TestGateway) {
    let (alice, token) = enroll(&gw.gw, "alice", &["staff"]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    let cookie = browser.cookie.clone().expect("cookie");
    let cookies = format!("app=1; {cookie}; theme=dark");
    for path in ["/app/x", "/public-route", "/app/public/y"] {
        let forged = [
            ("Cookie", cookies.as_str()),
            ("X-Passkey-User", "mallory"),
            ("x_passkey_user", "mallory"),
            ("X-PASSKEY-USER-ID", "1"),
            ("X-Passkey-Assertion", "forged.token.here"),
            ("Remote-User", "mallory"),
            ("X-Forwarded-User", "mallory"),
        ];
        let resp = h2::request(gw, "GET", path, &forged).await.expect("sent");
        assert_eq!(resp.status, 200, "{path}");
        let seen: Echoed = serde_json::from_str(&resp.body).expect("echo");
        assert_eq!(seen.headers["cookie"], vec!["app=1; theme=dark"], "{path}");
        assert_eq!(seen.headers["x-passkey-user"], vec!["alice"], "{path}");
        assert_eq!(
            seen.headers["x-passkey-user-id"],
            vec![alice.id.to_string()],
            "{path}"
        );
        assert_eq!(seen.headers["x-passkey-assertion"].len(), 1);
        assert_ne!(seen.headers["x-passkey-assertion"][0], "forged.token.here");
        for absent in ["x_passkey_user", "remote-user", "x-forwarded-user"] {
            assert!(
                !seen.headers.contains_key(absent),
                "{path}: {absent} leaked"
            );
        }
    }
    // And nothing of a client's reaches anything under /passkeys/ (never proxied at all).
    let me = browser.get("/passkeys/me").await;
    assert_eq!(me.body["username"], json!("alice"));
}
