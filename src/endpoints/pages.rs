//! The browser pages and their assets, embedded from `static/` at build time.
//!
//! Pages carry a strict CSP (no inline script or style), `nosniff`, no referrer and frame denial.
//! The only server-side substitution is the relying-party name, HTML-escaped once at start-up;
//! everything a user controls is inserted by the pages' scripts with `textContent`.

use http::StatusCode;

use super::Reply;

/// Content-Security-Policy of every page.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const LOGIN: &str = include_str!("../../static/login.html");
const ENROLL: &str = include_str!("../../static/enroll.html");
const ACCOUNT: &str = include_str!("../../static/account.html");

/// Static assets: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "webauthn.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/webauthn.js"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/login.js"),
    ),
    (
        "enroll.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/enroll.js"),
    ),
    (
        "account.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/account.js"),
    ),
    (
        "account-sessions.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/account-sessions.js"),
    ),
    (
        "account-reauth.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/account-reauth.js"),
    ),
    (
        "account-link.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/account-link.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../static/favicon.svg"),
    ),
];

/// The three pages with the relying-party name filled in.
pub struct Pages {
    login: String,
    enroll: String,
    account: String,
}

/// Which page.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    Login,
    Enroll,
    Account,
}

impl Pages {
    pub fn new(rp_name: &str) -> Pages {
        let name = escape_html(rp_name);
        Pages {
            login: LOGIN.replace("{{rp_name}}", &name),
            enroll: ENROLL.replace("{{rp_name}}", &name),
            account: ACCOUNT.replace("{{rp_name}}", &name),
        }
    }

    /// A page, with its security headers; never cached (it reflects the session).
    pub fn page(&self, page: Page) -> Reply {
        let html = match page {
            Page::Login => &self.login,
            Page::Enroll => &self.enroll,
            Page::Account => &self.account,
        };
        secure(Reply {
            status: StatusCode::OK,
            headers: vec![
                ("content-type".into(), "text/html; charset=utf-8".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: bytes::Bytes::from(html.clone()),
        })
    }

    /// `/passkeys/static/{name}`, or `None` for anything not embedded.
    pub fn asset(&self, name: &str) -> Option<Reply> {
        let (_, content_type, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
        Some(secure(Reply {
            status: StatusCode::OK,
            headers: vec![
                ("content-type".into(), (*content_type).into()),
                ("cache-control".into(), "public, max-age=300".into()),
            ],
            body: bytes::Bytes::from_static(bytes),
        }))
    }
}

/// A small HTML page for a navigation the gateway refuses (403).
pub fn forbidden_page(rp_name: &str) -> Reply {
    let name = escape_html(rp_name);
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Not allowed · {name}</title><link rel=\"stylesheet\" href=\"/passkeys/static/app.css\"></head>\
<body><main class=\"card\"><h1>{name}</h1><p>Your account is not allowed to open this page.</p>\
<p><a href=\"/passkeys/account\">Your account</a></p></main></body></html>"
    );
    secure(Reply {
        status: StatusCode::FORBIDDEN,
        headers: vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: bytes::Bytes::from(html),
    })
}

fn secure(reply: Reply) -> Reply {
    reply
        .header("content-security-policy", CSP)
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        .header("cross-origin-opener-policy", "same-origin")
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    html_escape::encode_safe(text).into_owned()
}
