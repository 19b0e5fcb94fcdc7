//! Signing keys shared by replicas through the store (the PostgreSQL backend): one ring, sealed
//! with AES-256-GCM (aws-lc-rs) under a key-encryption key that only the gateways hold (a file or
//! an environment variable), so someone who reads the database cannot sign identities.
//!
//! Creating and rotating are compare-and-swap on the ring's version: replicas starting together
//! agree on the first ring, and of two rotations at once one retries on the other's result.
//! Replicas notice a new version in their upkeep and install it.

use std::time::{Duration, SystemTime};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::{IdentityError, KeyAlgorithm, KeyRing};
use crate::store::Store;

/// Bound to every sealed ring: a blob sealed for something else does not open as keys.
const AAD: &[u8] = b"passkey-gateway signing keys v1";

/// Tries before a rotation gives up on a store other replicas keep changing.
const SWAP_TRIES: usize = 8;

/// 32 bytes that seal the signing keys; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEncryptionKey([u8; 32]);

impl KeyEncryptionKey {
    /// Parses 64 hex digits (what `openssl rand -hex 32` prints), surrounding space ignored.
    pub fn from_hex(text: &str) -> Result<KeyEncryptionKey, String> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| "must be 64 hex digits (32 bytes; `openssl rand -hex 32`)".to_string())?;
        Ok(KeyEncryptionKey(bytes))
    }

    fn key(&self) -> Result<LessSafeKey, IdentityError> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| IdentityError::Shared("cannot use the key-encryption key".into()))
    }

    /// A fresh random nonce, then the ciphertext and its tag.
    fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| IdentityError::Shared("no randomness for a nonce".into()))?;
        let mut sealed = plaintext.to_vec();
        self.key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut sealed,
            )
            .map_err(|_| IdentityError::Shared("sealing the signing keys failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let refused = || {
            IdentityError::Shared(
                "the stored signing keys do not open with this key-encryption key (another \
                 key, or altered data)"
                    .into(),
            )
        };
        if sealed.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .key()?
            .open_in_place(nonce, Aad::from(AAD), &mut buffer)
            .map_err(|_| refused())?;
        Ok(plaintext.to_vec())
    }
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(…)")
    }
}

/// The ring in the store, and how to seal and open it.
#[derive(Clone)]
pub struct SharedKeys {
    store: Store,
    kek: KeyEncryptionKey,
}

impl SharedKeys {
    pub fn new(store: Store, kek: KeyEncryptionKey) -> SharedKeys {
        SharedKeys { store, kek }
    }

    /// The stored ring and its version, if any.
    pub async fn load(&self) -> Result<Option<(i64, KeyRing)>, IdentityError> {
        let Some((version, sealed)) = self.store.sealed_signing_keys().await.map_err(store)? else {
            return Ok(None);
        };
        Ok(Some((version, self.open(&sealed)?)))
    }

    /// The stored version only (cheap; the upkeep compares it).
    pub async fn version(&self) -> Result<Option<i64>, IdentityError> {
        Ok(self
            .store
            .sealed_signing_keys()
            .await
            .map_err(store)?
            .map(|(version, _)| version))
    }

    /// The stored ring, or a first `alg` ring stored now (the first replica's wins).
    pub async fn load_or_create(&self, alg: KeyAlgorithm) -> Result<(i64, KeyRing), IdentityError> {
        for _ in 0..SWAP_TRIES {
            if let Some(found) = self.load().await? {
                return Ok(found);
            }
            let ring = KeyRing::rotated(None, alg, Duration::ZERO, SystemTime::now())?;
            if self.swap(None, &ring).await? {
                tracing::info!(kid = ring.current().kid(), alg = %alg, "generated the shared identity signing key");
                return Ok((1, ring));
            }
        }
        Err(IdentityError::Shared(
            "the stored ring kept changing".into(),
        ))
    }

    /// Rotates the stored ring (see [`KeyRing::rotated`]); returns the new ring and version.
    pub async fn rotate(
        &self,
        alg: KeyAlgorithm,
        overlap: Duration,
    ) -> Result<(i64, KeyRing), IdentityError> {
        for _ in 0..SWAP_TRIES {
            let (expected, previous) = match self.load().await? {
                Some((version, ring)) => (Some(version), Some(ring)),
                None => (None, None),
            };
            let ring = KeyRing::rotated(previous, alg, overlap, SystemTime::now())?;
            if self.swap(expected, &ring).await? {
                tracing::info!(kid = ring.current().kid(), alg = %alg, "rotated the shared identity signing key");
                return Ok((expected.map_or(1, |v| v + 1), ring));
            }
        }
        Err(IdentityError::Shared(
            "the stored ring kept changing".into(),
        ))
    }

    /// Stores `ring` as the first shared ring (a copied key file); false if one is there.
    pub async fn store_ring(&self, ring: &KeyRing) -> Result<bool, IdentityError> {
        self.swap(None, ring).await
    }

    /// [`SharedKeys::load_or_create`] from synchronous code (start-up), on a thread of its own.
    pub fn load_or_create_blocking(
        &self,
        alg: KeyAlgorithm,
    ) -> Result<(i64, KeyRing), IdentityError> {
        let keys = self.clone();
        blocking(async move { keys.load_or_create(alg).await })
    }

    /// [`SharedKeys::rotate`] from synchronous code (the admin verbs), on a thread of its own.
    pub fn rotate_blocking(
        &self,
        alg: KeyAlgorithm,
        overlap: Duration,
    ) -> Result<(i64, KeyRing), IdentityError> {
        let keys = self.clone();
        blocking(async move { keys.rotate(alg, overlap).await })
    }

    async fn swap(&self, expected: Option<i64>, ring: &KeyRing) -> Result<bool, IdentityError> {
        let text = ring.to_text().map_err(IdentityError::Shared)?;
        let sealed = self.kek.seal(text.as_bytes())?;
        self.store
            .swap_sealed_signing_keys(expected, sealed)
            .await
            .map_err(store)
    }

    fn open(&self, sealed: &[u8]) -> Result<KeyRing, IdentityError> {
        let plaintext = self.kek.open(sealed)?;
        let text = String::from_utf8(plaintext)
            .map_err(|_| IdentityError::Shared("the opened ring is not text".into()))?;
        KeyRing::from_text(&text).map_err(IdentityError::Shared)
    }
}

/// Runs `work` to completion on a new thread with a runtime of its own, so synchronous callers
/// (inside a runtime or not) can wait for it.
fn blocking<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, IdentityError>> + Send + 'static,
) -> Result<T, IdentityError> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| IdentityError::Shared(format!("cannot start a runtime: {e}")))?
            .block_on(work)
    })
    .join()
    .map_err(|_| IdentityError::Shared("a key operation panicked".into()))?
}

fn store(error: crate::store::StoreError) -> IdentityError {
    IdentityError::Shared(error.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sealed_ring_opens_only_with_its_key_and_unaltered() {
        let kek = KeyEncryptionKey::from_hex(&"ab".repeat(32)).unwrap();
        let sealed = kek.seal(b"private keys").unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"private keys"));
        assert_eq!(kek.open(&sealed).unwrap(), b"private keys");
        let other = KeyEncryptionKey::from_hex(&"cd".repeat(32)).unwrap();
        assert!(other.open(&sealed).is_err());
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(kek.open(&altered).is_err());
        assert!(KeyEncryptionKey::from_hex("short").is_err());
    }

    #[tokio::test]
    async fn replicas_agree_on_one_ring_and_see_each_others_rotation() {
        let database = crate::store::tests::pg::TestDatabase::create().await;
        let kek = KeyEncryptionKey::from_hex(&"5a".repeat(32)).unwrap();
        let mut replicas = Vec::new();
        for _ in 0..3 {
            replicas.push(SharedKeys::new(database.handle().await, kek.clone()));
        }
        // Three replicas starting at once: one ring.
        let starts = replicas.iter().map(|keys| {
            let keys = keys.clone();
            tokio::spawn(async move { keys.load_or_create(KeyAlgorithm::EdDsa).await })
        });
        let mut kids = Vec::new();
        for start in starts {
            kids.push(start.await.unwrap().unwrap().1.current().kid().to_string());
        }
        assert!(kids.windows(2).all(|w| w[0] == w[1]), "{kids:?}");

        // Rotations racing on two replicas: both land, one after the other.
        let overlap = Duration::from_secs(600);
        let (a, b) = (replicas[0].clone(), replicas[1].clone());
        let (ra, rb) = tokio::join!(
            a.rotate(KeyAlgorithm::EdDsa, overlap),
            b.rotate(KeyAlgorithm::EdDsa, overlap)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_ne!(ra.0, rb.0);
        let (version, ring) = replicas[2].load().await.unwrap().unwrap();
        assert_eq!(version, 3);
        assert_eq!(ring.keys().len(), 3, "two retired keys still published");
        let newest = if ra.0 > rb.0 { &ra.1 } else { &rb.1 };
        assert_eq!(ring.current().kid(), newest.current().kid());

        // The database holds no private key in the clear, and another KEK opens nothing.
        let admin = database.admin().await;
        let row = admin
            .query_one("SELECT sealed FROM signing_keys", &[])
            .await
            .unwrap();
        let sealed: Vec<u8> = row.get(0);
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        let stranger = KeyEncryptionKey::from_hex(&"77".repeat(32)).unwrap();
        assert!(SharedKeys::new(database.handle().await, stranger)
            .load()
            .await
            .is_err());
    }
}
