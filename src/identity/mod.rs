//! Signed identity for upstream apps: the signing keys kept in the data dir, the JWKS that
//! publishes them, the `X-Passkey-Assertion` JWS, and the names of every identity header a
//! client must never be able to forge.
//!
//! Owns: key generation, persistence and rotation (`keys`), the public key set (`jwks`), the
//! assertion claims and its hot-path cache (`assertion`), header names and convenience values
//! (`headers`). Does not own: where headers are stripped or added (the proxy glue calls
//! [`is_identity_header`] and [`convenience_headers`]), who the user is (the session and the
//! store build an [`Identity`]), or the config types that pick the algorithm and the preset.

mod assertion;
mod headers;
mod jwks;
mod keys;
mod shared;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Once;

pub use assertion::AssertionSigner;
pub use headers::{
    convenience_headers, is_identity_header, preset_header_names, HeaderPreset, ASSERTION_HEADER,
};
pub use keys::{KeyAlgorithm, KeyRing};
pub use shared::{KeyEncryptionKey, SharedKeys};

/// Who the signed-in user is, as the upstream is told: built by the caller from the stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable user id (`sub`); never changes, unlike the username.
    pub user_id: String,
    /// Login name (`preferred_username`).
    pub username: String,
    /// Human-readable name (`name`).
    pub display_name: String,
    /// Email address, when the user has one.
    pub email: Option<String>,
    /// Group names, in the stored order.
    pub groups: Vec<String>,
}

/// Everything that can go wrong with identity keys and assertions.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing the key file (or its directory) failed.
    #[error("identity key file `{path}`: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The key file is readable by others than its owner: private keys may have leaked.
    #[error("identity key file `{path}` has mode {mode:04o}; it holds private keys and must be 0600 (run `chmod 600` on it)")]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file exists but is not a key file this gateway wrote.
    #[error("identity key file `{path}` is not valid: {reason}")]
    KeyFileCorrupt {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The crypto library could not generate or parse a key.
    #[error("identity key: {0}")]
    Key(String),
    /// The assertion lifetime cannot be used.
    #[error("identity token_ttl must be at least 2 seconds")]
    InvalidTtl,
    /// Signing an assertion failed.
    #[error("signing the identity assertion: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
    /// The signing keys shared through the store could not be read, opened or written.
    #[error("shared signing keys: {0}")]
    Shared(String),
}

/// Selects jsonwebtoken's aws-lc-rs backend for the whole process, once.
///
/// jsonwebtoken 11 panics on first use when it cannot tell which crypto backend to use (for
/// example if another crate in the build enables its `rust_crypto` feature too), so every entry
/// point that signs or verifies calls this first. A provider installed earlier by someone else is
/// kept: installing is first-wins and the error only says "already installed".
pub fn install_jwt_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already in place, which is exactly what we want.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}
