//! The command line: `passkey-gateway [--config FILE] <command>`, parsed by clap.
//! Each command maps to one library call; this file owns no behaviour of its own.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::policy::Username;

/// A reverse-proxy authentication gateway: passkeys in front of unmodified web apps.
#[derive(Debug, Parser)]
#[command(name = "passkey-gateway", version = crate::version::LONG)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, short, global = true, default_value = "gateway.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Load and validate the configuration, print a summary.
    Check,
    /// Run the gateway on http://localhost:8080 in front of a built-in demo app.
    Demo(DemoArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// An administrator's view of passkeys.
    #[command(subcommand)]
    Passkey(PasskeyCommand),
    /// Sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Identity-signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit events, oldest first: sign-ins, failures, passkeys, users, sessions, keys.
    Events(EventsArgs),
    /// Make the running gateway re-read its configuration (as SIGHUP does).
    Reload,
    /// The store itself.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this user's events.
    #[arg(long)]
    pub user: Option<String>,
    /// Only events of this kind (e.g. login, login_failed, passkey_registered, session_revoked).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only events this recent (e.g. 90s, 15m, 1h, 7d).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Keep printing new events as they happen (until interrupted).
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show at most the newest this many matches (at most 10000).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy this config's redb store (users, passkeys, sessions, events, signing keys) into a
    /// PostgreSQL database; idempotent, prints counts. Stop the gateway first.
    Migrate(StoreMigrateArgs),
}

#[derive(Debug, Args)]
pub struct StoreMigrateArgs {
    /// The database: postgres://USER@HOST:PORT/DATABASE.
    #[arg(long)]
    pub to: String,
    /// The environment variable holding the database password (instead of one in the URL).
    #[arg(long)]
    pub password_env: Option<String>,
    /// The key-encryption key the replicas will use (64 hex digits): seals the signing keys.
    #[arg(long)]
    pub key_encryption_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its store and keys.
    #[arg(long, default_value = "./demo-data")]
    pub data_dir: PathBuf,
    /// Port for the gateway.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum UserCommand {
    /// Create a user and print a one-time enrollment link.
    Add {
        /// As typed: the username is its normalized form, the default display name this form.
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// A group the user belongs to (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Print a new one-time enrollment link for an existing user.
    Invite { name: Username },
    /// List users.
    List,
    /// Show one user.
    Show { name: Username },
    /// Disable a user and revoke their sessions.
    Disable { name: Username },
    /// Enable a user again.
    Enable { name: Username },
    /// Remove a user, their passkeys and sessions.
    Remove { name: Username },
    /// Replace a user's groups (none given: no groups); their sessions see the change at once.
    Groups {
        name: Username,
        /// A group the user belongs to (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum PasskeyCommand {
    /// List a user's passkeys.
    List { name: Username },
    /// Revoke a passkey by id (and the sessions it created).
    Revoke { id: String },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum SessionCommand {
    /// List sessions, optionally of one user.
    List { name: Option<Username> },
    /// Revoke one session by id, or every session of a user.
    Revoke {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        user: Option<Username>,
    },
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
pub enum KeysCommand {
    /// Switch to a new signing key; the old one stays published for `identity.key_overlap`.
    Rotate,
}
