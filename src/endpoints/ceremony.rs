//! `register/begin|complete` and `login/begin|complete`: HTTP shapes around `passkey::Ceremonies`.

use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::input::{
    json_body, rate_limit, recently_authenticated, require_session, same_origin, session,
};
use super::{Reply, Request};
use crate::error::ApiResult;
use crate::gateway::Gateway;
use crate::metrics::{CeremonyKind, CeremonyOutcome};
use crate::passkey::{PasskeyName, PasskeyView, UserView};
use crate::policy::{safe_return_to, Username};
use crate::session::SignedInFrom;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBegin {
    name: Option<String>,
    token: Option<String>,
}

#[derive(Deserialize)]
struct RegisterComplete {
    session_id: Uuid,
    credential: RegisterPublicKeyCredential,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBegin {
    username: Option<String>,
}

#[derive(Deserialize)]
struct LoginComplete {
    session_id: Uuid,
    credential: PublicKeyCredential,
    return_to: Option<String>,
}

/// `POST /passkeys/register/begin`: with an enrollment token (first passkey) or a session.
pub async fn register_begin(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    rate_limit(gw, req)?;
    let body: RegisterBegin = json_body(req)?;
    let name = parse_name(body.name.as_deref())?;
    let now = gw.now();
    let options = match body.token {
        Some(token) => gw.ceremonies().begin_enrollment(&token, name, now).await?,
        None => {
            same_origin(gw, req)?;
            let live = require_session(gw, req).await?;
            // An enrollment link is its own authority; a session must have signed in recently.
            recently_authenticated(gw, &live)?;
            let begun = gw
                .ceremonies()
                .begin_registration_for(live.user_id, name, now);
            begun.await?
        }
    };
    Ok(Reply::json(StatusCode::OK, &options))
}

/// `POST /passkeys/register/complete`: 201 with the passkey; an enrollment also signs in.
pub async fn register_complete(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    let result = register_completed(gw, req).await;
    count(gw, CeremonyKind::Registration, &result);
    result
}

async fn register_completed(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    let body: RegisterComplete = json_body(req)?;
    let name = parse_name(body.name.as_deref())?;
    let current = session(gw, req).await?;
    if current.is_some() {
        same_origin(gw, req)?;
    }
    let outcome = gw
        .ceremonies()
        .complete_registration(
            body.session_id,
            &body.credential,
            name,
            current.as_ref().map(|s| s.user_id),
            &signed_in_from(req),
            gw.now(),
        )
        .await?;
    let mut reply = Reply::json(StatusCode::CREATED, &PasskeyView::from(&outcome.passkey));
    if let Some(set_cookie) = outcome.set_cookie {
        // An enrollment replaces whatever session the browser had (no fixation).
        if let Some(old) = current {
            let _ = gw.sessions().end(old.hash).await;
        }
        reply = reply.header("set-cookie", set_cookie);
    }
    Ok(reply)
}

/// `POST /passkeys/login/begin`: options for a usernameless or a username-scoped login.
pub async fn login_begin(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    rate_limit(gw, req)?;
    let body: LoginBegin = json_body(req)?;
    // A blank name is a usernameless login; a malformed one is refused (no user can have it, so
    // saying so tells nothing about who exists).
    let username = match body.username.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(typed) => Some(Username::parse(typed)?),
    };
    let options = gw
        .ceremonies()
        .begin_login(username.as_ref(), gw.now())
        .await?;
    Ok(Reply::json(StatusCode::OK, &options))
}

/// `POST /passkeys/login/complete`: a new session cookie and where to go next.
pub async fn login_complete(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    let result = login_completed(gw, req).await;
    count(gw, CeremonyKind::Login, &result);
    result
}

/// Counts a `complete` in the metrics: a server error is the gateway's failure, any other
/// refusal the client's.
fn count(gw: &Gateway, kind: CeremonyKind, result: &ApiResult<Reply>) {
    let outcome = match result {
        Ok(_) => CeremonyOutcome::Success,
        Err(e) if e.parts().0.is_server_error() => CeremonyOutcome::Error,
        Err(_) => CeremonyOutcome::Failure,
    };
    gw.metrics().ceremony(kind, outcome);
}

async fn login_completed(gw: &Gateway, req: &Request) -> ApiResult<Reply> {
    let body: LoginComplete = json_body(req)?;
    let previous = session(gw, req).await?;
    let outcome = gw
        .ceremonies()
        .complete_login(
            body.session_id,
            &body.credential,
            &signed_in_from(req),
            gw.now(),
        )
        .await?;
    // A fresh id at every login; the one the browser had before is ended (no session fixation).
    if let Some(old) = previous {
        let _ = gw.sessions().end(old.hash).await;
    }
    let redirect_to = safe_return_to(
        body.return_to.as_deref().unwrap_or("/"),
        &gw.config().return_hosts(),
    );
    let reply = Reply::json(
        StatusCode::OK,
        &serde_json::json!({ "user": UserView::from(&outcome.user), "redirect_to": redirect_to }),
    );
    Ok(reply.header("set-cookie", outcome.set_cookie))
}

/// Where this sign-in comes from, for the owner's list of sessions.
fn signed_in_from(req: &Request) -> SignedInFrom {
    SignedInFrom::new(req.client_ip, req.header("user-agent"))
}

/// A typed passkey name, if any; a bad one is a 400.
pub fn parse_name(typed: Option<&str>) -> ApiResult<Option<PasskeyName>> {
    Ok(typed.map(PasskeyName::parse).transpose()?.flatten())
}
