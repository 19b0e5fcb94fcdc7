//! Raw sockets against the connection limits: an idle kept-alive connection is closed after
//! `keepalive_timeout`, a header that never ends is cut at `request_header_timeout` (first
//! request and a later one), and connections beyond `max_connections` are closed at once while
//! the open ones keep working.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{EchoUpstream, TestGateway};

const HEALTH: &[u8] = b"GET /passkeys/health HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Longest any test here waits for the gateway to act.
const PATIENCE: Duration = Duration::from_secs(10);

async fn gateway(server: &str) -> TestGateway {
    let up = EchoUpstream::start().await;
    TestGateway::in_front_of(up.addr, server).await
}

/// Sends one keep-alive request and reads its whole response (by Content-Length).
async fn exchange(tcp: &mut TcpStream) -> String {
    tcp.write_all(HEALTH).await.expect("write");
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "connection closed before the response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return head.lines().next().unwrap_or_default().to_string();
            }
        }
    }
}

/// Waits (bounded) until the gateway closes the connection; returns how long that took.
async fn closed_after(tcp: &mut TcpStream, started: Instant) -> Duration {
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(PATIENCE, tcp.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the connection was still open after {PATIENCE:?}"),
        }
    }
}

/// Sends a header one byte at a time, never finishing it, until the gateway closes the
/// connection; returns how long that took.
async fn trickle_until_closed(tcp: &mut TcpStream, started: Instant) -> Duration {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut chunk = [0u8; 1024];
    let header = b"GET /passkeys/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let mut sent = 0usize;
    loop {
        tokio::select! {
            read = tcp.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => panic!("the gateway answered an unfinished header"),
            },
            _ = tick.tick() => {
                let byte = header.get(sent).copied().unwrap_or(b'a');
                sent += 1;
                if tcp.write_all(&[byte]).await.is_err() {
                    return started.elapsed();
                }
                assert!(started.elapsed() < PATIENCE, "the slow header was never cut");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keepalive_connection_is_closed_after_the_timeout() {
    let gw = gateway("keepalive_timeout = \"1s\"\nrequest_header_timeout = \"5s\"").await;
    let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
    assert!(exchange(&mut tcp).await.contains("200"));
    let idle_since = Instant::now();
    let waited = closed_after(&mut tcp, idle_since).await;
    assert!(
        waited >= Duration::from_millis(900),
        "closed early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "closed late: {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_header_is_cut_at_the_deadline() {
    let gw = gateway("keepalive_timeout = \"1s\"\nrequest_header_timeout = \"1s\"").await;
    // The first request on a connection: the deadline runs from the accept.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let waited = trickle_until_closed(&mut tcp, started).await;
    assert!(
        waited >= Duration::from_millis(900),
        "cut early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "cut late: {waited:?}");

    // A later request on a kept-alive connection: idle allowance plus the header deadline.
    let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
    assert!(exchange(&mut tcp).await.contains("200"));
    let started = Instant::now();
    let waited = trickle_until_closed(&mut tcp, started).await;
    assert!(
        waited >= Duration::from_millis(1900),
        "cut early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "cut late: {waited:?}");
}

async fn refused(addr: SocketAddr) -> bool {
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return true;
    };
    let _ = tcp.write_all(HEALTH).await;
    let mut chunk = [0u8; 1024];
    matches!(
        tokio::time::timeout(PATIENCE, tcp.read(&mut chunk)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_while_open_ones_keep_working() {
    let gw = gateway("max_connections = 3\nkeepalive_timeout = \"30s\"").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
        assert!(exchange(&mut tcp).await.contains("200"));
        open.push(tcp);
    }
    assert!(
        refused(gw.addr).await,
        "a fourth connection is closed at once"
    );
    for tcp in &mut open {
        assert!(
            exchange(tcp).await.contains("200"),
            "open connections keep working"
        );
    }
    // Closing one makes room again, once the gateway has seen it go.
    drop(open.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
        let _ = tcp.write_all(HEALTH).await;
        let mut chunk = [0u8; 64];
        if let Ok(Ok(n)) = tokio::time::timeout(PATIENCE, tcp.read(&mut chunk)).await {
            if n > 0 {
                assert!(String::from_utf8_lossy(&chunk[..n]).contains("200"));
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no room after a connection closed"
        );
        tokio::task::yield_now().await;
    }
}
