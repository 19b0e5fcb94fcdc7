//! Decoy `allowCredentials` for a username that cannot sign in (unknown, disabled, no usable
//! passkey), so that `login/begin` never tells whether a name exists.
//!
//! A decoy list must look like a real user's in every way an observer can measure: how many
//! entries, how long each id is, which `transports` they carry, and it must not change between
//! two requests (or two restarts) for the same name. So everything is derived from a keyed hash of
//! the name with a secret kept in the data directory (`decoy.key`, 0600), and drawn from a sample
//! of the real users' passkeys, refreshed by the upkeep ([`Decoys::observe`]). Before any user has
//! a passkey, a prior shaped like webauthn-rs's fake-credential distribution stands in.
//!
//! The time `begin` takes must not tell either, so a decoy names a *stand-in*, a real user with as
//! many passkeys, whose passkeys the caller reads and starts a ceremony with, exactly as for a real
//! user, before putting the decoy list in its place.
//!
//! Not here: the rest of the options, which come from webauthn-rs for decoys and real users alike.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use aws_lc_rs::hmac;
use uuid::Uuid;
use webauthn_rs::prelude::Passkey as WebauthnPasskey;
use webauthn_rs_core::proto::{AllowCredentials, AuthenticatorTransport, Credential};

/// The secret's file name inside `server.data_dir`.
pub const DECOY_KEY_FILE: &str = "decoy.key";

/// Most users (and passkeys) kept in the sample a refresh takes.
pub const SAMPLE: usize = 2_048;

/// How real passkeys look in `allowCredentials`: id length and transports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    id_len: usize,
    transports: Option<Vec<AuthenticatorTransport>>,
}

/// A sample of the real users: how many passkeys each can sign in with, and how they look.
#[derive(Debug, Default)]
pub struct Shape {
    counts: Vec<usize>,
    templates: Vec<Template>,
    /// One real user per passkey count, whose begin a decoy of that count repeats.
    stand_ins: BTreeMap<usize, Uuid>,
}

impl Shape {
    /// Adds one user who can sign in, with their usable passkeys.
    pub fn add_user(&mut self, user_id: Uuid, passkeys: &[WebauthnPasskey]) {
        if passkeys.is_empty() || self.counts.len() >= SAMPLE {
            return;
        }
        self.counts.push(passkeys.len());
        self.stand_ins.entry(passkeys.len()).or_insert(user_id);
        for passkey in passkeys {
            if self.templates.len() < SAMPLE {
                let credential = Credential::from(passkey.clone());
                self.templates.push(Template {
                    id_len: credential.cred_id.len(),
                    transports: credential.transports,
                });
            }
        }
    }

    /// Before any real user: one passkey for most, two or three for some (as webauthn-rs's fake
    /// distribution), with the id lengths of common platform authenticators.
    fn prior() -> Shape {
        let mut counts = vec![1; 81];
        counts.extend([2; 17]);
        counts.extend([3; 2]);
        let templates = [65, 20, 16, 32, 64]
            .into_iter()
            .map(|id_len| Template {
                id_len,
                transports: None,
            })
            .collect();
        Shape {
            counts,
            templates,
            stand_ins: BTreeMap::new(),
        }
    }
}

/// What a decoy `begin` shows and does.
pub struct Decoy {
    pub allow_credentials: Vec<AllowCredentials>,
    /// A real user with as many passkeys, whose begin to repeat (none before the first sample).
    pub stand_in: Option<Uuid>,
}

/// The decoy generator: a keyed hash and the current sample.
pub struct Decoys {
    key: hmac::Key,
    shape: RwLock<Arc<Shape>>,
}

impl Decoys {
    /// Loads the secret from `dir`, creating it (0600) on first start.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Decoys> {
        let path = dir.join(DECOY_KEY_FILE);
        let mut secret = [0u8; 32];
        match std::fs::File::open(&path) {
            Ok(mut file) => file.read_exact(&mut secret)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                file.write_all(&secret)?;
                file.sync_all()?;
            }
            Err(e) => return Err(e),
        }
        Ok(Decoys {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            shape: RwLock::new(Arc::new(Shape::prior())),
        })
    }

    /// Replaces the sample (the upkeep's refresh); an empty one keeps the prior.
    pub fn observe(&self, shape: Shape) {
        if shape.counts.is_empty() {
            return;
        }
        let mut shape = shape;
        // Sorted, so a name's draw moves only when the distribution itself moves.
        shape.counts.sort_unstable();
        *self.shape.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(shape);
    }

    /// The decoy for `username`: the same list every time, shaped like a real user's.
    pub fn decoy(&self, username: &str) -> Decoy {
        let shape = self
            .shape
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let count = pick(&shape.counts, self.draw(&[b"count", username.as_bytes()]))
            .copied()
            .unwrap_or(1);
        let allow_credentials = (0..count)
            .filter_map(|i| {
                let i = (i as u64).to_be_bytes();
                let label = [b"credential".as_slice(), username.as_bytes(), &i];
                let template = pick(&shape.templates, self.draw(&label))?;
                Some(AllowCredentials {
                    type_: "public-key".into(),
                    id: self.bytes(&label, template.id_len),
                    transports: template.transports.clone(),
                })
            })
            .collect();
        Decoy {
            allow_credentials,
            stand_in: shape.stand_ins.get(&count).copied(),
        }
    }

    /// A number from the keyed hash of the labelled parts (each length-prefixed: no ambiguity).
    fn draw(&self, parts: &[&[u8]]) -> u64 {
        let tag = self.tag(b"draw", parts);
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        u64::from_be_bytes(first)
    }

    /// `len` bytes from the keyed hash of the labelled parts (counter mode).
    fn bytes(&self, parts: &[&[u8]], len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 32);
        let mut block = 0u32;
        while out.len() < len {
            let tag = self.tag(&block.to_be_bytes(), parts);
            out.extend_from_slice(tag.as_ref());
            block += 1;
        }
        out.truncate(len);
        out
    }

    fn tag(&self, purpose: &[u8], parts: &[&[u8]]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(purpose);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        context.sign()
    }
}

fn pick<T>(items: &[T], draw: u64) -> Option<&T> {
    let len = u64::try_from(items.len()).ok().filter(|len| *len > 0)?;
    items.get(usize::try_from(draw % len).ok()?)
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a failure is the report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ids(decoys: &Decoys, name: &str) -> Vec<Vec<u8>> {
        let decoy = decoys.decoy(name);
        decoy.allow_credentials.into_iter().map(|c| c.id).collect()
    }

    #[test]
    fn a_names_decoy_survives_a_restart_and_the_secret_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = ids(&Decoys::load_or_create(dir.path()).unwrap(), "nobody");
        let again = ids(&Decoys::load_or_create(dir.path()).unwrap(), "nobody");
        assert_eq!(first, again);
        assert!(!first.is_empty());
        let mode = std::fs::metadata(dir.path().join(DECOY_KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        let other = Decoys::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert_ne!(
            ids(&other, "nobody"),
            first,
            "another gateway, another secret"
        );
    }
}
