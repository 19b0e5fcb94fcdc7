//! An independent verifier of `X-Passkey-Assertion`: it knows only the JWKS document and never
//! touches the gateway's signing code (it verifies with RustCrypto's `p256` / `ed25519-dalek`
//! directly, as a third-party app would with its own JOSE library).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// What the app pins.
pub struct Expect<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub now: i64,
}

/// The verified claims, or why the token is refused.
pub fn verify(token: &str, jwks: &Value, expect: &Expect<'_>) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err("not a compact JWS".into());
    };
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(header_b64)?).map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_slice(&decode(payload_b64)?).map_err(|e| e.to_string())?;
    let signature = decode(signature_b64)?;
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or("unknown kid")?;
    // The algorithm comes from the key we trust, never from the token's header alone.
    let alg = key["alg"].as_str().ok_or("key without alg")?;
    if header["alg"] != alg {
        return Err(format!(
            "alg {} does not match the key's {alg}",
            header["alg"]
        ));
    }
    let signed = format!("{header_b64}.{payload_b64}");
    match alg {
        "ES256" => verify_es256(key, signed.as_bytes(), &signature)?,
        "EdDSA" => verify_eddsa(key, signed.as_bytes(), &signature)?,
        other => return Err(format!("unsupported alg {other}")),
    }
    if claims["iss"] != expect.iss {
        return Err(format!("wrong iss {}", claims["iss"]));
    }
    if claims["aud"] != expect.aud {
        return Err(format!("wrong aud {}", claims["aud"]));
    }
    let exp = claims["exp"].as_i64().ok_or("no exp")?;
    let nbf = claims["nbf"].as_i64().ok_or("no nbf")?;
    if expect.now >= exp {
        return Err("expired".into());
    }
    if expect.now + 5 < nbf {
        return Err("not yet valid".into());
    }
    Ok(claims)
}

fn verify_es256(key: &Value, message: &[u8], signature: &[u8]) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    let x = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().ok_or("no x")?)
        .map_err(|e| e.to_string())?;
    let y = URL_SAFE_NO_PAD
        .decode(key["y"].as_str().ok_or("no y")?)
        .map_err(|e| e.to_string())?;
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
    use ed25519_dalek::Verifier;
    let x = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().ok_or("no x")?)
        .map_err(|e| e.to_string())?;
    let bytes: [u8; 32] = x.as_slice().try_into().map_err(|_| "bad key length")?;
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|e| e.to_string())?;
    verifying
        .verify(message, &signature)
        .map_err(|_| "bad signature".to_string())
}

/// Re-encodes a token with one header field changed and the original signature kept.
pub fn with_header(token: &str, field: &str, value: Value) -> String {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return token.into();
    };
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap_or_default()).unwrap_or_default();
    header[field] = value;
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
    format!("{h}.{p}.{s}")
}
