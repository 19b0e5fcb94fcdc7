//! What a begun ceremony keeps server-side, serialized into the store's opaque `state` bytes.

use serde::{Deserialize, Serialize};

use super::PasskeyError;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, PasskeyAuthentication, PasskeyRegistration,
};

/// The webauthn-rs state of one ceremony.
#[derive(Serialize, Deserialize)]
pub enum CeremonyState {
    Registration(PasskeyRegistration),
    /// A login scoped to one user's passkeys (`allowCredentials`).
    ScopedLogin(PasskeyAuthentication),
    /// A usernameless login: the user handle names the user.
    DiscoverableLogin(DiscoverableAuthentication),
    /// A login begun for a username that does not exist (or cannot sign in): it looks like a
    /// scoped login to the client and can never complete. The state of the stand-in's scoped
    /// login is kept only so that this write is as large as a real one; it is never verified.
    Decoy(Option<PasskeyAuthentication>),
}

impl CeremonyState {
    pub fn to_bytes(&self) -> Result<Vec<u8>, PasskeyError> {
        serde_json::to_vec(self).map_err(PasskeyError::Serialization)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<CeremonyState> {
        serde_json::from_slice(bytes).ok()
    }
}
