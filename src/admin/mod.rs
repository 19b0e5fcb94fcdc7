//! The administrator's verbs (`user`, `passkey`, `session`, `keys`), run against either the live
//! gateway (through the admin socket, so revocations reach its in-memory session cache at once)
//! or the store directly when no gateway is running. Never reachable from the public listener.

pub mod events;
mod http;
mod migrate;
mod ops;
mod socket;

pub use http::serve_admin_http;
pub use migrate::migrate;
pub use socket::{
    admin_socket_path, run_via_socket, serve_admin_socket, socket_path_of_file, SocketAnswer,
};

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::cli::{KeysCommand, PasskeyCommand, SessionCommand, UserCommand};
use crate::config::Config;
use crate::gateway::Gateway;
use crate::session::Sessions;
use crate::store::{Store, StoreError};

/// One admin command, as the CLI parsed it and as it travels over the socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminCommand {
    User(UserCommand),
    Passkey(PasskeyCommand),
    Session(SessionCommand),
    Keys(KeysCommand),
    /// `events`: answered with an [`events::EventPage`] as JSON.
    Events(events::EventQuery),
    /// `reload`: re-read the configuration file (the live gateway only).
    Reload,
}

/// Why an admin command failed; the message is printed as is.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Refused(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
}

/// What the commands act on.
pub enum Target {
    /// The running gateway: its store, its session cache, its signer.
    Live(Arc<Gateway>),
    /// No gateway running: the store file, the config, and sessions over that store.
    Offline {
        store: Store,
        config: Arc<Config>,
        sessions: Arc<Sessions>,
    },
}

impl Target {
    fn store(&self) -> &Store {
        match self {
            Target::Live(gw) => gw.store(),
            Target::Offline { store, .. } => store,
        }
    }

    fn config(&self) -> Arc<Config> {
        match self {
            Target::Live(gw) => gw.config(),
            Target::Offline { config, .. } => config.clone(),
        }
    }

    /// Now: the live gateway's clock, or the wall clock when none runs.
    fn now(&self) -> i64 {
        match self {
            Target::Live(gw) => gw.now(),
            Target::Offline { .. } => crate::clock::unix_now(),
        }
    }

    /// Whatever ends a session goes through here, so a live gateway's cache agrees at once.
    fn sessions(&self) -> &Arc<Sessions> {
        match self {
            Target::Live(gw) => gw.sessions(),
            Target::Offline { sessions, .. } => sessions,
        }
    }
}

/// Runs one command; the text to print on success.
pub async fn execute(target: &Target, command: AdminCommand) -> Result<String, AdminError> {
    match command {
        AdminCommand::User(cmd) => ops::user(target, cmd).await,
        AdminCommand::Passkey(cmd) => ops::passkey(target, cmd).await,
        AdminCommand::Session(cmd) => ops::session(target, cmd).await,
        AdminCommand::Keys(KeysCommand::Rotate) => ops::rotate_keys(target).await,
        AdminCommand::Reload => match target {
            Target::Live(gw) => gw.reload().await.map_err(|e| {
                let mut text = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    text.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                AdminError::Refused(text)
            }),
            Target::Offline { .. } => Err(AdminError::Refused(
                "no gateway is running (its admin socket does not answer): nothing to reload"
                    .to_string(),
            )),
        },
        AdminCommand::Events(query) => {
            let page = events::query(target, query).await?;
            serde_json::to_string(&page)
                .map_err(|e| AdminError::Refused(format!("cannot encode the events: {e}")))
        }
    }
}
