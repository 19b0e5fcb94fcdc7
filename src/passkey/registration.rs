//! Registration: begin (options with `residentKey: preferred`, UV required, the user's passkeys
//! excluded) and complete (verify, then store passkey, spend the enrollment token and start a
//! session in one transaction).

use uuid::Uuid;
use webauthn_rs::prelude::{CredentialID, RegisterPublicKeyCredential, WebauthnError};
use webauthn_rs_core::internals::AuthenticatorData;
use webauthn_rs_core::proto::{Registration, ResidentKeyRequirement};

use super::provider::provider_name;
use super::state::CeremonyState;
use super::{Ceremonies, PasskeyError, PasskeyName, PasskeyResult};
use crate::session::SignedInFrom;
use crate::store::{
    hash_secret, Ceremony, CeremonyKind, Passkey, RegistrationCompletion, SecretHash, StoreError,
    User,
};

/// A stored passkey, and the `Set-Cookie` value of the new session when the registration was
/// an enrollment (which signs the user in).
pub struct RegistrationOutcome {
    pub passkey: Passkey,
    pub set_cookie: Option<String>,
}

impl Ceremonies {
    /// Starts registering a passkey with an enrollment link's token (a first passkey, or a new
    /// device); the token is spent only when the registration completes.
    pub async fn begin_enrollment(
        &self,
        token: &str,
        name: Option<PasskeyName>,
        now: i64,
    ) -> PasskeyResult<serde_json::Value> {
        let hash = hash_secret(token);
        let enrollment = self.store.enrollment(hash).await?;
        let enrollment = enrollment.ok_or(PasskeyError::EnrollmentInvalid)?;
        let user = self.store.user(enrollment.user_id).await?;
        let user = user.ok_or(PasskeyError::EnrollmentInvalid)?;
        self.begin_registration(&user, name, Some(hash), now).await
    }

    /// Starts registering another passkey for the signed-in user `user_id`.
    pub async fn begin_registration_for(
        &self,
        user_id: Uuid,
        name: Option<PasskeyName>,
        now: i64,
    ) -> PasskeyResult<serde_json::Value> {
        let user = self.store.user(user_id).await?;
        let user = user.ok_or(PasskeyError::NotSignedIn)?;
        self.begin_registration(&user, name, None, now).await
    }

    /// Starts registering a passkey for `user` (authorized by a session or an enrollment token).
    async fn begin_registration(
        &self,
        user: &User,
        name: Option<PasskeyName>,
        enrollment: Option<SecretHash>,
        now: i64,
    ) -> PasskeyResult<serde_json::Value> {
        if user.disabled {
            return Err(PasskeyError::UserDisabled);
        }
        let existing = self.store.passkeys_of(user.id).await?;
        if existing.len() >= self.max_passkeys {
            return Err(PasskeyError::TooManyPasskeys);
        }
        let exclude: Vec<CredentialID> = existing
            .iter()
            .map(|p| CredentialID::from(p.credential_id.clone()))
            .collect();
        let (mut options, state) = self
            .webauthn()
            .start_passkey_registration(user.id, &user.username, &user.display_name, Some(exclude))
            .map_err(PasskeyError::WebAuthn)?;
        // webauthn-rs asks for `residentKey: discouraged`; we want discoverable when possible.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
            selection.require_resident_key = false;
        }
        let id = Uuid::new_v4();
        let ceremony = Ceremony {
            id,
            kind: CeremonyKind::Registration,
            user_id: Some(user.id),
            enrollment_token_hash: enrollment,
            state: CeremonyState::Registration(state).to_bytes()?,
            passkey_name: name.map(PasskeyName::into_string),
            expires_at: self.expires_at(now),
        };
        self.keep(ceremony).await?;
        Ok(serde_json::json!({ "publicKey": options.public_key, "session_id": id }))
    }

    /// Completes a registration. `session_user` is the signed-in user, when a cookie came along:
    /// a ceremony not begun with an enrollment token must be completed by the same user.
    pub async fn complete_registration(
        &self,
        ceremony_id: Uuid,
        credential: &RegisterPublicKeyCredential,
        name: Option<PasskeyName>,
        session_user: Option<Uuid>,
        from: &SignedInFrom,
        now: i64,
    ) -> PasskeyResult<RegistrationOutcome> {
        let ceremony = self.store.ceremony(ceremony_id).await?;
        let ceremony = ceremony
            .filter(|c| c.kind == CeremonyKind::Registration)
            .ok_or(PasskeyError::CeremonyGone)?;
        let user_id = ceremony.user_id.ok_or(PasskeyError::CeremonyGone)?;
        if ceremony.enrollment_token_hash.is_none() && session_user != Some(user_id) {
            return Err(PasskeyError::NotSignedIn);
        }
        let Some(CeremonyState::Registration(state)) = CeremonyState::from_bytes(&ceremony.state)
        else {
            return Err(PasskeyError::CeremonyGone);
        };
        let verified = match self
            .webauthn()
            .finish_passkey_registration(credential, &state)
        {
            Ok(pk) => pk,
            // webauthn-rs's name for "this credential is in `excludeCredentials`": the user
            // registered it already. A conflict (SPEC: 409), and the ceremony stays spent.
            Err(WebauthnError::CredentialAlteredAlgFromRequest) => {
                let _ = self.store.discard_ceremony(ceremony_id).await;
                return Err(PasskeyError::CredentialExists);
            }
            Err(e) => {
                tracing::debug!(error = %e, "registration refused");
                // One attempt per challenge: a failed one spends it too.
                let _ = self.store.discard_ceremony(ceremony_id).await;
                return Err(PasskeyError::RegistrationFailed(e));
            }
        };
        let passkey = stored_passkey(
            user_id,
            &verified,
            credential,
            name.map(PasskeyName::into_string)
                .or(ceremony.passkey_name.clone()),
            now,
        )?;
        let session = ceremony.enrollment_token_hash.map(|_| {
            let (value, mut record) = self.sessions.mint(user_id, passkey.id, now);
            from.stamp(&mut record);
            (value, record)
        });
        // Before the write: a revocation of this user racing it must win (see admit).
        let admission = self.sessions.admission();
        let stored = self
            .store
            .complete_registration(RegistrationCompletion {
                ceremony_id,
                passkey,
                spend_enrollment: ceremony.enrollment_token_hash,
                new_session: session.as_ref().map(|(_, record)| record.clone()),
                max_passkeys_per_user: self.max_passkeys,
                now,
            })
            .await
            .map_err(registration_error)?;
        if let Some((_, record)) = &session {
            if let Ok(Some(user)) = self.store.user(user_id).await {
                self.sessions.admit(admission, record, &user);
            }
        }
        Ok(RegistrationOutcome {
            passkey: stored,
            set_cookie: session.map(|(value, _)| self.sessions.set_cookie(&value)),
        })
    }
}

fn stored_passkey(
    user_id: Uuid,
    verified: &webauthn_rs::prelude::Passkey,
    credential: &RegisterPublicKeyCredential,
    name: Option<String>,
    now: i64,
) -> PasskeyResult<Passkey> {
    let raw: webauthn_rs_core::proto::Credential = verified.clone().into();
    let aaguid = aaguid(credential);
    // No name given: the provider's ("iCloud Keychain") when the AAGUID is known.
    let name = name
        .or_else(|| {
            aaguid
                .as_deref()
                .and_then(provider_name)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Passkey".to_string());
    Ok(Passkey {
        // Time-ordered, so "newest first" holds even for two passkeys made in the same second.
        id: Uuid::now_v7(),
        user_id,
        name,
        credential_id: verified.cred_id().to_vec(),
        credential: serde_json::to_vec(verified).map_err(PasskeyError::Serialization)?,
        aaguid,
        transports: credential
            .response
            .transports
            .iter()
            .flatten()
            .map(|t| {
                serde_json::to_value(t)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .filter(|t| !t.is_empty())
            .collect(),
        backup_eligible: raw.backup_eligible,
        backup_state: raw.backup_state,
        discoverable: credential
            .extensions
            .cred_props
            .as_ref()
            .and_then(|p| p.rk)
            .unwrap_or(false),
        sign_count: raw.counter,
        clone_suspected: false,
        created_at: now,
        last_used_at: None,
    })
}

/// The authenticator model id from the attested credential data, when present and not all zeros.
/// (The attestation object is CBOR `{fmt, attStmt, authData}`; webauthn-rs parses `authData`.)
fn aaguid(credential: &RegisterPublicKeyCredential) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Object {
        #[serde(rename = "authData", with = "serde_bytes_compat")]
        auth_data: Vec<u8>,
    }
    let object: Object = serde_cbor_2::from_slice(&credential.response.attestation_object).ok()?;
    let data = AuthenticatorData::<Registration>::try_from(object.auth_data.as_slice()).ok()?;
    let aaguid = data.acd?.aaguid;
    (aaguid.iter().any(|b| *b != 0)).then(|| Uuid::from_bytes(aaguid).to_string())
}

/// The store's refusals of a registration, in ceremony terms.
fn registration_error(e: StoreError) -> PasskeyError {
    match e {
        StoreError::CeremonyNotFound | StoreError::NotFound => PasskeyError::CeremonyGone,
        StoreError::DuplicateCredential => PasskeyError::CredentialExists,
        StoreError::TooManyPasskeys { .. } => PasskeyError::TooManyPasskeys,
        StoreError::EnrollmentInvalid => PasskeyError::EnrollmentInvalid,
        StoreError::UserDisabled => PasskeyError::UserDisabled,
        other => PasskeyError::Store(other),
    }
}

/// CBOR byte strings into `Vec<u8>` (serde's default would expect a sequence).
mod serde_bytes_compat {
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let value = serde_cbor_2::Value::deserialize(d)?;
        match value {
            serde_cbor_2::Value::Bytes(bytes) => Ok(bytes),
            _ => Err(serde::de::Error::custom("authData is not a byte string")),
        }
    }
    use serde::Deserialize;
}
