//! What a signed-in person does with their own account: who am I, sign out, list, rename and
//! delete passkeys. Another user's passkey id is a plain 404. Renaming and deleting need a
//! recent passkey assertion (`input::recently_authenticated`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{Method, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use super::ceremony::parse_name;
use super::input::{json_body, recently_authenticated, require_session, same_origin};
use super::{Reply, Request};
use crate::error::{ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::passkey::{rfc3339, PasskeyView, UserView};
use crate::store::StoreError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

/// `GET /passkeys/me`.
pub async fn me(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    let live = require_session(gw, req).await?;
    let user = gw
        .store()
        .user(live.user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let mut body = serde_json::to_value(UserView::from(&user)).map_err(ApiError::internal)?;
    body["session"] = serde_json::json!({
        "id": live.sid(),
        "created_at": rfc3339(live.created_at),
        "last_seen_at": rfc3339(live.last_seen()),
        "expires_at": rfc3339(live.expires_at),
        "passkey_id": live.passkey_id,
    });
    // What the page's WebAuthn Signal API calls name: the relying party and the user handle
    // (webauthn-rs uses the user id's 16 bytes).
    body["webauthn"] = serde_json::json!({
        "rp_id": gw.config().webauthn.rp_id,
        "user_handle": URL_SAFE_NO_PAD.encode(user.id.as_bytes()),
    });
    Ok(Reply::json(StatusCode::OK, &body))
}

/// `POST /passkeys/logout`: ends the session server-side and clears the cookie.
pub async fn logout(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    same_origin(gw, req)?;
    let live = require_session(gw, req).await?;
    gw.sessions().end(live.hash).await?;
    Ok(Reply::empty(StatusCode::NO_CONTENT).header("set-cookie", gw.sessions().clear_cookie()))
}

/// `GET /passkeys/credentials`: own passkeys, newest first.
pub async fn list(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    let live = require_session(gw, req).await?;
    let passkeys = gw.store().passkeys_of(live.user_id).await?;
    let views: Vec<PasskeyView> = passkeys.iter().map(PasskeyView::from).collect();
    Ok(Reply::json(StatusCode::OK, &views))
}

/// `GET | PATCH | DELETE /passkeys/credentials/{id}`.
pub async fn one(gw: &Gateway, req: &Request, id: &str) -> ApiResult<Reply> {
    let live = require_session(gw, req).await?;
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    let owned = |p: &crate::store::Passkey| p.user_id == live.user_id;
    match req.method {
        Method::GET | Method::HEAD => {
            let passkey = gw
                .store()
                .passkey(id)
                .await?
                .filter(owned)
                .ok_or(ApiError::NotFound)?;
            Ok(Reply::json(StatusCode::OK, &PasskeyView::from(&passkey)))
        }
        Method::PATCH => {
            same_origin(gw, req)?;
            let body: Rename = json_body(req)?;
            recently_authenticated(gw, &live)?;
            let name = parse_name(Some(&body.name))?
                .ok_or(ApiError::BadRequest("bad_name", "Give the passkey a name."))?;
            let passkey = gw
                .store()
                .rename_passkey(live.user_id, id, name.into_string())
                .await
                .map_err(owner_error)?;
            Ok(Reply::json(StatusCode::OK, &PasskeyView::from(&passkey)))
        }
        Method::DELETE => {
            same_origin(gw, req)?;
            recently_authenticated(gw, &live)?;
            let revoked = gw
                .sessions()
                .delete_passkey(live.user_id, id)
                .await
                .map_err(owner_error)?;
            let mut reply = Reply::empty(StatusCode::NO_CONTENT);
            if revoked.contains(&live.hash) {
                reply = reply.header("set-cookie", gw.sessions().clear_cookie());
            }
            Ok(reply)
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn owner_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound,
        StoreError::LastPasskey => ApiError::Conflict(
            "last_passkey",
            "This is your only passkey. Add another one before deleting it.",
        ),
        other => other.into(),
    }
}
