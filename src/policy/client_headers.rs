//! Client request headers that upstreams commonly trust for routing or identity, which the
//! gateway drops from clients (unless a trusted proxy may pass them), and how header names are
//! compared: lowercase, `_` as `-` (CGI-style apps read `X_Real_IP` as `X-Real-IP`).
//!
//! Owns: the list and the comparison. Does not own: removing them from a request (the proxy's
//! `hygiene.rs`) or checking the config's names against them (`config::check`).

/// Dropped from clients; a trailing `*` is a prefix. Upstreams use them to pick a path
/// (`X-Original-URL`, `X-Rewrite-URL`, `X-Forwarded-Prefix`), a client (`Forwarded`) or a user
/// (`X-Auth-Request-*`, oauth2-proxy's).
pub const DROPPED_CLIENT_HEADERS: [&str; 5] = [
    "Forwarded",
    "X-Forwarded-Prefix",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Auth-Request-*",
];

/// True when `name` is one of [`DROPPED_CLIENT_HEADERS`] (or, for the prefix, the prefix itself).
pub fn is_dropped_client_header(name: &str) -> bool {
    let name = name.trim();
    dropped_entry(name.strip_suffix('*').unwrap_or(name)).is_some()
}

/// The entry of [`DROPPED_CLIENT_HEADERS`] `name` (any spelling) falls under. Compared byte by
/// byte without allocating: this runs for every header of every forwarded request.
pub(crate) fn dropped_entry(name: &str) -> Option<&'static str> {
    let name = name.trim();
    DROPPED_CLIENT_HEADERS
        .into_iter()
        .find(|entry| match entry.strip_suffix('*') {
            Some(prefix) => name.len() >= prefix.len() && same_name(&name[..prefix.len()], prefix),
            None => same_name(name, entry),
        })
}

/// Whether two header names are the same once lowercased and with `_` as `-`.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}
