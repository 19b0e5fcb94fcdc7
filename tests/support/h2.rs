//! Raw requests over either protocol the TLS listener speaks, for the targets and header layouts
//! reqwest would normalize: HTTP/2 (ALPN `h2`, checked) with any `:path` and a `cookie` split into
//! one field per pair as browsers send it (RFC 9113 §8.2.3), or HTTP/1.1 bytes on a plain
//! gateway. One table of cases then runs over both.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::raw::{self, RawResponse};
use super::tls::test_ca;
use super::TestGateway;

/// The HTTP version [`super::client`] gets from `gw`: HTTP/2 over TLS (ALPN), else HTTP/1.1.
pub fn version(gw: &TestGateway) -> http::Version {
    match gw.gw.config().tls {
        Some(_) => http::Version::HTTP_2,
        None => http::Version::HTTP_11,
    }
}

/// A TLS connection to `addr` as `localhost` offering `alpn`; panics unless the server picked
/// the first protocol offered.
pub async fn tls_connect(addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(test_ca().root_der()).expect("CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), alpn.first().copied());
    tls
}

/// `method target` with `headers`: HTTP/2 when `gw` serves TLS, else HTTP/1.1. A `host` in
/// `headers` is the host as each protocol writes it: `Host` in HTTP/1.1, `:authority` in HTTP/2
/// (default `localhost`, with the port in HTTP/2). `None` when the target or host cannot be
/// written as an HTTP/2 `:path` or `:authority` at all (so no h2 client can send it).
pub async fn request(
    gw: &TestGateway,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Option<RawResponse> {
    let is_host = |name: &&str| name.eq_ignore_ascii_case("host");
    let host = headers.iter().find(|(n, _)| is_host(n)).map(|(_, v)| *v);
    let headers = headers.iter().filter(|(n, _)| !is_host(n));
    if gw.gw.config().tls.is_none() {
        let lines: String = headers.map(|(k, v)| format!("\n{k}: {v}")).collect();
        let host = host.unwrap_or("localhost");
        let head = format!("{method} {target} HTTP/1.1\nHost: {host}{lines}");
        return Some(raw::request(gw.addr, &head).await);
    }
    let authority = host.map_or_else(|| format!("localhost:{}", gw.addr.port()), str::to_string);
    let uri = http::Uri::try_from(format!("https://{authority}{target}")).ok()?;
    let mut request = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("cookie") {
            for pair in value.split(';') {
                request = request.header("cookie", pair.trim());
            }
        } else {
            request = request.header(*name, *value);
        }
    }
    let request = request.body(()).expect("request");
    Some(exchange(gw.addr, request).await)
}

/// One request on a new h2 connection to `addr`; the whole response.
pub async fn exchange(addr: SocketAddr, request: http::Request<()>) -> RawResponse {
    let tls = tls_connect(addr, &[b"h2"]).await;
    let (client, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("h2 ready");
    let (response, _) = client.send_request(request, true).expect("send");
    let response = response.await.expect("h2 response");
    let (head, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk: Bytes = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    RawResponse {
        status: head.status.as_u16(),
        headers: head
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: String::from_utf8_lossy(&bytes).into(),
    }
}
