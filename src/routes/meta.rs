//! Endpoints about the gateway itself: health, the JWKS and the related-origins document.

use http::StatusCode;

use super::Reply;
use crate::error::ApiResult;
use crate::gateway::Gateway;

/// `GET /passkeys/health`: 200 when the store answers a read; 503 otherwise.
pub async fn health(gw: &Gateway) -> ApiResult<Reply> {
    match gw.store.health().await {
        Ok(()) => Ok(Reply::json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the store does not answer");
            Ok(Reply::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"error": "unavailable", "message": "The gateway's store is not answering."}),
            ))
        }
    }
}

/// `GET /passkeys/jwks.json`: the keys that verify `X-Passkey-Assertion`.
pub fn jwks(gw: &Gateway) -> Reply {
    Reply::json(StatusCode::OK, &gw.jwks()).set_header("cache-control", "public, max-age=300")
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
