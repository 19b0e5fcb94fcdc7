//! Live reload through `passkey-gateway reload` (the admin socket), under load: a valid change
//! (a new route, a new allow list) applies to the next request while requests in flight finish;
//! an invalid file is refused with the file, key and reason and the old config keeps serving;
//! a `listen` change is refused as needing a restart.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::support::passkeys::{enroll, Browser};
use crate::support::{client, config, metrics_text, EchoUpstream, TestGateway};

/// An upstream that answers each request only once the test releases it: a request held
/// "in flight" for as long as the test needs.
pub(crate) async fn held_upstream() -> (SocketAddr, watch::Sender<bool>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (release, released) = watch::channel(false);
    let arrived = Arc::new(AtomicUsize::new(0));
    let seen = arrived.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut released = released.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = released.wait_for(|r| *r).await;
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nheld",
                    )
                    .await;
            });
        }
    });
    (addr, release, arrived)
}

fn routes(echo: SocketAddr, held: SocketAddr, allow: &str, extra: &str) -> String {
    format!(
        r#"
        [[route]]
        name = "public"
        path = "/pub"
        upstream = "http://{echo}"
        access = "public"
        [[route]]
        name = "held"
        path = "/held"
        upstream = "http://{held}"
        access = "public"
        [[route]]
        name = "app"
        path = "/app"
        upstream = "http://{echo}"
        allow_users = ["{allow}"]
        {extra}
        "#
    )
}

/// Rewrites the gateway's config file, placeholders filled as `TestGateway::start` does.
fn rewrite(world: &TestGateway, server: &str, rest: &str) {
    let text = config(server, rest)
        .replace("{port}", &world.addr.port().to_string())
        .replace("{data_dir}", &world.data.path().display().to_string());
    std::fs::write(&world.config_path, text).expect("rewrite the config");
}

/// `passkey-gateway reload`: (success, stdout, stderr).
pub(crate) async fn reload(world: &TestGateway) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_passkey-gateway"))
        .arg("--config")
        .arg(&world.config_path)
        .arg("reload")
        .output()
        .await
        .expect("run the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_to_the_next_request_while_requests_in_flight_complete() {
    let echo = EchoUpstream::start().await;
    let (held, release, arrived) = held_upstream().await;
    let world = TestGateway::start(&config("", &routes(echo.addr, held, "alice", ""))).await;
    let (_, token) = enroll(&world.gw, "alice", &[]).await;
    let mut alice = Browser::new(&world.base());
    assert_eq!(alice.register(Some(&token), "laptop").await.status, 201);
    assert_eq!(alice.get("/app/x").await.status, 200);
    assert_eq!(
        client()
            .get(world.url("/new/x"))
            .send()
            .await
            .expect("get")
            .status(),
        404
    );

    // Requests in flight: held at the upstream until after the reload.
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let url = world.url("/held/x");
            tokio::spawn(async move { client().get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    // And a steady stream of requests across the reload, none of which may fail.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..6)
        .map(|_| {
            let (url, stop) = (world.url("/pub/"), stop.clone());
            tokio::spawn(async move {
                let http = client();
                let mut done = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let status = http
                        .get(&url)
                        .send()
                        .await
                        .expect("no dropped request")
                        .status();
                    assert_eq!(status, 200);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while arrived.load(Ordering::SeqCst) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the held requests never arrived"
        );
        tokio::task::yield_now().await;
    }

    // The change: a new public route, and `/app` now for bob only.
    let new_route = format!(
        "[[route]]\nname = \"new\"\npath = \"/new\"\nupstream = \"http://{}\"\naccess = \"public\"\n",
        echo.addr
    );
    rewrite(&world, "", &routes(echo.addr, held, "bob", &new_route));
    let (ok, out, err) = reload(&world).await;
    assert!(ok, "reload failed: {err}");
    assert!(out.contains("4 route(s)"), "{out}");

    // The next requests see it.
    assert_eq!(
        client()
            .get(world.url("/new/x"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    assert_eq!(alice.get("/app/x").await.status, 403);
    // The requests that were in flight finish, with the routes they started with.
    release.send(true).expect("release");
    for request in in_flight {
        assert_eq!(request.await.expect("task").expect("answered"), 200);
    }
    stop.store(true, Ordering::SeqCst);
    for client in load {
        assert!(client.await.expect("no failed request under load") > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_or_restart_only_change_is_refused_and_the_old_config_keeps_serving() {
    let echo = EchoUpstream::start().await;
    let (held, _release, _) = held_upstream().await;
    let world = TestGateway::start(&config("", &routes(echo.addr, held, "alice", ""))).await;
    let admin = world.admin_http().await;

    // A key that does not exist: refused with the file, the line, the key and the reason.
    rewrite(&world, "", &routes(echo.addr, held, "bob", "bogus = 1"));
    let (ok, _, err) = reload(&world).await;
    assert!(!ok);
    let file = world.config_path.display().to_string();
    assert!(
        err.contains(&file) && err.contains("bogus") && err.contains("unknown field"),
        "{err}"
    );

    // A change of listen address: named as needing a restart, nothing applied.
    let new_route = format!(
        "[[route]]\nname = \"new\"\npath = \"/new\"\nupstream = \"http://{}\"\naccess = \"public\"\n",
        echo.addr
    );
    rewrite(
        &world,
        "listen = \"127.0.0.1:1\"",
        &routes(echo.addr, held, "bob", &new_route),
    );
    let (ok, _, err) = reload(&world).await;
    assert!(!ok);
    assert!(
        err.contains("`server.listen`") && err.contains("needs a restart"),
        "{err}"
    );
    // Not half-applied: the new route in the same file is not there.
    assert_eq!(
        client()
            .get(world.url("/new/x"))
            .send()
            .await
            .expect("get")
            .status(),
        404
    );
    assert_eq!(
        client()
            .get(world.url("/pub/x"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );

    let metrics = metrics_text(admin).await;
    assert!(
        metrics.contains("passkey_gateway_config_reloads_total{outcome=\"failure\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("passkey_gateway_config_reloads_total{outcome=\"success\"} 0"));
}
