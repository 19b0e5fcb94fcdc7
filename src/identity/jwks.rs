//! The public JSON Web Key Set served at `/passkeys/jwks.json`: the current key and every
//! retired key still inside its overlap, and the RFC 7638 thumbprint used as `kid`.
//!
//! Owns: turning raw public keys into JWK members. Does not own: HTTP (the route serves the
//! value) or key lifecycle (`keys.rs`).

use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::keys::{KeyAlgorithm, KeyRing, SigningKey};
use super::IdentityError;

/// Length of an uncompressed P-256 point: `0x04 || x (32) || y (32)`.
const P256_POINT_LEN: usize = 65;
const ED25519_KEY_LEN: usize = 32;

impl KeyRing {
    /// The JWKS as of now: `{"keys": [...]}` with the current key first.
    pub fn jwks(&self) -> Value {
        self.jwks_at(SystemTime::now())
    }

    /// The JWKS as of `now`: retired keys whose overlap has ended are left out.
    pub fn jwks_at(&self, now: SystemTime) -> Value {
        let now = OffsetDateTime::from(now);
        let keys: Vec<Value> = self
            .keys()
            .iter()
            .filter(|key| key.is_published_at(now))
            .filter_map(public_jwk)
            .collect();
        json!({ "keys": keys })
    }
}

/// One key's public JWK with `kid`, `alg` and `use: "sig"`.
fn public_jwk(key: &SigningKey) -> Option<Value> {
    let mut jwk = key_members(key.alg(), key.public_key()).ok()?;
    let members = jwk.as_object_mut()?;
    members.insert("kid".into(), key.kid().into());
    members.insert("alg".into(), key.alg().as_str().into());
    members.insert("use".into(), "sig".into());
    Some(jwk)
}

/// The required public members only, which is also the thumbprint input (RFC 7638 §3.2).
fn key_members(alg: KeyAlgorithm, public: &[u8]) -> Result<Value, IdentityError> {
    match alg {
        KeyAlgorithm::Es256 => {
            if public.len() != P256_POINT_LEN || public[0] != 0x04 {
                return Err(IdentityError::Key(
                    "P-256 public key is not an uncompressed point".into(),
                ));
            }
            let (x, y) = public[1..].split_at(32);
            Ok(json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            }))
        }
        KeyAlgorithm::EdDsa => {
            if public.len() != ED25519_KEY_LEN {
                return Err(IdentityError::Key(
                    "Ed25519 public key is not 32 bytes".into(),
                ));
            }
            Ok(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(public),
            }))
        }
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url): a `kid` that names the key itself.
pub(super) fn thumbprint(alg: KeyAlgorithm, public: &[u8]) -> Result<String, IdentityError> {
    let canonical = canonical_members(alg, public)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// RFC 7638 §3: required members in lexicographic order, no whitespace. Written by hand rather
/// than through `serde_json::Value`, whose member order depends on a crate feature (another
/// dependency enabling `preserve_order` would silently change every kid).
fn canonical_members(alg: KeyAlgorithm, public: &[u8]) -> Result<String, IdentityError> {
    let members = key_members(alg, public)?;
    let member = |name: &str| {
        members
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(match alg {
        KeyAlgorithm::Es256 => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            member("x"),
            member("y")
        ),
        KeyAlgorithm::EdDsa => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, member("x")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_input_is_rfc7638_canonical() {
        // RFC 7638 §3.2: for EC the canonical member order is crv, kty, x, y.
        let mut point = vec![0x04];
        point.extend([1u8; 32]);
        point.extend([2u8; 32]);
        let canonical = canonical_members(KeyAlgorithm::Es256, &point).expect("valid point");
        assert!(
            canonical.starts_with(r#"{"crv":"P-256","kty":"EC","x":"#),
            "{canonical}"
        );
        let okp = canonical_members(KeyAlgorithm::EdDsa, &[3u8; 32]).expect("valid key");
        assert!(
            okp.starts_with(r#"{"crv":"Ed25519","kty":"OKP","x":"#),
            "{okp}"
        );
    }

    #[test]
    fn thumbprint_matches_rfc8037_example() {
        // RFC 8037 Appendix A.2/A.3: the Ed25519 example key and its JWK thumbprint.
        let public = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("example key is base64url");
        assert_eq!(
            thumbprint(KeyAlgorithm::EdDsa, &public).expect("valid key"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn malformed_public_keys_are_refused() {
        assert!(key_members(KeyAlgorithm::Es256, &[0x02; 33]).is_err());
        assert!(key_members(KeyAlgorithm::EdDsa, &[0; 31]).is_err());
    }
}
