//! A person's own sessions: `GET /passkeys/sessions` (where am I signed in),
//! `DELETE /passkeys/sessions/{id}` (sign that one out) and `DELETE /passkeys/sessions/others`
//! (sign out everywhere else).
//!
//! A session's id here is its public id (`session::public_id`, half of its hash, in hex), the
//! same as `/passkeys/me` and the admin CLI show: it names a session without being able to
//! present it. An id that is not one of the caller's own live sessions is a 404, whether or not
//! it belongs to someone else. Ending sessions needs a recent passkey assertion, and goes through
//! `session` like every other ending, so it takes effect at the next request.

use std::collections::HashMap;

use http::{Method, StatusCode};
use serde::Serialize;
use uuid::Uuid;

use super::input::{recently_authenticated, require_session, same_origin};
use super::{Reply, Request};
use crate::error::{ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::passkey::rfc3339;
use crate::session::{public_id, LiveSession};
use crate::store::SessionRecord;

/// One session as its owner sees it.
#[derive(Debug, Serialize)]
struct SessionView {
    id: String,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    passkey_id: String,
    /// The name of the passkey that signed it in (gone passkeys end their sessions).
    passkey_name: Option<String>,
    /// "Chrome on Android": coarse, from the User-Agent at sign-in.
    device: Option<String>,
    /// The client address at sign-in.
    client: Option<String>,
    /// The session this request came with ("this device").
    current: bool,
}

/// `GET /passkeys/sessions`: the caller's live sessions, newest first.
pub async fn list(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    let live = require_session(gw, req).await?;
    let mut sessions = gw.sessions().list(Some(live.user_id), gw.now()).await?;
    sessions.sort_by_key(|record| std::cmp::Reverse(record.created_at));
    let names: HashMap<Uuid, String> = gw
        .store()
        .passkeys_of(live.user_id)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let views: Vec<SessionView> = sessions
        .iter()
        .map(|record| SessionView {
            id: public_id(&record.id_hash),
            created_at: rfc3339(record.created_at),
            last_seen_at: rfc3339(gw.sessions().last_seen_of(record)),
            expires_at: rfc3339(record.expires_at),
            passkey_id: record.passkey_id.to_string(),
            passkey_name: names.get(&record.passkey_id).cloned(),
            device: record.device.clone(),
            client: record.client.clone(),
            current: record.id_hash == live.hash,
        })
        .collect();
    Ok(Reply::json(StatusCode::OK, &views))
}

/// `DELETE /passkeys/sessions/{id}` and `DELETE /passkeys/sessions/others`.
pub async fn end(gw: &Gateway, req: &Request, id: &str) -> ApiResult<Reply> {
    if req.method != Method::DELETE {
        return Err(ApiError::MethodNotAllowed);
    }
    let live = require_session(gw, req).await?;
    same_origin(gw, req)?;
    recently_authenticated(gw, &live)?;
    let own = gw.sessions().list(Some(live.user_id), gw.now()).await?;
    if id == "others" {
        return end_others(gw, &live, own).await;
    }
    let target = own
        .iter()
        .find(|record| public_id(&record.id_hash) == id)
        .ok_or(ApiError::NotFound)?;
    // A concurrent request may have ended it since the list was read: then it is gone, as here.
    if !gw.sessions().end(target.id_hash).await? {
        return Err(ApiError::NotFound);
    }
    let mut reply = Reply::empty(StatusCode::NO_CONTENT);
    if target.id_hash == live.hash {
        reply = reply.header("set-cookie", gw.sessions().clear_cookie());
    }
    Ok(reply)
}

/// Ends every session of the caller's but this one; how many.
async fn end_others(gw: &Gateway, live: &LiveSession, own: Vec<SessionRecord>) -> ApiResult<Reply> {
    let mut ended = 0usize;
    for record in own.iter().filter(|record| record.id_hash != live.hash) {
        if gw.sessions().end(record.id_hash).await? {
            ended += 1;
        }
    }
    Ok(Reply::json(
        StatusCode::OK,
        &serde_json::json!({ "ended": ended }),
    ))
}
