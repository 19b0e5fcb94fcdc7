//! Forward-auth (`GET /passkeys/auth`) against the gateway directly: one table of URLs decided
//! inline and through both forward-auth dialects with the same result, Traefik's header contract
//! (Traefik is not packaged here), untrusted callers, forward-auth-only routes, `return_to` to a
//! route's host, and the README carrying the snippet files verbatim. The real nginx and Caddy
//! run in `forward_auth_proxies.rs`.

use std::net::SocketAddr;

use passkey_gateway::gateway::unix_now;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::support::fronting::{free_port, snippets_dir};
use crate::support::passkeys::{enroll, Browser};
use crate::support::tls::{test_ca, tls_table, Leaf};
use crate::support::verifier::{verify, Expect};
use crate::support::{client, config, h2, raw, EchoUpstream, TestGateway};

/// The forward-auth world: routes as in `TestGateway::app` but for the host `localhost` only (so
/// another host can have no route), a route for another host, and a forward-auth-only one.
/// Loopback is the trusted proxy; `front_port` is the fronting proxy's origin for WebAuthn.
pub fn gateway_toml(front_port: u16, app: SocketAddr) -> String {
    config(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        &format!(
            r#"
            origins = ["http://localhost:{{port}}", "http://localhost:{front_port}"]
            [[route]]
            name = "public"
            host = "localhost"
            upstream = "http://{app}"
            access = "public"
            [[route]]
            name = "app"
            host = "localhost"
            path = "/app"
            upstream = "http://{app}"
            public_paths = ["/app/public"]
            [[route]]
            name = "admin"
            host = "localhost"
            path = "/admin"
            upstream = "http://{app}"
            allow_groups = ["admins"]
            [[route]]
            name = "other"
            host = "other.localhost"
            upstream = "http://{app}"
            allow_users = ["alice"]
            [[route]]
            name = "only"
            path = "/only"
            forward_auth_only = true
            "#
        ),
    )
}

/// A user enrolled and signed in with a soft authenticator on `base`; returns the cookie pair.
pub async fn signed_in(gw: &TestGateway, base: &str, username: &str, groups: &[&str]) -> String {
    let (_, token) = enroll(&gw.gw, username, groups).await;
    let mut browser = Browser::new(base);
    let registered = browser.register(Some(&token), "key").await;
    assert_eq!(registered.status, 201, "{:?}", registered.body);
    browser.cookie.expect("signed in")
}

/// What a mode decided, in terms both modes share.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Passed; with the identity's (audience, username) when signed in.
    Allow(Option<(String, String)>),
    /// Sign in first, at this login URL.
    Login(String),
    Forbidden,
    NoRoute,
    /// The request line itself was refused (400).
    Refused,
}

struct Case {
    method: &'static str,
    host: &'static str,
    target: &'static str,
    navigation: bool,
    /// `None`: anonymous; else an index into the signed-in cookies (0 bob, 1 alice).
    who: Option<usize>,
}

const fn case(
    method: &'static str,
    host: &'static str,
    target: &'static str,
    navigation: bool,
    who: Option<usize>,
) -> Case {
    Case {
        method,
        host,
        target,
        navigation,
        who,
    }
}

const BOB: Option<usize> = Some(0);
const ALICE: Option<usize> = Some(1);

/// One table, every mode.
const CASES: &[Case] = &[
    case("GET", "localhost", "/", true, None),
    case("GET", "localhost", "/", true, BOB),
    case("GET", "localhost", "/app/x?y=1", true, None),
    case("GET", "localhost", "/app/x?y=1", false, None),
    case("POST", "localhost", "/app/x", true, None),
    case("GET", "localhost", "/app/x", false, BOB),
    case("GET", "localhost", "/app/public/a.css", false, None),
    case("GET", "localhost", "/app/./public/../x", true, None),
    case("GET", "localhost", "/app/public/../x", false, BOB),
    case("GET", "localhost", "//app/x", true, None),
    case("GET", "LOCALHOST.", "/app", false, BOB),
    case("GET", "localhost", "/application", false, None),
    case("GET", "localhost", "/APP/x", false, None),
    case("GET", "localhost", "/admin", true, BOB),
    case("GET", "localhost", "/admin", false, BOB),
    case("GET", "localhost", "/admin/x", false, ALICE),
    case("GET", "localhost", "/admin", false, None),
    case("GET", "localhost", "/admin/..;/app", false, None),
    case("GET", "localhost", "/app%2f..%2fadmin", false, BOB),
    case("GET", "localhost", "/app/%2e%2e/admin", false, BOB),
    case("GET", "localhost", "/app\\..\\admin", false, BOB),
    case("GET", "other.localhost", "/", false, BOB),
    case("GET", "other.localhost", "/", false, ALICE),
    case("GET", "other.localhost", "/x", true, None),
    case("GET", "nowhere.localhost", "/", false, ALICE),
    case("GET", "nowhere.localhost", "/app", false, ALICE),
    case("GET", "bad host", "/app", false, BOB),
];

struct Table {
    gw: TestGateway,
    _echo: EchoUpstream,
    cookies: Vec<String>,
    jwks: Value,
}

impl Table {
    fn accept(navigation: bool) -> &'static str {
        if navigation {
            "text/html,application/xhtml+xml"
        } else {
            "application/json"
        }
    }

    /// (audience, username) of a verified assertion.
    /// An empty header is no identity (forward-auth answers every header of the preset).
    fn identity(&self, token: Option<&str>, user: Option<&str>) -> Option<(String, String)> {
        let token = token.filter(|t| !t.is_empty())?;
        let claims = verify(
            token,
            &self.jwks,
            &Expect {
                iss: &self.gw.base(),
                aud: token_aud(token).as_str(),
                now: unix_now(),
            },
        )
        .expect("the assertion verifies");
        assert_eq!(claims["preferred_username"].as_str(), user);
        Some((token_aud(token), user.unwrap_or_default().to_string()))
    }

    /// The inline decision, over HTTP/1.1 or, on a TLS world, HTTP/2 (`None` when h2 cannot
    /// carry the case's target or host at all).
    async fn inline(&self, c: &Case) -> Option<Outcome> {
        let mut headers = vec![("host", c.host), ("accept", Table::accept(c.navigation))];
        if let Some(i) = c.who {
            headers.push(("cookie", &self.cookies[i]));
        }
        if c.method == "POST" {
            headers.push(("content-length", "0"));
        }
        let r = h2::request(&self.gw, c.method, c.target, &headers).await?;
        Some(match r.status {
            200 => {
                let echoed: Value = serde_json::from_str(&r.body).expect("echo body");
                let header = |n: &str| echoed["headers"][n][0].as_str().map(str::to_string);
                Outcome::Allow(self.identity(
                    header("x-passkey-assertion").as_deref(),
                    header("x-passkey-user").as_deref(),
                ))
            }
            302 => Outcome::Login(r.header("location").expect("location").to_string()),
            401 => Outcome::Login(login_url_of(&r.body)),
            403 => Outcome::Forbidden,
            404 => Outcome::NoRoute,
            400 => Outcome::Refused,
            other => panic!("inline {other}: {}", r.body),
        })
    }

    async fn forward_auth(&self, c: &Case, nginx: bool) -> Outcome {
        let mut req = client()
            .get(self.gw.url("/passkeys/auth"))
            .header("accept", Table::accept(c.navigation));
        req = match nginx {
            true => req
                .header("x-original-url", format!("http://{}{}", c.host, c.target))
                .header("x-original-method", c.method),
            false => req
                .header("x-forwarded-method", c.method)
                .header("x-forwarded-proto", "http")
                .header("x-forwarded-host", c.host)
                .header("x-forwarded-uri", c.target),
        };
        if let Some(i) = c.who {
            req = req.header("cookie", &self.cookies[i]);
        }
        let r = req.send().await.expect("forward-auth answers");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap_or_default();
        let text =
            |h: &HeaderMap, n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(String::from);
        match (status, nginx) {
            (200, _) => Outcome::Allow(self.identity(
                text(&headers, "x-passkey-assertion").as_deref(),
                text(&headers, "x-passkey-user").as_deref(),
            )),
            (302, false) => Outcome::Login(text(&headers, "location").expect("location")),
            (401, false) => Outcome::Login(login_url_of(&body)),
            (401, true) => {
                let login = text(&headers, "x-passkey-login").expect("X-Passkey-Login");
                let redirect = text(&headers, "x-passkey-redirect");
                let navigation = c.navigation && matches!(c.method, "GET" | "HEAD");
                assert_eq!(redirect, navigation.then(|| login.clone()), "{}", c.target);
                Outcome::Login(login)
            }
            (403, true) if body.contains("\"no_route\"") => Outcome::NoRoute,
            (403, _) => Outcome::Forbidden,
            (404, false) => Outcome::NoRoute,
            (400, _) => Outcome::Refused,
            (other, _) => panic!("forward-auth {other}: {body}"),
        }
    }
}

fn login_url_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).expect("json");
    v["login_url"].as_str().expect("login_url").to_string()
}

fn token_aud(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["aud"].as_str().expect("aud").to_string()
}

/// The table's world; over TLS with `leaf` (HTTP/2 to the gateway) when given.
async fn table(leaf: Option<&Leaf>) -> Table {
    let echo = EchoUpstream::start().await;
    let toml = gateway_toml(free_port(), echo.addr);
    let toml = match leaf {
        Some(leaf) => toml
            .replacen(
                "[webauthn]\n",
                &format!("{}[webauthn]\n", tls_table(leaf)),
                1,
            )
            .replace("\"http://localhost:", "\"https://localhost:"),
        None => toml,
    };
    let gw = TestGateway::start(&toml).await;
    let cookies = vec![
        signed_in(&gw, &gw.base(), "bob", &[]).await,
        signed_in(&gw, &gw.base(), "alice", &["admins"]).await,
    ];
    let jwks: Value = client()
        .get(gw.url("/passkeys/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    Table {
        gw,
        _echo: echo,
        cookies,
        jwks,
    }
}

/// The issue's "done when": a URL gets the same decision in both modes (and both dialects).
#[tokio::test]
async fn one_table_of_urls_decides_the_same_in_both_modes() {
    let seen = decides_the_same_in_both_modes(&table(None).await).await;
    // The table exercises every kind of decision, so agreeing is not agreeing on one answer.
    assert_eq!(seen, ["Allow", "Forbidden", "Login", "NoRoute", "Refused"]);
}

/// The same table with the inline requests in HTTP/2 (`:authority` as the host, `:path` as the
/// target) and the forward-auth ones too; cases HTTP/2 cannot carry are left out.
#[tokio::test]
async fn one_table_of_urls_decides_the_same_over_h2() {
    let pem = tempfile::tempdir().expect("tempdir");
    let leaf = test_ca().leaf(pem.path(), "gateway");
    let seen = decides_the_same_in_both_modes(&table(Some(&leaf)).await).await;
    assert_eq!(seen, ["Allow", "Forbidden", "Login", "NoRoute", "Refused"]);
}

/// Each case decided inline and by both forward-auth dialects, which must agree; the kinds of
/// decision seen.
async fn decides_the_same_in_both_modes(t: &Table) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    for c in CASES {
        let Some(inline) = t.inline(c).await else {
            continue;
        };
        let forwarded = t.forward_auth(c, false).await;
        let nginx = t.forward_auth(c, true).await;
        let label = format!(
            "{} {} {} nav={} who={:?}",
            c.method, c.host, c.target, c.navigation, c.who
        );
        assert_eq!(forwarded, inline, "X-Forwarded-* vs inline: {label}");
        assert_eq!(nginx, inline, "X-Original-URL vs inline: {label}");
        seen.insert(
            format!("{inline:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    seen.into_iter().collect()
}

/// Exactly what Traefik's ForwardAuth sends (GET to the address, the original in
/// `X-Forwarded-Method/-Proto/-Host/-Uri/-For`, the client's headers copied), and the answer
/// headers its `authResponseHeaders` copy, as the README's traefik.yml lists them.
#[tokio::test]
async fn traefiks_header_contract() {
    let echo = EchoUpstream::start().await;
    let gw = TestGateway::start(&gateway_toml(free_port(), echo.addr)).await;
    let bob = signed_in(&gw, &gw.base(), "bob", &[]).await;
    let snippet = std::fs::read_to_string(snippets_dir().join("traefik.yml")).expect("snippet");
    let traefik = |uri: &str, accept: &str| {
        client()
            .get(gw.url("/passkeys/auth"))
            .header("X-Forwarded-Method", "GET")
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", "localhost")
            .header("X-Forwarded-Uri", uri.to_string())
            .header("X-Forwarded-For", "198.51.100.7")
            .header("Accept", accept.to_string())
            .header("User-Agent", "Mozilla/5.0")
    };

    let allowed = traefik("/app/x", "*/*")
        .header("cookie", &bob)
        .send()
        .await
        .expect("answer");
    assert_eq!(allowed.status(), 200);
    let identity: Vec<String> = allowed
        .headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("x-passkey-"))
        .collect();
    assert!(identity.contains(&"x-passkey-assertion".to_string()));
    assert!(identity.contains(&"x-passkey-user".to_string()));
    for name in &identity {
        let listed = snippet
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case(&format!("- {name}")));
        assert!(
            listed,
            "{name} is answered but traefik.yml does not copy it"
        );
    }
    assert_eq!(allowed.headers()["x-passkey-user"], "bob");

    let navigation = traefik("/app/x?y=1", "text/html")
        .send()
        .await
        .expect("answer");
    assert_eq!(navigation.status(), 302);
    assert_eq!(
        navigation.headers()["location"],
        "/passkeys/login?return_to=%2Fapp%2Fx%3Fy%3D1"
    );
    let fetch = traefik("/app/x", "application/json")
        .send()
        .await
        .expect("answer");
    assert_eq!(fetch.status(), 401);
    let body: Value = fetch.json().await.expect("json");
    assert_eq!(body["error"], "unauthenticated");
    let forbidden = traefik("/admin", "*/*")
        .header("cookie", &bob)
        .send()
        .await
        .expect("answer");
    assert_eq!(forbidden.status(), 403);

    // A description missing a part, or repeating one, is refused, never guessed at.
    let no_host = client()
        .get(gw.url("/passkeys/auth"))
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Uri", "/app")
        .send()
        .await
        .expect("answer");
    assert_eq!(no_host.status(), 400);
    let twice = traefik("/app", "*/*")
        .header("X-Forwarded-Uri", "/")
        .header("cookie", &bob)
        .send()
        .await
        .expect("answer");
    assert_eq!(twice.status(), 400);
}

/// From outside `server.trusted_proxies` the description is not believed: 403, whatever it
/// says and whoever's cookie comes with it.
#[tokio::test]
async fn untrusted_callers_are_refused() {
    let echo = EchoUpstream::start().await;
    let gw = TestGateway::start(&gateway_toml(free_port(), echo.addr)).await;
    let bob = signed_in(&gw, &gw.base(), "bob", &[]).await;
    let untrusted = reqwest::Client::builder()
        .no_proxy()
        .local_address("127.0.0.3".parse::<std::net::IpAddr>().expect("ip"))
        .build()
        .expect("client");
    let forged = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "localhost"),
        ("x-forwarded-uri", "/app/x"),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-original-url", "http://localhost/app/x"),
        ("x-original-method", "GET"),
    ];
    for cookie in [None, Some(&bob)] {
        let mut req = untrusted.get(format!("http://127.0.0.1:{}/passkeys/auth", gw.addr.port()));
        for (name, value) in forged {
            req = req.header(name, value);
        }
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        let r = req.send().await.expect("answer");
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("x-passkey-assertion").is_none());
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"], "untrusted_proxy");
    }
}

/// A forward-auth-only route is decided for a fronting proxy and never proxied inline.
#[tokio::test]
async fn forward_auth_only_routes_are_not_proxied() {
    let echo = EchoUpstream::start().await;
    let gw = TestGateway::start(&gateway_toml(free_port(), echo.addr)).await;
    let bob = signed_in(&gw, &gw.base(), "bob", &[]).await;
    let head = format!("GET /only/x HTTP/1.1\nHost: nowhere.localhost\nCookie: {bob}");
    let inline = raw::request(gw.addr, &head).await;
    assert_eq!(inline.status, 404);
    let decided = client()
        .get(gw.url("/passkeys/auth"))
        .header("x-original-url", "https://nowhere.localhost/only/x")
        .header("x-original-method", "GET")
        .header("cookie", &bob)
        .send()
        .await
        .expect("answer");
    assert_eq!(decided.status(), 200);
    let token = decided.headers()["x-passkey-assertion"]
        .to_str()
        .expect("ascii");
    assert_eq!(token_aud(token), "only");
}

/// After login the browser may go back to a route's host (https, default port), and nowhere
/// else it was not configured for.
#[tokio::test]
async fn return_to_may_name_a_route_host() {
    let echo = EchoUpstream::start().await;
    let gw = TestGateway::start(&gateway_toml(free_port(), echo.addr)).await;
    let (_, token) = enroll(&gw.gw, "bob", &[]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "key").await.status, 201);
    for (return_to, want) in [
        (
            "https://other.localhost/x?y=1",
            "https://other.localhost/x?y=1",
        ),
        ("https://OTHER.localhost/x", "https://other.localhost/x"),
        ("https://other.localhost:8443/x", "/"),
        ("http://other.localhost/x", "/"),
        ("https://evil.example/x", "/"),
        ("https://other.localhost@evil.example/", "/"),
        ("https://other.localhost.evil.example/", "/"),
        ("//other.localhost/x", "/"),
        ("/\\other.localhost", "/"),
        ("/app/x", "/app/x"),
    ] {
        let (id, options) = browser.begin_login(Some("bob")).await;
        let credential = browser.assert(options);
        let done = browser.complete_login(&id, &credential, return_to).await;
        assert_eq!(done.status, 200, "{:?}", done.body);
        assert_eq!(done.body["redirect_to"], want, "{return_to}");
    }
}

/// Many concurrent decisions for several users, inline and forward-auth interleaved: each answer
/// carries its own user's identity (the assertion cache is per session and audience), and once
/// a logout has returned no decision for that cookie passes.
#[tokio::test]
async fn concurrent_decisions_keep_each_identity() {
    let echo = EchoUpstream::start().await;
    let gw = TestGateway::start(&gateway_toml(free_port(), echo.addr)).await;
    let users = ["ann", "ben", "cat", "dan"];
    let mut browsers = Vec::new();
    for name in users {
        let (_, token) = enroll(&gw.gw, name, &[]).await;
        let mut browser = Browser::new(&gw.base());
        assert_eq!(browser.register(Some(&token), "key").await.status, 201);
        browsers.push(browser);
    }
    let cookies: Vec<String> = browsers
        .iter()
        .map(|b| b.cookie.clone().expect("signed in"))
        .collect();
    let ask = |cookie: String, inline: bool| {
        let http = client();
        let url = if inline {
            gw.url("/app/x")
        } else {
            gw.url("/passkeys/auth")
        };
        async move {
            let r = http
                .get(url)
                .header("cookie", cookie)
                .header("accept", "application/json")
                .header("x-original-url", "http://localhost/app/x")
                .header("x-original-method", "GET")
                .send()
                .await
                .expect("answer");
            let status = r.status().as_u16();
            let user = match (status, inline) {
                (200, true) => {
                    let echoed: crate::support::Echoed = r.json().await.expect("echo");
                    echoed.header("x-passkey-user").map(str::to_string)
                }
                (200, false) => r.headers()["x-passkey-user"]
                    .to_str()
                    .ok()
                    .map(str::to_string),
                _ => None,
            };
            (status, user)
        }
    };
    let mut tasks = Vec::new();
    for round in 0..50 {
        for (i, cookie) in cookies.iter().enumerate() {
            let inline = (round + i) % 2 == 0;
            tasks.push((i, tokio::spawn(ask(cookie.clone(), inline))));
        }
    }
    for (i, task) in tasks {
        let (status, user) = task.await.expect("task");
        assert_eq!(status, 200);
        assert_eq!(user.as_deref(), Some(users[i]));
    }

    // A logout racing with decisions for that cookie: after it returns, nothing passes.
    let racing: Vec<_> = (0..100)
        .map(|i| tokio::spawn(ask(cookies[0].clone(), i % 2 == 0)))
        .collect();
    let out = browsers[0]
        .send(
            reqwest::Method::POST,
            "/passkeys/logout",
            Some(serde_json::json!({})),
        )
        .await;
    assert!(out.status.is_success(), "{:?}", out.body);
    for task in racing {
        let (status, user) = task.await.expect("task");
        assert!(
            (status == 200 && user.as_deref() == Some("ann")) || status == 401,
            "{status} {user:?}"
        );
    }
    for inline in [true, false] {
        let (status, _) = ask(cookies[0].clone(), inline).await;
        assert_eq!(status, 401, "inline={inline}");
    }
    let (status, user) = ask(cookies[1].clone(), false).await;
    assert_eq!((status, user.as_deref()), (200, Some("ben")));
}

/// The README shows each snippet file verbatim, so the proxies the tests run are configured
/// with exactly the README's text.
#[test]
fn the_readme_carries_each_snippet_verbatim() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README");
    for name in ["nginx.conf", "Caddyfile", "traefik.yml"] {
        let text = std::fs::read_to_string(snippets_dir().join(name)).expect("snippet");
        assert!(
            readme.contains(&text),
            "README.md does not include contrib/forward-auth/{name} verbatim"
        );
    }
}
