//! [`Username`]: a name as people type it (the login form, the CLI), normalized and checked once
//! where it comes in, so a user created as `Alice ` signs in as `alice` and nothing past the edge
//! handles an unchecked name.
//!
//! Owns: normalization and the character rule. Does not own: uniqueness (the store) or whether
//! the name may sign in (the ceremonies).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest username accepted.
pub const MAX_USERNAME: usize = 64;

/// A normalized, valid username: 1 to [`MAX_USERNAME`] lowercase ASCII letters, digits, `.`,
/// `_` or `-`, after trimming and ASCII-lowercasing what was typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

/// Why a typed name is not a username. It does not repeat the name: callers that may show it
/// (the CLI) do so themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid username: use 1 to {MAX_USERNAME} lowercase letters, digits, `.`, `_` or `-`")]
pub struct BadUsername;

impl Username {
    /// Trims and lowercases `typed`, then checks the character rule.
    pub fn parse(typed: &str) -> Result<Username, BadUsername> {
        let name = typed.trim().to_ascii_lowercase();
        let valid = (1..=MAX_USERNAME).contains(&name.len())
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if valid {
            Ok(Username(name))
        } else {
            Err(BadUsername)
        }
    }

    /// The name as stored and looked up.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Username {
    type Err = BadUsername;

    fn from_str(typed: &str) -> Result<Self, Self::Err> {
        Username::parse(typed)
    }
}

impl TryFrom<String> for Username {
    type Error = BadUsername;

    fn try_from(typed: String) -> Result<Self, Self::Error> {
        Username::parse(&typed)
    }
}

impl From<Username> for String {
    fn from(name: Username) -> String {
        name.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_lowercased_then_checked() {
        assert_eq!(
            Username::parse("  Alice \t").expect("valid").as_str(),
            "alice"
        );
        assert_eq!(
            Username::parse("Bob.Smith-2_x").expect("valid").as_str(),
            "bob.smith-2_x"
        );
        let long = "x".repeat(MAX_USERNAME + 1);
        for bad in ["", "  ", "a b", "zoë", "a/b", long.as_str()] {
            assert_eq!(Username::parse(bad), Err(BadUsername), "{bad:?}");
        }
    }

    #[test]
    fn deserializing_checks_the_rule_too() {
        let name: Username = serde_json::from_str("\" Carol \"").expect("valid");
        assert_eq!(name.as_str(), "carol");
        assert!(serde_json::from_str::<Username>("\"no way\"").is_err());
    }
}
