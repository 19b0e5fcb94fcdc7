//! The demo's upstream app: "whoami". An ordinary app that knows nothing of passkeys; every page
//! shows the identity headers the gateway added to the request, the assertion's claims, and
//! whether the assertion verified against the gateway's JWKS ([`super::verify`]).
//!
//! `GET /whoami.json` (or any path with `Accept: application/json`) answers the same as JSON.
//! Every other path answers the HTML page, so any URL behind the gateway shows who asked for it.
//! The page has no script and everything it shows is HTML-escaped; it reuses the gateway's
//! stylesheet plus a few rules of its own at `/whoami.css`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use super::verify::{Trust, Verification, Verifier};

/// The signed identity header.
const ASSERTION: &str = "x-passkey-assertion";
/// Headers worth showing: the identity presets and what the gateway says about the client.
const SHOWN_PREFIXES: [&str; 3] = ["x-passkey-", "remote-", "x-forwarded-"];

/// Serves the whoami app on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, trust: Trust) {
    let verifier = Arc::new(Verifier::new(trust));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "demo app: accept failed");
                continue;
            }
        };
        let verifier = verifier.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(verifier.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await
            {
                tracing::debug!(error = %e, "demo app: connection ended");
            }
        });
    }
}

/// What the app saw and concluded, for one request.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The path (and query) the browser asked for.
    pub path: String,
    pub assertion: AssertionReport,
    /// Identity and forwarding headers, lowercased; repeated values joined with ", ".
    pub headers: BTreeMap<String, String>,
}

/// The assertion part of a [`Report`].
#[derive(Debug, Serialize)]
pub struct AssertionReport {
    pub present: bool,
    pub verified: bool,
    /// Why it did not verify (absent when verified or missing).
    pub error: Option<String>,
    pub kid: Option<String>,
    pub alg: Option<String>,
    /// The claims: verified ones, or the token's payload as decoded (then not to be trusted).
    pub claims: Map<String, Value>,
}

async fn answer(
    verifier: Arc<Verifier>,
    req: http::Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if req.uri().path() == "/whoami.css" {
        return Ok(reply(StatusCode::OK, "text/css; charset=utf-8", STYLESHEET));
    }
    let report = report(&verifier, path, req.headers()).await;
    let wants_json = req.uri().path() == "/whoami.json"
        || req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
    Ok(if wants_json {
        let body = serde_json::to_string_pretty(&report).unwrap_or_default();
        reply(StatusCode::OK, "application/json", body)
    } else {
        reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            render(&report, verifier.trust()),
        )
    })
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_str(content_type)
            .unwrap_or(http::HeaderValue::from_static("text/plain")),
    );
    // Identity changes with every sign-in: never serve a stale page.
    headers.insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

/// Looks at one request's headers and verifies its assertion.
pub async fn report(verifier: &Verifier, path: &str, headers: &HeaderMap) -> Report {
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if SHOWN_PREFIXES.iter().any(|p| name.starts_with(p)) {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            shown
                .entry(name.to_string())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
    }
    let token = headers.get(ASSERTION).and_then(|v| v.to_str().ok());
    let assertion = match token {
        None => AssertionReport {
            present: false,
            verified: false,
            error: None,
            kid: None,
            alg: None,
            claims: Map::new(),
        },
        Some(token) => {
            let (verification, claims) = verifier.verify(token).await;
            let (kid, alg, error) = match verification {
                Verification::Verified { kid, alg } => (Some(kid), Some(alg), None),
                Verification::Failed(reason) => (None, None, Some(reason)),
            };
            AssertionReport {
                present: true,
                verified: error.is_none(),
                error,
                kid,
                alg,
                claims: claims.unwrap_or_else(|| unverified_claims(token)),
            }
        }
    };
    Report {
        path: path.to_string(),
        assertion,
        headers: shown,
    }
}

/// The payload of a compact JWS, decoded but not verified (shown only as such).
fn unverified_claims(token: &str) -> Map<String, Value> {
    token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The HTML page

fn esc(text: &str) -> String {
    html_escape::encode_text(text).into_owned()
}

fn render(report: &Report, trust: &Trust) -> String {
    let claims = &report.assertion.claims;
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
    let who = [claim("name"), claim("preferred_username")]
        .into_iter()
        .find(|s| !s.is_empty())
        .or_else(|| report.headers.get("x-passkey-user").map(String::as_str));
    let greeting = match who {
        Some(name) => format!("Hello, {}", esc(name)),
        None => "Nobody is signed in".to_string(),
    };
    let verdict = verdict(report, trust);
    let claims_title = if report.assertion.verified {
        "Verified claims"
    } else {
        "Claims (NOT verified: do not trust them)"
    };
    let claims_table = table(
        "claims",
        claims.iter().map(|(k, v)| (k.clone(), claim_text(k, v))),
    );
    let headers_table = table(
        "headers",
        report.headers.iter().map(|(k, v)| {
            let shown = if k == ASSERTION && v.len() > 48 {
                format!(
                    "{}… ({} bytes)",
                    v.chars().take(40).collect::<String>(),
                    v.len()
                )
            } else {
                v.clone()
            };
            (k.clone(), shown)
        }),
    );
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <title>whoami · passkey-gateway demo</title>
  <link rel="icon" href="/passkeys/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/passkeys/static/app.css">
  <link rel="stylesheet" href="/whoami.css">
</head>
<body>
  <main class="card wide" id="main">
    <header class="brand">
      <img class="brand-mark" src="/passkeys/static/favicon.svg" alt="" width="32" height="32">
      <h1 class="brand-name">whoami · a demo app behind passkey-gateway</h1>
    </header>
    <h2 id="greeting">{greeting}</h2>
    <p class="lede">This app has no login of its own. It knows who you are only from the headers
      the gateway added to your request for <code id="path">{path}</code>.</p>
    {verdict}
    <h3>{claims_title}</h3>
    {claims_table}
    <h3>Headers the gateway added</h3>
    {headers_table}
    <p class="aside"><a href="/passkeys/account">Manage your passkeys or sign out</a> ·
      <a href="/whoami.json">this page as JSON</a> ·
      <a href="/passkeys/jwks.json">the gateway's JWKS</a></p>
  </main>
</body>
</html>
"#,
        path = esc(&report.path),
    )
}

fn verdict(report: &Report, trust: &Trust) -> String {
    let a = &report.assertion;
    if !a.present {
        return r#"<p id="verdict" class="verdict bad">No <code>X-Passkey-Assertion</code> header arrived: this request was not signed in.</p>"#.to_string();
    }
    match &a.error {
        None => format!(
            r#"<p id="verdict" class="verdict ok"><strong>Assertion verified ✓</strong>
      <span class="detail">Signed with key <code>{kid}</code> ({alg}) from <code>{iss}/passkeys/jwks.json</code>; issuer <code>{iss}</code>, audience <code>{aud}</code>, not expired.</span></p>"#,
            iss = esc(&trust.issuer),
            aud = esc(&trust.audience),
            kid = esc(a.kid.as_deref().unwrap_or_default()),
            alg = esc(a.alg.as_deref().unwrap_or_default()),
        ),
        Some(reason) => format!(
            r#"<p id="verdict" class="verdict bad"><strong>Assertion NOT verified ✗</strong>
      <span class="detail">{}</span></p>"#,
            esc(reason)
        ),
    }
}

/// A claim as text; times also in UTC.
fn claim_text(name: &str, value: &Value) -> String {
    match (name, value) {
        ("iat" | "nbf" | "exp", Value::Number(n)) => {
            let when = n
                .as_i64()
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
            match when {
                Some(when) => format!("{n} ({when})"),
                None => n.to_string(),
            }
        }
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

fn table(id: &str, rows: impl Iterator<Item = (String, String)>) -> String {
    let rows: Vec<String> = rows
        .map(|(k, v)| {
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                esc(&k),
                esc(&v)
            )
        })
        .collect();
    if rows.is_empty() {
        return format!(r#"<p id="{id}" class="hint">None.</p>"#);
    }
    format!(
        "<table id=\"{id}\" class=\"kv\">\n      {}\n    </table>",
        rows.join("\n      ")
    )
}

/// The app's own few rules, on top of the gateway's `app.css` (whose variables it uses).
const STYLESHEET: &str = r#"/* whoami.css: the demo app's tables and verdict. */
code { font-size: 0.9375em; overflow-wrap: anywhere; }
.verdict { padding: 0.75rem 1rem; border-radius: 8px; border: 1px solid var(--border); }
.verdict.ok { border-color: var(--success); color: var(--success); }
.verdict.bad { border-color: var(--danger); color: var(--danger); }
.verdict .detail { display: block; margin-top: 0.25rem; color: var(--text); font-size: 0.875rem; }
table.kv { width: 100%; border-collapse: collapse; font-size: 0.9375rem; }
table.kv th, table.kv td { text-align: left; vertical-align: top; padding: 0.375rem 0.5rem;
  border-bottom: 1px solid var(--border); overflow-wrap: anywhere; }
table.kv th { width: 35%; font-weight: 600; color: var(--muted); font-family: ui-monospace, monospace; font-size: 0.875rem; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn trust() -> Trust {
        Trust {
            gateway: "127.0.0.1:9".parse().expect("addr"),
            issuer: "http://localhost:8080".into(),
            audience: "whoami".into(),
        }
    }

    #[tokio::test]
    async fn a_request_without_an_assertion_is_reported_as_not_signed_in() {
        let verifier = Verifier::new(trust());
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-passkey-user",
            "<b>mallory</b>".parse().expect("header value"),
        );
        headers.insert("cookie", "secret=1".parse().expect("header value"));
        let report = report(&verifier, "/a?b=<c>", &headers).await;
        assert!(!report.assertion.present);
        assert_eq!(
            report.headers.keys().collect::<Vec<_>>(),
            vec!["x-passkey-user"]
        );
        let page = render(&report, &trust());
        assert!(page.contains("Hello, &lt;b&gt;mallory&lt;/b&gt;"), "{page}");
        assert!(page.contains("/a?b=&lt;c&gt;"), "{page}");
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("was not signed in"), "{page}");
    }

    #[tokio::test]
    async fn a_forged_assertion_is_refused_and_its_claims_are_marked_unverified() {
        let verifier = Verifier::new(trust());
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"x","name":"Eve"}"#);
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let token = format!("{header}.{payload}.");
        let mut headers = HeaderMap::new();
        headers.insert(ASSERTION, token.parse().expect("header value"));
        let report = report(&verifier, "/", &headers).await;
        assert!(report.assertion.present && !report.assertion.verified);
        assert!(report.assertion.error.is_some());
        assert_eq!(report.assertion.claims["name"], "Eve");
        let page = render(&report, &trust());
        assert!(page.contains("NOT verified"), "{page}");
    }
}
