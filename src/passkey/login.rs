//! Login: begin (scoped to a username's passkeys, usernameless, or a decoy for a username that
//! cannot sign in) and complete (verify, check the owner and the sign count, then update the
//! passkey and start a session in one transaction).

use std::net::IpAddr;

use uuid::Uuid;
use webauthn_rs::prelude::{Passkey as WebauthnPasskey, PublicKeyCredential, WebauthnError};
use webauthn_rs_core::proto::AllowCredentials;

use super::state::CeremonyState;
use super::{ceremony_gone, internal, user_disabled, Ceremonies};
use crate::error::{ApiError, ApiResult};
use crate::limits::ClientPrefix;
use crate::store::{
    Ceremony, CeremonyKind, LoginCompletion, LoginFailure, Passkey, SessionRecord, StoreError, User,
};

/// A signed-in user, the passkey used, and the new session's cookie value and record.
pub struct LoginOutcome {
    pub user: User,
    pub passkey: Passkey,
    pub cookie_value: String,
    pub session: SessionRecord,
}

/// The one answer for every failed login: it never says whether the user or the key was wrong.
pub fn login_failed() -> ApiError {
    ApiError::BadRequest(
        "login_failed",
        "That passkey could not sign you in. Try again or use another passkey.",
    )
}

impl Ceremonies {
    /// Starts a login. With a username, `allowCredentials` lists that user's passkeys; a username
    /// that cannot sign in gets a same-shaped list of stable fake ids instead.
    pub async fn begin_login(
        &self,
        username: Option<&str>,
        now: i64,
    ) -> ApiResult<serde_json::Value> {
        let (options, state, user_id) = match username {
            None => {
                let (rcr, state) = self
                    .webauthn
                    .start_discoverable_authentication()
                    .map_err(webauthn_internal)?;
                (
                    rcr.public_key,
                    CeremonyState::DiscoverableLogin(state),
                    None,
                )
            }
            Some(name) => match self.signable_passkeys(name).await? {
                Some((user, passkeys)) => {
                    let (rcr, state) = self
                        .webauthn
                        .start_passkey_authentication(&passkeys)
                        .map_err(webauthn_internal)?;
                    (
                        rcr.public_key,
                        CeremonyState::ScopedLogin(state),
                        Some(user.id),
                    )
                }
                None => (self.decoy_options(name)?, CeremonyState::Decoy, None),
            },
        };
        let id = Uuid::new_v4();
        let ceremony = Ceremony {
            id,
            kind: CeremonyKind::Login,
            user_id,
            enrollment_token_hash: None,
            state: state.to_bytes(),
            passkey_name: None,
            expires_at: self.expires_at(now),
        };
        self.keep(ceremony).await?;
        Ok(serde_json::json!({ "publicKey": options, "session_id": id }))
    }

    /// The user and their usable passkeys, or `None` when the name cannot sign in at all.
    async fn signable_passkeys(
        &self,
        username: &str,
    ) -> ApiResult<Option<(User, Vec<WebauthnPasskey>)>> {
        let Some(user) = self.store.user_by_name(username).await.map_err(internal)? else {
            return Ok(None);
        };
        if user.disabled {
            return Ok(None);
        }
        let passkeys: Vec<WebauthnPasskey> = self
            .store
            .passkeys_of(user.id)
            .await
            .map_err(internal)?
            .iter()
            .filter(|p| !p.clone_suspected)
            .filter_map(|p| serde_json::from_slice(&p.credential).ok())
            .collect();
        Ok((!passkeys.is_empty()).then_some((user, passkeys)))
    }

    fn decoy_options(
        &self,
        username: &str,
    ) -> ApiResult<webauthn_rs_core::proto::PublicKeyCredentialRequestOptions> {
        let (rcr, _) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(webauthn_internal)?;
        let mut options = rcr.public_key;
        let fake = self.decoy_ids(username)?;
        options.allow_credentials = fake
            .into_iter()
            .map(|id| AllowCredentials {
                type_: "public-key".into(),
                id,
                transports: None,
            })
            .collect();
        Ok(options)
    }

    /// Stable fake credential ids for `username`. The generator mimics how many passkeys real
    /// users have, which includes none; a real user who can be asked for always has at least one,
    /// so an empty draw is redrawn (deterministically) until it is not.
    fn decoy_ids(&self, username: &str) -> ApiResult<Vec<webauthn_rs::prelude::CredentialID>> {
        for round in 0..16u8 {
            let seed = [username.as_bytes(), &[0, round]].concat();
            let ids = self.decoys.generate(&seed).map_err(webauthn_internal)?;
            if !ids.is_empty() {
                return Ok(ids);
            }
        }
        Err(ApiError::Internal("no decoy credential ids".into()))
    }

    /// Completes a login; every failure spends the ceremony and is tallied as `login_failed`
    /// under the client's network (`client` is the address the request came from).
    pub async fn complete_login(
        &self,
        ceremony_id: Uuid,
        credential: &PublicKeyCredential,
        client: Option<IpAddr>,
        now: i64,
    ) -> ApiResult<LoginOutcome> {
        let ceremony = self.store.ceremony(ceremony_id).await.map_err(internal)?;
        let ceremony = ceremony
            .filter(|c| c.kind == CeremonyKind::Login)
            .ok_or_else(ceremony_gone)?;
        match self.verify_login(&ceremony, credential, now).await {
            Ok(outcome) => Ok(outcome),
            Err((error, passkey)) => {
                let _ = self.store.discard_ceremony(ceremony_id).await;
                let failure = LoginFailure {
                    user_id: passkey.as_ref().map(|p| p.user_id),
                    passkey_id: passkey.as_ref().map(|p| p.id),
                    client: client.map(|ip| ClientPrefix::of(ip, self.ipv6_prefix).to_string()),
                    reason: error.to_string(),
                };
                let _ = self.store.record_login_failure(failure, now).await;
                Err(error)
            }
        }
    }

    async fn verify_login(
        &self,
        ceremony: &Ceremony,
        credential: &PublicKeyCredential,
        now: i64,
    ) -> Result<LoginOutcome, (ApiError, Option<Passkey>)> {
        let state = CeremonyState::from_bytes(&ceremony.state).ok_or((ceremony_gone(), None))?;
        let stored = self
            .store
            .passkey_by_credential_id(credential.get_credential_id())
            .await
            .map_err(|e| (internal(e), None))?
            .ok_or((login_failed(), None))?;
        let fail = |e: ApiError| (e, Some(stored.clone()));
        let mut webauthn_passkey: WebauthnPasskey = serde_json::from_slice(&stored.credential)
            .map_err(|e| fail(ApiError::Internal(e.to_string())))?;
        let verified = match state {
            CeremonyState::ScopedLogin(state) if ceremony.user_id == Some(stored.user_id) => self
                .webauthn
                .finish_passkey_authentication(credential, &state),
            CeremonyState::DiscoverableLogin(state) => {
                // The user handle must name the passkey's owner (WebAuthn §7.2 step 6).
                let (handle, _) = self
                    .webauthn
                    .identify_discoverable_authentication(credential)
                    .map_err(|_| fail(login_failed()))?;
                if handle != stored.user_id {
                    return Err(fail(login_failed()));
                }
                self.webauthn.finish_discoverable_authentication_v2(
                    credential,
                    state,
                    &webauthn_passkey,
                )
            }
            _ => return Err(fail(login_failed())),
        };
        let result = match verified {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                // WebAuthn §7.2 step 21: the sign count did not increase; treat it as a clone.
                let _ = self
                    .store
                    .flag_clone_suspected(stored.id, ceremony.id)
                    .await;
                return Err(fail(login_failed()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "login refused");
                return Err(fail(login_failed()));
            }
        };
        // WebAuthn §7.2 step 21 against the count stored *now*, not the one captured when the
        // ceremony began: an assertion signed earlier and presented later is a clone's.
        let counter = result.counter();
        if (counter > 0 || stored.sign_count > 0) && counter <= stored.sign_count {
            let _ = self
                .store
                .flag_clone_suspected(stored.id, ceremony.id)
                .await;
            return Err(fail(login_failed()));
        }
        if stored.clone_suspected {
            return Err(fail(login_failed()));
        }
        let changed = webauthn_passkey.update_credential(&result) == Some(true);
        let (cookie_value, session) = self.sessions.mint(stored.user_id, stored.id, now);
        let completion = LoginCompletion {
            ceremony_id: ceremony.id,
            passkey_id: stored.id,
            new_sign_count: result.counter(),
            backup_state: result.backup_state(),
            backup_eligible: result.backup_eligible(),
            credential: changed.then(|| serde_json::to_vec(&webauthn_passkey).unwrap_or_default()),
            new_session: session.clone(),
            now,
        };
        let (user, passkey) = self
            .store
            .complete_login(completion)
            .await
            .map_err(|e| match e {
                StoreError::UserDisabled => fail(user_disabled()),
                StoreError::CeremonyNotFound => fail(ceremony_gone()),
                StoreError::NotFound => fail(login_failed()),
                other => fail(internal(other)),
            })?;
        self.sessions.admit(&session, &user);
        Ok(LoginOutcome {
            user,
            passkey,
            cookie_value,
            session,
        })
    }
}

fn webauthn_internal(e: WebauthnError) -> ApiError {
    ApiError::Internal(e.to_string())
}
