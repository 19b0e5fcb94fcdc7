//! `POST /passkeys/enrollments`: a signed-in, recently re-authenticated person makes a one-time
//! add-a-device link for their own account, to open on another device (typed, or scanned from
//! the QR code shown next to it).
//!
//! The link is an ordinary enrollment link (`passkey::issue_enrollment`, the same single use and
//! expiry rules as an administrator's, recorded as `enrollment_created`), only shorter-lived
//! (`[enrollment] self_service_ttl`). The QR code is an SVG drawn here, on the server, so the
//! page needs no script-loaded image and its CSP stays strict. The token exists only in this
//! reply; the store keeps its hash.

use http::StatusCode;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use super::input::{rate_limit, recently_authenticated, require_session, same_origin};
use super::{Reply, Request};
use crate::error::{ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::passkey::{issue_enrollment, rfc3339};

/// `POST /passkeys/enrollments`: `{url, expires_at, qr_svg}`.
pub async fn create(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    rate_limit(gw, req)?;
    same_origin(gw, req)?;
    let live = require_session(gw, req).await?;
    recently_authenticated(gw, &live)?;
    let config = gw.config();
    let ttl = config.enrollment.self_service_ttl;
    let link = issue_enrollment(gw.store(), live.user_id, ttl, gw.now()).await?;
    let url = link.url(&config.public_origin());
    let qr_svg = qr_svg(&url)?;
    let body = serde_json::json!({
        "url": url,
        "expires_at": rfc3339(link.expires_at),
        "qr_svg": qr_svg,
    });
    // `Reply::json` is `no-store`: the reply carries a secret.
    Ok(Reply::json(StatusCode::CREATED, &body))
}

/// The link as an SVG QR code (medium error correction: it is read from a screen).
fn qr_svg(url: &str) -> ApiResult<String> {
    let code = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)
        .map_err(ApiError::internal)?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build())
}
