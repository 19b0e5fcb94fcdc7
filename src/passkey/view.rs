//! The JSON a passkey's owner sees (`/passkeys/credentials`): never the public key or counters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::provider::{provider_name, Storage};
use crate::store::{Passkey, User};

/// One passkey as its owner sees it.
#[derive(Debug, Serialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub credential_id: String,
    pub aaguid: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub discoverable: bool,
    /// The provider's name from the AAGUID ("iCloud Keychain"); `None` when unknown.
    pub provider: Option<&'static str>,
    /// `synced`, `sync_allowed` or `device_bound`.
    pub storage: Storage,
}

impl From<&Passkey> for PasskeyView {
    fn from(p: &Passkey) -> PasskeyView {
        PasskeyView {
            id: p.id.to_string(),
            name: p.name.clone(),
            credential_id: URL_SAFE_NO_PAD.encode(&p.credential_id),
            aaguid: p.aaguid.clone(),
            created_at: rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(rfc3339),
            transports: p.transports.clone(),
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            discoverable: p.discoverable,
            provider: p.aaguid.as_deref().and_then(provider_name),
            storage: Storage::of(p),
        }
    }
}

/// A user as they see themselves (`/passkeys/me`, login replies).
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            id: u.id.to_string(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            groups: u.groups.clone(),
        }
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
