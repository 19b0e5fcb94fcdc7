//! passkey-gateway: a reverse-proxy authentication gateway with passkeys (WebAuthn).

pub mod identity;
pub mod policy;
