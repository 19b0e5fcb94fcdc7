//! HTTP/2 to browsers over TLS (issue 17): the TLS listener offers ALPN `h2` and `http/1.1`, the
//! upstream request stays HTTP/1.1, and every policy table of the HTTP/1.1 tests holds for h2
//! requests too (`:authority` is the routing host, `:path` the target, `cookie` may arrive in
//! several fields). The tables are the HTTP/1.1 tests' own, run on a TLS world where
//! `support::client` negotiates h2 and `support::h2::request` speaks raw h2.

use tempfile::TempDir;

use crate::account_rules::other_origins_are_refused;
use crate::policy::{
    forged_headers_are_replaced, no_session_answers, path_tricks_are_refused, protected_routes,
    return_to_leads_home_or_to_allowed_hosts,
};
use crate::proxying::echoes_within_a_few_attempts;
use crate::support::h2::{self, tls_connect};
use crate::support::tls::{test_ca, tls_config};
use crate::support::{app_routes, client, client_builder, EchoUpstream, Echoed, TestGateway};

/// A gateway with `routes` behind TLS; the certificate's directory lives as long as it.
async fn over_tls(routes: &str) -> (TestGateway, TempDir) {
    let pem = tempfile::tempdir().expect("tempdir");
    let leaf = test_ca().leaf(pem.path(), "gateway");
    (
        TestGateway::start(&tls_config("", routes, &leaf)).await,
        pem,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_gives_browsers_h2_and_keeps_http1() {
    let up = EchoUpstream::start().await;
    let (gw, _pem) = over_tls(&app_routes(up.addr, "")).await;
    for (http, version) in [
        (client(), http::Version::HTTP_2),
        (
            client_builder().http1_only().build().expect("client"),
            http::Version::HTTP_11,
        ),
    ] {
        let resp = http.get(gw.url("/x?y=1")).send().await.expect("request");
        assert_eq!((resp.version(), resp.status().as_u16()), (version, 200));
        let seen: Echoed = resp.json().await.expect("echo");
        // The upstream request is HTTP/1.1 with `Host` from `:authority` and the target `:path`.
        assert_eq!(seen.path, "/x?y=1");
        let authority = format!("localhost:{}", gw.addr.port());
        assert_eq!(seen.headers["host"], vec![authority.clone()], "{version:?}");
        assert_eq!(seen.header("x-forwarded-host"), Some(authority.as_str()));
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    }
    // A `Host` beside `:authority` that names another host is refused, not routed by either
    // (pingora 0.9.1 answers 400 as it accepts the stream; `proxy::inbound` would too).
    let request = http::Request::get(gw.url("/x"))
        .header("host", "admin.example")
        .body(())
        .expect("request");
    let resp = h2::exchange(gw.addr, request).await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(!resp.body.contains("\"upstream\""), "{}", resp.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_never_open_a_protected_path_over_h2() {
    let up = EchoUpstream::start().await;
    path_tricks_are_refused(&over_tls(&protected_routes(up.addr)).await.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_is_302_for_pages_and_401_for_the_rest_over_h2() {
    let up = EchoUpstream::start().await;
    no_session_answers(&over_tls(&protected_routes(up.addr)).await.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_to_only_leads_home_or_to_allowed_hosts_over_h2() {
    let up = EchoUpstream::start().await;
    let (gw, _pem) = over_tls(&protected_routes(up.addr)).await;
    return_to_leads_home_or_to_allowed_hosts(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_headers_and_split_cookies_over_h2() {
    let up = EchoUpstream::start().await;
    let (gw, _pem) = over_tls(&app_routes(up.addr, "")).await;
    forged_headers_are_replaced(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_requests_from_other_origins_are_refused_over_h2() {
    let up = EchoUpstream::start().await;
    let (gw, _pem) = over_tls(&app_routes(up.addr, "")).await;
    other_origins_are_refused(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_upgrade_over_http1_on_the_tls_listener() {
    let up = EchoUpstream::start().await;
    let (gw, _pem) = over_tls(&app_routes(up.addr, "")).await;
    let url = format!("wss://localhost:{}/ws", gw.addr.port());
    echoes_within_a_few_attempts(|| async {
        let tls = tls_connect(gw.addr, &[b"http/1.1"]).await;
        let (ws, resp) = tokio_tungstenite::client_async(url.as_str(), tls)
            .await
            .expect("websocket handshake");
        assert_eq!(resp.status(), 101);
        ws
    })
    .await;
}
