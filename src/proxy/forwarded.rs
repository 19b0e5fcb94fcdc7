//! `X-Forwarded-For`, `-Proto` and `-Host`: what the gateway tells upstreams about the client.
//!
//! Incoming values are believed only from a peer in `server.trusted_proxies`; from anyone else
//! they are replaced, so a client cannot claim another address or scheme. The standard
//! `Forwarded` header is dropped from untrusted peers for the same reason.

use std::net::IpAddr;

use ipnet::IpNet;

/// What the gateway knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The TCP peer.
    pub addr: Option<IpAddr>,
    /// Whether the connection to the gateway was TLS.
    pub tls: bool,
}

/// The forwarded headers to send upstream.
#[derive(Debug, PartialEq, Eq)]
pub struct Forwarded {
    pub for_chain: Option<String>,
    pub proto: String,
    pub host: Option<String>,
    /// Keep the client's own `Forwarded` header (only from trusted proxies).
    pub keep_forwarded: bool,
}

/// Incoming header values relevant here.
#[derive(Debug, Default)]
pub struct Incoming<'a> {
    pub xff: Option<&'a str>,
    pub proto: Option<&'a str>,
    pub host: Option<&'a str>,
    pub host_header: Option<&'a str>,
}

pub fn is_trusted(peer: Option<IpAddr>, trusted: &[IpNet]) -> bool {
    peer.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)))
}

/// Decides the forwarded headers for one request.
pub fn forwarded(peer: Peer, incoming: &Incoming<'_>, trusted: &[IpNet]) -> Forwarded {
    let own_proto = if peer.tls { "https" } else { "http" };
    let peer_ip = peer.addr.map(|ip| ip.to_string());
    if is_trusted(peer.addr, trusted) {
        let for_chain = match (incoming.xff, peer_ip) {
            (Some(chain), Some(ip)) => Some(format!("{chain}, {ip}")),
            (chain, ip) => ip.or(chain.map(str::to_string)),
        };
        return Forwarded {
            for_chain,
            proto: incoming.proto.map_or(own_proto.to_string(), str::to_string),
            host: incoming.host.or(incoming.host_header).map(str::to_string),
            keep_forwarded: true,
        };
    }
    Forwarded {
        for_chain: peer_ip,
        proto: own_proto.to_string(),
        host: incoming.host_header.map(str::to_string),
        keep_forwarded: false,
    }
}

/// The client address the gateway believes: the last hop a trusted proxy reported, else the peer.
pub fn client_ip(peer: Option<IpAddr>, xff: Option<&str>, trusted: &[IpNet]) -> Option<IpAddr> {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    xff.and_then(|chain| chain.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok())
        .or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn untrusted_values_are_replaced() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("cidr")];
        let incoming = Incoming {
            xff: Some("1.2.3.4"),
            proto: Some("https"),
            host: Some("evil.example"),
            host_header: Some("app.example"),
        };
        let from_client = forwarded(
            Peer {
                addr: ip("192.0.2.7"),
                tls: false,
            },
            &incoming,
            &trusted,
        );
        assert_eq!(
            from_client,
            Forwarded {
                for_chain: Some("192.0.2.7".into()),
                proto: "http".into(),
                host: Some("app.example".into()),
                keep_forwarded: false
            }
        );
        let from_proxy = forwarded(
            Peer {
                addr: ip("10.1.2.3"),
                tls: false,
            },
            &incoming,
            &trusted,
        );
        assert_eq!(
            from_proxy,
            Forwarded {
                for_chain: Some("1.2.3.4, 10.1.2.3".into()),
                proto: "https".into(),
                host: Some("evil.example".into()),
                keep_forwarded: true
            }
        );
        assert_eq!(
            client_ip(ip("10.1.2.3"), Some("9.9.9.9, 1.2.3.4"), &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("192.0.2.7"), Some("1.2.3.4"), &trusted),
            ip("192.0.2.7")
        );
    }
}
