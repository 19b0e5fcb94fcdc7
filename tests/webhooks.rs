//! Webhooks: a receiver in the test gets signed bodies that verify (and only the kinds it asked
//! for); a receiver that fails gets retries of the same delivery; a receiver that hangs holds
//! its delivery while sign-ins go on completing, and the bounded queue drops the oldest.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::support::passkeys::{enroll, Browser};
use crate::support::{metrics_text, EchoUpstream, TestGateway};

const SECRET: &str = "test-secret-0123456789abcdef";

/// What the receiver was sent.
#[derive(Clone, Debug)]
struct Delivery {
    delivery: String,
    kind: String,
    signature: String,
    body: Vec<u8>,
}

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Mode {
    Ok,
    /// 503 to the first N attempts, then 200.
    FailFirst(usize),
    /// Holds every request until released.
    Hang,
}

struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Delivery>>>,
    changed: watch::Receiver<usize>,
    release: watch::Sender<bool>,
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, changed) = watch::channel(0usize);
        let (release, released) = watch::channel(false);
        let (store, count_tx) = (seen.clone(), Arc::new(count_tx));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (store, count_tx, released) =
                    (store.clone(), count_tx.clone(), released.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (store, count_tx, mut released) =
                            (store.clone(), count_tx.clone(), released.clone());
                        async move {
                            let header = |name: &str| {
                                req.headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_string()
                            };
                            let (delivery, kind, signature) = (
                                header("x-passkey-gateway-delivery"),
                                header("x-passkey-gateway-event"),
                                header("x-passkey-gateway-signature"),
                            );
                            let body = req.into_body().collect().await.expect("body").to_bytes();
                            let attempt = {
                                let mut seen = store.lock().expect("lock");
                                seen.push(Delivery {
                                    delivery,
                                    kind,
                                    signature,
                                    body: body.to_vec(),
                                });
                                seen.len()
                            };
                            count_tx.send_replace(attempt);
                            let status = match mode {
                                Mode::Ok => 200,
                                Mode::FailFirst(n) if attempt <= n => 503,
                                Mode::FailFirst(_) => 200,
                                Mode::Hang => {
                                    let _ = released.wait_for(|r| *r).await;
                                    200
                                }
                            };
                            let mut response = hyper::Response::new(Full::new(Bytes::new()));
                            *response.status_mut() =
                                hyper::StatusCode::from_u16(status).expect("status");
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            seen,
            changed,
            release,
        }
    }

    /// Waits until at least `n` requests arrived (or fails after a deadline).
    async fn wait_for(&mut self, n: usize) -> Vec<Delivery> {
        tokio::time::timeout(Duration::from_secs(20), self.changed.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} deliveries within the deadline"))
            .expect("receiver alive");
        self.seen.lock().expect("lock").clone()
    }
}

/// Checks the signature header as a receiver would: recompute, compare.
fn verifies(d: &Delivery) -> bool {
    let Some((t, v1)) = d
        .signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&d.body);
    let Ok(claimed) = hex::decode(v1) else {
        return false;
    };
    mac.verify_slice(&claimed).is_ok()
}

async fn world(receiver: SocketAddr, kinds: &str, extra: &str) -> (EchoUpstream, TestGateway) {
    let upstream = EchoUpstream::start().await;
    let hook = format!(
        "[events]\n{extra}\n[[events.webhook]]\nurl = \"http://{receiver}/hook\"\nkinds = {kinds}\nsecret = \"{SECRET}\"\n"
    );
    let world = TestGateway::app(upstream.addr, &hook).await;
    (upstream, world)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_signed_bodies_of_the_kinds_it_asked_for() {
    let mut receiver = Receiver::start(Mode::Ok).await;
    let (_up, world) = world(receiver.addr, r#"["passkey_registered", "login"]"#, "").await;
    let (_, token) = enroll(&world.gw, "alice", &[]).await;
    let mut alice = Browser::new(&world.base());
    assert_eq!(alice.register(Some(&token), "laptop").await.status, 201);
    assert_eq!(alice.login("alice").await.status, 200);

    let got = receiver.wait_for(2).await;
    assert_eq!(
        got.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(),
        ["passkey_registered", "login"]
    );
    for d in &got {
        assert!(verifies(d), "signature does not verify: {d:?}");
        let body: Value = serde_json::from_slice(&d.body).expect("JSON body");
        assert_eq!(body["kind"], d.kind.as_str());
        assert_eq!(body["id"].to_string(), d.delivery);
        assert!(body["user_id"].is_string());
    }
    // A tampered body does not verify.
    let mut forged = got[1].clone();
    forged.body = forged
        .body
        .iter()
        .map(|b| if *b == b'1' { b'2' } else { *b })
        .collect();
    assert!(!verifies(&forged));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_retries_of_the_same_delivery() {
    let mut receiver = Receiver::start(Mode::FailFirst(2)).await;
    let (_up, world) = world(
        receiver.addr,
        r#"["user_created"]"#,
        "retry_backoff = \"20ms\"",
    )
    .await;
    enroll(&world.gw, "alice", &[]).await;
    let got = receiver.wait_for(3).await;
    assert_eq!(got.len(), 3);
    assert!(got
        .iter()
        .all(|d| d.delivery == got[0].delivery && d.kind == "user_created"));
    assert!(got.iter().all(verifies));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_never_holds_up_sign_ins_and_the_queue_stays_bounded() {
    let mut receiver = Receiver::start(Mode::Hang).await;
    let (_up, world) = world(
        receiver.addr,
        r#"["login"]"#,
        "queue_size = 2\ntimeout = \"300s\"",
    )
    .await;
    let admin = world.admin_http().await;
    let (_, token) = enroll(&world.gw, "alice", &[]).await;
    let mut alice = Browser::new(&world.base());
    assert_eq!(alice.register(Some(&token), "laptop").await.status, 201);
    assert_eq!(alice.login("alice").await.status, 200);
    // The first delivery is now held open by the receiver.
    receiver.wait_for(1).await;

    // Sign-ins go on completing while it is held: none of them waits for the receiver.
    for _ in 0..5 {
        assert_eq!(alice.login("alice").await.status, 200);
    }
    assert_eq!(
        receiver.seen.lock().expect("lock").len(),
        1,
        "still the one held delivery"
    );
    assert!(!*receiver.release.borrow());

    // Five more events on a queue of two: the four oldest were dropped, and counted.
    let dropped = "passkey_gateway_webhook_deliveries_total{outcome=\"dropped\"} 4";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics_text(admin).await;
        if text.contains(dropped) {
            break;
        }
        assert!(Instant::now() < deadline, "no drops counted:\n{text}");
        tokio::task::yield_now().await;
    }

    // Released: the held delivery completes, then the two that waited.
    receiver.release.send_replace(true);
    let got = receiver.wait_for(3).await;
    assert!(got.iter().all(verifies));
}
