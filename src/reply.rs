//! [`Request`] and [`Reply`]: what the gateway's own answers take and give, free of pingora
//! types so handlers can be tested without sockets. The HTTP edge (`endpoints`, `proxy`, `error`)
//! shares them; nothing in the domain modules sees them.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;

/// A request to one of the gateway's own endpoints, already parsed.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Normalized, decoded path (what policy saw).
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client address as far as the gateway can trust it.
    pub client_ip: Option<IpAddr>,
}

impl Request {
    /// A header as text, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A complete response: status, headers, body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Reply {
    /// A JSON body; API replies are never cached.
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Reply {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: Bytes::from(body),
        }
    }

    /// An empty body.
    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: vec![("cache-control".into(), "no-store".into())],
            body: Bytes::new(),
        }
    }

    /// A redirect to a path or URL that has already been checked.
    pub fn redirect(location: &str) -> Reply {
        Reply::empty(StatusCode::FOUND).header("location", location)
    }

    /// Adds a header (later ones with the same name are kept too, e.g. `set-cookie`).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Replaces every header of that name.
    pub fn set_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.header(name, value)
    }
}
