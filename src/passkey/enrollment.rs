//! Enrollment links: issuing the one-time token that lets a user register a passkey without a
//! session (a first passkey, a new device). The CLI, the admin socket and the demo all issue
//! links here; [`Ceremonies::begin_enrollment`](super::Ceremonies::begin_enrollment) checks a
//! token and the store spends it when that registration completes.
//!
//! Only the token's hash is stored; the token itself exists once, in the link.

use std::time::Duration;

use uuid::Uuid;

use crate::session::new_session_value;
use crate::store::{hash_secret, Store, StoreError};

/// A freshly issued link's secret and expiry.
#[derive(Debug)]
pub struct EnrollmentLink {
    token: String,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
}

impl EnrollmentLink {
    /// The link to hand to the user: the token travels in the fragment, so it never reaches
    /// a server log or a Referer header.
    pub fn url(&self, public_origin: &str) -> String {
        format!("{public_origin}/passkeys/enroll#token={}", self.token)
    }
}

/// Issues a new one-time enrollment link for `user_id`, valid for `ttl` from `now`.
pub async fn issue_enrollment(
    store: &Store,
    user_id: Uuid,
    ttl: Duration,
    now: i64,
) -> Result<EnrollmentLink, StoreError> {
    // 32 random bytes, base64url: the same kind of secret as a session cookie.
    let token = new_session_value();
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl);
    store
        .create_enrollment(user_id, hash_secret(&token), expires_at)
        .await?;
    Ok(EnrollmentLink { token, expires_at })
}
