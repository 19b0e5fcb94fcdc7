//! Bounds on what clients without an account can make the gateway hold: rate-limit budgets per
//! client network, and open connections with their idle and header deadlines.
//!
//! The store-side bounds (live ceremonies, aggregated failure events, audit retention) live with
//! the store and the ceremonies; this module only owns the in-memory and socket-level ones.

mod client;
mod connections;
mod rate;

pub use client::ClientPrefix;
pub use connections::{on_request_header, ConnectionLimits, GuardedApp};
pub use rate::CeremonyLimiter;
