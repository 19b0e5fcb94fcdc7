//! [`PasskeyName`]: a passkey's name as a person typed it, parsed once where it comes in (the
//! endpoints), so the ceremonies and the store only ever see a valid one.

/// Longest passkey name kept, in characters.
pub const MAX_PASSKEY_NAME: usize = 64;

/// A trimmed, non-empty name of at most [`MAX_PASSKEY_NAME`] characters, without control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

/// Why a typed name is not a passkey name.
#[derive(Debug, thiserror::Error)]
#[error("a passkey name is at most {MAX_PASSKEY_NAME} characters, without control characters")]
pub struct BadPasskeyName;

impl PasskeyName {
    /// `Ok(None)` for a blank name (the caller picks a default or refuses).
    pub fn parse(typed: &str) -> Result<Option<PasskeyName>, BadPasskeyName> {
        let name = typed.trim();
        if name.is_empty() {
            return Ok(None);
        }
        if name.chars().count() > MAX_PASSKEY_NAME || name.chars().any(char::is_control) {
            return Err(BadPasskeyName);
        }
        Ok(Some(PasskeyName(name.to_string())))
    }

    /// The name, to store.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        let parsed = PasskeyName::parse("  Laptop ")
            .expect("valid")
            .expect("not blank");
        assert_eq!(parsed.into_string(), "Laptop");
        assert!(PasskeyName::parse(" \t").expect("blank is fine").is_none());
        assert!(PasskeyName::parse(&"é".repeat(MAX_PASSKEY_NAME)).is_ok());
        assert!(PasskeyName::parse(&"é".repeat(MAX_PASSKEY_NAME + 1)).is_err());
        assert!(PasskeyName::parse("a\nb").is_err());
    }
}
