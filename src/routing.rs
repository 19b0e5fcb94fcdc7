//! Which `[[route]]` a request belongs to: by host first, then by the longest path prefix.
//!
//! Matching is on the normalized path (see `policy::path`), segment-aware: `/app` covers `/app` and
//! `/app/x` but not `/application`. Host-less routes serve a host only where none of its own do.

use crate::config::Route;
use crate::policy::is_under;

/// The routes of a config, ready to match.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes }
    }

    /// The index of that route in [`Router::routes`] (what the proxy keeps per request).
    pub fn route_index(&self, host: Option<&str>, path: &str) -> Option<usize> {
        // Both sides are canonical (lowercase, no port, no trailing dot): compared as they are.
        let for_host = |r: &Route| match (&r.host, host) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        };
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, r)| for_host(r) && is_under(path, &r.path))
            // Host first: a route naming the host beats any host-less one; then longest prefix.
            .max_by_key(|(_, r)| (r.host.is_some(), r.path.len()))
            .map(|(i, _)| i)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn router() -> Router {
        let toml = r#"
            public_url = "http://localhost:8080"
            [webauthn]
            rp_id = "localhost"
            [[route]]
            name = "root"
            upstream = "http://127.0.0.1:1"
            [[route]]
            name = "app"
            path = "/app"
            upstream = "http://127.0.0.1:2"
            [[route]]
            name = "app-deep"
            path = "/app/deep"
            upstream = "http://127.0.0.1:3"
            [[route]]
            name = "other-host"
            host = "other.localhost"
            upstream = "http://127.0.0.1:4"
        "#;
        let config = Config::from_toml(Path::new("t.toml"), toml).expect("valid config");
        Router::new(config.routes)
    }

    #[test]
    fn host_then_longest_prefix() {
        let r = router();
        let name = |host: Option<&str>, path: &str| {
            let host = host.map(|h| crate::policy::canonical_host(h).expect("valid host"));
            let index = r.route_index(host.as_deref(), path);
            index.map(|i| r.routes()[i].name.as_str())
        };
        let cases = [
            (Some("localhost:8080"), "/", Some("root")),
            (Some("other.localhost."), "/", Some("other-host")),
            (Some("localhost"), "/application", Some("root")),
            (Some("localhost"), "/app", Some("app")),
            (Some("localhost"), "/app/x", Some("app")),
            (Some("localhost"), "/app/deep/x", Some("app-deep")),
            (Some("OTHER.localhost:9"), "/app", Some("other-host")),
            (None, "/app", Some("app")),
        ];
        for (host, path, want) in cases {
            assert_eq!(name(host, path), want, "{host:?} {path}");
        }
    }
}
