//! Session expiry through the real request path, on cached sessions: a session idle for
//! `session.idle_timeout` is refused, a session in constant use is refused at
//! `session.absolute_timeout`, and neither request deletes it: the upkeep does. Timeouts are
//! configured in seconds, so these tests wait on the wall clock, in bounded loops on the
//! condition (the gateway's own listing, or the refusal itself).

use std::time::{Duration, Instant};

use passkey_gateway::gateway::unix_now;
use passkey_gateway::store::hash_secret;

use crate::support::passkeys::{enroll, Browser};
use crate::support::{EchoUpstream, TestGateway};

/// Signs `name` in on `gw`; the browser holds the session, which the login put in the cache.
async fn signed_in(gw: &TestGateway, name: &str) -> Browser {
    let (_, token) = enroll(&gw.gw, name, &[]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);
    assert_eq!(browser.get("/app/x").await.status, 200);
    browser
}

fn cookie_hash(browser: &Browser) -> passkey_gateway::store::SecretHash {
    let cookie = browser.cookie.as_deref().expect("signed in");
    hash_secret(cookie.split_once('=').expect("pair").1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_refused_and_the_upkeep_deletes_it() {
    let up = EchoUpstream::start().await;
    // Timeouts in whole seconds: 3 s leaves a loaded machine a second or two between requests.
    let session = "[session]\nidle_timeout = \"3s\"\nabsolute_timeout = \"1h\"\n";
    let gw = TestGateway::app(up.addr, session).await;
    let mut idle = signed_in(&gw, "ida").await;
    let mut busy = signed_in(&gw, "bo").await;
    assert_eq!(gw.gw.sessions().cached(), 2, "both sessions are cached");
    let ida = gw
        .gw
        .store()
        .user_by_name("ida")
        .await
        .expect("read")
        .expect("user");

    // `busy` keeps using its session; `idle` does not, until the gateway's listing (which never
    // touches a session) no longer shows it.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gw
        .gw
        .sessions()
        .list(Some(ida.id), unix_now())
        .await
        .expect("list")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the idle session never expired");
        assert_eq!(
            busy.get("/app/x").await.status,
            200,
            "a session in use stays"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        idle.get("/app/x").await.status,
        401,
        "idle past the timeout"
    );
    assert_eq!(busy.get("/app/x").await.status, 200);
    assert!(
        gw.gw
            .store()
            .session(cookie_hash(&idle))
            .await
            .expect("read")
            .is_some(),
        "a request does not delete it"
    );

    gw.gw.upkeep_once(unix_now()).await;
    let store = &gw.gw.store();
    assert!(store
        .session(cookie_hash(&idle))
        .await
        .expect("read")
        .is_none());
    assert!(store
        .session(cookie_hash(&busy))
        .await
        .expect("read")
        .is_some());
    assert_eq!(busy.get("/app/x").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_use_is_refused_at_its_absolute_timeout() {
    let up = EchoUpstream::start().await;
    let session = "[session]\nidle_timeout = \"3s\"\nabsolute_timeout = \"6s\"\n";
    let gw = TestGateway::app(up.addr, session).await;
    let mut browser = signed_in(&gw, "abe").await;
    let hash = cookie_hash(&browser);
    let record = gw
        .gw
        .store()
        .session(hash)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(record.expires_at - record.created_at, 6);

    // Used every 100 ms, far more often than the idle timeout, until refused (bounded).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last_accepted = record.created_at;
    let refused_by = loop {
        assert!(Instant::now() < deadline, "a session in use never expired");
        let before = unix_now();
        let status = browser.get("/app/x").await.status;
        if status == 401 {
            break unix_now();
        }
        assert_eq!(status, 200);
        last_accepted = before;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        last_accepted >= record.created_at + 3,
        "use kept it past one idle timeout (accepted until {} s)",
        last_accepted - record.created_at
    );
    assert!(
        refused_by >= record.expires_at,
        "refused at {} s, before its absolute timeout",
        refused_by - record.created_at
    );
    // Still in the file (reads hide it already): a request does not delete it, the upkeep does.
    assert!(stored(&gw, hash).await, "a request does not delete it");
    gw.gw.upkeep_once(unix_now()).await;
    assert!(!stored(&gw, hash).await, "the upkeep deletes it");
}

/// Whether the store file still holds the session, expired or not.
async fn stored(gw: &TestGateway, hash: passkey_gateway::store::SecretHash) -> bool {
    let expiring = gw.gw.store().expiring_sessions(i64::MAX, i64::MAX).await;
    expiring.expect("scan").iter().any(|s| s.id_hash == hash)
}
