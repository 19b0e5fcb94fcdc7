//! passkey-gateway: a reverse-proxy authentication gateway with passkeys (WebAuthn).
//!
//! How a request flows: pingora accepts it (`server`), `proxy` checks its request line and
//! normalizes its path once, answers `/passkeys/*` itself (`endpoints`), picks a `[[route]]`
//! (`routing`), checks the session (`session`) and the route's policy (`policy`), strips every
//! identity header the client sent, adds the gateway's own (`identity`), and forwards it to the
//! upstream. Every error becomes a response in `error`. Everything is configured by one TOML
//! file (`config`). ARCHITECTURE.md has the code map and the rules that hold across modules.

pub mod admin;
pub mod cli;
pub(crate) mod clock;
pub mod commands;
pub mod config;
pub(crate) mod decision;
pub mod demo;
pub mod endpoints;
pub(crate) mod error;
pub mod gateway;
pub mod health;
pub(crate) mod identity;
pub(crate) mod limits;
pub(crate) mod logging;
pub mod metrics;
pub(crate) mod passkey;
pub mod policy;
pub mod proxy;
pub mod reload;
pub(crate) mod reply;
pub(crate) mod routing;
pub mod server;
pub mod service_manager;
pub mod session;
pub mod store;
pub mod tls;
pub(crate) mod version;
pub mod webhooks;

pub use config::Config;
pub use gateway::{Gateway, StartError};
