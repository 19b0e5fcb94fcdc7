//! Login: begin (scoped to a username's passkeys, usernameless, or a decoy for a username that
//! cannot sign in) and complete (verify, check the owner and the sign count, then update the
//! passkey and start a session in one transaction).

use uuid::Uuid;
use webauthn_rs::prelude::{Passkey as WebauthnPasskey, PublicKeyCredential, WebauthnError};

use super::state::CeremonyState;
use super::{usable, Ceremonies, PasskeyError, PasskeyResult};
use crate::limits::ClientPrefix;
use crate::policy::Username;
use crate::session::SignedInFrom;
use crate::store::{
    Ceremony, CeremonyKind, LoginCompletion, LoginFailure, Passkey, StoreError, User,
};

/// A signed-in user and the `Set-Cookie` value that hands the new session to the browser.
pub struct LoginOutcome {
    pub user: User,
    pub set_cookie: String,
}

impl Ceremonies {
    /// Starts a login. With a username, `allowCredentials` lists that user's passkeys; a username
    /// that cannot sign in gets a same-shaped list of stable fake ids instead.
    pub async fn begin_login(
        &self,
        username: Option<&Username>,
        now: i64,
    ) -> PasskeyResult<serde_json::Value> {
        let (options, state, user_id) = match username {
            None => {
                let (rcr, state) = self
                    .webauthn()
                    .start_discoverable_authentication()
                    .map_err(PasskeyError::WebAuthn)?;
                (
                    rcr.public_key,
                    CeremonyState::DiscoverableLogin(state),
                    None,
                )
            }
            Some(name) => match self.signable_passkeys(name.as_str()).await? {
                Some((user, passkeys)) => {
                    let (rcr, state) = self
                        .webauthn()
                        .start_passkey_authentication(&passkeys)
                        .map_err(PasskeyError::WebAuthn)?;
                    (
                        rcr.public_key,
                        CeremonyState::ScopedLogin(state),
                        Some(user.id),
                    )
                }
                None => {
                    let (options, state) = self.decoy_options(name.as_str()).await?;
                    (options, state, None)
                }
            },
        };
        let id = Uuid::new_v4();
        let ceremony = Ceremony {
            id,
            kind: CeremonyKind::Login,
            user_id,
            enrollment_token_hash: None,
            state: state.to_bytes()?,
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
    ) -> PasskeyResult<Option<(User, Vec<WebauthnPasskey>)>> {
        let Some((user, passkeys)) = self.store.user_by_name_with_passkeys(username).await? else {
            return Ok(None);
        };
        if user.disabled {
            return Ok(None);
        }
        let passkeys = usable(&passkeys);
        Ok((!passkeys.is_empty()).then_some((user, passkeys)))
    }

    /// Options for a name that cannot sign in, with the keys and shapes of a real user's, after
    /// the same work as a real user's begin (read and parse a stand-in's passkeys, start a scoped
    /// login with them): neither the answer nor its timing tells the two apart.
    async fn decoy_options(
        &self,
        username: &str,
    ) -> PasskeyResult<(
        webauthn_rs_core::proto::PublicKeyCredentialRequestOptions,
        CeremonyState,
    )> {
        let decoy = self.decoys.decoy(username);
        let stand_in = match decoy.stand_in {
            Some(user_id) => usable(&self.store.passkeys_of(user_id).await?),
            None => Vec::new(),
        };
        let (mut options, state) = if stand_in.is_empty() {
            let (rcr, _) = self
                .webauthn()
                .start_discoverable_authentication()
                .map_err(PasskeyError::WebAuthn)?;
            let mut options = rcr.public_key;
            // webauthn-rs adds `uvm` to usernameless options only; a real user's have none.
            options.extensions = None;
            (options, None)
        } else {
            let (rcr, state) = self
                .webauthn()
                .start_passkey_authentication(&stand_in)
                .map_err(PasskeyError::WebAuthn)?;
            (rcr.public_key, Some(state))
        };
        options.allow_credentials = decoy.allow_credentials;
        Ok((options, CeremonyState::Decoy(state)))
    }

    /// Completes a login; every failure spends the ceremony and is tallied as `login_failed`
    /// under the client's network (`from.client` is the address the request came from; both
    /// are kept on the new session for the owner's list).
    pub async fn complete_login(
        &self,
        ceremony_id: Uuid,
        credential: &PublicKeyCredential,
        from: &SignedInFrom,
        now: i64,
    ) -> PasskeyResult<LoginOutcome> {
        let (ceremony, stored) = self
            .store
            .ceremony_and_passkey(ceremony_id, credential.get_credential_id())
            .await?;
        let ceremony = ceremony
            .filter(|c| c.kind == CeremonyKind::Login)
            .ok_or(PasskeyError::CeremonyGone)?;
        match self
            .verify_login(&ceremony, stored, credential, from, now)
            .await
        {
            Ok(outcome) => Ok(outcome),
            Err((error, passkey)) => {
                let _ = self.store.discard_ceremony(ceremony_id).await;
                let failure = LoginFailure {
                    user_id: passkey.as_ref().map(|p| p.user_id),
                    passkey_id: passkey.as_ref().map(|p| p.id),
                    client: from
                        .client
                        .map(|ip| ClientPrefix::of(ip, self.ipv6_prefix).to_string()),
                    reason: error.to_string(),
                };
                let _ = self.store.record_login_failure(failure, now).await;
                Err(error)
            }
        }
    }

    /// Verifies `credential` against `ceremony` and `stored`, the passkey registered with its
    /// credential id (read with the ceremony).
    async fn verify_login(
        &self,
        ceremony: &Ceremony,
        stored: Option<Passkey>,
        credential: &PublicKeyCredential,
        from: &SignedInFrom,
        now: i64,
    ) -> Result<LoginOutcome, (PasskeyError, Option<Passkey>)> {
        let state =
            CeremonyState::from_bytes(&ceremony.state).ok_or((PasskeyError::CeremonyGone, None))?;
        let stored = stored.ok_or((PasskeyError::UnknownCredential, None))?;
        let fail = |e: PasskeyError| (e, Some(stored.clone()));
        let mut webauthn_passkey: WebauthnPasskey = serde_json::from_slice(&stored.credential)
            .map_err(|e| fail(PasskeyError::Serialization(e)))?;
        let begun_at = ceremony.expires_at - self.timeout.as_secs() as i64;
        let (verified, scoped) = match state {
            CeremonyState::ScopedLogin(state) if ceremony.user_id == Some(stored.user_id) => (
                self.webauthn()
                    .finish_passkey_authentication(credential, &state),
                true,
            ),
            CeremonyState::DiscoverableLogin(state) => {
                // The user handle must name the passkey's owner (WebAuthn §7.2 step 6).
                let (handle, _) = self
                    .webauthn()
                    .identify_discoverable_authentication(credential)
                    .map_err(|_| fail(PasskeyError::LoginFailed))?;
                if handle != stored.user_id {
                    return Err(fail(PasskeyError::LoginFailed));
                }
                let verified = self.webauthn().finish_discoverable_authentication_v2(
                    credential,
                    state,
                    &webauthn_passkey,
                );
                (verified, false)
            }
            _ => return Err(fail(PasskeyError::LoginFailed)),
        };
        let result = match verified {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                // A scoped login compared the count with the one captured when it began: behind
                // that, only a clone. A discoverable one compared with the count stored now.
                let behind = if scoped {
                    CountBehind::Clone
                } else {
                    count_behind(&stored, begun_at)
                };
                return Err(fail(self.count_refused(behind, &stored, ceremony.id).await));
            }
            Err(e) => {
                tracing::debug!(error = %e, "login refused");
                return Err(fail(PasskeyError::LoginFailed));
            }
        };
        // WebAuthn §7.2 step 21 against the count stored *now*, not the one captured when the
        // ceremony began: an assertion signed earlier and presented later is behind.
        let counter = result.counter();
        if (counter > 0 || stored.sign_count > 0) && counter <= stored.sign_count {
            let behind = count_behind(&stored, begun_at);
            return Err(fail(self.count_refused(behind, &stored, ceremony.id).await));
        }
        if stored.clone_suspected {
            return Err(fail(PasskeyError::LoginFailed));
        }
        let changed = webauthn_passkey.update_credential(&result) == Some(true);
        let credential = if changed {
            let bytes = serde_json::to_vec(&webauthn_passkey);
            Some(bytes.map_err(|e| fail(PasskeyError::Serialization(e)))?)
        } else {
            None
        };
        let (cookie_value, mut session) = self.sessions.mint(stored.user_id, stored.id, now);
        from.stamp(&mut session);
        // Before the write: a revocation of this user or passkey racing it must win (see admit).
        let admission = self.sessions.admission();
        let completion = LoginCompletion {
            ceremony_id: ceremony.id,
            passkey_id: stored.id,
            new_sign_count: result.counter(),
            backup_state: result.backup_state(),
            backup_eligible: result.backup_eligible(),
            credential,
            new_session: session.clone(),
            now,
        };
        let (user, _passkey) =
            self.store
                .complete_login(completion)
                .await
                .map_err(|e| match e {
                    StoreError::UserDisabled => fail(PasskeyError::UserDisabled),
                    StoreError::CeremonyNotFound => fail(PasskeyError::CeremonyGone),
                    StoreError::NotFound => fail(PasskeyError::LoginFailed),
                    other => fail(PasskeyError::Store(other)),
                })?;
        self.sessions.admit(admission, &session, &user);
        Ok(LoginOutcome {
            user,
            set_cookie: self.sessions.set_cookie(&cookie_value),
        })
    }
}

/// Why a sign count that did not go up is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CountBehind {
    /// Behind a count stored before this ceremony began: flag the passkey.
    Clone,
    /// Behind a count stored since this ceremony began: another sign-in with the same
    /// authenticator (a second tab) overtook this one. Refuse this assertion only.
    Concurrent,
}

/// A genuine authenticator signs an assertion after its ceremony began, with a count above every
/// count it signed before; so a count behind one already stored when the ceremony began is a
/// clone's, while one behind a count stored only since may be a second tab's sign-in that was
/// signed later but completed first. Times are whole seconds: a count stored in the second the
/// ceremony began counts as concurrent (a clone is then refused, and flagged on its next try).
fn count_behind(stored: &Passkey, begun_at: i64) -> CountBehind {
    match stored.last_used_at {
        Some(used) if used >= begun_at => CountBehind::Concurrent,
        _ => CountBehind::Clone,
    }
}

impl Ceremonies {
    /// Refuses an assertion whose count did not go up; flags the passkey when it is a clone's.
    async fn count_refused(
        &self,
        behind: CountBehind,
        stored: &Passkey,
        ceremony: Uuid,
    ) -> PasskeyError {
        match behind {
            CountBehind::Clone => {
                // WebAuthn §7.2 step 21: the sign count went backwards; treat it as a clone.
                let _ = self.store.flag_clone_suspected(stored.id, ceremony).await;
            }
            CountBehind::Concurrent => {
                tracing::debug!(passkey_id = %stored.id, "sign count behind a concurrent sign-in");
            }
        }
        PasskeyError::LoginFailed
    }
}
