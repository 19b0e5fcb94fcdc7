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
//! Not here: the rest of the options, which come from webauthn-rs for decoys and real users alike.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use aws_lc_rs::hmac;
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
}

impl Shape {
    /// Adds one user who can sign in, with their usable passkeys.
    pub fn add_user(&mut self, passkeys: &[WebauthnPasskey]) {
        if passkeys.is_empty() || self.counts.len() >= SAMPLE {
            return;
        }
        self.counts.push(passkeys.len());
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
        Shape { counts, templates }
    }
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

    /// The decoy list for `username`: the same every time, shaped like a real user's.
    pub fn allow_credentials(&self, username: &str) -> Vec<AllowCredentials> {
        let shape = self
            .shape
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let count = pick(&shape.counts, self.draw(&[b"count", username.as_bytes()]))
            .copied()
            .unwrap_or(1);
        (0..count)
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
            .collect()
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
