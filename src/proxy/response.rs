//! What an upstream response may not carry to the browser: a `Set-Cookie` for the gateway's own
//! session cookie, in either form (`name` or `__Host-name`). An app behind the gateway shares
//! its origin; letting it set that cookie would let any app fix a session (sign the browser in
//! as someone the app chose) or sign the user out.

use pingora::http::ResponseHeader;
use pingora::prelude::*;

use crate::session::CookieSpec;

/// Removes every upstream `Set-Cookie` naming the gateway's cookie; the app's own cookies pass
/// unchanged. Returns how many were removed.
pub fn drop_gateway_cookies(spec: &CookieSpec, response: &mut ResponseHeader) -> Result<usize> {
    let all = response.headers.get_all(http::header::SET_COOKIE);
    let is_own = |value: &http::HeaderValue| {
        // A value no cookie parser accepts sets no cookie of ours either.
        let text = String::from_utf8_lossy(value.as_bytes());
        cookie::Cookie::parse(text.as_ref()).is_ok_and(|c| spec.is_own_name(c.name()))
    };
    if !all.iter().any(is_own) {
        return Ok(0);
    }
    let kept: Vec<http::HeaderValue> = all.iter().filter(|v| !is_own(v)).cloned().collect();
    let dropped = all.iter().count() - kept.len();
    response.remove_header(&http::header::SET_COOKIE);
    for value in kept {
        response.append_header(http::header::SET_COOKIE, value)?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateway_cookie_is_dropped() {
        let spec = CookieSpec::new("passkey_session", true, 60);
        let mut response = ResponseHeader::build(200, None).expect("header");
        for value in [
            "app=1; Path=/",
            "__Host-passkey_session=attacker; Path=/; Secure",
            "passkey_session=x",
            "theme=dark",
            " passkey_session =y; HttpOnly",
        ] {
            response
                .append_header(http::header::SET_COOKIE, value)
                .expect("append");
        }
        assert_eq!(drop_gateway_cookies(&spec, &mut response).expect("ok"), 3);
        let left: Vec<&str> = response
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect();
        assert_eq!(left, ["app=1; Path=/", "theme=dark"]);
    }
}
