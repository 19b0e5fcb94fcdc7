//! The answers both modes give a request the policy stops: where to sign in, and the 403.
//!
//! Owns: the login URL with its `return_to`, and the 403 page-or-JSON choice. The inline proxy
//! and forward-auth both use these, so a refused URL reads the same in either mode.

use crate::error::ApiError;
use crate::reply::Reply;

use super::forbidden_page;

/// `/passkeys/login?return_to=…` for the checked origin-form `target`, relative so it stays on
/// the host the browser asked for (forward-auth routes `/passkeys/` there too).
pub fn login_url(target: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    format!("/passkeys/login?return_to={encoded}")
}

/// 302 to the login page for a navigation, 401 JSON naming the login page otherwise;
/// `target` is the checked origin-form target.
pub fn login_needed(target: &str, navigation: bool) -> Reply {
    let login_url = login_url(target);
    if navigation {
        return Reply::redirect(&login_url);
    }
    ApiError::LoginRequired { login_url }.into_reply()
}

/// Signed in but not admitted: the HTML 403 page for a navigation, JSON otherwise.
pub fn forbidden(rp_name: &str, navigation: bool) -> Reply {
    if navigation {
        return forbidden_page(rp_name);
    }
    ApiError::Forbidden(
        "forbidden",
        "Your account is not allowed to use this address.",
    )
    .into_reply()
}
