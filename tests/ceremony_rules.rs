//! Ceremony rules found by probing: a credential id registered twice is a conflict, two tabs
//! signing in at once with one authenticator do not lock its owner out, and `login/begin` for a
//! name that cannot sign in looks like one for a real user.

use std::collections::{BTreeMap, BTreeSet};

use passkey_gateway::gateway::unix_now;
use reqwest::StatusCode;
use serde_cbor_2::Value as Cbor;
use serde_json::{json, Value};
use webauthn_rs::prelude::RegisterPublicKeyCredential;

use crate::support::passkeys::{enroll, Answer, Browser};
use crate::support::{client, config, EchoUpstream, TestGateway};

/// The same credential presented for another ceremony: `fresh` (made for that ceremony, so its
/// client data names the right challenge) carrying `existing`'s credential id and key, as an
/// authenticator that answers with a credential it already holds would (attestation `none`).
fn replayed(existing: &RegisterPublicKeyCredential, fresh: &RegisterPublicKeyCredential) -> Value {
    let object: Cbor =
        serde_cbor_2::from_slice(&existing.response.attestation_object).expect("cbor");
    let Cbor::Map(mut object) = object else {
        panic!("the attestation object is a map")
    };
    object.insert(Cbor::Text("fmt".into()), Cbor::Text("none".into()));
    object.insert(Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new()));
    let mut forged = fresh.clone();
    forged.id = existing.id.clone();
    forged.raw_id = existing.raw_id.clone();
    forged.response.attestation_object = serde_cbor_2::to_vec(&Cbor::Map(object)).expect("cbor");
    serde_json::to_value(forged).expect("json")
}

async fn complete(browser: &mut Browser, session_id: &str, credential: Value) -> Answer {
    browser
        .post(
            "/passkeys/register/complete",
            json!({"session_id": session_id, "credential": credential}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_id_registered_twice_is_a_conflict_for_the_same_user_and_another() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (_, token) = enroll(&gw.gw, "cora", &[]).await;
    let mut cora = Browser::new(&gw.base());
    let (id, options) = cora.begin_registration(Some(&token), "K").await;
    let first = cora.create(options);
    let stored = complete(&mut cora, &id, serde_json::to_value(&first).expect("json")).await;
    assert_eq!(stored.status, 201);

    // Cora again, from her account page: the credential is one she registered already.
    let (id, options) = cora.begin_registration(None, "again").await;
    let fresh = cora.create(options);
    let again = complete(&mut cora, &id, replayed(&first, &fresh)).await;
    assert_eq!(
        (again.status.as_u16(), again.body["error"].as_str()),
        (409, Some("credential_exists")),
        "{:?}",
        again.body
    );

    // Another user's enrollment presenting Cora's credential.
    let (_, token) = enroll(&gw.gw, "otto", &[]).await;
    let mut otto = Browser::new(&gw.base());
    let (id, options) = otto.begin_registration(Some(&token), "K").await;
    let fresh = otto.create(options);
    let theirs = complete(&mut otto, &id, replayed(&first, &fresh)).await;
    assert_eq!(
        (theirs.status.as_u16(), theirs.body["error"].as_str()),
        (409, Some("credential_exists")),
        "{:?}",
        theirs.body
    );
    assert!(
        theirs.set_cookie.is_none(),
        "no session for a refused enrollment"
    );
}

/// Posts a `login/complete` as its own tab (no cookie jar shared with the browser).
async fn complete_login(gw: &TestGateway, session_id: &str, credential: &Value) -> StatusCode {
    client()
        .post(gw.url("/passkeys/login/complete"))
        .header("origin", gw.base())
        .json(&json!({"session_id": session_id, "credential": credential}))
        .send()
        .await
        .expect("request")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_signing_in_at_once_with_one_authenticator_do_not_lock_it() {
    let up = EchoUpstream::start().await;
    let gw = TestGateway::app(up.addr, "").await;
    let (tess, token) = enroll(&gw.gw, "tess", &[]).await;
    let mut browser = Browser::new(&gw.base());
    assert_eq!(browser.register(Some(&token), "K").await.status, 201);

    for round in 0..10 {
        // Both tabs begin, the authenticator signs the first then the second (counts n+1, n+2).
        let (first_id, first_options) = browser.begin_login(Some("tess")).await;
        let (second_id, second_options) = browser.begin_login(Some("tess")).await;
        let first = serde_json::to_value(browser.assert(first_options)).expect("json");
        let second = serde_json::to_value(browser.assert(second_options)).expect("json");
        let (a, b) = if round == 0 {
            // The order that looks like a clone: the later count arrives first.
            let b = complete_login(&gw, &second_id, &second).await;
            (complete_login(&gw, &first_id, &first).await, b)
        } else {
            tokio::join!(
                complete_login(&gw, &first_id, &first),
                complete_login(&gw, &second_id, &second)
            )
        };
        for status in [a, b] {
            assert!(status == 200 || status == 400, "round {round}: {status}");
        }
        assert!(a == 200 || b == 200, "round {round}: one tab signs in");
        if round == 0 {
            assert_eq!((a, b), (StatusCode::BAD_REQUEST, StatusCode::OK));
        }
    }
    let passkeys = gw.gw.store().passkeys_of(tess.id).await.expect("read");
    assert!(!passkeys[0].clone_suspected, "the passkey is not flagged");
    browser.cookie = None;
    assert_eq!(
        browser.login("tess").await.status,
        200,
        "and still signs in"
    );
}

/// The set of keys at every path of a JSON value (arrays: the union over their items).
fn shape(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{path}.{key}");
                out.insert(here.clone());
                shape(child, &here, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                shape(item, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

fn shape_of(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    shape(value, "", &mut out);
    out
}

fn allowed(answer: &Answer) -> Vec<String> {
    answer.body["publicKey"]["allowCredentials"]
        .as_array()
        .expect("allowCredentials")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_for_a_name_that_cannot_sign_in_looks_like_a_real_users() {
    let up = EchoUpstream::start().await;
    // Some 350 begins from one address: no rate limit here.
    let routes = format!(
        "[[route]]\nname = \"app\"\nupstream = \"http://{}\"\n",
        up.addr
    );
    let gw = TestGateway::start(&config("ceremony_rate_per_minute = 0", &routes)).await;
    // Real users with one, two or three passkeys: 12, 5 and 3 of them.
    let mut real_counts = Vec::new();
    for (i, count) in [1; 12].into_iter().chain([2; 5]).chain([3; 3]).enumerate() {
        let name = format!("real{i}");
        let (_, token) = enroll(&gw.gw, &name, &[]).await;
        let mut browser = Browser::new(&gw.base());
        assert_eq!(browser.register(Some(&token), "K").await.status, 201);
        for _ in 1..count {
            assert_eq!(browser.register(None, "more").await.status, 201);
        }
        real_counts.push(count);
    }
    gw.gw.ceremonies().refresh_decoys().await.expect("sample");

    let mut anyone = Browser::new(&gw.base());
    let mut real_shapes = BTreeSet::new();
    let mut real_id_lengths = BTreeSet::new();
    for (i, count) in real_counts.iter().enumerate() {
        let real = anyone
            .post(
                "/passkeys/login/begin",
                json!({"username": format!("real{i}")}),
            )
            .await;
        assert_eq!(allowed(&real).len(), *count);
        real_id_lengths.extend(allowed(&real).iter().map(String::len));
        real_shapes.insert(shape_of(&real.body));
    }

    let mut decoy_counts = BTreeMap::<usize, usize>::new();
    let names = 300;
    for i in 0..names {
        let name = format!("nobody{i}");
        let decoy = anyone
            .post("/passkeys/login/begin", json!({"username": name}))
            .await;
        assert_eq!(decoy.status, 200);
        let shape = shape_of(&decoy.body);
        assert!(
            real_shapes.contains(&shape),
            "{name}: {shape:?} is not among the real shapes {real_shapes:?}"
        );
        let ids = allowed(&decoy);
        assert!(ids.iter().all(|id| real_id_lengths.contains(&id.len())));
        // Stable: asking again for the same name gives the same list.
        if i % 50 == 0 {
            let again = anyone
                .post("/passkeys/login/begin", json!({"username": name}))
                .await;
            assert_eq!(allowed(&again), ids);
        }
        *decoy_counts.entry(ids.len()).or_default() += 1;
    }
    // Drawn like the real users': 60 % one passkey, 25 % two, 15 % three.
    for (count, expected) in [(1, 0.60), (2, 0.25), (3, 0.15)] {
        let share = *decoy_counts.get(&count).unwrap_or(&0) as f64 / names as f64;
        assert!(
            (share - expected).abs() < 0.1,
            "{count} passkey(s): {share:.2} of decoys, {expected} of real users ({decoy_counts:?})"
        );
    }
    assert_eq!(decoy_counts.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);

    // Timing of what `begin` does (store reads, options, ceremony write), called directly: over
    // HTTP, the test client's delayed ACKs (~40 ms) would drown any difference. Interleaved, so
    // load and noise fall on both alike; medians compared.
    let (mut real, mut decoy) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let known = format!("real{}", i % 20);
        let unknown = format!("ghost{i}");
        for (name, times) in [(known, &mut real), (unknown, &mut decoy)] {
            let started = std::time::Instant::now();
            let begun = gw
                .gw
                .ceremonies()
                .begin_login(Some(&name.parse().expect("a valid username")), unix_now())
                .await;
            times.push(started.elapsed());
            assert!(begun.is_ok());
        }
    }
    real.sort();
    decoy.sort();
    let (real, decoy) = (real[100], decoy[100]);
    println!("login/begin median: real user {real:?}, unknown name {decoy:?}");
    let gap = real.abs_diff(decoy);
    assert!(
        gap < std::time::Duration::from_micros(300).max(real / 4),
        "login/begin takes {real:?} for a real user and {decoy:?} for an unknown name"
    );
}
