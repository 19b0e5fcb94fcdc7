//! A raw HTTP/1.1 exchange over a socket, for requests a normal client would rewrite (header case,
//! underscores, odd paths).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status, headers (lowercased names), body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (request line and headers, no final blank line) and reads the whole response.
pub async fn request(addr: SocketAddr, head: &str) -> RawResponse {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let text = format!(
        "{}\r\nConnection: close\r\n\r\n",
        head.trim_end().replace('\n', "\r\n")
    );
    tcp.write_all(text.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.expect("read");
    parse(&String::from_utf8_lossy(&buf))
}

/// Sends `head` as bytes (request line and headers separated by `\r\n`, no final blank line;
/// any byte allowed) and reads one response: its head, then `Content-Length` bytes of body (none
/// for a 1xx, 204 or 304; up to EOF without a length). `None` when the gateway closed the
/// connection without answering.
pub async fn try_request_bytes(addr: SocketAddr, head: &[u8]) -> Option<RawResponse> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let mut text = head.to_vec();
    text.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    tcp.write_all(&text).await.expect("write");
    let mut buf = Vec::new();
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = parse(&String::from_utf8_lossy(&buf[..end]));
    let bodiless = head.status < 200 || head.status == 204 || head.status == 304;
    let length = match head.header("content-length") {
        _ if bodiless => Some(0),
        Some(n) => n.parse().ok(),
        None => None,
    };
    loop {
        if length.is_some_and(|n| buf.len() >= end + n) {
            break;
        }
        let mut chunk = [0u8; 4096];
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(parse(&String::from_utf8_lossy(&buf)))
}

/// Parses a whole response as read from the socket.
pub fn parse_response(text: &str) -> RawResponse {
    parse(text)
}

fn parse(text: &str) -> RawResponse {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_string(),
    }
}
