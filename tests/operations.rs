//! Operating the gateway (issue 15): the admin listener's `/metrics` after scripted traffic,
//! parsed as Prometheus text; `/healthz` and `/readyz`, including an outage that begins after
//! start and readiness that waits for the listener to accept.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::passkeys::{enroll, Browser};
use crate::support::{client, metrics_text, EchoUpstream, TestGateway};

/// A scrape, parsed by a Prometheus text-format parser.
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    async fn fetch(admin: SocketAddr) -> Scrape {
        let text = metrics_text(admin).await;
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Scrape(prometheus_parse::Scrape::parse(lines).expect("valid exposition"))
    }

    /// The value of the sample named `metric` (with or without `_total`) carrying `labels`.
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.samples.iter().find_map(|s| {
            let named = s.metric == metric || s.metric == format!("{metric}_total");
            let labelled = labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
            if !(named && labelled) {
                return None;
            }
            match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            }
        })
    }
}

/// Scrapes until `done` holds (the request counters are bumped when a request's log line is
/// written, just after its response went out), or fails after a deadline.
async fn scrape_until(admin: SocketAddr, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = Scrape::fetch(admin).await;
        if done(&scrape) || Instant::now() > deadline {
            return scrape;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_done() {
    let upstream = EchoUpstream::start().await;
    let world = TestGateway::app(upstream.addr, "").await;
    let admin = world.admin_http().await;
    let (_, token) = enroll(&world.gw, "alice", &[]).await;
    let mut browser = Browser::new(&world.base());
    assert_eq!(browser.register(Some(&token), "laptop").await.status, 201);
    // Three sign-ins; each replaces (revokes) the session before it.
    for _ in 0..3 {
        assert_eq!(browser.login("alice").await.status, 200);
    }
    // Two refusals: a response replayed on a ceremony that is already spent.
    for _ in 0..2 {
        let (id, options) = browser.begin_login(Some("alice")).await;
        let credential = browser.assert(options);
        let first = browser.complete_login(&id, &credential, "/app").await;
        assert_eq!(first.status, 200);
        let replay = browser.complete_login(&id, &credential, "/app").await;
        assert!(replay.status.is_client_error(), "{:?}", replay.status);
    }
    // Five proxied 2xx on route `app`, one refused there (no cookie).
    for _ in 0..5 {
        assert_eq!(browser.get("/app/hello").await.status, 200);
    }
    let anonymous = client()
        .get(world.url("/app/hello"))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 401);

    let app_2xx = [("route", "app"), ("class", "2xx")];
    let scrape = scrape_until(admin, |s| {
        s.value("passkey_gateway_requests", &app_2xx) == Some(5.0)
    })
    .await;
    let login = |outcome| [("kind", "login"), ("outcome", outcome)];
    assert_eq!(
        scrape.value("passkey_gateway_requests", &app_2xx),
        Some(5.0)
    );
    assert_eq!(
        scrape.value(
            "passkey_gateway_requests",
            &[("route", "app"), ("class", "4xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("passkey_gateway_ceremonies", &login("success")),
        Some(5.0)
    );
    assert_eq!(
        scrape.value("passkey_gateway_ceremonies", &login("failure")),
        Some(2.0)
    );
    assert_eq!(
        scrape.value(
            "passkey_gateway_ceremonies",
            &[("kind", "registration"), ("outcome", "success")]
        ),
        Some(1.0)
    );
    // The enrollment's session and four replaced by the next sign-in; the last one lives.
    assert_eq!(
        scrape.value("passkey_gateway_session_revocations", &[]),
        Some(5.0)
    );
    assert_eq!(
        scrape.value("passkey_gateway_sessions_stored", &[]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("passkey_gateway_sessions_cached", &[]),
        Some(1.0)
    );
    assert!(
        scrape
            .value("passkey_gateway_store_commits", &[])
            .unwrap_or(0.0)
            >= 7.0
    );
    assert_eq!(
        scrape.value("passkey_gateway_config_reloads", &[("outcome", "failure")]),
        Some(0.0)
    );
    assert!(scrape.0.samples.iter().any(|s| s
        .metric
        .starts_with("passkey_gateway_request_duration_seconds")));
    assert!(scrape
        .0
        .samples
        .iter()
        .any(|s| s.metric.starts_with("passkey_gateway_build_info")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_ceremonies_and_upstream_errors_are_counted() {
    // An upstream nobody listens on: bind a port, then free it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let world = TestGateway::in_front_of(dead_addr, "ceremony_rate_per_minute = 2").await;
    let admin = world.admin_http().await;
    let mut browser = Browser::new(&world.base());
    let mut limited = 0;
    for _ in 0..4 {
        let answer = browser.post("/passkeys/login/begin", json!({})).await;
        if answer.status == 429 {
            limited += 1;
        }
    }
    assert_eq!(limited, 2);
    let down = client().get(world.url("/")).send().await.expect("get");
    assert_eq!(down.status(), 502);
    let scrape = scrape_until(admin, |s| {
        s.value("passkey_gateway_upstream_errors", &[("route", "public")]) == Some(1.0)
    })
    .await;
    assert_eq!(scrape.value("passkey_gateway_rate_limited", &[]), Some(2.0));
    assert_eq!(
        scrape.value("passkey_gateway_upstream_errors", &[("route", "public")]),
        Some(1.0)
    );
}

async fn get(url: String) -> (u16, String) {
    let response = client().get(url).send().await.expect("get");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_an_outage_that_begins_after_start_and_says_why() {
    let upstream = EchoUpstream::start().await;
    let world = TestGateway::app(upstream.addr, "").await;
    let admin = world.admin_http().await;
    assert_eq!(get(format!("http://{admin}/healthz")).await.0, 200);
    let (status, body) = get(format!("http://{admin}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("store: ok") && body.contains("listeners: ok"),
        "{body}"
    );

    // The data directory disappears under the running gateway: nothing it writes there (keys,
    // the admin socket, a new store file) would survive, so it is not ready.
    let data = world.data.path().to_path_buf();
    let moved = data.with_extension("moved");
    std::fs::rename(&data, &moved).expect("move the data dir away");
    let (status, body) = get(format!("http://{admin}/readyz")).await;
    std::fs::rename(&moved, &data).expect("move it back");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("data_dir: FAIL") && body.contains("cannot be written"),
        "{body}"
    );
    assert!(body.contains(&data.display().to_string()), "{body}");

    // Back: ready again, with no restart.
    assert_eq!(get(format!("http://{admin}/readyz")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_until_the_listener_accepts() {
    let data = tempfile::tempdir().expect("tempdir");
    // A port that is free now; nothing listens on it until the test binds it below.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let text = crate::support::config(
        "",
        "[[route]]\nname = \"app\"\nupstream = \"http://127.0.0.1:9\"\n",
    )
    .replace("{port}", &port.to_string())
    .replace("{data_dir}", &data.path().display().to_string());
    let config =
        passkey_gateway::Config::from_toml(&data.path().join("g.toml"), &text).expect("config");
    let gw = passkey_gateway::Gateway::new(config).expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = listener.local_addr().expect("addr");
    tokio::spawn(passkey_gateway::admin::serve_admin_http(
        listener,
        gw.clone(),
    ));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let announce = {
        let gw = gw.clone();
        tokio::spawn(async move {
            passkey_gateway::service_manager::announce_when_listening(&gw, &[addr]).await
        })
    };
    let (status, body) = get(format!("http://{admin}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("listeners: FAIL"), "{body}");
    assert!(!announce.is_finished());

    let _bound = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind the port");
    tokio::time::timeout(Duration::from_secs(10), announce)
        .await
        .expect("announced once the port accepts")
        .expect("task");
    let (status, body) = get(format!("http://{admin}/readyz")).await;
    assert_eq!(status, 200, "{body}");
}
