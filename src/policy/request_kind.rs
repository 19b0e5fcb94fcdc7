//! Whether a request is a page navigation, which decides between a 302 to the login page and
//! a 401 JSON answer when there is no session.
//!
//! Owns: that one classification. Does not own: the responses themselves.

use http::{header::ACCEPT, HeaderMap, HeaderName, Method};

static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");

/// True for a GET/HEAD navigation: `Sec-Fetch-Mode: navigate`, or an `Accept` that includes
/// `text/html` (with a non-zero `q`), for clients that send no fetch metadata.
pub fn wants_html(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let navigate = headers.get_all(&SEC_FETCH_MODE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("navigate"))
    });
    navigate
        || headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(accepts_html)
}

/// One `Accept` member: `text/html` (any case) unless explicitly refused with `q=0`.
fn accepts_html(member: &str) -> bool {
    let mut parts = member.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("text/html") {
        return false;
    }
    !parts.any(|param| {
        let param = param.trim();
        param
            .strip_prefix("q=")
            .or_else(|| param.strip_prefix("Q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .is_some_and(|q| q <= 0.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    type Pairs = &'static [(&'static str, &'static str)];

    fn headers(pairs: Pairs) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn navigations_are_recognised() {
        const BROWSER_ACCEPT: &str =
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        let cases: &[(Method, Pairs, bool)] = &[
            (Method::GET, &[("sec-fetch-mode", "navigate")], true),
            (Method::HEAD, &[("sec-fetch-mode", "navigate")], true),
            (Method::GET, &[("accept", BROWSER_ACCEPT)], true),
            (Method::GET, &[("accept", "TEXT/HTML")], true),
            (
                Method::GET,
                &[("accept", "application/json"), ("accept", "text/html")],
                true,
            ),
            (
                Method::GET,
                &[("sec-fetch-mode", "cors"), ("accept", "text/html")],
                true,
            ),
            (Method::GET, &[("accept", "application/json")], false),
            (Method::GET, &[("accept", "*/*")], false),
            (Method::GET, &[("accept", "text/html;q=0")], false),
            (Method::GET, &[("accept", "text/htmlx")], false),
            (Method::GET, &[("sec-fetch-mode", "cors")], false),
            (Method::GET, &[], false),
            (
                Method::POST,
                &[("sec-fetch-mode", "navigate"), ("accept", "text/html")],
                false,
            ),
            (Method::PUT, &[("accept", "text/html")], false),
        ];
        for (method, pairs, want) in cases {
            assert_eq!(
                wants_html(method, &headers(pairs)),
                *want,
                "{method} {pairs:?}"
            );
        }
    }
}
