//! Path normalization: the one decoded, canonical path that both routing and access rules
//! match on, and segment-aware prefix matching.
//!
//! Owns: how a request-target path is decoded and which tricks are refused. Does not own:
//! which path is forwarded upstream (the proxy glue decides; see below) or route lookup.
//!
//! The threat is a path the gateway reads as public while the upstream reads it as protected.
//! So the rules lean strict: a trick whose meaning differs between servers is refused (400)
//! rather than guessed at.
//!
//! - Query and fragment are cut first: `/admin?x=/public` is `/admin`.
//! - `;params` are dropped from each segment before decoding, as Tomcat/Spring do:
//!   `/admin;/public` is `/admin/public`. (A decoded `%3B` is a literal `;`.) A dot segment with
//!   params (`..;`, `.;x`) is refused: `/admin/..;/x` climbs for Tomcat but is a segment under
//!   `/admin` for nginx or Flask; so is `..` in a path with a segment of params only
//!   (`/app/private/;/..`). Params are checked like the rest of their segment (escapes, encoded
//!   slashes and dot segments), since servers that keep them decode them. All found by fuzzing.
//! - Each segment is percent-decoded exactly once. Invalid escapes, invalid UTF-8, control
//!   characters (NUL, CR, LF, …) and any `%` left after decoding are refused: double encoding
//!   (`%252e`) must not be a second chance, and a literal `%` (`%25`) is collateral damage.
//! - A raw `\` is refused: browsers send `/` for it, and servers disagree on whether it separates
//!   segments, so `/x\y/../admin` is `/admin` to some and `/x/admin` to others, and
//!   `/;p\q/admin` hides a segment inside `;params` for some. `//` collapses.
//! - A `..` segment anywhere in a path with an encoded `/` or `\` is refused for the same reason:
//!   `/x%2fy/../admin` is `/x/admin` here but `/admin` to a server that splits before decoding.
//!   (Both found by fuzzing, `fuzz/checks.rs`.)
//! - Plain `.` and `..` segments are resolved, never above the root, as every mainstream server
//!   does. An encoded dot segment (`%2e%2e`, `.%2E`) or an encoded slash next to a dot segment
//!   (`..%2f`) is refused: some upstreams decode those and some do not, so no single reading is
//!   safe. Encoded slashes elsewhere (`group%2Fproject`) split into segments for matching.
//! - Case is kept: `/PUBLIC/x` is not under `/public` (RFC 3986 paths are case-sensitive). That
//!   errs safe for public paths; a case-insensitive upstream needs its protected prefixes
//!   covered by an authenticated catch-all route rather than by exact-case prefixes alone.
//! - A decoded `#` or `?` stays a literal character of its segment: `/admin%23/public` is the
//!   one segment `admin#` then `public`, which is under neither `/admin` nor `/public`.

use percent_encoding::percent_decode_str;

/// Why a path was refused (always a 400: the client sent something no browser sends).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("the request path must start with `/`")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("the request path has an invalid percent-escape")]
    BadEscape,
    /// The decoded bytes are not UTF-8.
    #[error("the request path is not valid UTF-8 once decoded")]
    NotUtf8,
    /// NUL, CR, LF or another control character, raw or encoded.
    #[error("the request path contains a control character")]
    ControlCharacter,
    /// A `%` remains after one decoding pass (`%252e`, `%25`).
    #[error("the request path is percent-encoded more than once")]
    DoubleEncoded,
    /// A `.`/`..` segment hidden behind percent-encoding (`%2e%2e`, `..%2f`).
    #[error("the request path hides a `.` or `..` segment behind percent-encoding")]
    EncodedDotSegment,
    /// A `..` segment in a path with an encoded slash or a segment of `;params` only, or a dot
    /// segment with `;params` (servers split and climb those differently).
    #[error("the request path has a `..` whose meaning differs between servers")]
    AmbiguousDotSegment,
    /// A raw `\` (servers disagree on whether it separates segments).
    #[error("the request path has a backslash")]
    Backslash,
}

/// The decoded, canonical form of a request-target path (query and fragment removed); see the
/// module docs for every rule. Always starts with `/`; keeps a trailing `/`.
pub fn normalize_path(raw_path: &str) -> Result<String, PathError> {
    let end = raw_path.find(['?', '#']).unwrap_or(raw_path.len());
    let path = &raw_path[..end];
    if is_plain(path) {
        return Ok(path.to_owned());
    }
    normalize_general(path)
}

/// A path every rule leaves as it is, the common case: absolute, only unreserved characters and
/// `/`, no `//`, no `.` or `..` segment. No `%`, `;`, `\` or control character, so decoding
/// changes nothing and no segment is dropped or climbed
/// (`tests::plain_paths_take_the_general_rules_unchanged` checks it against them).
fn is_plain(path: &str) -> bool {
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~');
    path.starts_with('/')
        && path.bytes().all(allowed)
        && !path.contains("//")
        && path[1..]
            .split('/')
            .all(|segment| segment != "." && segment != "..")
}

/// [`normalize_path`] for any path (query and fragment already removed).
fn normalize_general(path: &str) -> Result<String, PathError> {
    if path.is_empty() {
        return Ok("/".to_owned());
    }
    if path.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    if path.contains('\\') {
        return Err(PathError::Backslash);
    }
    // Whether some server would split this path differently from us; see the module docs.
    let mut ambiguous_separator = false;
    let mut climbs = false;
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };

    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    let raw_segments: Vec<&str> = rest.split('/').collect();
    let last = raw_segments.len() - 1;
    for (i, raw_segment) in raw_segments.into_iter().enumerate() {
        // Matrix parameters belong to the segment and never change which resource it names.
        let encoded = raw_segment.split(';').next().unwrap_or_default();
        // `/a/;x/..`: a segment of params only is empty here but counts for servers that keep
        // params, so a `..` would climb out of a different place.
        ambiguous_separator |= encoded.is_empty() && !raw_segment.is_empty();
        if encoded.len() != raw_segment.len() {
            // Servers that keep params decode them with the rest: the whole segment must pass
            // the same checks, and an encoded separator or dot segment inside params counts.
            let whole = decode_once(raw_segment)?;
            if whole.split(['/', '\\']).any(|p| p == "." || p == "..") {
                return Err(PathError::EncodedDotSegment);
            }
            ambiguous_separator |= whole.contains(['/', '\\']);
        }
        let decoded = decode_once(encoded)?;
        let is_last = i == last;
        if decoded.contains(['/', '\\']) {
            // An encoded slash: fine as a separator for matching, never next to a dot segment.
            let pieces: Vec<&str> = decoded.split(['/', '\\']).collect();
            if pieces.iter().any(|p| *p == "." || *p == "..") {
                return Err(PathError::EncodedDotSegment);
            }
            ambiguous_separator = true;
            segments.extend(
                pieces
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| (*p).to_owned()),
            );
            trailing_slash = is_last && pieces.last().is_some_and(|p| p.is_empty());
            continue;
        }
        match decoded.as_str() {
            "" => trailing_slash = is_last,
            "." | ".." if decoded != encoded => return Err(PathError::EncodedDotSegment),
            // `..;x` climbs for servers that drop `;params` and is a plain segment for the rest:
            // `/admin/..;/x` is `/x` to one and under `/admin` to the other.
            "." | ".." if encoded.len() != raw_segment.len() => {
                return Err(PathError::AmbiguousDotSegment)
            }
            "." => trailing_slash = is_last,
            ".." => {
                segments.pop();
                climbs = true;
                trailing_slash = is_last;
            }
            _ => {
                segments.push(decoded);
                trailing_slash = false;
            }
        }
    }

    if climbs && ambiguous_separator {
        return Err(PathError::AmbiguousDotSegment);
    }
    let mut normalized = String::with_capacity(path.len());
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if segments.is_empty() || trailing_slash {
        normalized.push('/');
    }
    Ok(normalized)
}

/// Segment-aware prefix match on normalized paths: `/public` covers `/public` and `/public/x`,
/// not `/publicity`. A trailing `/` on the prefix is ignored; `/` covers everything.
pub fn is_under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Decodes one segment exactly once and checks what came out.
fn decode_once(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    for (i, byte) in bytes.iter().enumerate() {
        if *byte == b'%' {
            let escape = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            if !escape.iter().all(u8::is_ascii_hexdigit) {
                return Err(PathError::BadEscape);
            }
        }
    }
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| PathError::NotUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    if decoded.contains('%') {
        return Err(PathError::DoubleEncoded);
    }
    Ok(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The shortcut for plain paths returns what the general rules return.
        #[test]
        fn plain_paths_take_the_general_rules_unchanged(
            pieces in prop::collection::vec(
                prop::sample::select(vec!["/", "a", "Z", "9", ".", "..", "-", "_", "~", "%2e", ";", "//"]),
                0..12,
            ),
        ) {
            let path = format!("/{}", pieces.concat());
            if is_plain(&path) {
                prop_assert_eq!(normalize_general(&path), Ok(path.clone()));
            }
        }
    }

    #[test]
    fn plain_paths() {
        for plain in [
            "/",
            "/app",
            "/app/",
            "/a.b/c-d_e~f/",
            "/.well-known/x",
            "/a/.../b",
        ] {
            assert!(is_plain(plain), "{plain}");
            assert_eq!(normalize_path(plain).as_deref(), Ok(plain));
        }
        for not in [
            "", "app", "//a", "/a//b", "/a/./b", "/a/..", "/.", "/a%2e", "/a;b", "/a\\b",
        ] {
            assert!(!is_plain(not), "{not}");
        }
    }

    #[test]
    fn bypass_attempts_never_land_under_public() {
        // (raw, Ok(normalized) or Err): none of these may be under `/public`.
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/public/../admin", Ok("/admin")),
            ("/public/..%2fadmin", Err(PathError::EncodedDotSegment)),
            ("/public/%2e%2e/admin", Err(PathError::EncodedDotSegment)),
            ("/public/%2E%2e/admin", Err(PathError::EncodedDotSegment)),
            ("/public/.%2e/admin", Err(PathError::EncodedDotSegment)),
            ("/%2e%2e/admin", Err(PathError::EncodedDotSegment)),
            ("//admin", Ok("/admin")),
            ("/admin;/public", Ok("/admin/public")),
            ("/admin?x=/public", Ok("/admin")),
            ("/admin#/public", Ok("/admin")),
            ("/admin%23/public", Ok("/admin#/public")),
            ("/admin%3f/public", Ok("/admin?/public")),
            ("/public%2f..%2fadmin", Err(PathError::EncodedDotSegment)),
            ("/public%5c..%5cadmin", Err(PathError::EncodedDotSegment)),
            ("/public/%252e%252e/admin", Err(PathError::DoubleEncoded)),
            ("/public%252f..%252fadmin", Err(PathError::DoubleEncoded)),
            ("/PUBLIC/x", Ok("/PUBLIC/x")),
            ("\\public\\..\\admin", Err(PathError::Backslash)),
            ("/publi\\\\c/../admin", Err(PathError::Backslash)),
            ("/x\\y/../admin", Err(PathError::Backslash)),
            ("/;525:a2e%5I\\'/admin/;525:a2n", Err(PathError::Backslash)),
            ("/x%2fy/../admin", Err(PathError::AmbiguousDotSegment)),
            ("/x%5Cy/../admin", Err(PathError::AmbiguousDotSegment)),
            ("/x/../a%2fb", Err(PathError::AmbiguousDotSegment)),
            ("/x\\admin", Err(PathError::Backslash)),
            ("/public/..;/admin", Err(PathError::AmbiguousDotSegment)),
            ("/admin/..;/x", Err(PathError::AmbiguousDotSegment)),
            ("/admin/.;x/y", Err(PathError::AmbiguousDotSegment)),
            ("/app/private/;/..", Err(PathError::AmbiguousDotSegment)),
            ("/public/;x/../admin", Err(PathError::AmbiguousDotSegment)),
            (
                "/pi;o%%2f..%2f../app/private%2fi",
                Err(PathError::BadEscape),
            ),
            (
                "/pi;o%2f..%2f../app/private/i",
                Err(PathError::EncodedDotSegment),
            ),
            ("/a;b%2fc/../x", Err(PathError::AmbiguousDotSegment)),
            ("/a;x=%41/b", Ok("/a/b")),
            ("/public;x=1/../admin", Ok("/admin")),
            ("/public/../../../admin", Ok("/admin")),
            ("/public/./../admin", Ok("/admin")),
            ("/publicity", Ok("/publicity")),
            ("/public%00/x", Err(PathError::ControlCharacter)),
            ("/public/%0d%0aX:y", Err(PathError::ControlCharacter)),
            ("/public/\tx", Err(PathError::ControlCharacter)),
            ("/public/%zz", Err(PathError::BadEscape)),
            ("/public/%2", Err(PathError::BadEscape)),
            ("/public/%ff", Err(PathError::NotUtf8)),
            ("public/x", Err(PathError::NotAbsolute)),
            ("*", Err(PathError::NotAbsolute)),
        ];
        for (raw, want) in cases {
            let got = normalize_path(raw);
            assert_eq!(got.as_deref(), want.as_ref().map(|s| *s), "{raw}");
            if let Ok(path) = got {
                assert!(
                    !is_under(&path, "/public"),
                    "{raw} → {path} must not be public"
                );
            }
        }
    }

    #[test]
    fn ordinary_paths_normalize_as_expected() {
        let cases = [
            ("/", "/"),
            ("", "/"),
            ("?x=1", "/"),
            ("/public", "/public"),
            ("/public/", "/public/"),
            ("/public/x/", "/public/x/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/..", "/"),
            ("/a//b///c", "/a/b/c"),
            ("/caf%C3%A9", "/café"),
            ("/café", "/café"),
            ("/a%20b", "/a b"),
            (
                "/api/v4/projects/group%2Fproject",
                "/api/v4/projects/group/project",
            ),
            ("/a%3Bb/c", "/a;b/c"),
            ("/jsessionid;jsessionid=abc", "/jsessionid"),
            ("/...", "/..."),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn prefix_matching_is_segment_aware() {
        let cases = [
            ("/public", "/public", true),
            ("/public/", "/public", true),
            ("/public/x", "/public", true),
            ("/public/x", "/public/", true),
            ("/publicity", "/public", false),
            ("/PUBLIC/x", "/public", false),
            ("/", "/public", false),
            ("/anything", "/", true),
            ("/", "/", true),
            ("/a/b", "/a/b/c", false),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(is_under(path, prefix), want, "is_under({path}, {prefix})");
        }
    }
}
