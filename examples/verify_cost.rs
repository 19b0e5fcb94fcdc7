//! What one login's signature check costs, in-process, without HTTP or the store: webauthn-rs's
//! `finish_passkey_authentication` (which verifies the P-256 assertion with the pure-Rust `p256`
//! crate through `crypto-glue`) against a bare P-256 ECDSA verify with aws-lc-rs (already a
//! dependency of the gateway, through jsonwebtoken) and with `p256` 0.13. Used by the profile in BENCHMARKS.md.
//!
//! `cargo run --release --example verify_cost [ITERATIONS]`

use std::time::Instant;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{Url, Uuid};
use webauthn_rs::WebauthnBuilder;

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args().nth(1).map_or(Ok(500), |n| n.parse())?;
    let origin = Url::parse("http://localhost:8080")?;
    let webauthn = WebauthnBuilder::new("localhost", &origin)?.build()?;
    let mut authenticator = SoftPasskey::new(true);

    let (ccr, reg_state) =
        webauthn.start_passkey_registration(Uuid::new_v4(), "bench", "Bench", None)?;
    let credential = authenticator
        .do_registration(origin.clone(), ccr)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let passkey = webauthn.finish_passkey_registration(&credential, &reg_state)?;

    // Prepare the assertions first, so only the server side is timed.
    let mut prepared = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let (rcr, state) = webauthn.start_passkey_authentication(std::slice::from_ref(&passkey))?;
        let assertion = authenticator
            .do_authentication(origin.clone(), rcr)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        prepared.push((assertion, state));
    }
    let started = Instant::now();
    for (assertion, state) in &prepared {
        webauthn.finish_passkey_authentication(assertion, state)?;
    }
    let webauthn_us = started.elapsed().as_secs_f64() * 1e6 / iterations as f64;

    // A bare P-256 ECDSA-SHA256 verify of a message of the same size, with aws-lc-rs.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("keygen"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("key"))?;
    let message = [7u8; 69]; // authenticatorData (37) + SHA-256(clientDataJSON) (32)
    let signature = pair
        .sign(&rng, &message)
        .map_err(|_| anyhow::anyhow!("sign"))?;
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, pair.public_key().as_ref());
    let started = Instant::now();
    for _ in 0..iterations {
        public
            .verify(&message, signature.as_ref())
            .map_err(|_| anyhow::anyhow!("verify"))?;
    }
    let aws_us = started.elapsed().as_secs_f64() * 1e6 / iterations as f64;

    // The same verify with the previous pure-Rust generation (p256 0.13, a dev-dependency).
    let p256_013_us = {
        use p256::ecdsa::signature::Verifier;
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(pair.public_key().as_ref())?;
        let sig = p256::ecdsa::Signature::from_der(signature.as_ref())?;
        let started = Instant::now();
        for _ in 0..iterations {
            key.verify(&message, &sig)?;
        }
        started.elapsed().as_secs_f64() * 1e6 / iterations as f64
    };

    println!(
        "{{\"iterations\": {iterations}, \"webauthn_rs_finish_passkey_authentication_us\": {webauthn_us:.1}, \"aws_lc_rs_p256_verify_us\": {aws_us:.1}, \"p256_0_13_verify_us\": {p256_013_us:.1}}}"
    );
    Ok(())
}
