//! An upstream that records the raw head of every request it receives (request line and header
//! lines, byte for byte as the gateway sent them) and answers 200 with fixed extra headers. For
//! tests that must see exactly what went upstream, which a parsing server would normalize away.
//! An upgrade request is answered `101` and the connection then only read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request head as received.
#[derive(Debug, Clone)]
pub struct RawHead {
    /// The request line, e.g. `GET /x HTTP/1.1`.
    pub line: String,
    /// Header lines as `(lowercased name, value)`, in order.
    pub headers: Vec<(String, String)>,
}

impl RawHead {
    /// The request-target of the request line.
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or_default()
    }

    /// Every value of one header (name lowercased).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub struct RawUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<RawHead>>>,
}

impl RawUpstream {
    /// Starts one; every response carries `extra` header lines (e.g. `Set-Cookie: a=1`).
    pub async fn start(extra: &[&str]) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<RawHead>>> = Arc::default();
        let extra: String = extra.iter().map(|l| format!("{l}\r\n")).collect();
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, record.clone(), extra.clone()));
            }
        });
        RawUpstream { addr, seen }
    }

    /// Every head received since the last call.
    pub fn take(&self) -> Vec<RawHead> {
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

/// Serves one connection: heads are recorded before the response is written, so a client that
/// has its response knows the head is recorded.
async fn serve(mut tcp: TcpStream, seen: Arc<Mutex<Vec<RawHead>>>, extra: String) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = find_head_end(&buf) else {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = parse(&String::from_utf8_lossy(&buf[..end]));
        let body_len: usize = head
            .all("content-length")
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + body_len {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + body_len);
        let upgrade = !head.all("upgrade").is_empty();
        seen.lock().expect("lock").push(head);
        if upgrade {
            // Switch protocols and then stay silent: the tunnel is the client's to close.
            let _ = tcp.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").await;
            let mut sink = [0u8; 4096];
            while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        let body = "ok";
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        if tcp.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse(text: &str) -> RawHead {
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawHead { line, headers }
}
