//! Anonymous clients cannot grow the gateway without bound: live ceremonies are capped (503 with
//! Retry-After beyond), failed sign-ins are tallied per client network, expired ceremonies and
//! old events are purged by upkeep, and rate limits count an IPv6 /64 as one client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{HeaderMap, HeaderValue, Method};
use passkey_gateway::endpoints::{Endpoints, Request};
use passkey_gateway::gateway::unix_now;
use passkey_gateway::Gateway;
use serde_json::{json, Value};

use crate::support::{client, config, EchoUpstream, TestGateway};

const BEGINS: u32 = 10_000;
const FAILED_COMPLETES: u32 = 1_000;
const MAX_LIVE: u64 = 2_000;

/// The i-th anonymous client: half IPv4 addresses, half hosts spread over 500 IPv6 /64s.
fn client_addr(i: u32) -> IpAddr {
    if i % 2 == 0 {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))
    } else {
        let net = u128::from((i / 2) % 500) << 64;
        IpAddr::V6(Ipv6Addr::from(
            (0x2001_0db8_u128 << 96) | net | u128::from(i),
        ))
    }
}

/// A request to one of the gateway's own endpoints, straight to the handler layer.
fn post(path: &str, body: Value, client_ip: IpAddr) -> Request {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    Request {
        method: Method::POST,
        path: path.to_string(),
        headers,
        body: Bytes::from(body.to_string()),
        client_ip: Some(client_ip),
    }
}

/// A well-formed assertion for a credential the gateway has never seen.
fn unknown_credential(i: u32) -> Value {
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let id = b64(&i.to_be_bytes());
    json!({
        "id": id,
        "rawId": id,
        "type": "public-key",
        "response": {
            "authenticatorData": b64(&[0u8; 37]),
            "clientDataJSON": b64(br#"{"type":"webauthn.get"}"#),
            "signature": b64(&[1u8; 64]),
            "userHandle": null
        },
        "extensions": {}
    })
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn begin_many(gw: &Arc<Gateway>) -> (Vec<String>, u32) {
    let endpoints = Arc::new(Endpoints::new(gw.clone()));
    let answers: Vec<_> = stream::iter(0..BEGINS)
        .map(|i| {
            let endpoints = endpoints.clone();
            async move {
                let body = if i % 3 == 0 {
                    json!({"username": format!("nobody{i}")})
                } else {
                    json!({})
                };
                endpoints
                    .handle(post("/passkeys/login/begin", body, client_addr(i)))
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut ids = Vec::new();
    let mut busy = 0;
    for reply in answers {
        match reply.status.as_u16() {
            200 => {
                let body: Value = serde_json::from_slice(&reply.body).expect("json");
                ids.push(body["session_id"].as_str().expect("id").to_string());
            }
            503 => {
                assert!(reply.headers.iter().any(|(n, _)| n == "retry-after"));
                busy += 1;
            }
            other => panic!("login/begin answered {other}"),
        }
    }
    (ids, busy)
}

async fn fail_many(gw: &Arc<Gateway>, ids: &[String]) {
    let endpoints = Arc::new(Endpoints::new(gw.clone()));
    let statuses: Vec<u16> = stream::iter(0..FAILED_COMPLETES)
        .map(|i| {
            let endpoints = endpoints.clone();
            let id = ids[i as usize % ids.len()].clone();
            async move {
                let body = json!({"session_id": id, "credential": unknown_credential(i)});
                let req = post("/passkeys/login/complete", body, client_addr(i * 7 + 1));
                endpoints.handle(req).await.status.as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 400), "every complete fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_floods_stay_bounded_and_upkeep_clears_them() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::start(&config(
        "rate_limit_max_clients = 8192",
        &format!(
            "max_live_ceremonies = {MAX_LIVE}\n[[route]]\nname = \"app\"\nupstream = \"http://{}\"\n",
            up.addr
        ),
    ))
    .await;
    let rss_before = rss_kib();

    let (ids, busy) = begin_many(&gw.gw).await;
    assert_eq!(ids.len() as u64, MAX_LIVE, "exactly the cap was admitted");
    assert_eq!(u64::from(busy), u64::from(BEGINS) - MAX_LIVE);
    fail_many(&gw.gw, &ids).await;

    let store_bytes = std::fs::metadata(gw.gw.store().path().expect("a file store"))
        .expect("store")
        .len();
    let rss_after = rss_kib();
    let events = gw.gw.store().events(100_000).await.expect("events");
    let failures: u64 = events.iter().map(|e| e.count).sum();
    let limiter_keys = gw.gw.limiter().map_or(0, |l| l.clients());
    eprintln!(
        "bounds: store {} KiB, RSS {rss_before} -> {rss_after} KiB, {} event rows for {failures} \
         failures, {limiter_keys} rate-limit keys",
        store_bytes / 1024,
        events.len()
    );
    assert_eq!(failures, u64::from(FAILED_COMPLETES));
    // One row per client network per hour, at most 100 of them plus the overflow row (two
    // periods if the test straddles an hour).
    assert!(events.len() <= 2 * 101, "{} event rows", events.len());
    assert!(limiter_keys <= 8193, "{limiter_keys} rate-limit keys");
    // Measured: ~2.1 MiB with 2,000 live ceremonies and 101 event rows.
    assert!(store_bytes < 8 << 20, "store file {store_bytes} bytes");
    // Measured: 36 -> 51 MiB for this test alone; the bound leaves room for the other tests
    // that share this process.
    assert!(rss_after < 384 << 10, "RSS {rss_after} KiB");

    // Expiry and upkeep: ceremonies gone, events past retention gone.
    let later = unix_now() + 301;
    gw.gw.upkeep_once(later).await;
    assert_eq!(gw.gw.store().ceremony_count().await.expect("count"), 0);
    let retention = gw.gw.config().audit.retention.as_secs() as i64;
    gw.gw.upkeep_once(later + retention + 3600).await;
    assert!(gw.gw.store().events(10).await.expect("events").is_empty());
    let again = Endpoints::new(gw.gw.clone())
        .handle(post("/passkeys/login/begin", json!({}), client_addr(1)))
        .await;
    assert_eq!(again.status, 200, "room again after upkeep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_ceremony_cap_begin_is_503_with_retry_after() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::start(&config(
        "ceremony_rate_per_minute = 0",
        &format!(
            "max_live_ceremonies = 3\n[[route]]\nname = \"app\"\nupstream = \"http://{}\"\n",
            up.addr
        ),
    ))
    .await;
    let http = client();
    let begin = || {
        http.post(gw.url("/passkeys/login/begin"))
            .json(&json!({}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(begin().await.expect("begin").status(), 200);
    }
    let refused = begin().await.expect("begin");
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().ok()),
        Some(Some("15"))
    );
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "busy");
    gw.gw.upkeep_once(unix_now() + 301).await;
    assert_eq!(begin().await.expect("begin").status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ipv6_network_shares_one_rate_limit_key() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::in_front_of(
        up.addr,
        "ceremony_rate_per_minute = 3\ntrusted_proxies = [\"127.0.0.1/32\"]",
    )
    .await;
    let http = client();
    let begin_from = |addr: &'static str| {
        http.post(gw.url("/passkeys/login/begin"))
            .header("x-forwarded-for", addr)
            .json(&json!({}))
            .send()
    };
    for host in ["2001:db8:5:5::1", "2001:db8:5:5::2", "2001:db8:5:5:abcd::3"] {
        assert_eq!(begin_from(host).await.expect("begin").status(), 200);
    }
    let same_net = begin_from("2001:db8:5:5:ffff:ffff:ffff:ffff")
        .await
        .expect("begin");
    assert_eq!(
        same_net.status(),
        429,
        "a new host in the same /64 shares the budget"
    );
    assert!(same_net.headers().contains_key("retry-after"));
    let next_net = begin_from("2001:db8:5:6::1").await.expect("begin");
    assert_eq!(next_net.status(), 200, "another /64 is another client");
    let limiter = gw.gw.limiter().expect("limited");
    assert_eq!(limiter.clients(), 2);
}
