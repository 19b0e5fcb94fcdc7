//! Rules that span fields. Each failure is `(dotted key, reason)`; `Config::from_toml` adds the file.

use std::collections::BTreeSet;

use super::file::{RawConfig, RouteConfig};
use crate::policy::Access;

type Check = Result<(), (String, String)>;

fn fail(key: impl Into<String>, reason: impl Into<String>) -> Check {
    Err((key.into(), reason.into()))
}

/// Every cross-field rule, in file order so the first error is the first a reader meets.
pub(super) fn check(raw: &RawConfig) -> Check {
    check_public_url(raw)?;
    check_server(raw)?;
    check_webauthn(raw)?;
    check_durations(raw)?;
    check_session(raw)?;
    check_identity(raw)?;
    check_routes(&raw.routes)?;
    super::events::check(&raw.events)?;
    super::store::check(&raw.store)
}

fn check_public_url(raw: &RawConfig) -> Check {
    let url = &raw.public_url;
    if !matches!(url.scheme(), "http" | "https") {
        return fail("public_url", "must be an http:// or https:// URL");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return fail(
            "public_url",
            "must be an origin only (scheme, host, optional port), with no path, query or fragment",
        );
    }
    let host = url.host_str().unwrap_or_default();
    if !host_within(host, &raw.webauthn.rp_id) {
        return fail(
            "public_url",
            format!(
                "host `{host}` is not `{}` or under it (webauthn.rp_id)",
                raw.webauthn.rp_id
            ),
        );
    }
    check_origin_transport(raw, "public_url", url)
}

fn check_server(raw: &RawConfig) -> Check {
    let s = &raw.server;
    if s.listen.is_empty() {
        return fail("server.listen", "needs at least one address");
    }
    if s.threads == 0 {
        return fail("server.threads", "must be at least 1");
    }
    if s.max_body_bytes < 1024 {
        return fail("server.max_body_bytes", "must be at least 1024 bytes");
    }
    check_server_limits(s)
}

fn check_server_limits(s: &super::ServerConfig) -> Check {
    if !(1..=128).contains(&s.rate_limit_ipv6_prefix) {
        return fail("server.rate_limit_ipv6_prefix", "must be between 1 and 128");
    }
    if s.rate_limit_max_clients == 0 {
        return fail("server.rate_limit_max_clients", "must be at least 1");
    }
    // pingora counts keep-alive in whole seconds; below one second would mean "no timeout".
    if s.keepalive_timeout.as_secs() == 0 {
        return fail("server.keepalive_timeout", "must be at least 1s");
    }
    if s.request_header_timeout.is_zero() {
        return fail("server.request_header_timeout", "must be longer than zero");
    }
    if s.max_connections == 0 {
        return fail("server.max_connections", "must be at least 1");
    }
    check_admin_listen(s)
}

/// The admin listener serves metrics without authentication: never on a public port.
fn check_admin_listen(s: &super::ServerConfig) -> Check {
    if let Some(admin) = s.admin_listen {
        if s.listen.iter().any(|l| l.port() == admin.port()) {
            return fail(
                "server.admin_listen",
                format!(
                    "port {} is also in server.listen; use another",
                    admin.port()
                ),
            );
        }
    }
    Ok(())
}

fn check_webauthn(raw: &RawConfig) -> Check {
    let w = &raw.webauthn;
    let rp_id = w.rp_id.as_str();
    if rp_id.is_empty() || rp_id != rp_id.to_ascii_lowercase() || rp_id.contains([':', '/']) {
        return fail(
            "webauthn.rp_id",
            "must be a lowercase domain name without scheme or port, e.g. `example.com`",
        );
    }
    for (i, origin) in w.origins.iter().enumerate() {
        let key = format!("webauthn.origins[{i}]");
        if !is_origin_only(origin) {
            return fail(key, "must be an origin (scheme://host[:port]) with no path");
        }
        let host = origin.host_str().unwrap_or_default();
        if !host_within(host, rp_id) {
            return fail(key, format!("host `{host}` is not `{rp_id}` or under it"));
        }
        check_origin_transport(raw, &key, origin)?;
    }
    check_related_origins(raw)?;
    if w.max_passkeys_per_user == 0 {
        return fail("webauthn.max_passkeys_per_user", "must be at least 1");
    }
    if w.max_live_ceremonies == 0 {
        return fail("webauthn.max_live_ceremonies", "must be at least 1");
    }
    Ok(())
}

/// WebAuthn needs a secure context: https, or http on localhost. An https origin must have
/// something terminating TLS: our own `[server.tls]` or a trusted proxy in front of us.
fn check_origin_transport(raw: &RawConfig, key: &str, origin: &url::Url) -> Check {
    let host = origin.host_str().unwrap_or_default();
    match origin.scheme() {
        "http" if !is_localhost(host) => fail(
            key,
            format!("`{origin}` is http but not localhost: browsers only allow passkeys on https"),
        ),
        "https" if raw.server.tls.is_none() && raw.server.trusted_proxies.is_empty() => fail(
            key,
            format!(
                "`{}` is https but nothing terminates TLS: set `server.tls` or list the TLS proxy in `server.trusted_proxies`",
                origin.origin().ascii_serialization()
            ),
        ),
        "http" | "https" => Ok(()),
        _ => fail(key, "must be an http:// or https:// origin"),
    }
}

/// Related origins (WebAuthn L3 §5.11.1): https only (http://localhost for development), and
/// browsers honour at most five distinct registrable-domain labels.
fn check_related_origins(raw: &RawConfig) -> Check {
    let mut labels = BTreeSet::new();
    for (i, origin) in raw.webauthn.related_origins.iter().enumerate() {
        let key = format!("webauthn.related_origins[{i}]");
        let host = origin.host_str().unwrap_or_default();
        let secure =
            origin.scheme() == "https" || (origin.scheme() == "http" && is_localhost(host));
        if !secure {
            return fail(key, "must be https:// (http:// only for localhost)");
        }
        if !is_origin_only(origin) {
            return fail(key, "must be an origin (scheme://host[:port]) with no path");
        }
        labels.insert(registrable_label(host));
        if labels.len() > 5 {
            return fail(
                key,
                "more than five distinct registrable domain labels: browsers ignore the rest",
            );
        }
    }
    Ok(())
}

fn check_durations(raw: &RawConfig) -> Check {
    let nonzero = [
        ("webauthn.challenge_timeout", raw.webauthn.challenge_timeout),
        ("enrollment.token_ttl", raw.enrollment.token_ttl),
        ("session.idle_timeout", raw.session.idle_timeout),
        ("session.absolute_timeout", raw.session.absolute_timeout),
        ("identity.token_ttl", raw.identity.token_ttl),
        ("audit.retention", raw.audit.retention),
        ("session.reauth_window", raw.session.reauth_window),
        (
            "enrollment.self_service_ttl",
            raw.enrollment.self_service_ttl,
        ),
    ];
    for (key, value) in nonzero {
        if value.is_zero() {
            return fail(key, "must be longer than zero");
        }
    }
    if raw.identity.key_overlap < raw.identity.token_ttl {
        return fail(
            "identity.key_overlap",
            "must be at least `identity.token_ttl`, or tokens signed just before a rotation stop verifying",
        );
    }
    if let Some((key, why)) = self_service_bounds(raw) {
        return fail(key, why);
    }
    if raw.identity.token_ttl.as_secs() < 2 {
        return fail("identity.token_ttl", "must be at least 2s");
    }
    if raw.identity.token_ttl.as_secs() > 3600 {
        return fail(
            "identity.token_ttl",
            "must be at most 1h: the assertion is meant to be short-lived",
        );
    }
    Ok(())
}

/// Account self-service limits: a re-authentication or an add-a-device link that lasts for hours
/// protects nothing.
fn self_service_bounds(raw: &RawConfig) -> Option<(&'static str, &'static str)> {
    if raw.session.reauth_window.as_secs() > 3600 {
        return Some((
            "session.reauth_window",
            "must be at most 1h: it is how recent a passkey check must be",
        ));
    }
    if raw.enrollment.self_service_ttl.as_secs() > 3600 {
        return Some((
            "enrollment.self_service_ttl",
            "must be at most 1h: the link is shown on screen to be scanned at once",
        ));
    }
    None
}

fn check_session(raw: &RawConfig) -> Check {
    let s = &raw.session;
    let name_ok = !s.cookie_name.is_empty()
        && s.cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok || s.cookie_name.starts_with("__") {
        return fail(
            "session.cookie_name",
            "must be letters, digits, `-` or `_` (the `__Host-` prefix is added on https)",
        );
    }
    if s.cache_size == 0 {
        return fail("session.cache_size", "must be at least 1");
    }
    if s.absolute_timeout < s.idle_timeout {
        return fail(
            "session.absolute_timeout",
            "must not be shorter than `session.idle_timeout`",
        );
    }
    for (i, host) in s.allowed_return_hosts.iter().enumerate() {
        if host.is_empty()
            || host.contains(['/', ':', '@', ' '])
            || host != &host.to_ascii_lowercase()
        {
            return fail(
                format!("session.allowed_return_hosts[{i}]"),
                "must be a lowercase host name, e.g. `app.example.com`",
            );
        }
    }
    Ok(())
}

/// `strip_headers` must be header names; `trusted_proxy_headers` only names the gateway drops.
fn check_identity(raw: &RawConfig) -> Check {
    let id = &raw.identity;
    for (i, name) in id.strip_headers.iter().enumerate() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return fail(
                format!("identity.strip_headers[{i}]"),
                format!("`{name}` is not a header name"),
            );
        }
    }
    for (i, name) in id.trusted_proxy_headers.iter().enumerate() {
        if !crate::policy::is_dropped_client_header(name) {
            return fail(
                format!("identity.trusted_proxy_headers[{i}]"),
                format!(
                    "`{name}` is not one of the headers the gateway drops: {}",
                    crate::policy::DROPPED_CLIENT_HEADERS.join(", ")
                ),
            );
        }
    }
    Ok(())
}

fn check_routes(routes: &[RouteConfig]) -> Check {
    let mut names = BTreeSet::new();
    let mut places = BTreeSet::new();
    for (i, route) in routes.iter().enumerate() {
        let key = |field: &str| format!("route[{i}].{field}");
        if route.name.is_empty()
            || !route
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return fail(key("name"), "must be letters, digits, `-` or `_`");
        }
        if !names.insert(route.name.as_str()) {
            return fail(
                key("name"),
                format!("`{}` is used by an earlier route", route.name),
            );
        }
        check_route_path(&key("path"), &route.path)?;
        if !places.insert((route.host.clone(), route.path.clone())) {
            return fail(key("path"), "an earlier route has the same host and path");
        }
        match (&route.upstream, route.forward_auth_only) {
            (Some(url), false) => check_route_upstream(&key("upstream"), url)?,
            (None, true) => {}
            (None, false) => {
                return fail(
                    key("upstream"),
                    "is required (or set `forward_auth_only = true` for a route only a fronting proxy asks about)",
                )
            }
            (Some(_), true) => {
                return fail(
                    key("upstream"),
                    "must not be set on a `forward_auth_only` route: the fronting proxy reaches the app",
                )
            }
        }
        for (j, p) in route.public_paths.iter().enumerate() {
            check_route_path(&format!("route[{i}].public_paths[{j}]"), p)?;
        }
        let has_allow_list = !route.allow_users.is_empty() || !route.allow_groups.is_empty();
        if route.access == Access::Public && has_allow_list {
            return fail(
                key("access"),
                "is `public` but the route has allow_users/allow_groups: use `authenticated`",
            );
        }
        if let Some(host) = &route.host {
            if host.contains(':') || crate::policy::canonical_host(host).is_none() {
                return fail(key("host"), "must be a host name without scheme or port");
            }
        }
    }
    Ok(())
}

fn check_route_path(key: &str, path: &str) -> Check {
    if !path.starts_with('/') || path.contains(['?', '#', '%', '\\', ';']) || path.contains("//") {
        return fail(key, "must be a plain absolute path such as `/app`");
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return fail(key, "must not contain `.` or `..` segments");
    }
    if path == "/passkeys" || path.starts_with("/passkeys/") {
        return fail(key, "`/passkeys/` belongs to the gateway itself");
    }
    Ok(())
}

fn check_route_upstream(key: &str, url: &url::Url) -> Check {
    if !matches!(url.scheme(), "http" | "https") {
        return fail(key, "must be an http:// or https:// URL");
    }
    if url.host_str().is_none() {
        return fail(key, "needs a host");
    }
    if url.path() != "/" || url.query().is_some() {
        return fail(
            key,
            "must not have a path or query: requests keep their own path",
        );
    }
    Ok(())
}

fn is_origin_only(url: &url::Url) -> bool {
    url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.host_str().is_some()
}

/// `host` equals `domain` or is a subdomain of it.
pub(super) fn host_within(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn is_localhost(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost") || host == "127.0.0.1" || host == "[::1]"
}

/// The label browsers count for related origins: the first label of the registrable domain.
fn registrable_label(host: &str) -> String {
    let registrable = psl::domain_str(host).unwrap_or(host);
    registrable
        .split('.')
        .next()
        .unwrap_or(registrable)
        .to_string()
}
