//! The properties each fuzz target asserts, shared by the libFuzzer targets (`fuzz_targets/`) and
//! by `cargo test`, which replays every saved corpus file through them (`tests/fuzz_corpus.rs`).
//!
//! Each check takes arbitrary bytes and panics only when a security property fails: two views of
//! one request disagree, a parser yields a value it should not, or a parser panics itself.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use passkey_gateway::policy::{
    canonical_host, is_under, normalize_path, parse_target, safe_return_to, RequestTarget,
};
use passkey_gateway::proxy::client_ip;
use passkey_gateway::session::CookieSpec;
use pingora_http::RequestHeader;

/// The request-target rule, normalization and what is forwarded, against how common upstream
/// parsers read the forwarded target. The first byte picks the method.
pub fn request_target(data: &[u8]) {
    let Some((selector, target)) = data.split_first() else {
        return;
    };
    let method = ["GET", "OPTIONS", "CONNECT", "POST"][usize::from(selector % 4)];
    let Ok(header) = RequestHeader::build(method, target, None) else {
        return;
    };
    let Ok(RequestTarget::Path {
        authority,
        path_and_query,
    }) = parse_target(&header.method, header.raw_path())
    else {
        return;
    };
    assert!(
        path_and_query.starts_with('/') && !path_and_query.starts_with("//"),
        "forwarded target {path_and_query:?} is not origin-form with one leading slash"
    );
    if let Some(authority) = authority {
        assert!(!authority.contains(['@', '/', '?', '#']), "{authority:?}");
    }
    let Ok(path) = normalize_path(&path_and_query) else {
        return;
    };
    // What is forwarded normalizes to what was authorized (the proxy forwards `path_and_query`).
    if !path.contains(['?', '#', '%', ';']) {
        assert_eq!(
            normalize_path(&path).as_deref(),
            Ok(path.as_str()),
            "normalizing {path:?} again changes it"
        );
    }
    // No upstream reading puts the target under a prefix our path is not under.
    for reading in upstream_readings(&path_and_query) {
        for prefix in ["/admin", "/app/private"] {
            if is_under(&reading, prefix) {
                assert!(
                    is_under(&path, prefix),
                    "{path_and_query:?}: an upstream reads {reading:?}, the gateway checked {path:?}"
                );
            }
        }
    }
}

/// `urlsplit`-, Werkzeug-, nginx- and Tomcat-style readings of an origin-form target: the path
/// before `?`, percent-decoded once before or after splitting into segments, `\` as `/` or
/// not, `;params` dropped (Tomcat) or kept, dot segments resolved, empty segments collapsed.
fn upstream_readings(target: &str) -> Vec<String> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let mut out = Vec::new();
    for backslash_is_slash in [true, false] {
        for drop_params in [true, false] {
            // Servers that drop `;params` do it before decoding (a `%3B` stays a character).
            for decode_first in [!drop_params, false] {
                out.push(read_path(
                    path,
                    backslash_is_slash,
                    drop_params,
                    decode_first,
                ));
            }
        }
    }
    out
}

fn read_path(
    path: &str,
    backslash_is_slash: bool,
    drop_params: bool,
    decode_first: bool,
) -> String {
    let decoded_whole;
    let path = if decode_first {
        decoded_whole = percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned();
        decoded_whole.as_str()
    } else {
        path
    };
    let mut segments: Vec<String> = Vec::new();
    let split: Vec<&str> = if backslash_is_slash {
        path.split(['/', '\\']).collect()
    } else {
        path.split('/').collect()
    };
    for raw in split {
        let raw = if drop_params {
            raw.split(';').next().unwrap_or_default()
        } else {
            raw
        };
        // Decoded once in all: either the whole path above, or each segment here.
        let decoded = if decode_first {
            std::borrow::Cow::Borrowed(raw)
        } else {
            percent_encoding::percent_decode_str(raw).decode_utf8_lossy()
        };
        match decoded.as_ref() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s.to_owned()),
        }
    }
    format!("/{}", segments.join("/"))
}

/// The canonical host is a fixpoint, lowercase, without port or trailing dot.
pub fn host(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(host) = canonical_host(text) else {
        return;
    };
    assert_eq!(
        canonical_host(&host).as_deref(),
        Some(host.as_str()),
        "{text:?}"
    );
    assert_eq!(host, host.to_ascii_lowercase(), "{text:?}");
    assert!(!host.ends_with('.'), "{text:?} -> {host:?}");
    if !host.starts_with('[') {
        assert!(!host.contains([':', '@', '/', ' ']), "{text:?} -> {host:?}");
    }
}

/// A `Cookie` header never yields a session value for a name other than the configured one,
/// and stripping the gateway's cookie leaves no pair of that name.
pub fn cookie(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let Ok(text) = value.to_str().map(str::to_owned) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::COOKIE, value);
    for https in [false, true] {
        let spec = CookieSpec::new("passkey_session", https, 60);
        if let Some(found) = spec.find(&headers) {
            let named = text.split(';').any(|pair| {
                pair.split_once('=')
                    .is_some_and(|(name, v)| name.trim() == spec.name && v.contains(found.as_str()))
            });
            assert!(named, "{text:?} yielded {found:?} for {}", spec.name);
        }
        if let Some(kept) = spec.strip(&text) {
            let leaked = kept
                .split(';')
                .any(|pair| pair.split_once('=').map_or(pair, |(n, _)| n).trim() == spec.name);
            assert!(!leaked, "{text:?} stripped to {kept:?}");
        }
    }
}

/// The believed client is the peer, or a hop of `X-Forwarded-For` with only trusted proxies
/// right of it: nothing the client wrote past its own address picks the rate-limit key.
pub fn forwarded_for(data: &[u8]) {
    let Ok(xff) = std::str::from_utf8(data) else {
        return;
    };
    let trusted: Vec<IpNet> = vec![
        "10.0.0.0/8".parse().expect("cidr"),
        "fd00::/8".parse().expect("cidr"),
    ];
    let peer: IpAddr = "10.1.2.3".parse().expect("ip");
    let client = client_ip(Some(peer), Some(xff), &trusted).expect("the peer at worst");
    if client == peer {
        return;
    }
    let hops: Vec<&str> = xff
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let parse = |hop: &str| {
        hop.parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
    };
    let at = hops
        .iter()
        .rposition(|hop| parse(hop) == Some(client))
        .unwrap_or_else(|| panic!("{xff:?}: {client} is not a hop"));
    for hop in &hops[at + 1..] {
        let ip = parse(hop).unwrap_or_else(|| panic!("{xff:?}: {hop:?} right of the client"));
        assert!(
            trusted.iter().any(|net| net.contains(&ip)),
            "{xff:?}: untrusted {ip} right of the client {client}"
        );
    }
}

/// `return_to` only ever leads to this origin or an allowed host.
pub fn return_to(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let allowed = vec!["good.example".to_owned()];
    let out = safe_return_to(raw, &allowed);
    assert!(!out.chars().any(char::is_control), "{raw:?} -> {out:?}");
    let base = url::Url::parse("https://app.example/").expect("base");
    let joined = base
        .join(&out)
        .unwrap_or_else(|e| panic!("{raw:?} -> {out:?}: {e}"));
    let host = joined.host_str().unwrap_or_default();
    assert!(
        host == "app.example" || host == "good.example",
        "{raw:?} -> {out:?} leads to {host:?}"
    );
}

/// A WebAuthn `credential` as the ceremony endpoints receive it (JSON, base64url fields), and
/// the CBOR attestation object and authenticator data inside, through webauthn-rs's parsers:
/// none may panic, whatever the bytes.
pub fn credential(data: &[u8]) {
    use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};
    use webauthn_rs_core::internals::{AttestationObject, AuthenticatorData};
    use webauthn_rs_core::proto::{Authentication, Registration};

    if let Ok(created) = serde_json::from_slice::<RegisterPublicKeyCredential>(data) {
        let cbor: &[u8] = created.response.attestation_object.as_ref();
        let _ = AttestationObject::<Registration>::try_from(cbor);
    }
    if let Ok(asserted) = serde_json::from_slice::<PublicKeyCredential>(data) {
        let auth_data: &[u8] = asserted.response.authenticator_data.as_ref();
        let _ = AuthenticatorData::<Authentication>::try_from(auth_data);
    }
    let _ = AttestationObject::<Registration>::try_from(data);
    let _ = AuthenticatorData::<Authentication>::try_from(data);
}

/// The operator's `gateway.toml`: any text is either accepted or refused with an error that names
/// the file and gives a reason, and a reported position lies inside the text. (Parsing and
/// cross-field checks only: no host name lookups or TLS files, see `Config::check_toml`.)
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz.toml");
    let Err(e) = passkey_gateway::Config::check_toml(path, text) else {
        return;
    };
    assert!(
        !e.reason.trim().is_empty(),
        "{text:?}: an error without a reason"
    );
    assert!(e.to_string().starts_with("fuzz.toml"), "{e}");
    if let Some((line, column)) = e.position {
        assert!(line >= 1 && column >= 1, "{e}");
        assert!(line <= text.lines().count().max(1) + 1, "{e}: past the end");
    }
}
