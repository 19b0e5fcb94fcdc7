//! Identity header names of every preset, the test that recognises a forged one, and the
//! unsigned convenience values added for a signed-in user.
//!
//! Owns: the header names and how a value is made safe to send. Does not own: removing or
//! inserting headers on a request (the proxy glue does that with these functions), nor the signed
//! assertion itself (`assertion.rs`).

use serde::{Deserialize, Serialize};

use super::Identity;

/// The signed assertion header (a compact JWS).
pub const ASSERTION_HEADER: &str = "X-Passkey-Assertion";

const PASSKEY_USER: &str = "X-Passkey-User";
const PASSKEY_USER_ID: &str = "X-Passkey-User-Id";
const PASSKEY_EMAIL: &str = "X-Passkey-Email";
const PASSKEY_GROUPS: &str = "X-Passkey-Groups";

const REMOTE_USER: &str = "Remote-User";
const REMOTE_EMAIL: &str = "Remote-Email";
const REMOTE_GROUPS: &str = "Remote-Groups";
const REMOTE_NAME: &str = "Remote-Name";

const FORWARDED_USER: &str = "X-Forwarded-User";
const FORWARDED_EMAIL: &str = "X-Forwarded-Email";
const FORWARDED_GROUPS: &str = "X-Forwarded-Groups";
const FORWARDED_PREFERRED_USERNAME: &str = "X-Forwarded-Preferred-Username";

/// Every header an upstream may read identity from, whatever preset is configured: a client
/// could target an upstream that trusts another preset's names, so all of them are stripped.
const ALL_IDENTITY_HEADERS: [&str; 13] = [
    ASSERTION_HEADER,
    PASSKEY_USER,
    PASSKEY_USER_ID,
    PASSKEY_EMAIL,
    PASSKEY_GROUPS,
    REMOTE_USER,
    REMOTE_EMAIL,
    REMOTE_GROUPS,
    REMOTE_NAME,
    FORWARDED_USER,
    FORWARDED_EMAIL,
    FORWARDED_GROUPS,
    FORWARDED_PREFERRED_USERNAME,
];

/// `X-Passkey-*` is our namespace: any header in it is ours to set, so a client-sent one is
/// stripped even if no preset uses that exact name (yet).
const RESERVED_PREFIX: &str = "x-passkey-";

/// Which unsigned convenience headers accompany the assertion (`[identity] headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderPreset {
    /// `X-Passkey-User`, `X-Passkey-User-Id`, `X-Passkey-Email`, `X-Passkey-Groups`.
    #[default]
    Passkey,
    /// Authelia style: `Remote-User`, `Remote-Email`, `Remote-Groups`, `Remote-Name`.
    Remote,
    /// oauth2-proxy style: `X-Forwarded-User`, `-Email`, `-Groups`, `-Preferred-Username`.
    Forwarded,
    /// Only the signed assertion.
    None,
}

/// Every header `preset` sends, the assertion first: what a fronting proxy is told to copy.
pub fn preset_header_names(preset: HeaderPreset) -> &'static [&'static str] {
    match preset {
        HeaderPreset::Passkey => &[
            ASSERTION_HEADER,
            PASSKEY_USER,
            PASSKEY_USER_ID,
            PASSKEY_EMAIL,
            PASSKEY_GROUPS,
        ],
        HeaderPreset::Remote => &[
            ASSERTION_HEADER,
            REMOTE_USER,
            REMOTE_EMAIL,
            REMOTE_GROUPS,
            REMOTE_NAME,
        ],
        HeaderPreset::Forwarded => &[
            ASSERTION_HEADER,
            FORWARDED_USER,
            FORWARDED_EMAIL,
            FORWARDED_GROUPS,
            FORWARDED_PREFERRED_USERNAME,
        ],
        HeaderPreset::None => &[ASSERTION_HEADER],
    }
}

/// True when `name` is any preset's identity header or in the `X-Passkey-` namespace, in any
/// case and with `_` in place of `-` (some servers and CGI-style apps treat them alike).
pub fn is_identity_header(name: &str) -> bool {
    // Compared byte by byte without allocating: this runs for every header of every forwarded
    // request.
    let name = name.trim().as_bytes();
    let prefix = RESERVED_PREFIX.as_bytes();
    name.get(..prefix.len())
        .is_some_and(|start| same_folded(start, prefix))
        || ALL_IDENTITY_HEADERS
            .iter()
            .any(|known| same_folded(name, known.as_bytes()))
}

/// Whether two names are equal once lowercased and with `_` read as `-`.
fn same_folded(a: &[u8], b: &[u8]) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

/// The convenience headers for `identity` under `preset`, in a stable order.
///
/// A value that is not safe to send (a control character such as CR/LF) is left out rather than
/// altered: a wrong identity is worse than a missing one, and the signed assertion still carries
/// the exact value. An absent email or an empty group list is left out too; the inbound headers
/// are stripped first, so absence is unambiguous. Groups are joined with `,`; a group name that
/// itself contains `,` would be ambiguous and is skipped.
pub fn convenience_headers(
    preset: HeaderPreset,
    identity: &Identity,
) -> Vec<(&'static str, String)> {
    let (user, user_id, email, groups, name, preferred) = match preset {
        HeaderPreset::Passkey => (
            Some(PASSKEY_USER),
            Some(PASSKEY_USER_ID),
            PASSKEY_EMAIL,
            PASSKEY_GROUPS,
            None,
            None,
        ),
        HeaderPreset::Remote => (
            Some(REMOTE_USER),
            None,
            REMOTE_EMAIL,
            REMOTE_GROUPS,
            Some(REMOTE_NAME),
            None,
        ),
        HeaderPreset::Forwarded => (
            Some(FORWARDED_USER),
            None,
            FORWARDED_EMAIL,
            FORWARDED_GROUPS,
            None,
            Some(FORWARDED_PREFERRED_USERNAME),
        ),
        HeaderPreset::None => return Vec::new(),
    };

    let joined_groups = identity
        .groups
        .iter()
        .filter(|g| !g.contains(',') && is_safe_value(g))
        .map(|g| g.trim())
        .collect::<Vec<_>>()
        .join(",");

    let candidates = [
        (user, Some(identity.username.as_str())),
        (user_id, Some(identity.user_id.as_str())),
        (Some(email), identity.email.as_deref()),
        (Some(groups), Some(joined_groups.as_str())),
        (name, Some(identity.display_name.as_str())),
        (preferred, Some(identity.username.as_str())),
    ];
    candidates
        .into_iter()
        .filter_map(|(header, value)| {
            let (header, value) = (header?, value?);
            if value.is_empty() {
                return None;
            }
            if !is_safe_value(value) {
                tracing::warn!(
                    header,
                    "identity value has control characters; header left out"
                );
                return None;
            }
            Some((header, value.to_owned()))
        })
        .collect()
}

/// A header value may hold any printable text (UTF-8 travels as obs-text bytes), but never a
/// control character: CR/LF would split the header (response splitting upstream), NUL and the
/// rest confuse parsers. Tab is refused too: no identity needs it.
fn is_safe_value(value: &str) -> bool {
    !value.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            user_id: "0b9e6a3c-1111-4222-8333-944445555666".into(),
            username: "alice".into(),
            display_name: "Alice Liddell".into(),
            email: Some("alice@example.com".into()),
            groups: vec!["admins".into(), "dev".into()],
        }
    }

    #[test]
    fn identity_headers_match_every_preset_in_any_spelling() {
        for name in [
            "X-Passkey-User",
            "x_passkey_user",
            "X-PASSKEY-assertion",
            "x-passkey-user-id",
            "X-Passkey-Future-Thing",
            "REMOTE_USER",
            "remote-groups",
            "Remote-Name",
            "x-forwarded-user",
            "X_FORWARDED_PREFERRED_USERNAME",
            "x-forwarded-email",
            "X-Forwarded-Groups",
        ] {
            assert!(is_identity_header(name), "{name} must be stripped");
        }
        for name in [
            "X-Forwarded-For",
            "X-Forwarded-Proto",
            "X-Forwarded-Host",
            "Remote-Addr",
            "Cookie",
            "X-Passkey",
            "Authorization",
        ] {
            assert!(
                !is_identity_header(name),
                "{name} is not an identity header"
            );
        }
    }

    #[test]
    fn presets_produce_their_headers() {
        let id = alice();
        let cases: [(HeaderPreset, &[(&str, &str)]); 4] = [
            (
                HeaderPreset::Passkey,
                &[
                    ("X-Passkey-User", "alice"),
                    ("X-Passkey-User-Id", "0b9e6a3c-1111-4222-8333-944445555666"),
                    ("X-Passkey-Email", "alice@example.com"),
                    ("X-Passkey-Groups", "admins,dev"),
                ],
            ),
            (
                HeaderPreset::Remote,
                &[
                    ("Remote-User", "alice"),
                    ("Remote-Email", "alice@example.com"),
                    ("Remote-Groups", "admins,dev"),
                    ("Remote-Name", "Alice Liddell"),
                ],
            ),
            (
                HeaderPreset::Forwarded,
                &[
                    ("X-Forwarded-User", "alice"),
                    ("X-Forwarded-Email", "alice@example.com"),
                    ("X-Forwarded-Groups", "admins,dev"),
                    ("X-Forwarded-Preferred-Username", "alice"),
                ],
            ),
            (HeaderPreset::None, &[]),
        ];
        for (preset, want) in cases {
            let got = convenience_headers(preset, &id);
            let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(got, want, "{preset:?}");
            for (name, _) in got {
                assert!(
                    is_identity_header(name),
                    "{name} must also be stripped inbound"
                );
            }
        }
    }

    #[test]
    fn unsafe_values_are_left_out() {
        let mut id = alice();
        id.display_name = "Alice\r\nSet-Cookie: x=1".into();
        id.email = None;
        id.groups = vec![
            "ok".into(),
            "bad\ngroup".into(),
            "a,b".into(),
            "José".into(),
        ];
        let got = convenience_headers(HeaderPreset::Remote, &id);
        assert_eq!(
            got,
            vec![
                ("Remote-User", "alice".to_owned()),
                ("Remote-Groups", "ok,José".to_owned()),
            ]
        );
        for (_, value) in &got {
            // Sent as is: valid header bytes (UTF-8 travels as obs-text), no control character.
            assert!(http::HeaderValue::from_bytes(value.as_bytes()).is_ok());
            assert!(!value.chars().any(char::is_control), "{value:?}");
        }
    }

    /// Every control character (C0, DEL, C1) keeps a value out, in any field, including those
    /// `http::HeaderValue` itself would accept (tab, DEL's neighbours in C1 as UTF-8).
    #[test]
    fn a_value_with_any_control_character_is_left_out() {
        let controls = (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32);
        for control in controls {
            let bad = format!("a{control}b");
            for preset in [
                HeaderPreset::Passkey,
                HeaderPreset::Remote,
                HeaderPreset::Forwarded,
            ] {
                let mut id = alice();
                id.username.clone_from(&bad);
                id.display_name.clone_from(&bad);
                id.email = Some(bad.clone());
                id.groups = vec![bad.clone(), "ok".into()];
                let got = convenience_headers(preset, &id);
                for (name, value) in &got {
                    assert!(
                        !value.contains(control),
                        "{preset:?} {name} carries U+{:04X}",
                        control as u32
                    );
                }
                let groups = got.iter().find(|(name, _)| name.ends_with("Groups"));
                assert_eq!(groups.map(|(_, v)| v.as_str()), Some("ok"), "{preset:?}");
            }
        }
        // Printable non-ASCII text is kept, unchanged.
        let mut id = alice();
        id.display_name = "Zoë Ångström 日本".into();
        let got = convenience_headers(HeaderPreset::Remote, &id);
        assert!(got.contains(&("Remote-Name", "Zoë Ångström 日本".to_owned())));
    }

    #[test]
    fn preset_names_in_config_are_lowercase() {
        for (text, want) in [
            ("\"passkey\"", HeaderPreset::Passkey),
            ("\"remote\"", HeaderPreset::Remote),
            ("\"forwarded\"", HeaderPreset::Forwarded),
            ("\"none\"", HeaderPreset::None),
        ] {
            let got: HeaderPreset = serde_json::from_str(text).expect("preset parses");
            assert_eq!(got, want);
        }
        assert!(serde_json::from_str::<HeaderPreset>("\"Remote\"").is_err());
    }
}
