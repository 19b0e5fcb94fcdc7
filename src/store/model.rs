//! The records the store keeps and hands out: users, passkeys, ceremonies, enrollment tokens,
//! sessions and audit events, plus the inputs of the atomic completes.
//!
//! These are plain serde types with no storage types inside, so a second backend (PostgreSQL)
//! can return the same values. Opaque blobs (`credential`, ceremony `state`) are serialized
//! webauthn-rs values that the store never interprets. Secrets never appear here: tokens and
//! session ids only as their SHA-256 [`SecretHash`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

/// SHA-256 of a secret (session cookie value, enrollment token): the only form a secret is stored in.
///
/// Knowing the hash does not let anyone present the secret, so its hex form may serve as the
/// admin-visible id of a session.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretHash(pub [u8; 32]);

/// Hashes a secret the way the store keys it.
pub fn hash_secret(secret: &str) -> SecretHash {
    SecretHash(Sha256::digest(secret.as_bytes()).into())
}

impl SecretHash {
    /// Lowercase hex of the 32 bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the 64-character hex form produced by [`SecretHash::to_hex`].
    pub fn from_hex(text: &str) -> Option<SecretHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(SecretHash(bytes))
    }
}

impl From<[u8; 32]> for SecretHash {
    fn from(bytes: [u8; 32]) -> Self {
        SecretHash(bytes)
    }
}

// Debug shows a prefix only: enough to correlate, and logs stay short.
impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({}…)", &self.to_hex()[..12])
    }
}

impl Serialize for SecretHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SecretHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SecretHash::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// A person who may sign in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    /// Unique, compared exactly as given (callers normalize before creating or looking up).
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// A disabled user cannot log in, register passkeys, or keep sessions.
    pub disabled: bool,
    pub created_at: i64,
}

/// What [`crate::store::Store::create_user`] needs; the store assigns id and creation time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// One registered WebAuthn credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passkey {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The owner's label for it ("work laptop").
    pub name: String,
    /// Unique across all users.
    #[serde(with = "super::bytes")]
    pub credential_id: Vec<u8>,
    /// The serialized webauthn-rs `Passkey`; opaque to the store.
    #[serde(with = "super::bytes")]
    pub credential: Vec<u8>,
    pub aaguid: Option<String>,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub discoverable: bool,
    pub sign_count: u32,
    /// Set when a login presented a sign count that went backwards.
    pub clone_suspected: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Which WebAuthn ceremony a stored challenge belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeremonyKind {
    Registration,
    Login,
}

/// The server half of a begun WebAuthn ceremony: single use, gone after `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ceremony {
    pub id: Uuid,
    pub kind: CeremonyKind,
    /// Known for registrations and username-scoped logins; `None` for discoverable logins.
    pub user_id: Option<Uuid>,
    /// The enrollment token that authorized a registration, if one did.
    pub enrollment_token_hash: Option<SecretHash>,
    /// Serialized webauthn-rs ceremony state; opaque to the store.
    #[serde(with = "super::bytes")]
    pub state: Vec<u8>,
    pub passkey_name: Option<String>,
    pub expires_at: i64,
}

/// A one-time enrollment link, kept only as the hash of its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    pub token_hash: SecretHash,
    pub user_id: Uuid,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A signed-in browser, keyed by the hash of its cookie value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id_hash: SecretHash,
    pub user_id: Uuid,
    /// The passkey whose login (or registration) created this session; deleting it revokes the session.
    pub passkey_id: Uuid,
    pub created_at: i64,
    /// Written lazily in batches (see [`crate::store::Store::touch_sessions`]); the idle timeout reads it.
    pub last_seen: i64,
    /// Absolute end of the session, whatever its activity.
    pub expires_at: i64,
    /// A coarse device label from the User-Agent at sign-in ("Chrome on Android"), bounded;
    /// never the raw header. Absent on sessions stored before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The client address the sign-in came from, as the gateway decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// What an audit event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PasskeyRegistered,
    PasskeyRenamed,
    PasskeyDeleted,
    Login,
    LoginFailed,
    CloneSuspected,
    UserCreated,
    UserDisabled,
    UserEnabled,
    UserRemoved,
    UserGroupsChanged,
    EnrollmentCreated,
    SessionRevoked,
    // Issue 15 (operations); other branches add theirs after these.
    EnrollmentSpent,
    KeysRotated,
}

impl EventKind {
    /// The snake_case name used in logs and the stored record.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PasskeyRegistered => "passkey_registered",
            EventKind::PasskeyRenamed => "passkey_renamed",
            EventKind::PasskeyDeleted => "passkey_deleted",
            EventKind::Login => "login",
            EventKind::LoginFailed => "login_failed",
            EventKind::CloneSuspected => "clone_suspected",
            EventKind::UserCreated => "user_created",
            EventKind::UserDisabled => "user_disabled",
            EventKind::UserEnabled => "user_enabled",
            EventKind::UserRemoved => "user_removed",
            EventKind::UserGroupsChanged => "user_groups_changed",
            EventKind::EnrollmentCreated => "enrollment_created",
            EventKind::SessionRevoked => "session_revoked",
            EventKind::EnrollmentSpent => "enrollment_spent",
            EventKind::KeysRotated => "keys_rotated",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored audit event. `id` and `at` never go backwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    pub at: i64,
    pub kind: EventKind,
    pub user_id: Option<Uuid>,
    pub passkey_id: Option<Uuid>,
    /// Human-readable context; never a secret.
    pub detail: String,
    /// How many occurrences this row stands for: failures from one client network within one
    /// tally period share a row (see `Store::record_login_failure`); every other event is 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u64,
    /// The client network of a tallied failure, e.g. `2001:db8:1:2::/64`; `*` for the
    /// overflow row of a busy period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// When the last occurrence counted in this row happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<i64>,
}

fn one() -> u64 {
    1
}

fn is_one(count: &u64) -> bool {
    *count == 1
}

/// A failed sign-in to tally: never one row each, since anyone can cause one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginFailure {
    /// The passkey's owner, when the credential named a stored passkey.
    pub user_id: Option<Uuid>,
    pub passkey_id: Option<Uuid>,
    /// The client's network (rate-limit key), when known.
    pub client: Option<String>,
    /// Why the first failure of the row was refused; never a secret.
    pub reason: String,
}

/// An event to append; the store assigns `id` and `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub user_id: Option<Uuid>,
    pub passkey_id: Option<Uuid>,
    pub detail: String,
}

/// Input of [`crate::store::Store::complete_registration`].
#[derive(Clone, Debug)]
pub struct RegistrationCompletion {
    pub ceremony_id: Uuid,
    pub passkey: Passkey,
    /// The enrollment token to spend (an enrollment signs the user in and uses the link up).
    pub spend_enrollment: Option<SecretHash>,
    pub new_session: Option<SessionRecord>,
    pub max_passkeys_per_user: usize,
    pub now: i64,
}

/// Input of [`crate::store::Store::complete_login`]: what the verified assertion changed.
#[derive(Clone, Debug)]
pub struct LoginCompletion {
    pub ceremony_id: Uuid,
    pub passkey_id: Uuid,
    pub new_sign_count: u32,
    pub backup_state: bool,
    pub backup_eligible: bool,
    /// The updated serialized credential, when webauthn-rs says it changed.
    pub credential: Option<Vec<u8>>,
    pub new_session: SessionRecord,
    pub now: i64,
}
