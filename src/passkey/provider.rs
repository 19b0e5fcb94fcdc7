//! Which passkey provider made a passkey ("iCloud Keychain", "1Password", ...), from the AAGUID
//! its attestation carried, and whether it is synced or bound to one device.
//!
//! The names come from `reference/aaguid-names.json` (see `reference/README.md`), compiled in
//! and parsed once. They are for people to read, never for a security decision: an
//! authenticator chooses its own AAGUID, and with attestation `none` nothing vouches for it. An
//! unknown AAGUID is normal (software authenticators send all zeros; new providers appear all the
//! time).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;

use crate::store::Passkey;

const NAMES_JSON: &str = include_str!("../../reference/aaguid-names.json");

/// Longest provider name kept; the list's longest is 30 characters.
const MAX_PROVIDER_NAME: usize = 64;

/// The provider's name for an AAGUID, if the list knows it.
pub fn provider_name(aaguid: &str) -> Option<&'static str> {
    names()
        .get(aaguid.to_ascii_lowercase().as_str())
        .map(String::as_str)
}

/// Where a passkey's private key lives, from the backup flags of its last ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// Backed up by its provider: it follows the person to their other devices.
    Synced,
    /// Its provider may back it up, but has not (yet).
    SyncAllowed,
    /// Never leaves the one authenticator that made it.
    DeviceBound,
}

impl Storage {
    pub fn of(passkey: &Passkey) -> Storage {
        match (passkey.backup_state, passkey.backup_eligible) {
            (true, _) => Storage::Synced,
            (false, true) => Storage::SyncAllowed,
            (false, false) => Storage::DeviceBound,
        }
    }

    /// For people (the CLI).
    pub fn label(self) -> &'static str {
        match self {
            Storage::Synced => "synced",
            Storage::SyncAllowed => "sync allowed",
            Storage::DeviceBound => "this device only",
        }
    }
}

/// The table, parsed on first use. The file is part of the source: a broken one fails the
/// unit test below, and at run time it only means no names.
fn names() -> &'static HashMap<String, String> {
    static NAMES: OnceLock<HashMap<String, String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let parsed: HashMap<String, String> = serde_json::from_str(NAMES_JSON).unwrap_or_default();
        parsed
            .into_iter()
            .filter(|(_, name)| !name.is_empty() && name.chars().count() <= MAX_PROVIDER_NAME)
            .map(|(aaguid, name)| (aaguid.to_ascii_lowercase(), name))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_list_parses_whole() {
        let raw: HashMap<String, String> = serde_json::from_str(NAMES_JSON).expect("valid JSON");
        assert_eq!(names().len(), raw.len());
        assert!(raw.len() >= 50);
    }

    #[test]
    fn known_unknown_and_zero_aaguids() {
        assert_eq!(
            provider_name("08987058-CADC-4B81-B6E1-30DE50DCBE96"),
            Some("Windows Hello")
        );
        assert_eq!(provider_name("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(provider_name("not a uuid"), None);
    }
}
