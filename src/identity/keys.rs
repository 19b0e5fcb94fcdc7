//! The identity-signing keys: generated on first start, kept in `identity-keys.json` in the data
//! dir (mode 0600, replaced atomically), rotated on demand with an overlap during which the
//! previous public key is still published.
//!
//! Owns: the key file format, its permissions, generation (aws-lc-rs) and rotation. Does not
//! own: the JWKS document (`jwks.rs`), signing (`assertion.rs`), or when rotation happens (the
//! `keys rotate` admin command decides, then hands the new ring to the running signer).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::jwks::thumbprint;
use super::IdentityError;

/// The key file's name inside the data dir.
pub const KEY_FILE_NAME: &str = "identity-keys.json";

/// Bumped if the file layout ever changes incompatibly.
const KEY_FILE_VERSION: u32 = 1;

/// A signing algorithm for the identity assertion (`[identity] algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256: what every JWT library verifies.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519: smaller and faster, supported by most but not all JWT libraries.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl KeyAlgorithm {
    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Es256 => "ES256",
            KeyAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// The matching jsonwebtoken algorithm.
    pub fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            KeyAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            KeyAlgorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key pair with its lifecycle; the private half never appears in `Debug` output.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: KeyAlgorithm,
    pkcs8: Vec<u8>,
    /// Raw public key: the uncompressed point `04 || x || y` for P-256, 32 bytes for Ed25519.
    public: Vec<u8>,
    created_at: OffsetDateTime,
    retired_at: Option<OffsetDateTime>,
    publish_until: Option<OffsetDateTime>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("publish_until", &self.publish_until)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Key id: the RFC 7638 SHA-256 thumbprint of the public key, so it is stable and unique.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> KeyAlgorithm {
        self.alg
    }

    /// Raw public key bytes (uncompressed P-256 point, or the 32-byte Ed25519 key).
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// True while upstreams should still accept tokens signed by this key.
    pub fn is_published_at(&self, now: OffsetDateTime) -> bool {
        self.publish_until.is_none_or(|until| now < until)
    }

    /// The private key as PKCS#8 DER, for the signer only.
    pub(super) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    fn generate(alg: KeyAlgorithm, now: OffsetDateTime) -> Result<Self, IdentityError> {
        let rng = SystemRandom::new();
        let document = match alg {
            KeyAlgorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            KeyAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| IdentityError::Key(format!("could not generate an {alg} key")))?;
        Self::from_pkcs8(alg, document.as_ref().to_vec(), now)
    }

    /// Parses the private key (which also checks it) and derives the public key and the kid.
    fn from_pkcs8(
        alg: KeyAlgorithm,
        pkcs8: Vec<u8>,
        created_at: OffsetDateTime,
    ) -> Result<Self, IdentityError> {
        let public = match alg {
            KeyAlgorithm::Es256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                    .map(|pair| pair.public_key().as_ref().to_vec())
            }
            KeyAlgorithm::EdDsa => {
                Ed25519KeyPair::from_pkcs8(&pkcs8).map(|pair| pair.public_key().as_ref().to_vec())
            }
        }
        .map_err(|e| IdentityError::Key(format!("{alg} private key rejected: {e}")))?;
        let kid = thumbprint(alg, &public)?;
        Ok(SigningKey {
            kid,
            alg,
            pkcs8,
            public,
            created_at,
            retired_at: None,
            publish_until: None,
        })
    }
}

/// The current signing key plus retired keys still inside their overlap, newest first.
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// Invariant: non-empty; `keys[0]` is current (not retired), the rest are retired.
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// Loads the key file from `dir`, or generates a first `alg` key and writes it (0600).
    ///
    /// An existing key of another algorithm is kept (with a warning): changing `algorithm` takes
    /// effect at the next `keys rotate`, so upstreams are never left with an unknown key.
    pub fn load_or_create(dir: &Path, alg: KeyAlgorithm) -> Result<KeyRing, IdentityError> {
        if let Some(ring) = Self::load(dir)? {
            if ring.current().alg != alg {
                tracing::warn!(
                    configured = %alg,
                    current = %ring.current().alg,
                    "identity algorithm changed; it takes effect at the next `keys rotate`"
                );
            }
            return Ok(ring);
        }
        create_dir(dir)?;
        let ring = KeyRing {
            keys: vec![SigningKey::generate(
                alg,
                OffsetDateTime::from(SystemTime::now()),
            )?],
        };
        match write_key_file(dir, &ring.keys, WriteMode::CreateNew) {
            Ok(()) => {
                tracing::info!(kid = ring.current().kid(), alg = %alg, "generated identity signing key");
                Ok(ring)
            }
            // Another process (the admin CLI, a second start) created it first: use theirs.
            Err(IdentityError::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                Self::load(dir)?.ok_or_else(|| IdentityError::KeyFileCorrupt {
                    path: dir.join(KEY_FILE_NAME),
                    reason: "vanished while being created".into(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Loads the key file from `dir`; `Ok(None)` when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<KeyRing>, IdentityError> {
        let path = dir.join(KEY_FILE_NAME);
        let io_err = |source| IdentityError::Io {
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e)),
        };
        let mode = file.metadata().map_err(io_err)?.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::KeyFilePermissions { path, mode });
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io_err)?;
        parse_key_file(&text)
            .map(|keys| Some(KeyRing { keys }))
            .map_err(|reason| IdentityError::KeyFileCorrupt { path, reason })
    }

    /// Generates a new current `alg` key in `dir`'s key file; the previous current key is retired
    /// and published until `now + overlap`; retired keys past their overlap are dropped.
    ///
    /// `overlap` must be at least the assertion TTL, or tokens signed just before the rotation
    /// stop verifying before they expire. Creates the file when there is none.
    pub fn rotate(
        dir: &Path,
        alg: KeyAlgorithm,
        overlap: Duration,
        now: SystemTime,
    ) -> Result<KeyRing, IdentityError> {
        let previous = match Self::load(dir)? {
            Some(ring) => Some(ring),
            None => {
                create_dir(dir)?;
                None
            }
        };
        let ring = KeyRing::rotated(previous, alg, overlap, now)?;
        write_key_file(dir, &ring.keys, WriteMode::Replace)?;
        tracing::info!(kid = ring.keys[0].kid(), alg = %alg, "rotated identity signing key");
        Ok(ring)
    }

    /// `previous` (if any) with a new current `alg` key; the previous current key is retired and
    /// published until `now + overlap`; retired keys past their overlap are dropped. In memory:
    /// the caller stores the result (a file, or the shared store).
    pub fn rotated(
        previous: Option<KeyRing>,
        alg: KeyAlgorithm,
        overlap: Duration,
        now: SystemTime,
    ) -> Result<KeyRing, IdentityError> {
        let now = OffsetDateTime::from(now);
        let mut keys = vec![SigningKey::generate(alg, now)?];
        for mut key in previous.map(|ring| ring.keys).unwrap_or_default() {
            if key.retired_at.is_none() {
                key.retired_at = Some(now);
                key.publish_until = Some(now + overlap);
            }
            if key.is_published_at(now) {
                keys.push(key);
            }
        }
        Ok(KeyRing { keys })
    }

    /// The ring in the key file's text form (private keys included: seal it before storing).
    pub fn to_text(&self) -> Result<String, String> {
        encode_keys(&self.keys)
    }

    /// Parses [`KeyRing::to_text`]'s form, with every check the key file gets.
    pub fn from_text(text: &str) -> Result<KeyRing, String> {
        parse_key_file(text).map(|keys| KeyRing { keys })
    }

    /// The key that signs new assertions.
    pub fn current(&self) -> &SigningKey {
        // The invariant (non-empty) is established by every constructor.
        &self.keys[0]
    }

    /// All keys, current first, then retired ones newest first (including any whose overlap has
    /// ended since the ring was loaded; [`SigningKey::is_published_at`] tells).
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    kid: String,
    alg: KeyAlgorithm,
    /// PKCS#8 DER, standard base64.
    private_pkcs8: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    retired_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    publish_until: Option<OffsetDateTime>,
}

fn parse_key_file(text: &str) -> Result<Vec<SigningKey>, String> {
    let file: KeyFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.version != KEY_FILE_VERSION {
        return Err(format!(
            "version {} is not supported (expected {KEY_FILE_VERSION})",
            file.version
        ));
    }
    let mut keys = Vec::with_capacity(file.keys.len());
    for (i, stored) in file.keys.into_iter().enumerate() {
        let pkcs8 = STANDARD
            .decode(&stored.private_pkcs8)
            .map_err(|e| format!("keys[{i}].private_pkcs8: {e}"))?;
        let mut key = SigningKey::from_pkcs8(stored.alg, pkcs8, stored.created_at)
            .map_err(|e| format!("keys[{i}]: {e}"))?;
        // The kid is derived; a mismatch means the file was edited or mixed up.
        if key.kid != stored.kid {
            return Err(format!("keys[{i}].kid does not match its private key"));
        }
        if stored.retired_at.is_some() != stored.publish_until.is_some() {
            return Err(format!(
                "keys[{i}]: retired_at and publish_until must be set together"
            ));
        }
        key.retired_at = stored.retired_at;
        key.publish_until = stored.publish_until;
        keys.push(key);
    }
    match keys.split_first() {
        None => Err("holds no keys".into()),
        Some((current, _)) if current.retired_at.is_some() => {
            Err("keys[0] must be the current (not retired) key".into())
        }
        Some((_, rest)) if rest.iter().any(|k| k.retired_at.is_none()) => {
            Err("only keys[0] may be current".into())
        }
        Some(_) => Ok(keys),
    }
}

/// The key file's JSON text for `keys`.
fn encode_keys(keys: &[SigningKey]) -> Result<String, String> {
    let file = KeyFile {
        version: KEY_FILE_VERSION,
        keys: keys
            .iter()
            .map(|k| StoredKey {
                kid: k.kid.clone(),
                alg: k.alg,
                private_pkcs8: STANDARD.encode(&k.pkcs8),
                created_at: k.created_at,
                retired_at: k.retired_at,
                publish_until: k.publish_until,
            })
            .collect(),
    };
    serde_json::to_string_pretty(&file).map_err(|e| e.to_string())
}

enum WriteMode {
    /// Fail with `AlreadyExists` rather than replace a file another process just wrote.
    CreateNew,
    Replace,
}

/// Writes the key file atomically: a 0600 temp file in the same dir, fsync, then rename (or
/// hard-link for a no-clobber create), then fsync the dir, so a crash leaves the old file or
/// the new one, never half of one.
fn write_key_file(dir: &Path, keys: &[SigningKey], mode: WriteMode) -> Result<(), IdentityError> {
    let path = dir.join(KEY_FILE_NAME);
    let temp = dir.join(format!(".{KEY_FILE_NAME}.{}.tmp", uuid::Uuid::new_v4()));
    let text = encode_keys(keys).map_err(|reason| IdentityError::KeyFileCorrupt {
        path: path.clone(),
        reason,
    })?;

    let result = write_temp(&temp, text.as_bytes()).and_then(|()| match mode {
        WriteMode::Replace => fs::rename(&temp, &path).map_err(|e| (path.clone(), e)),
        WriteMode::CreateNew => {
            let linked = fs::hard_link(&temp, &path).map_err(|e| (path.clone(), e));
            let _ = fs::remove_file(&temp);
            linked
        }
    });
    if result.is_err() {
        // Best effort: never leave a stray copy of private keys behind.
        let _ = fs::remove_file(&temp);
    }
    result
        .and_then(|()| sync_dir(dir))
        .map_err(|(path, source)| IdentityError::Io { path, source })
}

fn write_temp(temp: &Path, bytes: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(|e| (temp.to_path_buf(), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| (temp.to_path_buf(), e))
}

fn sync_dir(dir: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| (dir.to_path_buf(), e))
}

fn create_dir(dir: &Path) -> Result<(), IdentityError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| IdentityError::Io {
            path: dir.to_path_buf(),
            source,
        })
}
