//! INTERIM (replaced by the identity branch at merge).
pub use crate::config::HeaderPreset;

pub fn is_identity_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('_', "-");
    [
        "x-passkey-user",
        "x-passkey-user-id",
        "x-passkey-email",
        "x-passkey-groups",
        "remote-user",
        "remote-email",
        "remote-groups",
        "remote-name",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-passkey-assertion",
    ]
    .contains(&n.as_str())
}
