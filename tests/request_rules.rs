//! Hostile request forms, as tables: request targets, hosts, `Connection` tokens, headers
//! upstreams trust, the gateway's cookie in upstream responses, and the client address behind
//! a trusted proxy. What decides each row is what the upstream saw, byte for byte.

use serde_json::json;

use crate::support::passkeys::{enroll, Browser};
use crate::support::raw::{self, RawResponse};
use crate::support::raw_upstream::{RawHead, RawUpstream};
use crate::support::{config, TestGateway};

/// `/` public and `/admin` for signed-in users, both to `up`; `extra` goes after `[webauthn]`.
async fn public_root_private_admin(up: &RawUpstream, server: &str, extra: &str) -> TestGateway {
    TestGateway::start(&config(
        server,
        &format!(
            r#"
            {extra}
            [[route]]
            name = "public"
            upstream = "http://{0}"
            access = "public"
            [[route]]
            name = "admin"
            path = "/admin"
            upstream = "http://{0}"
            "#,
            up.addr
        ),
    ))
    .await
}

/// Sends raw bytes; panics if the gateway hangs up without answering.
async fn send(gw: &TestGateway, head: &[u8]) -> RawResponse {
    raw::try_request_bytes(gw.addr, head)
        .await
        .unwrap_or_else(|| panic!("no response to {:?}", String::from_utf8_lossy(head)))
}

/// How common upstream parsers read a request target's path: as an origin-form server does
/// (up to `?`), and as `urlsplit`/Werkzeug do (any `scheme:` dropped, then any `//authority`).
/// Each reading is then percent-decoded and its dot segments resolved.
fn readings(target: &str) -> Vec<String> {
    let origin = target;
    let no_scheme = strip_scheme(target).unwrap_or(target);
    let no_authority = match no_scheme.strip_prefix("//") {
        Some(rest) => &rest[rest.find('/').unwrap_or(rest.len())..],
        None => no_scheme,
    };
    [origin, no_scheme, no_authority]
        .iter()
        .map(|t| canonical(t.split(['?', '#']).next().unwrap_or_default()))
        .collect()
}

/// `scheme:` as RFC 3986 spells it (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`).
fn strip_scheme(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then_some(rest)
}

/// Decoded, `\` as `/`, dot segments resolved, empty segments dropped.
fn canonical(path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment.split(';').next().unwrap_or_default() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

fn reads_as_admin(head: &RawHead) -> bool {
    readings(head.target())
        .iter()
        .any(|p| p == "/admin" || p.starts_with("/admin/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_target_reaches_admin_without_a_session() {
    let up = RawUpstream::start(&[]).await;
    let gw = public_root_private_admin(&up, "", "").await;
    let h = format!("Host: localhost:{}", gw.addr.port());
    const LH: &str = "Host: localhost";
    // (request line, extra header lines, expected status, target the upstream must see)
    // (request line, header lines, expected status, the target the upstream must see)
    let rows: &[(&[u8], &str, u16, Option<&str>)] = &[
        (b"GET x:/admin HTTP/1.1", &h, 400, None),
        (b"GET a-b.c+d:/admin HTTP/1.1", &h, 400, None),
        (b"GET x:/%61dmin HTTP/1.1", &h, 400, None),
        (b"GET http:/admin HTTP/1.1", &h, 400, None),
        (b"GET http:admin HTTP/1.1", &h, 400, None),
        (b"GET https://localhost/admin HTTP/1.1", LH, 401, None),
        (b"GET http://localhost//admin HTTP/1.1", LH, 401, None),
        (b"GET http://localhost/%61dmin HTTP/1.1", LH, 401, None),
        (b"GET http://u@localhost/admin HTTP/1.1", LH, 400, None),
        (b"GET http://[::1]/admin HTTP/1.1", "", 401, None),
        (b"GET HTTP://localhost/admin HTTP/1.1", LH, 401, None),
        (b"GET Http://localhost/ HTTP/1.1", LH, 200, Some("/")),
        // pingora refuses an absolute-form authority that disagrees with `Host`.
        (b"GET http://localhost/x HTTP/1.1", &h, 400, None),
        (b"GET //admin HTTP/1.1", &h, 401, None),
        (b"GET /\\admin HTTP/1.1", &h, 400, None),
        (b"GET /%61dmin HTTP/1.1", &h, 401, None),
        (b"GET /x/..%2fadmin HTTP/1.1", &h, 400, None),
        (b"GET /x/../admin HTTP/1.1", &h, 401, None),
        (b"GET /x;/../admin HTTP/1.1", &h, 401, None),
        (b"GET * HTTP/1.1", &h, 400, None),
        (b"GET host:80 HTTP/1.1", &h, 400, None),
        (
            b"CONNECT localhost:80 HTTP/1.1",
            "Host: localhost:80",
            405,
            None,
        ),
        (b"GET /ad\tmin HTTP/1.1", &h, 400, None),
        (b"GET /adm\xc3\xa9n HTTP/1.1", &h, 400, None),
        (b"GET /admin\x7f HTTP/1.1", &h, 400, None),
        // Absolute-form without `Host`: the authority routes and becomes `Host` upstream.
        (b"GET http://localhost/admin HTTP/1.1", "", 401, None),
        (b"GET http://localhost/ HTTP/1.1", "", 200, Some("/")),
        (
            b"GET http://localhost/x?q=1 HTTP/1.1",
            LH,
            200,
            Some("/x?q=1"),
        ),
        (b"GET http://localhost HTTP/1.1", LH, 200, Some("/")),
        (b"GET //x//y HTTP/1.1", &h, 200, Some("/x//y")),
        (
            b"GET /x/../admin/../y HTTP/1.1",
            &h,
            200,
            Some("/x/../admin/../y"),
        ),
        (b"GET /public HTTP/1.1", &h, 200, Some("/public")),
    ];
    for &(line, headers, status, forwarded) in rows {
        let mut head = line.to_vec();
        if !headers.is_empty() {
            head.extend_from_slice(b"\r\n");
            head.extend_from_slice(headers.as_bytes());
        }
        let label = String::from_utf8_lossy(line).into_owned();
        let resp = send(&gw, &head).await;
        assert_eq!(resp.status, status, "{label}: {}", resp.body);
        let seen = up.take();
        for head in &seen {
            assert!(
                !reads_as_admin(head),
                "{label}: upstream saw {:?}",
                head.line
            );
            assert!(
                head.target().starts_with('/') && !head.target().starts_with("//"),
                "{label}: the upstream gets origin-form, got {:?}",
                head.line
            );
        }
        let targets: Vec<&str> = seen.iter().map(RawHead::target).collect();
        assert_eq!(
            targets,
            forwarded.into_iter().collect::<Vec<_>>(),
            "{label}"
        );
        if line.starts_with(b"GET http://localhost/") {
            let hosts: Vec<&str> = seen.iter().flat_map(|h| h.all("host")).collect();
            assert!(
                hosts.iter().all(|h| *h == "localhost"),
                "{label}: {hosts:?}"
            );
        }
    }
    let options = send(&gw, format!("OPTIONS * HTTP/1.1\r\n{h}").as_bytes()).await;
    assert_eq!(options.status, 204);
    assert!(up.take().is_empty(), "OPTIONS * is answered by the gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routed_host_is_the_host_upstream() {
    let up = RawUpstream::start(&[]).await;
    let gw = TestGateway::start(&config(
        "",
        &format!(
            r#"
            [[route]]
            name = "admin-host"
            host = "admin.localhost"
            upstream = "http://{0}"
            [[route]]
            name = "public"
            upstream = "http://{0}"
            access = "public"
            "#,
            up.addr
        ),
    ))
    .await;
    // (request head, expected status, the Host the upstream must see when forwarded)
    let rows: &[(&str, u16, Option<&str>)] = &[
        ("GET / HTTP/1.1\r\nHost: admin.localhost", 401, None),
        ("GET / HTTP/1.1\r\nHost: admin.localhost.", 401, None),
        ("GET / HTTP/1.1\r\nHost: ADMIN.LocalHost", 401, None),
        ("GET / HTTP/1.1\r\nHost: Admin.localhost:8080", 401, None),
        ("GET / HTTP/1.1\r\nHost: admin.localhost.:8080", 401, None),
        (
            "GET http://admin.localhost/ HTTP/1.1\r\nHost: admin.localhost",
            401,
            None,
        ),
        // pingora refuses an absolute-form authority that disagrees with `Host`.
        (
            "GET http://admin.localhost/ HTTP/1.1\r\nHost: localhost",
            400,
            None,
        ),
        (
            "GET http://localhost/ HTTP/1.1\r\nHost: admin.localhost",
            400,
            None,
        ),
        ("GET http://ADMIN.localhost./ HTTP/1.1", 401, None),
        ("GET / HTTP/1.1\r\nHost: admin.localhost..", 400, None),
        ("GET / HTTP/1.1\r\nHost: admin.localhost@evil", 400, None),
        ("GET / HTTP/1.1\r\nHost: admin localhost", 400, None),
        ("GET / HTTP/1.1\r\nHost: admin.localhost:99999", 400, None),
        ("GET / HTTP/1.1\r\nHost: ", 400, None),
        ("GET / HTTP/1.1", 400, None),
        (
            "GET / HTTP/1.1\r\nHost: localhost\r\nHost: admin.localhost",
            400,
            None,
        ),
        ("GET / HTTP/1.0", 200, None),
        ("GET / HTTP/1.1\r\nHost: localhost", 200, Some("localhost")),
        (
            "GET / HTTP/1.1\r\nHost: [::1]:8080",
            200,
            Some("[::1]:8080"),
        ),
        ("GET http://localhost/ HTTP/1.1", 200, Some("localhost")),
        ("GET http://LOCALHOST:1/ HTTP/1.1", 200, Some("LOCALHOST:1")),
    ];
    for (head, status, host) in rows {
        let resp = send(&gw, head.as_bytes()).await;
        assert_eq!(resp.status, *status, "{head:?}: {}", resp.body);
        let seen = up.take();
        if *status != 200 {
            assert!(seen.is_empty(), "{head:?} reached the upstream");
            continue;
        }
        assert_eq!(seen.len(), 1, "{head:?}");
        if let Some(host) = host {
            assert_eq!(seen[0].all("host"), [*host], "{head:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_may_not_name_what_the_gateway_controls() {
    let up = RawUpstream::start(&[]).await;
    let gw = public_root_private_admin(&up, "", "").await;
    for tokens in [
        "X-Passkey-Assertion",
        "keep-alive, X-Forwarded-For",
        "x_passkey_user",
        "X-Real-IP",
        "X-Forwarded-Host",
        "Host",
        "Remote-User",
        "a, b, c, d, e, f, g, h, i, j, k",
    ] {
        let head = format!("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: {tokens}");
        let resp = send(&gw, head.as_bytes()).await;
        assert_eq!(resp.status, 400, "{tokens}: {}", resp.body);
        let body: serde_json::Value = serde_json::from_str(&resp.body).expect("json");
        assert_eq!(body["error"], "bad_connection_header", "{tokens}");
        assert!(up.take().is_empty(), "{tokens} reached the upstream");
    }
    let resp = send(
        &gw,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, x-app",
    )
    .await;
    assert_eq!(resp.status, 200, "ordinary tokens pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_cannot_set_the_gateway_cookie() {
    let up = RawUpstream::start(&[
        "Set-Cookie: app=1; Path=/",
        "Set-Cookie: passkey_session=fixed-by-app; Path=/",
        "Set-Cookie: __Host-passkey_session=fixed-by-app; Path=/; Secure",
        "Set-Cookie: theme=dark",
    ])
    .await;
    let gw = public_root_private_admin(&up, "", "").await;
    let resp = send(&gw, b"GET / HTTP/1.1\r\nHost: localhost").await;
    assert_eq!(resp.status, 200);
    let cookies: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["app=1; Path=/", "theme=dark"]);
}

/// Headers upstreams trust, each sent by the client: on a public route, an authenticated one
/// and a WebSocket upgrade, none reaches the upstream with the client's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_upstreams_trust_never_carry_the_clients_value() {
    let up = RawUpstream::start(&[]).await;
    let gw = public_root_private_admin(
        &up,
        "",
        "[identity]\nstrip_headers = [\"X-Internal-Secret\"]",
    )
    .await;
    let (_, token) = enroll(&gw.gw, "alice", &[]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    let cookie = browser.cookie.clone().expect("cookie");
    let forged = [
        ("X-Real-IP", "6.6.6.6"),
        ("X_Real_IP", "6.6.6.6"),
        ("X-Forwarded-Port", "1"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Original-URL", "/admin"),
        ("X_Original_URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-Auth-Request-User", "mallory"),
        ("X-Auth-Request-Email", "mallory@evil.example"),
        ("X-Auth-Request-Groups", "admins"),
        ("Forwarded", "for=6.6.6.6;host=evil.example"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("X-Internal-Secret", "forged"),
        ("x_internal_secret", "forged"),
    ];
    let forged_lines: String = forged
        .iter()
        .map(|(n, v)| format!("\r\n{n}: {v}"))
        .collect();
    let upgrade = "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13";
    let cases = [
        ("public", format!("GET /x HTTP/1.1\r\nHost: localhost{forged_lines}")),
        (
            "authenticated",
            format!("GET /admin/x HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}{forged_lines}"),
        ),
        (
            "websocket",
            format!("GET /admin/ws HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}{upgrade}{forged_lines}"),
        ),
    ];
    for (label, head) in cases {
        let resp = send(&gw, head.as_bytes()).await;
        let want = if label == "websocket" { 101 } else { 200 };
        assert_eq!(resp.status, want, "{label}: {}", resp.body);
        let seen = up.take();
        assert_eq!(seen.len(), 1, "{label}");
        let seen = &seen[0];
        for (name, value) in forged {
            let folded = name.to_ascii_lowercase().replace('_', "-");
            for spelling in [name.to_ascii_lowercase(), folded] {
                assert!(
                    !seen.all(&spelling).contains(&value),
                    "{label}: {spelling}: {value} reached the upstream"
                );
            }
        }
        assert_eq!(seen.all("x-real-ip"), ["127.0.0.1"], "{label}");
        assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"], "{label}");
        let port = gw.addr.port().to_string();
        assert_eq!(seen.all("x-forwarded-port"), [port.as_str()], "{label}");
        assert_eq!(seen.all("x-forwarded-proto"), ["http"], "{label}");
        assert_eq!(seen.all("x-forwarded-host"), ["localhost"], "{label}");
    }
}

/// Behind a proxy that adds its own `X-Forwarded-For` line (HAProxy), the client's own line
/// does not choose the rate-limit key: the rightmost untrusted address does, and it is the
/// address the upstream is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_forwarded_line_does_not_pick_the_rate_limit_key() {
    let up = RawUpstream::start(&[]).await;
    let gw = public_root_private_admin(
        &up,
        "trusted_proxies = [\"127.0.0.1/32\"]\nceremony_rate_per_minute = 3",
        "",
    )
    .await;
    let begin = |spoofed: usize, real: &str| {
        let body = json!({}).to_string();
        format!(
            "POST /passkeys/login/begin HTTP/1.1\r\nHost: localhost\r\n\
             X-Forwarded-For: 198.51.100.{spoofed}\r\nX-Forwarded-For: {real}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut statuses = Vec::new();
    for spoofed in 0..6 {
        let head = begin(spoofed, "203.0.113.9");
        // The body follows the blank line the helper would add: send it as part of the head.
        let resp = raw_post(&gw, &head).await;
        statuses.push(resp.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    let other = raw_post(&gw, &begin(99, "203.0.113.10")).await;
    assert_eq!(other.status, 200, "another real client has its own budget");

    let head = "GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 198.51.100.1\r\n\
                X-Forwarded-For: 203.0.113.9";
    assert_eq!(send(&gw, head.as_bytes()).await.status, 200);
    let seen = up.take();
    assert_eq!(seen[0].all("x-real-ip"), ["203.0.113.9"]);
    assert_eq!(seen[0].all("x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
}

/// A whole request with a body, sent as is.
async fn raw_post(gw: &TestGateway, request: &str) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let request = request.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf).await;
    raw::parse_response(&String::from_utf8_lossy(&buf))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_on_own_pages_only_over_https() {
    let up = RawUpstream::start(&[]).await;
    let gw = public_root_private_admin(&up, "trusted_proxies = [\"127.0.0.1/32\"]", "").await;
    let hsts = |resp: &RawResponse| resp.header("strict-transport-security").map(str::to_string);
    let over_https = send(
        &gw,
        b"GET /passkeys/login HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: https",
    )
    .await;
    assert_eq!(over_https.status, 200);
    assert_eq!(hsts(&over_https).as_deref(), Some("max-age=31536000"));
    let plain = send(&gw, b"GET /passkeys/login HTTP/1.1\r\nHost: localhost").await;
    assert_eq!(plain.status, 200);
    assert_eq!(hsts(&plain), None);

    let untrusted = public_root_private_admin(&up, "", "").await;
    let claimed = send(
        &untrusted,
        b"GET /passkeys/login HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-Proto: https",
    )
    .await;
    assert_eq!(hsts(&claimed), None, "only a trusted proxy can say https");
}
