//! Identity tests that span keys, JWKS and assertions. The verifier is the integration tests'
//! (`tests/support/verifier.rs`), independent of our signing code: it reads only the JWKS JSON,
//! rebuilds public keys with `p256` / `ed25519-dalek` and checks the compact JWS by hand, as an
//! upstream app would.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::assertion::IdentityClaims;
use super::keys::{SigningKey, KEY_FILE_NAME};
use super::*;

#[path = "../../tests/support/verifier.rs"]
mod verifier;
use verifier::{b64, with_claim, with_header};

/// The assertion lifetime the tests sign with (the config default).
const DEFAULT_ASSERTION_TTL: Duration = Duration::from_secs(60);

const ISS: &str = "https://app.example.com";
const AUD: &str = "wiki";

fn alice() -> Arc<Identity> {
    Arc::new(Identity {
        user_id: "5f0c1d2e-3a4b-4c5d-8e6f-708192a3b4c5".into(),
        username: "alice".into(),
        display_name: "Alice Liddell".into(),
        email: Some("alice@example.com".into()),
        groups: vec!["admins".into(), "dev".into()],
    })
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// A time on a whole second, so `iat` and the test's arithmetic agree exactly.
fn whole_second_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix(SystemTime::now()))
}

/// Verifies `token` the way an upstream would, with the tests' one independent verifier.
fn verify(token: &str, jwks: &Value, iss: &str, aud: &str, now: u64) -> Result<Value, String> {
    let now = i64::try_from(now).map_err(|e| e.to_string())?;
    verifier::verify(token, jwks, &verifier::Expect { iss, aud, now })
}

/// One verification case: what the upstream is given and what it must conclude.
#[derive(Clone)]
struct Case<'a> {
    name: &'static str,
    token: String,
    jwks: &'a Value,
    iss: &'static str,
    aud: &'static str,
    now: u64,
    want: Result<(), &'static str>,
}

#[test]
fn assertions_verify_independently_and_tampering_is_refused() {
    for alg in [KeyAlgorithm::Es256, KeyAlgorithm::EdDsa] {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = KeyRing::load_or_create(dir.path(), alg).expect("keys");
        let jwks = ring.jwks();
        let signer = AssertionSigner::new(&ring, ISS, DEFAULT_ASSERTION_TTL).expect("signer");
        let now = whole_second_now();
        let t = unix(now);
        let token = signer
            .assertion_at(&alice(), "sid-1", AUD, now)
            .expect("signs");

        let other_dir = tempfile::tempdir().expect("tempdir");
        let other_jwks = KeyRing::load_or_create(other_dir.path(), alg)
            .expect("other keys")
            .jwks();
        let other_alg = match alg {
            KeyAlgorithm::Es256 => "EdDSA",
            KeyAlgorithm::EdDsa => "ES256",
        };

        let base = Case {
            name: "correct claims",
            token: token.clone(),
            jwks: &jwks,
            iss: ISS,
            aud: AUD,
            now: t,
            want: Ok(()),
        };
        let refused = |name, token: String, err| Case {
            name,
            token,
            want: Err(err),
            ..base.clone()
        };
        let cases = [
            base.clone(),
            Case {
                name: "near the end of its life",
                now: t + 59,
                ..base.clone()
            },
            Case {
                name: "wrong aud",
                aud: "billing",
                want: Err("wrong aud"),
                ..base.clone()
            },
            Case {
                name: "wrong iss",
                iss: "https://evil.example",
                want: Err("wrong iss"),
                ..base.clone()
            },
            Case {
                name: "expired",
                now: t + 60,
                want: Err("expired"),
                ..base.clone()
            },
            Case {
                name: "not yet valid",
                now: t - 1,
                want: Err("not yet valid"),
                ..base.clone()
            },
            Case {
                name: "other gateway's JWKS",
                jwks: &other_jwks,
                want: Err("unknown kid"),
                ..base.clone()
            },
            refused(
                "kid rewritten",
                with_header(&token, "kid", json!("nope")),
                "unknown kid",
            ),
            refused(
                "alg swapped",
                with_header(&token, "alg", json!(other_alg)),
                "alg does not match the key",
            ),
            refused(
                "alg none",
                with_header(&token, "alg", json!("none")),
                "alg does not match the key",
            ),
            refused(
                "alg HS256",
                with_header(&token, "alg", json!("HS256")),
                "alg does not match the key",
            ),
            refused(
                "header re-encoded",
                with_header(&token, "extra", json!(1)),
                "bad signature",
            ),
            refused(
                "groups tampered",
                with_claim(&token, "groups", json!(["admins", "root"])),
                "bad signature",
            ),
            refused(
                "exp extended",
                with_claim(&token, "exp", json!(t + 3600)),
                "bad signature",
            ),
        ];
        for case in cases {
            let got = verify(&case.token, case.jwks, case.iss, case.aud, case.now).map(|_| ());
            assert_eq!(got, case.want.map_err(str::to_owned), "{alg} {}", case.name);
        }

        let claims = verify(&token, &jwks, ISS, AUD, t).expect("valid");
        assert_eq!(
            claims,
            json!({
                "iss": ISS,
                "aud": AUD,
                "sub": "5f0c1d2e-3a4b-4c5d-8e6f-708192a3b4c5",
                "preferred_username": "alice",
                "name": "Alice Liddell",
                "email": "alice@example.com",
                "groups": ["admins", "dev"],
                "iat": t,
                "nbf": t,
                "exp": t + 60,
                "sid": "sid-1",
                "amr": ["hwk"],
            })
        );
        let header: Value =
            serde_json::from_slice(&b64(token.split('.').next().expect("header")).expect("b64"))
                .expect("json");
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["kid"], ring.current().kid());
        assert_eq!(header["typ"], "JWT");
    }
}

#[test]
fn jwks_has_the_documented_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let es = KeyRing::load_or_create(dir.path(), KeyAlgorithm::Es256).expect("keys");
    let jwk = &es.jwks()["keys"][0];
    assert_eq!(
        (&jwk["kty"], &jwk["crv"], &jwk["alg"], &jwk["use"]),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("ES256"),
            &json!("sig")
        )
    );
    assert_eq!(b64(jwk["x"].as_str().expect("x")).expect("b64").len(), 32);
    assert_eq!(b64(jwk["y"].as_str().expect("y")).expect("b64").len(), 32);
    assert_eq!(jwk["kid"], es.current().kid());
    assert!(jwk.get("d").is_none(), "no private member may leak");

    let dir = tempfile::tempdir().expect("tempdir");
    let ed = KeyRing::load_or_create(dir.path(), KeyAlgorithm::EdDsa).expect("keys");
    let jwk = &ed.jwks()["keys"][0];
    assert_eq!(
        (&jwk["kty"], &jwk["crv"], &jwk["alg"], &jwk["use"]),
        (
            &json!("OKP"),
            &json!("Ed25519"),
            &json!("EdDSA"),
            &json!("sig")
        )
    );
    assert_eq!(b64(jwk["x"].as_str().expect("x")).expect("b64").len(), 32);
    assert!(jwk.get("y").is_none() && jwk.get("d").is_none());
}

#[test]
fn jsonwebtoken_also_verifies_with_the_published_jwk() {
    // A second, library-based upstream: jsonwebtoken's own JWK parsing and validation.
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = KeyRing::load_or_create(dir.path(), KeyAlgorithm::Es256).expect("keys");
    let signer = AssertionSigner::new(&ring, ISS, DEFAULT_ASSERTION_TTL).expect("signer");
    let token = signer
        .assertion_at(&alice(), "sid-1", AUD, SystemTime::now())
        .expect("signs");
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(ring.jwks()["keys"][0].clone()).expect("JWK parses");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUD]);
    let data = jsonwebtoken::decode::<IdentityClaims>(&token, &key, &validation).expect("verifies");
    assert_eq!(data.claims.preferred_username, "alice");
    validation.set_audience(&["billing"]);
    assert!(jsonwebtoken::decode::<IdentityClaims>(&token, &key, &validation).is_err());
}

#[test]
fn rotation_keeps_the_old_key_published_for_the_overlap_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let overlap = Duration::from_secs(600);
    let ring = KeyRing::load_or_create(dir.path(), KeyAlgorithm::Es256).expect("keys");
    let signer = AssertionSigner::new(&ring, ISS, DEFAULT_ASSERTION_TTL).expect("signer");
    let now = whole_second_now();
    let t = unix(now);
    let old_token = signer
        .assertion_at(&alice(), "sid-1", AUD, now)
        .expect("signs");
    let old_kid = ring.current().kid().to_owned();

    let rotated = KeyRing::rotate(dir.path(), KeyAlgorithm::Es256, overlap, now).expect("rotates");
    assert_ne!(rotated.current().kid(), old_kid);
    assert_eq!(signer.jwks()["keys"].as_array().map(Vec::len), Some(1));
    signer.install(&rotated);
    assert_eq!(signer.kid(), rotated.current().kid());
    assert_eq!(
        signer.jwks(),
        rotated.jwks(),
        "the served JWKS follows the rotation"
    );

    // New tokens (even for a session with a cached one) use the new key at once.
    let new_token = signer
        .assertion_at(&alice(), "sid-1", AUD, now)
        .expect("signs");
    assert_ne!(new_token, old_token);
    let during = rotated.jwks_at(now + Duration::from_secs(30));
    assert_eq!(during["keys"].as_array().map(Vec::len), Some(2));
    assert!(verify(&new_token, &during, ISS, AUD, t + 30).is_ok());
    assert!(
        verify(&old_token, &during, ISS, AUD, t + 30).is_ok(),
        "old token valid during overlap"
    );

    let after = rotated.jwks_at(now + overlap);
    assert_eq!(after["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        verify(&old_token, &after, ISS, AUD, t + 30)
            .err()
            .as_deref(),
        Some("unknown kid")
    );

    // The overlap survives a reload, and a later rotation drops the expired key from the file.
    let reloaded = KeyRing::load(dir.path()).expect("loads").expect("exists");
    assert_eq!(reloaded.keys().len(), 2);
    assert_eq!(reloaded.jwks_at(now + Duration::from_secs(30)), during);
    let later = now + overlap + Duration::from_secs(1);
    let again = KeyRing::rotate(dir.path(), KeyAlgorithm::EdDsa, overlap, later).expect("rotates");
    let kids: Vec<&str> = again.keys().iter().map(SigningKey::kid).collect();
    assert_eq!(kids, [again.current().kid(), rotated.current().kid()]);
    assert_eq!(again.current().alg(), KeyAlgorithm::EdDsa);
}

#[test]
fn key_file_is_private_and_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = KeyRing::load_or_create(dir.path(), KeyAlgorithm::Es256).expect("keys");
    let path = dir.path().join(KEY_FILE_NAME);
    let mode = std::fs::metadata(&path)
        .expect("file exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let second = KeyRing::load_or_create(dir.path(), KeyAlgorithm::Es256).expect("reloads");
    assert_eq!(second.current().kid(), first.current().kid());
    assert_eq!(second.jwks(), first.jwks());
    // A configured algorithm change does not silently replace the key.
    let third = KeyRing::load_or_create(dir.path(), KeyAlgorithm::EdDsa).expect("reloads");
    assert_eq!(third.current().kid(), first.current().kid());
    // No temp files are left behind.
    let entries: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(entries.len(), 1);
    // The private key never shows up in Debug output.
    let debug = format!("{first:?}");
    assert!(
        !debug.contains("pkcs8") && debug.contains(first.current().kid()),
        "{debug}"
    );
}

#[test]
fn bad_key_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    KeyRing::load_or_create(dir.path(), KeyAlgorithm::Es256).expect("keys");
    let path = dir.path().join(KEY_FILE_NAME);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = KeyRing::load_or_create(dir.path(), KeyAlgorithm::Es256).expect_err("refused");
    assert!(
        matches!(err, IdentityError::KeyFilePermissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("has mode 0644"), "{err}");

    let write = |text: &str| {
        std::fs::remove_file(&path).expect("rm");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("create");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write");
    };
    let garbage = [
        ("not json", "expected ident"),
        (
            r#"{"version": 2, "keys": []}"#,
            "version 2 is not supported",
        ),
        (r#"{"version": 1, "keys": []}"#, "holds no keys"),
        (
            r#"{"version": 1, "keys": [{"kid": "k", "alg": "ES256", "private_pkcs8": "AAAA",
               "created_at": "2024-01-01T00:00:00Z", "retired_at": null, "publish_until": null}]}"#,
            "keys[0]: identity key: ES256 private key rejected",
        ),
    ];
    for (text, reason) in garbage {
        write(text);
        let err = KeyRing::load(dir.path()).expect_err("refused");
        assert!(matches!(err, IdentityError::KeyFileCorrupt { .. }), "{err}");
        assert!(err.to_string().contains(reason), "{text}: {err}");
    }
}

#[test]
fn cache_reuses_a_token_for_half_its_life() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = KeyRing::load_or_create(dir.path(), KeyAlgorithm::Es256).expect("keys");
    let signer = AssertionSigner::new(&ring, ISS, DEFAULT_ASSERTION_TTL).expect("signer");
    let now = whole_second_now();
    let at = |secs: u64| now + Duration::from_secs(secs);
    let token = signer
        .assertion_at(&alice(), "sid-1", AUD, now)
        .expect("signs");

    assert_eq!(
        signer
            .assertion_at(&alice(), "sid-1", AUD, at(29))
            .expect("signs"),
        token
    );
    let fresh = signer
        .assertion_at(&alice(), "sid-1", AUD, at(30))
        .expect("signs");
    assert_ne!(fresh, token, "at half-life a fresh token is signed");
    let claims = verify(&fresh, &ring.jwks(), ISS, AUD, unix(at(30))).expect("valid");
    assert_eq!(claims["iat"], unix(at(30)));

    // Keyed by session and audience, and a changed identity re-signs at once.
    assert_ne!(
        signer
            .assertion_at(&alice(), "sid-2", AUD, at(30))
            .expect("signs"),
        fresh
    );
    assert_ne!(
        signer
            .assertion_at(&alice(), "sid-1", "billing", at(30))
            .expect("signs"),
        fresh
    );
    let mut demoted = (*alice()).clone();
    demoted.groups = vec!["dev".into()];
    let demoted = Arc::new(demoted);
    let resigned = signer
        .assertion_at(&demoted, "sid-1", AUD, at(31))
        .expect("signs");
    assert_ne!(resigned, fresh);
    assert_eq!(
        verify(&resigned, &ring.jwks(), ISS, AUD, unix(at(31))).expect("valid")["groups"],
        json!(["dev"])
    );
    // A clock that steps back before iat never gets a not-yet-valid token from the cache.
    let back = signer
        .assertion_at(&demoted, "sid-1", AUD, at(10))
        .expect("signs");
    assert!(verify(&back, &ring.jwks(), ISS, AUD, unix(at(10))).is_ok());
}

#[test]
fn ttl_below_two_seconds_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = KeyRing::load_or_create(dir.path(), KeyAlgorithm::Es256).expect("keys");
    assert!(matches!(
        AssertionSigner::new(&ring, ISS, Duration::from_secs(1)),
        Err(IdentityError::InvalidTtl)
    ));
}

/// Prints the cost of a signature vs a cache hit. Not asserted: machines differ.
/// `cargo test --release --lib identity::tests::measure_sign_vs_cache_hit -- --ignored --nocapture`
#[test]
#[ignore = "measurement, run by hand"]
fn measure_sign_vs_cache_hit() {
    for alg in [KeyAlgorithm::Es256, KeyAlgorithm::EdDsa] {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = KeyRing::load_or_create(dir.path(), alg).expect("keys");
        let signer = AssertionSigner::new(&ring, ISS, DEFAULT_ASSERTION_TTL).expect("signer");
        let now = SystemTime::now();
        let rounds = 2_000;
        let start = Instant::now();
        for i in 0..rounds {
            signer
                .assertion_at(&alice(), &format!("sid-{i}"), AUD, now)
                .expect("signs");
        }
        let sign = start.elapsed() / rounds;
        let start = Instant::now();
        for i in 0..rounds {
            signer
                .assertion_at(&alice(), &format!("sid-{i}"), AUD, now)
                .expect("hits");
        }
        let hit = start.elapsed() / rounds;
        println!("{alg}: sign {sign:?} per token, cache hit {hit:?} per token");
    }
}
