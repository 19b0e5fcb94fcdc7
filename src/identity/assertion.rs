//! The `X-Passkey-Assertion` token: its claims, and the signer that mints it on the hot path.
//!
//! Owns: the claim set, the JWS header (`alg`, `kid`, `typ`), the per-(session, audience) token
//! cache, and swapping keys after a rotation. Does not own: key storage (`keys.rs`), the JWKS
//! (`jwks.rs`), or deciding that a request deserves an assertion (policy and session do).
//!
//! Signing is the costly step (an ECDSA signature plus a PKCS#8 parse inside jsonwebtoken), so
//! a token is reused for the same session, audience and identity while more than half of its
//! lifetime remains: an upstream always receives a token valid for at least `ttl / 2`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::keys::{KeyAlgorithm, KeyRing};
use super::{install_jwt_crypto_provider, Identity, IdentityError};

/// The `amr` value: RFC 8176 "hwk", proof of possession of a (hardware- or platform-) secured
/// key, which is what a WebAuthn assertion is. A registered value, so generic OIDC libraries
/// understand it; upstreams should read it as "signed in with a passkey".
pub const AMR_PASSKEY: &str = "hwk";

/// Bound on cached tokens: beyond it, stale entries are evicted, and if that is not enough the
/// cache is emptied (it only ever costs re-signing, ~40 µs with aws-lc-rs). An entry is ~0.9 KB
/// (mostly the token), so this is ~3.5 MiB; sessions beyond it re-sign once per request.
const MAX_CACHED_ASSERTIONS: usize = 4_096;

/// The claims of an identity assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    /// The gateway's public origin, e.g. `https://app.example.com`.
    pub iss: String,
    /// The route's audience (default: the route name).
    pub aud: String,
    /// The user's stable id.
    pub sub: String,
    /// The login name.
    pub preferred_username: String,
    /// The display name.
    pub name: String,
    /// The email address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Group names.
    pub groups: Vec<String>,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Not before (Unix seconds); equal to `iat`.
    pub nbf: u64,
    /// Expiry (Unix seconds): `iat + ttl`.
    pub exp: u64,
    /// A non-secret session id (never the cookie value), so upstreams can correlate requests.
    pub sid: String,
    /// Authentication methods: always `["hwk"]` ([`AMR_PASSKEY`]).
    pub amr: Vec<String>,
}

/// Mints assertions with the ring's current key; cheap to share (`Arc`) across requests.
pub struct AssertionSigner {
    issuer: String,
    ttl_secs: u64,
    /// Replaced whole on rotation; readers clone the `Arc` and never hold the lock while signing.
    active: RwLock<Arc<ActiveKey>>,
}

/// The current key ready to sign, with the tokens it signed. The cache lives and dies with the
/// key, so after a rotation every new token uses the new key; tokens already handed out stay
/// verifiable because the old key remains in the JWKS for the overlap.
struct ActiveKey {
    /// The ring this key came from, so the JWKS served always matches the signing key.
    ring: KeyRing,
    kid: String,
    header: Header,
    key: EncodingKey,
    cache: Mutex<HashMap<(String, String), CachedAssertion>>,
}

struct CachedAssertion {
    /// The identity the token was signed for (shared with the session, not copied): a changed
    /// name or group list re-signs at once.
    identity: Arc<Identity>,
    /// Ready to send: cloning a `HeaderValue` shares its bytes instead of copying the token.
    token: HeaderValue,
    issued_at: u64,
    refresh_at: u64,
}

impl AssertionSigner {
    /// A signer for `ring`'s current key, issuing as `issuer` with lifetime `ttl` (≥ 2 s, whole
    /// seconds).
    pub fn new(
        ring: &KeyRing,
        issuer: impl Into<String>,
        ttl: Duration,
    ) -> Result<Self, IdentityError> {
        install_jwt_crypto_provider();
        let ttl_secs = ttl.as_secs();
        // Below 2 s the half-life reuse rounds to zero and nbf/exp granularity makes no sense.
        if ttl_secs < 2 {
            return Err(IdentityError::InvalidTtl);
        }
        Ok(AssertionSigner {
            issuer: issuer.into(),
            ttl_secs,
            active: RwLock::new(Arc::new(ActiveKey::new(ring))),
        })
    }

    /// Switches to `ring`'s current key (after `KeyRing::rotate`); cached tokens are dropped.
    pub fn install(&self, ring: &KeyRing) {
        let next = Arc::new(ActiveKey::new(ring));
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// The `kid` new assertions are signed with.
    pub fn kid(&self) -> String {
        self.active_key().kid.clone()
    }

    /// The JWKS for the installed ring (serve this at `/passkeys/jwks.json`): after
    /// [`AssertionSigner::install`] it includes the new key and the retired ones in their overlap.
    pub fn jwks(&self) -> serde_json::Value {
        self.active_key().ring.jwks()
    }

    /// A compact JWS asserting `identity` to `audience`, for session `sid` (a non-secret id), as
    /// of `now`, ready to send as a header (a cached token is shared, not copied).
    pub fn assertion_header(
        &self,
        identity: &Arc<Identity>,
        sid: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<HeaderValue, IdentityError> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let active = self.active_key();
        if let Some(token) = active.cached(sid, audience, identity, now) {
            return Ok(token);
        }

        let claims = IdentityClaims {
            iss: self.issuer.clone(),
            aud: audience.to_owned(),
            sub: identity.user_id.clone(),
            preferred_username: identity.username.clone(),
            name: identity.display_name.clone(),
            email: identity.email.clone(),
            groups: identity.groups.clone(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            sid: sid.to_owned(),
            amr: vec![AMR_PASSKEY.to_owned()],
        };
        // Signed outside any lock: concurrent misses for one key may both sign, which is harmless.
        let token = jsonwebtoken::encode(&active.header, &claims, &active.key)?;
        let token = HeaderValue::try_from(token)
            .map_err(|e| IdentityError::Key(format!("token is not a header value: {e}")))?;
        active.remember(
            sid,
            audience,
            CachedAssertion {
                identity: Arc::clone(identity),
                token: token.clone(),
                issued_at: now,
                refresh_at: now + self.ttl_secs / 2,
            },
        );
        Ok(token)
    }

    /// As [`AssertionSigner::assertion_header`], as text (for tests and benchmarks).
    pub fn assertion_at(
        &self,
        identity: &Arc<Identity>,
        sid: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<String, IdentityError> {
        let token = self.assertion_header(identity, sid, audience, now)?;
        // Only base64url and dots: always ASCII.
        Ok(String::from_utf8_lossy(token.as_bytes()).into_owned())
    }

    fn active_key(&self) -> Arc<ActiveKey> {
        Arc::clone(&self.active.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ActiveKey {
    fn new(ring: &KeyRing) -> Self {
        let current = ring.current();
        let mut header = Header::new(current.alg().jwt_algorithm());
        header.kid = Some(current.kid().to_owned());
        header.typ = Some("JWT".to_owned());
        let key = match current.alg() {
            KeyAlgorithm::Es256 => EncodingKey::from_ec_der(current.pkcs8()),
            KeyAlgorithm::EdDsa => EncodingKey::from_ed_der(current.pkcs8()),
        };
        ActiveKey {
            ring: ring.clone(),
            kid: current.kid().to_owned(),
            header,
            key,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(
        &self,
        sid: &str,
        audience: &str,
        identity: &Arc<Identity>,
        now: u64,
    ) -> Option<HeaderValue> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = cache.get(&(sid.to_owned(), audience.to_owned()))?;
        // `issued_at <= now` also guards against the clock stepping back before nbf.
        let same = Arc::ptr_eq(&entry.identity, identity) || entry.identity == *identity;
        let fresh = entry.issued_at <= now && now < entry.refresh_at && same;
        fresh.then(|| entry.token.clone())
    }

    fn remember(&self, sid: &str, audience: &str, entry: CachedAssertion) {
        let now = entry.issued_at;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_ASSERTIONS {
            cache.retain(|_, e| now < e.refresh_at);
            if cache.len() >= MAX_CACHED_ASSERTIONS {
                cache.clear();
            }
        }
        cache.insert((sid.to_owned(), audience.to_owned()), entry);
    }
}
