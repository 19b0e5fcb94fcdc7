//! Endpoints about the gateway itself: health, the JWKS and the related-origins document.

use http::StatusCode;

use super::Reply;
use crate::error::{ApiError, ApiResult};
use crate::gateway::Gateway;

/// `GET /passkeys/health`: 200 when the store answers a read; 503 otherwise.
pub async fn health(gw: &Gateway) -> ApiResult<Reply> {
    gw.store()
        .health()
        .await
        .map_err(ApiError::StoreUnavailable)?;
    Ok(Reply::json(
        StatusCode::OK,
        &serde_json::json!({"status": "ok"}),
    ))
}

/// `GET /passkeys/jwks.json`: the keys that verify `X-Passkey-Assertion`.
pub fn jwks(gw: &Gateway) -> Reply {
    Reply::json(StatusCode::OK, &gw.jwks()).set_header("cache-control", "public, max-age=300")
}

/// `GET /.well-known/webauthn`: `{"origins": [...]}` (WebAuthn L3 related origin requests).
pub fn related_origins(gw: &Gateway) -> Reply {
    let origins: Vec<String> = gw
        .config()
        .webauthn
        .related_origins
        .iter()
        .map(|o| o.origin().ascii_serialization())
        .collect();
    Reply::json(StatusCode::OK, &serde_json::json!({ "origins": origins }))
        .set_header("cache-control", "public, max-age=300")
}
