//! Revocations made by another process on a shared store (another replica, the admin CLI on
//! another machine), delivered to this process's session cache.
//!
//! A backend that several processes share (PostgreSQL) publishes, in the transaction that
//! deletes sessions or changes a user, what each replica must drop from its cache, and follows
//! what the others publish. It calls a [`RevocationSink`] (the session cache) in order: the
//! revocations, [`RevocationSink::confirmed`] each time the feed proved it is alive and
//! everything committed before was delivered, and [`RevocationSink::resync`] when it comes back
//! from an outage in which notifications may have been lost.

use uuid::Uuid;

use super::SecretHash;

/// How long a cached session is trusted after the feed last proved alive: past this, every
/// check re-reads the store until the feed is back. The README states it.
pub const REVOCATION_BOUND: std::time::Duration = std::time::Duration::from_secs(1);

/// What another process revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// One session ended.
    Session(SecretHash),
    /// Every cached session of this user is stale (sessions ended, user disabled or removed,
    /// groups changed).
    User(Uuid),
    /// The sessions created with this passkey ended.
    Passkey(Uuid),
}

impl Revocation {
    /// The text form carried in a notification: `s:HEX`, `u:UUID` or `p:UUID`.
    pub fn encode(&self) -> String {
        match self {
            Revocation::Session(hash) => format!("s:{}", hash.to_hex()),
            Revocation::User(id) => format!("u:{id}"),
            Revocation::Passkey(id) => format!("p:{id}"),
        }
    }

    /// Parses one item of [`Revocation::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<Revocation> {
        let (kind, value) = text.split_once(':')?;
        match kind {
            "s" => SecretHash::from_hex(value).map(Revocation::Session),
            "u" => Uuid::parse_str(value).ok().map(Revocation::User),
            "p" => Uuid::parse_str(value).ok().map(Revocation::Passkey),
            _ => None,
        }
    }
}

/// Where a shared backend delivers revocations (the session cache).
pub trait RevocationSink: Send + Sync {
    /// Drop these from the cache (and let no fill that read the store before land).
    fn revoked(&self, revocations: &[Revocation]);
    /// The feed is alive: every revocation committed before now has been delivered.
    fn confirmed(&self);
    /// The feed was down and is back: anything cached may have been revoked meanwhile.
    fn resync(&self);
}
