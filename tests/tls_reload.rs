//! The TLS certificate swapped by a reload (`passkey-gateway reload`): new files at the same
//! paths, or new paths, are served to new connections; a request in flight on a connection made
//! before finishes; a broken certificate or a key that is not the certificate's is refused with
//! the file, key and reason while the old certificate keeps serving; TLS off needs a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::reload::{held_upstream, reload};
use crate::support::tls::{served, test_ca, tls_config, Leaf};
use crate::support::{client, config, EchoUpstream, TestGateway};

fn routes(echo: std::net::SocketAddr, held: std::net::SocketAddr) -> String {
    format!(
        "[[route]]\nname = \"held\"\npath = \"/held\"\nupstream = \"http://{held}\"\naccess = \"public\"\n\
         [[route]]\nname = \"public\"\nupstream = \"http://{echo}\"\naccess = \"public\"\n"
    )
}

/// `from`'s certificate and key copied over `to`'s files.
fn copy_over(from: &Leaf, to: &Leaf) {
    std::fs::copy(&from.cert, &to.cert).expect("copy cert");
    std::fs::copy(&from.key, &to.key).expect("copy key");
}

/// The certificate a new connection to `world` is served.
async fn served_now(world: &TestGateway) -> Vec<u8> {
    let response = client()
        .get(world.url("/x"))
        .send()
        .await
        .expect("TLS request");
    assert_eq!(response.status(), 200);
    served(&response)
}

/// Rewrites the config file with `text`, placeholders filled as `TestGateway::start` does.
fn rewrite(world: &TestGateway, text: &str) {
    let text = text
        .replace("{port}", &world.addr.port().to_string())
        .replace("{data_dir}", &world.data.path().display().to_string());
    std::fs::write(&world.config_path, text).expect("rewrite the config");
}

/// A reload that must be refused, and what it said.
async fn refused(world: &TestGateway) -> String {
    let (ok, _, err) = reload(world).await;
    assert!(!ok, "the reload was applied");
    err
}

/// Two certificates, and the files the config names (`live`), holding the first for now.
struct Certificates {
    first: Leaf,
    second: Leaf,
    live: Leaf,
    _dir: tempfile::TempDir,
}

fn certificates() -> Certificates {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = test_ca();
    let (first, second) = (ca.leaf(dir.path(), "first"), ca.leaf(dir.path(), "second"));
    let live = ca.leaf(dir.path(), "live");
    copy_over(&first, &live);
    Certificates {
        first,
        second,
        live,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_new_certificate_and_keeps_connections_in_flight() {
    let Certificates {
        first,
        second,
        live,
        _dir,
    } = certificates();
    let echo = EchoUpstream::start().await;
    let (held, release, arrived) = held_upstream().await;
    let text = tls_config("", &routes(echo.addr, held), &live);
    let world = TestGateway::start(&text).await;
    assert_eq!(served_now(&world).await, first.der);

    // A request in flight on a connection made with the first certificate.
    let url = world.url("/held/x");
    let in_flight = tokio::spawn(async move {
        let response = client().get(url).send().await.expect("held request");
        (response.status(), served(&response))
    });
    // New connections all through the reload; every handshake must complete.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop) = (world.url("/x"), stop.clone());
            let known = [first.der.clone(), second.der.clone()];
            tokio::spawn(async move {
                let mut done = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let response = client()
                        .get(&url)
                        .send()
                        .await
                        .expect("no failed handshake");
                    assert_eq!(response.status(), 200);
                    assert!(known.contains(&served(&response)));
                    done += 1;
                }
                done
            })
        })
        .collect();
    wait_for(|| arrived.load(Ordering::SeqCst) == 1, "the held request").await;

    // New files at the same paths.
    copy_over(&second, &live);
    let (ok, out, err) = reload(&world).await;
    assert!(ok, "reload failed: {err}");
    assert!(out.contains("TLS certificate"), "{out}");
    assert_eq!(served_now(&world).await, second.der);

    release.send(true).expect("release");
    let (status, certificate) = in_flight.await.expect("task");
    assert_eq!(status, 200, "the request in flight finished");
    assert_eq!(certificate, first.der, "on the connection it started on");
    stop.store(true, Ordering::SeqCst);
    for client in load {
        assert!(client.await.expect("no failed request across the reload") > 0);
    }

    // New paths.
    rewrite(&world, &tls_config("", &routes(echo.addr, held), &first));
    let (ok, _, err) = reload(&world).await;
    assert!(ok, "reload failed: {err}");
    assert_eq!(served_now(&world).await, first.der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_certificate_is_refused_and_the_old_one_keeps_serving() {
    let Certificates {
        first,
        second,
        live,
        _dir: pem,
    } = certificates();
    let echo = EchoUpstream::start().await;
    let routes = routes(echo.addr, echo.addr);
    let world = TestGateway::start(&tls_config("", &routes, &live)).await;
    let file = world.config_path.display().to_string();

    // Not PEM at all.
    std::fs::write(&live.cert, "not a certificate").expect("write");
    let err = refused(&world).await;
    assert!(
        err.contains(&file) && err.contains("`server.tls.cert`") && err.contains("no CERTIFICATE"),
        "{err}"
    );
    assert_eq!(served_now(&world).await, first.der);

    // A certificate with another certificate's key.
    std::fs::copy(&second.cert, &live.cert).expect("copy");
    let err = refused(&world).await;
    assert!(
        err.contains(&file)
            && err.contains("`server.tls.key`")
            && err.contains("does not fit the certificate"),
        "{err}"
    );
    assert_eq!(served_now(&world).await, first.der);

    // A file that is gone.
    let gone = Leaf {
        cert: pem.path().join("gone.crt"),
        ..first.clone()
    };
    rewrite(&world, &tls_config("", &routes, &gone));
    let err = refused(&world).await;
    assert!(
        err.contains("gone.crt") && err.contains("cannot read"),
        "{err}"
    );

    // TLS off is a listener change: a restart.
    rewrite(&world, &config("", &routes));
    let err = refused(&world).await;
    assert!(
        err.contains("`server.tls`") && err.contains("needs a restart"),
        "{err}"
    );
    assert_eq!(served_now(&world).await, first.der);
}

/// Polls `done` until it holds; fails after 10 s.
async fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} never arrived");
        tokio::task::yield_now().await;
    }
}
