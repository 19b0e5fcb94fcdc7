//! The one independent verifier of `X-Passkey-Assertion` in the tests: it knows only the JWKS
//! document and never touches the gateway's signing code (it verifies with RustCrypto's `p256` /
//! `ed25519-dalek` directly, as a third-party app would with its own JOSE library). The
//! integration tests use it through `support`, the identity unit tests include this file by path.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// What the app pins.
pub struct Expect<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub now: i64,
}

/// Decodes one base64url (unpadded) part.
pub fn b64(part: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("base64: {e}"))
}

fn json(part: &str) -> Result<Value, String> {
    serde_json::from_slice(&b64(part)?).map_err(|e| e.to_string())
}

/// The verified claims, or why the token is refused: key by `kid` from the JWKS, `alg` pinned to
/// the key's, signature, then `iss`, `aud`, `nbf` and `exp` (no leeway).
pub fn verify(token: &str, jwks: &Value, expect: &Expect<'_>) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err("not a compact JWS".into());
    };
    let header = json(header_b64)?;
    if header["typ"] != "JWT" {
        return Err("wrong typ".into());
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or("unknown kid")?;
    // The algorithm comes from the key we trust, never from the token's header alone.
    let alg = key["alg"].as_str().ok_or("key without alg")?;
    if header["alg"] != alg || key["use"] != "sig" {
        return Err("alg does not match the key".into());
    }
    let signed = format!("{header_b64}.{payload_b64}");
    let signature = b64(signature_b64)?;
    match alg {
        "ES256" => verify_es256(key, signed.as_bytes(), &signature)?,
        "EdDSA" => verify_eddsa(key, signed.as_bytes(), &signature)?,
        other => return Err(format!("alg {other} refused")),
    }
    let claims = json(payload_b64)?;
    if claims["iss"] != expect.iss {
        return Err("wrong iss".into());
    }
    if claims["aud"] != expect.aud {
        return Err("wrong aud".into());
    }
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    let nbf = claims["nbf"].as_i64().ok_or("no nbf")?;
    if expect.now < nbf {
        return Err("not yet valid".into());
    }
    if expect.now >= exp {
        return Err("expired".into());
    }
    Ok(claims)
}

fn coordinate(key: &Value, name: &str) -> Result<Vec<u8>, String> {
    b64(key[name].as_str().ok_or(format!("no {name}"))?)
}

fn verify_es256(key: &Value, message: &[u8], signature: &[u8]) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    if key["kty"] != "EC" || key["crv"] != "P-256" {
        return Err("not a P-256 key".into());
    }
    let (x, y) = (coordinate(key, "x")?, coordinate(key, "y")?);
    if x.len() != 32 || y.len() != 32 {
        return Err("bad coordinates".into());
    }
    let point = p256::EncodedPoint::from_affine_coordinates(
        x.as_slice().into(),
        y.as_slice().into(),
        false,
    );
    let verifying =
        p256::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|e| e.to_string())?;
    let signature = p256::ecdsa::Signature::from_slice(signature).map_err(|e| e.to_string())?;
    verifying
        .verify(message, &signature)
        .map_err(|_| "bad signature".to_string())
}

fn verify_eddsa(key: &Value, message: &[u8], signature: &[u8]) -> Result<(), String> {
    if key["kty"] != "OKP" || key["crv"] != "Ed25519" {
        return Err("not an Ed25519 key".into());
    }
    let x: [u8; 32] = coordinate(key, "x")?
        .try_into()
        .map_err(|_| "bad key length")?;
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
    let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|e| e.to_string())?;
    verifying
        .verify_strict(message, &signature)
        .map_err(|_| "bad signature".to_string())
}

/// Re-encodes a token with one JSON part changed (`0` the header, `1` the claims) and the
/// original signature kept.
fn with_part(token: &str, part: usize, member: &str, value: Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let Some(encoded) = parts.get_mut(part) else {
        return token.into();
    };
    let mut object = json(encoded).unwrap_or_default();
    object[member] = value;
    *encoded = URL_SAFE_NO_PAD.encode(object.to_string());
    parts.join(".")
}

/// The token with one header member changed, signature kept.
pub fn with_header(token: &str, member: &str, value: Value) -> String {
    with_part(token, 0, member, value)
}

/// The token with one claim changed, signature kept.
#[allow(dead_code)] // used by the identity unit tests, which include this file by path
pub fn with_claim(token: &str, claim: &str, value: Value) -> String {
    with_part(token, 1, claim, value)
}
