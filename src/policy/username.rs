//! What a username is: the one place names typed by people (the login form, the CLI) are
//! normalized, so a user created as `Alice ` signs in as `alice`.
//!
//! Owns: normalization and the character rule for new names. Does not own: uniqueness (the
//! store) or whether the name may sign in (the ceremonies).

/// Longest username accepted for a new user.
pub const MAX_USERNAME: usize = 64;

/// A typed name as stored and looked up: trimmed and ASCII-lowercased (may be empty).
pub fn normalize_username(typed: &str) -> String {
    typed.trim().to_ascii_lowercase()
}

/// True for a normalized name a new user may take: 1 to [`MAX_USERNAME`] lowercase ASCII
/// letters, digits, `.`, `_` or `-`.
pub fn is_valid_username(name: &str) -> bool {
    (1..=MAX_USERNAME).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_lowercased_then_checked() {
        assert_eq!(normalize_username("  Alice \t"), "alice");
        assert!(is_valid_username(&normalize_username("Bob.Smith-2_x")));
        for bad in ["", "a b", "zoë", "a/b", &"x".repeat(MAX_USERNAME + 1)] {
            assert!(!is_valid_username(&normalize_username(bad)), "{bad:?}");
        }
    }
}
