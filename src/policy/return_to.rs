//! Where a browser may be sent after login: a same-origin path, or an https URL on an allowed
//! host; anything else becomes `/`.
//!
//! Owns: the open-redirect defence for `return_to`. Does not own: building the login redirect
//! (the caller passes the original path and query) or escaping the value into HTML (the page
//! that embeds it does).
//!
//! Browsers are lenient parsers: they drop tabs and newlines, read `\` as `/`, and treat
//! `https:evil.com` as absolute. So the value is refused at the first sign of such a trick,
//! and what passes is re-checked by resolving it against a placeholder origin with the WHATWG
//! parser (`url`), which must not change the origin.

use percent_encoding::percent_decode_str;
use url::Url;

/// The fallback destination.
const HOME: &str = "/";

/// Longer values are not a real page address and are not worth parsing.
const MAX_RETURN_TO_LEN: usize = 2048;

/// A placeholder origin to resolve relative paths against; `.invalid` can never be a real host.
const PLACEHOLDER_ORIGIN: &str = "https://return-to.invalid";

/// `raw` if it is a same-origin absolute path (one leading `/`, its query kept) or an
/// `https://` URL whose host is exactly one of `allowed_hosts` (a `host:port` entry also pins
/// the port); otherwise `/`.
pub fn safe_return_to(raw: &str, allowed_hosts: &[String]) -> String {
    match checked(raw, allowed_hosts) {
        Some(target) => target,
        None => HOME.to_owned(),
    }
}

fn checked(raw: &str, allowed_hosts: &[String]) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_RETURN_TO_LEN {
        return None;
    }
    // Characters a browser would have percent-encoded in a real URL, or silently dropped
    // (tab, CR, LF), or read as a slash (`\`): none has a legitimate place here.
    let suspicious =
        |c: char| c.is_control() || c.is_whitespace() || matches!(c, '\\' | '"' | '<' | '>' | '`');
    if raw.chars().any(suspicious) {
        return None;
    }
    // The same test after one decoding pass: `/%5Cevil.com`, `/ok%0d%0aX:y`, `/%2F/evil`.
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.chars().any(suspicious) || decoded.starts_with("//") {
        return None;
    }

    if raw.starts_with('/') {
        if raw.starts_with("//") {
            return None;
        }
        let base = Url::parse(PLACEHOLDER_ORIGIN).ok()?;
        let resolved = base.join(raw).ok()?;
        return (resolved.origin() == base.origin()).then(|| raw.to_owned());
    }

    // Only the exact `https://` spelling: `https:evil.com` and `https:/evil.com` parse as
    // absolute URLs too, and `http://` would downgrade.
    if raw.starts_with("https://") {
        let url = Url::parse(raw).ok()?;
        // `https://good.example@evil.com` has userinfo: refused outright.
        if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let host = url.host_str()?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let allowed = allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&authority));
        return allowed.then(|| url.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricks_fall_back_to_home() {
        let allowed = vec!["good.example".to_owned()];
        for raw in [
            "",
            "//evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "%2F%2Fevil.com",
            "/%2F/evil.com",
            "/%2f%2fevil.com",
            "https:evil.com",
            "https:/evil.com",
            "https:\\\\evil.com",
            "http://evil.com",
            "http://good.example/x",
            "HTTPS://evil.com",
            "https://good.example@evil.com",
            "https://good.example:pw@good.example/",
            "https://good.example.evil.com",
            "https://evil.com/good.example",
            "https://evil.com#good.example",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,x",
            "/ok\r\nSet-Cookie:x",
            "/ok%0d%0aX:y",
            "/\tevil",
            "/\t/evil.com",
            "/\n/evil.com",
            " //evil",
            " /ok",
            "evil.com",
            "./x",
            "../x",
            "?x=1",
            "#x",
            "/\"><script>",
            "/ok%00",
            "/%ff",
        ] {
            assert_eq!(safe_return_to(raw, &allowed), "/", "{raw:?}");
        }
    }

    #[test]
    fn good_targets_are_kept() {
        let allowed = vec!["good.example".to_owned(), "other.example:8443".to_owned()];
        for (raw, want) in [
            ("/", "/"),
            ("/app?x=1", "/app?x=1"),
            ("/app/page?x=1&y=%2F#frag", "/app/page?x=1&y=%2F#frag"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("https://good.example/x", "https://good.example/x"),
            ("https://GOOD.example/x?y=1", "https://good.example/x?y=1"),
            ("https://other.example:8443/", "https://other.example:8443/"),
        ] {
            assert_eq!(safe_return_to(raw, &allowed), want, "{raw:?}");
        }
    }

    #[test]
    fn allowed_hosts_are_exact() {
        let none: Vec<String> = Vec::new();
        assert_eq!(safe_return_to("https://good.example/x", &none), "/");
        let allowed = vec!["good.example".to_owned()];
        assert_eq!(safe_return_to("https://good.example:8443/x", &allowed), "/");
        assert_eq!(safe_return_to("https://sub.good.example/x", &allowed), "/");
        let with_port = vec!["good.example:8443".to_owned()];
        assert_eq!(safe_return_to("https://good.example/x", &with_port), "/");
    }
}
