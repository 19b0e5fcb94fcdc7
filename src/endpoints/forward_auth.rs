//! `GET /passkeys/auth`: forward-auth for a fronting proxy (nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `ForwardAuth`). The proxy describes the original request in headers;
//! the gateway decides it with the same request-line rule (`policy::check_request_line`) and the
//! same decision (`decision::decide_request`) as inline traffic, and answers in the form that
//! proxy understands.
//!
//! Two dialects, told apart by the headers present:
//! - nginx: `X-Original-URL` (absolute: `$scheme://$http_host$request_uri`) and
//!   `X-Original-Method`. nginx acts on 2xx, 401 and 403 only, so "sign in first" is a 401 with
//!   the login URL in `X-Passkey-Login` (and in `X-Passkey-Redirect` when the original request is
//!   a page navigation, for the snippet's `error_page 401` to redirect to).
//! - Caddy and Traefik: `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri` (origin-form). Both hand
//!   a non-2xx answer to the client as it is, so a navigation gets the 302 to the login page and
//!   anything else the 401 JSON, exactly as inline.
//!
//! The description is believed only from `server.trusted_proxies`: anyone else could otherwise
//! ask what any URL would get and, with a stolen cookie, mint assertions for any audience. So
//! from anyone else the answer is a 403 and a warning in the log.

use http::{HeaderMap, Method, StatusCode, Version};

use super::{forbidden, login_needed, login_url};
use crate::decision::{decide_request, identity_headers, Verdict};
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::identity::{preset_header_names, ASSERTION_HEADER};
use crate::policy::{check_request_line, wants_html, Decision, LineError, RequestLine};
use crate::reply::{Reply, Request};
use crate::session::LiveSession;

/// Where fronting proxies send their sub-requests.
pub const FORWARD_AUTH_PATH: &str = "/passkeys/auth";

/// The 401's header naming the login page (nginx dialect).
pub const LOGIN_HEADER: &str = "X-Passkey-Login";
/// The 401's header naming the login page when the original request is a navigation (nginx
/// dialect): the snippet redirects there, and answers a fetch with the 401.
pub const REDIRECT_HEADER: &str = "X-Passkey-Redirect";

/// Which fronting proxy described the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// `X-Original-URL` / `X-Original-Method`.
    Nginx,
    /// `X-Forwarded-Method/-Proto/-Host/-Uri` (Caddy, Traefik).
    Forwarded,
}

/// The original request, checked like an inline one.
#[derive(Debug)]
struct Original {
    dialect: Dialect,
    method: Method,
    line: RequestLine,
}

/// Answers one forward-auth sub-request; `peer_trusted` says whether the TCP peer is in
/// `server.trusted_proxies`.
pub async fn forward_auth(gw: &Gateway, req: &Request, peer_trusted: bool) -> Reply {
    match answer(gw, req, peer_trusted).await {
        Ok(reply) => reply,
        Err(e) => e.into_reply(),
    }
}

async fn answer(gw: &Gateway, req: &Request, peer_trusted: bool) -> Result<Reply, ApiError> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    if !peer_trusted {
        tracing::warn!(
            client = %req.client_ip.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            "forward-auth request from outside server.trusted_proxies refused"
        );
        return Err(ApiError::Forbidden(
            "untrusted_proxy",
            "Only a configured fronting proxy may ask this.",
        ));
    }
    let original = original(&req.headers)?;
    let live = gw.live();
    let verdict = decide_request(
        &live.router,
        gw.sessions(),
        gw.now(),
        original.line.host.as_deref(),
        &original.line.path,
        &req.headers,
    )
    .await;
    let navigation = wants_html(&original.method, &req.headers);
    let (route, decision, session) = match verdict {
        // nginx turns anything but 2xx/401/403 into a 500: an unknown address is refused.
        Verdict::NoRoute if original.dialect == Dialect::Nginx => return Err(no_route_forbidden()),
        Verdict::NoRoute => return Err(ApiError::NotFound),
        Verdict::StoreUnavailable(e) => return Err(ApiError::StoreUnavailable(e)),
        Verdict::Routed {
            route,
            decision,
            session,
        } => (route, decision, session),
    };
    match decision {
        Decision::Allow => {
            let audience = &live.router.routes()[route].audience;
            allowed(gw, session.as_deref(), audience)
        }
        Decision::NeedLogin => Ok(need_login(&original, navigation)),
        Decision::Forbidden => Ok(forbidden(&live.config.webauthn.rp_name, navigation)),
    }
}

/// 200 with the identity headers; every header of the preset is present, empty when there is
/// no value (anonymous on a public route, no email): Caddy 2.6's `copy_headers` hands the app
/// a literal `{http.reverse_proxy.header.…}` for a header the answer lacks, and an empty value
/// is what every fronting proxy copies as "nobody".
fn allowed(gw: &Gateway, session: Option<&LiveSession>, audience: &str) -> Result<Reply, ApiError> {
    let preset = gw.config().identity.headers;
    let mut reply = Reply::empty(StatusCode::OK);
    if let Some(live) = session {
        let identity =
            identity_headers(gw.signer(), preset, live, audience).map_err(ApiError::internal)?;
        let token = identity.assertion.to_str().map_err(ApiError::internal)?;
        reply = reply.header(ASSERTION_HEADER, token);
        for (name, value) in identity.convenience.iter() {
            reply = reply.header(name, value.as_str());
        }
    }
    for name in preset_header_names(preset) {
        if !reply
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            reply = reply.header(name, "");
        }
    }
    Ok(reply)
}

fn no_route_forbidden() -> ApiError {
    ApiError::Forbidden("no_route", "No route serves this address.")
}

/// Sign in first: for Caddy and Traefik exactly the inline answer; for nginx see the module docs.
fn need_login(original: &Original, navigation: bool) -> Reply {
    if original.dialect == Dialect::Forwarded {
        return login_needed(&original.line.target, navigation);
    }
    let url = login_url(&original.line.target);
    let reply = ApiError::LoginRequired {
        login_url: url.clone(),
    }
    .into_reply()
    .header(LOGIN_HEADER, url.clone());
    match navigation {
        true => reply.header(REDIRECT_HEADER, url),
        false => reply,
    }
}

/// The original request from the fronting proxy's headers, through the inline request-line rule.
fn original(headers: &HeaderMap) -> Result<Original, ApiError> {
    let described = |message| ApiError::BadRequest("bad_forward_auth", message);
    if let Some(url) = one(headers, "x-original-url")? {
        let method = method(headers, "x-original-method")?;
        // Absolute-form only: its authority is the host (the sub-request's own `Host` names
        // the gateway, not the app).
        let line = check_request_line(&method, url.as_bytes(), &[], Version::HTTP_11)
            .map_err(line_error)?;
        return Ok(Original {
            dialect: Dialect::Nginx,
            method,
            line,
        });
    }
    let Some(uri) = one(headers, "x-forwarded-uri")? else {
        return Err(described(
            "Describe the original request: X-Original-URL (nginx) or X-Forwarded-Uri (Caddy, Traefik).",
        ));
    };
    let method = method(headers, "x-forwarded-method")?;
    let host = one(headers, "x-forwarded-host")?
        .ok_or_else(|| described("X-Forwarded-Host must name the original host."))?;
    match one(headers, "x-forwarded-proto")?.map(str::to_ascii_lowercase) {
        Some(proto) if proto == "http" || proto == "https" => {}
        _ => return Err(described("X-Forwarded-Proto must be http or https.")),
    }
    let line = check_request_line(
        &method,
        uri.as_bytes(),
        &[host.as_bytes()],
        Version::HTTP_11,
    )
    .map_err(line_error)?;
    // An absolute-form X-Forwarded-Uri would route by its own authority, not X-Forwarded-Host.
    if line.absolute_authority.is_some() {
        return Err(described(
            "X-Forwarded-Uri must be a path, such as /app?x=1.",
        ));
    }
    Ok(Original {
        dialect: Dialect::Forwarded,
        method,
        line,
    })
}

/// The one value of `name`, if present; two values are ambiguous and refused.
fn one<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let (Some(first), None) = (values.next(), values.next()) else {
        return match headers.contains_key(name) {
            true => Err(ApiError::BadRequest(
                "bad_forward_auth",
                "Each X-Forwarded-* / X-Original-* header may appear once.",
            )),
            false => Ok(None),
        };
    };
    first.to_str().map(Some).map_err(|_| {
        ApiError::BadRequest(
            "bad_forward_auth",
            "X-Forwarded-* / X-Original-* must be visible ASCII.",
        )
    })
}

fn method(headers: &HeaderMap, name: &str) -> Result<Method, ApiError> {
    one(headers, name)?
        .and_then(|m| Method::from_bytes(m.trim().as_bytes()).ok())
        .ok_or(ApiError::BadRequest(
            "bad_forward_auth",
            "The original method must be given (X-Forwarded-Method or X-Original-Method).",
        ))
}

/// The same refusals as inline, named for the original request.
fn line_error(e: LineError) -> ApiError {
    let message = match e {
        LineError::Host => "The original request must name one valid host.",
        LineError::Path => "The original address could not be understood.",
        LineError::ServerOptions | LineError::Target(_) => {
            "The original target must be a path such as /app, or an http(s) URL."
        }
    };
    ApiError::BadRequest("bad_original_request", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    fn code(result: Result<Original, ApiError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(e) => e.parts().1,
        }
    }

    #[test]
    fn descriptions_are_read_strictly() {
        let traefik = [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "App.Example:443"),
            ("x-forwarded-uri", "//app/./x?y=1"),
        ];
        let read = original(&headers(&traefik)).expect("accepted");
        assert_eq!(read.dialect, Dialect::Forwarded);
        assert_eq!(read.line.host.as_deref(), Some("app.example"));
        assert_eq!(read.line.path, "/app/x");
        assert_eq!(read.line.target, "/app/./x?y=1");

        let nginx = [
            ("x-original-url", "https://app.example/admin?x=1"),
            ("x-original-method", "POST"),
        ];
        let read = original(&headers(&nginx)).expect("accepted");
        assert_eq!((read.dialect, read.method), (Dialect::Nginx, Method::POST));
        assert_eq!(read.line.path, "/admin");

        let cases: &[(&[(&'static str, &'static str)], &str)] = &[
            (&[], "bad_forward_auth"),
            (&traefik[..3], "bad_forward_auth"),
            (&[traefik[0], traefik[1], traefik[3]], "bad_forward_auth"),
            (&[traefik[1], traefik[2], traefik[3]], "bad_forward_auth"),
            (
                &[
                    traefik[0],
                    ("x-forwarded-proto", "gopher"),
                    traefik[2],
                    traefik[3],
                ],
                "bad_forward_auth",
            ),
            (
                &[
                    traefik[0],
                    traefik[1],
                    traefik[2],
                    traefik[3],
                    ("x-forwarded-uri", "/"),
                ],
                "bad_forward_auth",
            ),
            (
                &[
                    traefik[0],
                    traefik[1],
                    traefik[2],
                    ("x-forwarded-uri", "http://evil/"),
                ],
                "bad_forward_auth",
            ),
            (
                &[
                    traefik[0],
                    traefik[1],
                    traefik[2],
                    ("x-forwarded-uri", "/a/%2e%2e/b"),
                ],
                "bad_original_request",
            ),
            (
                &[
                    traefik[0],
                    traefik[1],
                    ("x-forwarded-host", "a@b"),
                    traefik[3],
                ],
                "bad_original_request",
            ),
            (
                &[
                    ("x-original-url", "/relative"),
                    ("x-original-method", "GET"),
                ],
                "bad_original_request",
            ),
            (
                &[
                    ("x-original-url", "http://u@app.example/"),
                    ("x-original-method", "GET"),
                ],
                "bad_original_request",
            ),
            (
                &[
                    ("x-original-url", "http://app.example/"),
                    ("x-original-method", "CONNECT"),
                ],
                "bad_original_request",
            ),
            (
                &[("x-original-url", "http://app.example/")],
                "bad_forward_auth",
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(code(original(&headers(pairs))), *want, "{pairs:?}");
        }
    }
}
