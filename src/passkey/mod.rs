//! WebAuthn ceremonies (webauthn-rs): begin and complete registration and login.
//!
//! webauthn-rs verifies signatures, origins, rp id, challenges and user verification. What it
//! leaves to us, and this module does: ceremony state is single-use (the store deletes it in the
//! same write transaction that completes it, and a failed attempt discards it), credential ids are
//! unique across users (checked in that transaction), a user handle must name the passkey's owner,
//! a regressed sign count flags the passkey, and unknown usernames get a decoy ceremony that looks
//! like a real one.

mod decoy;
mod enrollment;
mod error;
mod login;
mod name;
mod provider;
mod registration;
mod state;
mod view;

pub use enrollment::issue_enrollment;
pub use error::{PasskeyError, PasskeyResult};
pub use name::{BadPasskeyName, PasskeyName};
pub use provider::{provider_name, Storage};
pub use view::{rfc3339, PasskeyView, UserView};

use std::sync::Arc;
use std::time::Duration;

use webauthn_rs::prelude::{Passkey as WebauthnPasskey, Url};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::config::Config;
use crate::session::Sessions;
use crate::store::{Ceremony, Passkey, Store, StoreError};
use decoy::{Decoys, Shape, DECOY_KEY_FILE, SAMPLE};

/// The relying party and everything a ceremony needs.
pub struct Ceremonies {
    /// Swapped whole by a reload that changes `webauthn.origins`; a ceremony in flight keeps
    /// the one it loaded.
    webauthn: arc_swap::ArcSwap<Webauthn>,
    store: Store,
    sessions: Arc<Sessions>,
    /// Same-looking `allowCredentials` for usernames that cannot sign in.
    decoys: Decoys,
    timeout: Duration,
    max_passkeys: usize,
    /// Begun ceremonies stored at once, for all clients together.
    max_live: u64,
    /// IPv6 prefix length that counts as one client in failure tallies.
    ipv6_prefix: u8,
}

/// The relying party `config` describes: its id, name, timeout and allowed origins.
fn relying_party(config: &Config) -> Result<Webauthn, RelyingPartyError> {
    let origins = config.origins();
    let first: &Url = origins.first().ok_or(RelyingPartyError::NoOrigin)?;
    let fail = RelyingPartyError::WebAuthn;
    let mut builder = WebauthnBuilder::new(&config.webauthn.rp_id, first)
        .map_err(fail)?
        .rp_name(&config.webauthn.rp_name)
        .timeout(config.webauthn.challenge_timeout);
    for origin in &origins[1..] {
        builder = builder.append_allowed_origin(origin);
    }
    builder.build().map_err(fail)
}

/// Why the relying party could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum RelyingPartyError {
    #[error("webauthn: no origin is configured")]
    NoOrigin,
    #[error("webauthn")]
    WebAuthn(#[source] webauthn_rs::prelude::WebauthnError),
    #[error("webauthn: the decoy key {}", path.display())]
    DecoyKey {
        path: std::path::PathBuf,
        #[source]
        cause: std::io::Error,
    },
}

impl Ceremonies {
    /// The relying party now (a reload may swap it between two calls).
    fn webauthn(&self) -> Arc<Webauthn> {
        self.webauthn.load_full()
    }

    /// The relying party for a reloaded `config` (new allowed origins), checked: `Err` leaves
    /// the running one in place. Call [`Ceremonies::install`] with it once every part of the
    /// reload is ready.
    pub fn prepare(config: &Config) -> Result<Webauthn, RelyingPartyError> {
        relying_party(config)
    }

    /// Switches to a relying party made by [`Ceremonies::prepare`].
    pub fn install(&self, webauthn: Webauthn) {
        self.webauthn.store(Arc::new(webauthn));
    }

    pub fn new(
        config: &Config,
        store: Store,
        sessions: Arc<Sessions>,
    ) -> Result<Ceremonies, RelyingPartyError> {
        let webauthn = relying_party(config)?;
        let decoys = Decoys::load_or_create(&config.server.data_dir).map_err(|cause| {
            let path = config.server.data_dir.join(DECOY_KEY_FILE);
            RelyingPartyError::DecoyKey { path, cause }
        })?;
        Ok(Ceremonies {
            webauthn: arc_swap::ArcSwap::from_pointee(webauthn),
            store,
            sessions,
            decoys,
            timeout: config.webauthn.challenge_timeout,
            max_passkeys: config.webauthn.max_passkeys_per_user,
            max_live: config.webauthn.max_live_ceremonies,
            ipv6_prefix: config.server.rate_limit_ipv6_prefix,
        })
    }

    fn expires_at(&self, now: i64) -> i64 {
        now + self.timeout.as_secs() as i64
    }

    /// Takes a new sample of the real users' passkeys for the decoys (periodic upkeep).
    pub async fn refresh_decoys(&self) -> Result<(), StoreError> {
        let mut shape = Shape::default();
        let users = self.store.list_users().await?;
        for user in users.iter().filter(|user| !user.disabled).take(SAMPLE) {
            shape.add_user(user.id, &usable(&self.store.passkeys_of(user.id).await?));
        }
        self.decoys.observe(shape);
        Ok(())
    }

    /// Stores a begun ceremony; `Busy` when `max_live_ceremonies` are waiting (anonymous
    /// `begin` would otherwise grow the store with the request rate).
    async fn keep(&self, ceremony: Ceremony) -> PasskeyResult<()> {
        match self.store.put_ceremony(ceremony, self.max_live).await {
            Ok(()) => Ok(()),
            Err(StoreError::TooManyCeremonies) => Err(PasskeyError::Busy),
            Err(e) => Err(e.into()),
        }
    }
}

/// The passkeys that can sign in: not suspected of being cloned, and readable.
fn usable(passkeys: &[Passkey]) -> Vec<WebauthnPasskey> {
    passkeys
        .iter()
        .filter(|p| !p.clone_suspected)
        .filter_map(|p| serde_json::from_slice(&p.credential).ok())
        .collect()
}
