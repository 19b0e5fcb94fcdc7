//! How the demo app trusts the gateway, the way any real app should: it fetches the JWKS over
//! HTTP from the gateway it was configured with (never from a URL found in a token), and verifies
//! `X-Passkey-Assertion` with `jsonwebtoken`, pinning the issuer, its own audience and the
//! algorithm of the key that the token's `kid` names.
//!
//! It deliberately shares no code with the gateway's signer: it sees only the JWKS document.
//! Keys are cached and fetched again when a token names a `kid` the cache does not know
//! (after `keys rotate`).

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Path of the key set on the gateway.
const JWKS_PATH: &str = "/passkeys/jwks.json";
/// A JWKS document is a few hundred bytes; refuse anything absurd.
const JWKS_MAX_BYTES: usize = 64 * 1024;
/// How long one JWKS fetch may take.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// What the app trusts: the gateway in front of it.
#[derive(Clone, Debug)]
pub struct Trust {
    /// Where the gateway listens; the JWKS is fetched from this socket.
    pub gateway: SocketAddr,
    /// The gateway's public origin (`public_url`): the pinned `iss`, and the JWKS request's `Host`.
    pub issuer: String,
    /// This app's audience: its route's `audience` (default the route name).
    pub audience: String,
}

/// The outcome of checking one request's assertion.
#[derive(Clone, Debug, PartialEq)]
pub enum Verification {
    /// Signature, issuer, audience, algorithm and lifetime all check out.
    Verified { kid: String, alg: String },
    /// Why the assertion is not to be trusted.
    Failed(String),
}

/// Verifies assertions for one app; holds the cached JWKS.
#[derive(Debug)]
pub struct Verifier {
    trust: Trust,
    keys: Mutex<Option<JwkSet>>,
}

impl Verifier {
    pub fn new(trust: Trust) -> Verifier {
        Verifier {
            trust,
            keys: Mutex::new(None),
        }
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Checks `token` and returns its verified claims, or why it was refused.
    pub async fn verify(&self, token: &str) -> (Verification, Option<Map<String, Value>>) {
        match self.try_verify(token).await {
            Ok((kid, alg, claims)) => (Verification::Verified { kid, alg }, Some(claims)),
            Err(reason) => (Verification::Failed(reason), None),
        }
    }

    async fn try_verify(
        &self,
        token: &str,
    ) -> Result<(String, String, Map<String, Value>), String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("not a readable JWS: {e}"))?;
        let kid = header.kid.ok_or("the token names no key (no `kid`)")?;
        let jwk = self.key(&kid).await?;
        // The algorithm comes from the key we trust, never from the token alone.
        let alg = jwk
            .common
            .key_algorithm
            .ok_or("the JWKS key has no `alg`")
            .and_then(|a| Algorithm::try_from(a).map_err(|_| "the JWKS key's `alg` is unusable"))?;
        if !matches!(alg, Algorithm::ES256 | Algorithm::EdDSA) {
            return Err(format!(
                "algorithm {alg:?} is not one the gateway signs with"
            ));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable JWKS key: {e}"))?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.trust.issuer]);
        validation.set_audience(&[&self.trust.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| e.to_string())?;
        Ok((kid, format!("{alg:?}"), data.claims))
    }

    /// The key with this `kid`: from the cache, or from a fresh JWKS when the cache lacks it.
    async fn key(&self, kid: &str) -> Result<jsonwebtoken::jwk::Jwk, String> {
        let mut cached = self.keys.lock().await;
        if let Some(jwk) = cached.as_ref().and_then(|set| set.find(kid)) {
            return Ok(jwk.clone());
        }
        let fresh = fetch_jwks(&self.trust)
            .await
            .map_err(|e| format!("cannot fetch the JWKS: {e}"))?;
        let found = fresh.find(kid).cloned();
        *cached = Some(fresh);
        found.ok_or_else(|| format!("key `{kid}` is not in the gateway's JWKS"))
    }
}

/// Why the JWKS could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Connect(#[from] std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
    #[error("the gateway answered {0}")]
    Status(http::StatusCode),
    #[error("the body is too large or broken")]
    Body,
    #[error("not a JWKS document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// `GET {issuer}/passkeys/jwks.json`, sent to the gateway's socket (like `curl --resolve`).
pub async fn fetch_jwks(trust: &Trust) -> Result<JwkSet, FetchError> {
    tokio::time::timeout(JWKS_TIMEOUT, fetch(trust))
        .await
        .map_err(|_| FetchError::Timeout(JWKS_TIMEOUT))?
}

async fn fetch(trust: &Trust) -> Result<JwkSet, FetchError> {
    let host = trust
        .issuer
        .split_once("://")
        .map_or(trust.issuer.as_str(), |(_, rest)| rest);
    let tcp = TcpStream::connect(trust.gateway).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    let request = http::Request::get(JWKS_PATH)
        .header(http::header::HOST, host)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status()));
    }
    let body = Limited::new(response.into_body(), JWKS_MAX_BYTES)
        .collect()
        .await
        .map_err(|_| FetchError::Body)?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}
