//! Endpoints about the gateway itself: health and the related-origins document.

use http::StatusCode;

use super::Reply;
use crate::error::ApiResult;
use crate::gateway::Gateway;

/// `GET /passkeys/health`: 200 when the gateway can answer (and, once it has one, its store).
pub async fn health(_gw: &Gateway) -> ApiResult<Reply> {
    Ok(Reply::json(
        StatusCode::OK,
        &serde_json::json!({"status": "ok"}),
    ))
}

/// `GET /.well-known/webauthn`: `{"origins": [...]}` (WebAuthn L3 related origin requests).
pub fn related_origins(gw: &Gateway) -> Reply {
    let origins: Vec<String> = gw
        .config
        .webauthn
        .related_origins
        .iter()
        .map(|o| o.origin().ascii_serialization())
        .collect();
    Reply::json(StatusCode::OK, &serde_json::json!({ "origins": origins }))
        .set_header("cache-control", "public, max-age=300")
}
