//! The access decision for one route: allow, ask to log in, or forbid.
//!
//! Owns: the meaning of `access`, `allow_users`, `allow_groups` and `public_paths`. Does not
//! own: finding the route (by host, then longest prefix), normalizing the path (`path.rs`,
//! done before this is called), or the 302/401/403 responses.

use serde::{Deserialize, Serialize};

use super::path::is_under;

/// A route's base access level (`access = "public" | "authenticated"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone, with or without a session (a signed-in user's identity is still forwarded).
    Public,
    /// A session is required, and the allow lists (if any) must match.
    #[default]
    Authenticated,
}

/// The access part of a route, as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRule {
    /// The base level.
    pub access: Access,
    /// Usernames allowed (exact, case-sensitive); empty means no user restriction.
    pub allow_users: Vec<String>,
    /// Groups allowed (exact, case-sensitive); empty means no group restriction.
    pub allow_groups: Vec<String>,
    /// Sub-paths open without a session (segment-aware prefixes of the normalized path).
    pub public_paths: Vec<String>,
}

/// The signed-in user, as far as policy needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// Login name.
    pub username: &'a str,
    /// Group names.
    pub groups: &'a [String],
}

/// What to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward it.
    Allow,
    /// No session where one is needed: 302 to the login page for a navigation, else 401.
    NeedLogin,
    /// Signed in, but this route does not admit this user: 403.
    Forbidden,
}

/// Decides access to `normalized_path` (from `normalize_path`) under `rule` for `user`.
///
/// Public paths and public routes allow everyone. An authenticated route needs a session; then,
/// if either allow list is non-empty, the user must be named in `allow_users` or belong to one
/// of `allow_groups` (either list suffices).
pub fn decide(rule: &AccessRule, normalized_path: &str, user: Option<&Requester<'_>>) -> Decision {
    if rule.access == Access::Public
        || rule
            .public_paths
            .iter()
            .any(|prefix| is_under(normalized_path, prefix))
    {
        return Decision::Allow;
    }
    let Some(user) = user else {
        return Decision::NeedLogin;
    };
    if rule.allow_users.is_empty() && rule.allow_groups.is_empty() {
        return Decision::Allow;
    }
    let named = rule.allow_users.iter().any(|u| u == user.username);
    let in_group = rule.allow_groups.iter().any(|g| user.groups.contains(g));
    if named || in_group {
        Decision::Allow
    } else {
        Decision::Forbidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn decisions_follow_the_rule() {
        let admins = strings(&["admins"]);
        let dev = strings(&["dev"]);
        let none: Vec<String> = Vec::new();
        let alice = Requester {
            username: "alice",
            groups: &admins,
        };
        let bob = Requester {
            username: "bob",
            groups: &dev,
        };
        let carol = Requester {
            username: "carol",
            groups: &none,
        };

        let open = AccessRule {
            access: Access::Public,
            ..AccessRule::default()
        };
        let members = AccessRule::default();
        let limited = AccessRule {
            allow_users: strings(&["carol"]),
            allow_groups: strings(&["admins"]),
            public_paths: strings(&["/public", "/health/"]),
            ..AccessRule::default()
        };
        let groups_only = AccessRule {
            allow_groups: strings(&["dev"]),
            ..AccessRule::default()
        };
        // A public route with allow lists is still public: the lists only narrow `authenticated`.
        let public_with_lists = AccessRule {
            access: Access::Public,
            allow_users: strings(&["carol"]),
            ..AccessRule::default()
        };

        use Decision::*;
        let cases: &[(&str, &AccessRule, &str, Option<&Requester<'_>>, Decision)] = &[
            ("public route, anonymous", &open, "/x", None, Allow),
            ("public route, signed in", &open, "/x", Some(&bob), Allow),
            (
                "public route ignores lists",
                &public_with_lists,
                "/x",
                None,
                Allow,
            ),
            ("members, anonymous", &members, "/x", None, NeedLogin),
            (
                "members, anyone signed in",
                &members,
                "/x",
                Some(&carol),
                Allow,
            ),
            ("limited, anonymous", &limited, "/admin", None, NeedLogin),
            ("limited, by user", &limited, "/admin", Some(&carol), Allow),
            ("limited, by group", &limited, "/admin", Some(&alice), Allow),
            (
                "limited, neither",
                &limited,
                "/admin",
                Some(&bob),
                Forbidden,
            ),
            ("public path, anonymous", &limited, "/public", None, Allow),
            (
                "public sub-path, anonymous",
                &limited,
                "/public/a.css",
                None,
                Allow,
            ),
            (
                "public path with trailing slash rule",
                &limited,
                "/health",
                None,
                Allow,
            ),
            (
                "public path, not listed user",
                &limited,
                "/public/a",
                Some(&bob),
                Allow,
            ),
            (
                "lookalike of public path",
                &limited,
                "/publicity",
                None,
                NeedLogin,
            ),
            (
                "case differs from public path",
                &limited,
                "/PUBLIC/a",
                None,
                NeedLogin,
            ),
            (
                "lookalike, signed in, not allowed",
                &limited,
                "/publicity",
                Some(&bob),
                Forbidden,
            ),
            ("groups only, member", &groups_only, "/", Some(&bob), Allow),
            (
                "groups only, non-member",
                &groups_only,
                "/",
                Some(&alice),
                Forbidden,
            ),
            (
                "groups only, no groups",
                &groups_only,
                "/",
                Some(&carol),
                Forbidden,
            ),
        ];
        for (name, rule, path, user, want) in cases {
            assert_eq!(decide(rule, path, *user), *want, "{name}");
        }
    }

    #[test]
    fn access_names_in_config_are_lowercase() {
        let public: Access = serde_json::from_str("\"public\"").expect("parses");
        let authenticated: Access = serde_json::from_str("\"authenticated\"").expect("parses");
        assert_eq!(
            (public, authenticated),
            (Access::Public, Access::Authenticated)
        );
        assert!(serde_json::from_str::<Access>("\"Public\"").is_err());
    }
}
