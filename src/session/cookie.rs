//! The session cookie: every attribute is decided here. Opaque random value (256 bits), HttpOnly,
//! SameSite=Lax, Path=/, and on https `Secure` with the `__Host-` prefix so no subdomain can plant
//! or shadow it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cookie::{Cookie, SameSite};
use http::HeaderMap;
use rand::RngCore;

/// How the gateway names and flags its cookie.
#[derive(Debug, Clone)]
pub struct CookieSpec {
    /// The full name on the wire (with `__Host-` on https).
    pub name: String,
    pub secure: bool,
    pub max_age_secs: i64,
}

impl CookieSpec {
    pub fn new(base_name: &str, https: bool, max_age_secs: i64) -> CookieSpec {
        let name = if https {
            format!("__Host-{base_name}")
        } else {
            base_name.to_string()
        };
        CookieSpec {
            name,
            secure: https,
            max_age_secs,
        }
    }

    /// True when a cookie called `name` would be (or shadow) the gateway's own, in either form:
    /// with or without the `__Host-`/`__Secure-` prefix. Cookie names are case-sensitive.
    pub fn is_own_name(&self, name: &str) -> bool {
        let bare = |n: &'_ str| -> String {
            let n = n.trim();
            let n = n.strip_prefix("__Host-").unwrap_or(n);
            n.strip_prefix("__Secure-").unwrap_or(n).to_owned()
        };
        bare(name) == bare(&self.name)
    }

    /// `Set-Cookie` that starts a session.
    pub fn set(&self, value: &str) -> String {
        self.build(value.to_string(), self.max_age_secs)
    }

    /// `Set-Cookie` that removes the cookie.
    pub fn clear(&self) -> String {
        self.build(String::new(), 0)
    }

    fn build(&self, value: String, max_age: i64) -> String {
        Cookie::build((self.name.clone(), value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build()
            .to_string()
    }

    /// The session cookie's value in a request, if any. Read with the `cookie` crate; a
    /// hand-split was measured at ~900 fewer instructions per request (BENCHMARKS.md, issue 17)
    /// and not kept: we parse no cookie header ourselves.
    pub fn find(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == self.name)
            .map(|c| c.value().to_string())
    }

    /// A `Cookie` header value with the gateway's cookie taken out and every other pair left
    /// byte for byte as the client sent it; `None` when nothing remains.
    pub fn strip(&self, header: &str) -> Option<String> {
        let kept: Vec<&str> = header
            .split(';')
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
                name.trim() != self.name
            })
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .collect();
        (!kept.is_empty()).then(|| kept.join("; "))
    }
}

/// A fresh opaque session value: 32 random bytes, base64url.
pub fn new_session_value() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_cookies_are_host_prefixed_and_secure() {
        let spec = CookieSpec::new("passkey_session", true, 3600);
        let set = spec.set("abc");
        assert_eq!(
            set,
            "__Host-passkey_session=abc; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=3600"
        );
        let plain = CookieSpec::new("passkey_session", false, 60).set("abc");
        assert_eq!(
            plain,
            "passkey_session=abc; HttpOnly; SameSite=Lax; Path=/; Max-Age=60"
        );
    }

    #[test]
    fn strip_keeps_other_cookies_untouched() {
        let spec = CookieSpec::new("s", false, 60);
        assert_eq!(
            spec.strip("a=1; s=secret; b=\"x y\""),
            Some("a=1; b=\"x y\"".to_string())
        );
        assert_eq!(spec.strip("s=secret"), None);
        assert_eq!(spec.strip("ss=1;s=2"), Some("ss=1".to_string()));
    }

    #[test]
    fn own_name_in_either_form() {
        for https in [true, false] {
            let spec = CookieSpec::new("passkey_session", https, 60);
            for name in [
                "passkey_session",
                "__Host-passkey_session",
                "__Secure-passkey_session",
                " passkey_session",
            ] {
                assert!(spec.is_own_name(name), "{name} (https {https})");
            }
            for name in ["Passkey_session", "passkey_session2", "app", ""] {
                assert!(!spec.is_own_name(name), "{name} (https {https})");
            }
        }
    }

    #[test]
    fn values_are_long_and_distinct() {
        let (a, b) = (new_session_value(), new_session_value());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits in base64url");
    }
}
