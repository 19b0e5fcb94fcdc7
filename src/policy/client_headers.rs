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
    let folded = fold(name);
    let folded = folded.strip_suffix('*').unwrap_or(&folded);
    dropped_entry(folded).is_some()
}

/// The entry of [`DROPPED_CLIENT_HEADERS`] a folded name falls under.
pub(crate) fn dropped_entry(folded: &str) -> Option<&'static str> {
    DROPPED_CLIENT_HEADERS.into_iter().find(|entry| {
        let entry_folded = fold(entry);
        match entry_folded.strip_suffix('*') {
            Some(prefix) => folded.starts_with(prefix),
            None => folded == entry_folded,
        }
    })
}

/// Lowercase, `_` as `-`, trimmed.
pub(crate) fn fold(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}
