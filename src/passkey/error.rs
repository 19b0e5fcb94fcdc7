//! [`PasskeyError`]: every way a ceremony can fail, in WebAuthn terms. The HTTP edge
//! (`error.rs`) decides the status and the words a person reads; nothing here knows HTTP.

use webauthn_rs::prelude::WebauthnError;

use crate::store::StoreError;

/// A refused or failed ceremony.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The ceremony id is unknown, expired, spent, or of the other kind.
    #[error("the ceremony is unknown, expired or already used")]
    CeremonyGone,
    /// A registration not begun with an enrollment link, completed without its user's session.
    #[error("the registration was not begun by the signed-in user")]
    NotSignedIn,
    /// The one answer for every failed login: never which of user or passkey was wrong.
    #[error("the passkey could not sign in")]
    LoginFailed,
    /// The credential id presented at login is not registered here (deleted, or never was).
    /// Said apart from [`PasskeyError::LoginFailed`] so the page can tell the browser's passkey
    /// manager to stop offering it (WebAuthn Signal API); it names no user.
    #[error("the credential is not registered")]
    UnknownCredential,
    /// The authenticator's registration response did not verify.
    #[error("the registration response did not verify")]
    RegistrationFailed(#[source] WebauthnError),
    /// The credential is registered already, to this user or another.
    #[error("the credential is already registered")]
    CredentialExists,
    /// The user already has as many passkeys as allowed.
    #[error("the user has the most passkeys allowed")]
    TooManyPasskeys,
    /// The user is disabled.
    #[error("the user is disabled")]
    UserDisabled,
    /// The enrollment link is unknown, expired, spent, or another user's.
    #[error("the enrollment link is invalid, expired or already used")]
    EnrollmentInvalid,
    /// As many ceremonies as allowed are waiting; the next upkeep purges expired ones.
    #[error("too many ceremonies are in progress")]
    Busy,
    /// webauthn-rs could not build options or read a stored credential.
    #[error("webauthn")]
    WebAuthn(#[source] WebauthnError),
    /// A credential or ceremony state could not be written or read back.
    #[error("serializing WebAuthn state")]
    Serialization(#[source] serde_json::Error),
    /// The store failed.
    #[error("store")]
    Store(#[source] StoreError),
}

impl From<StoreError> for PasskeyError {
    fn from(e: StoreError) -> Self {
        PasskeyError::Store(e)
    }
}

/// Shorthand for ceremony results.
pub type PasskeyResult<T> = Result<T, PasskeyError>;
