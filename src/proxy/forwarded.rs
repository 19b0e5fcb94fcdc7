//! What the gateway believes about a request's client, and what it tells upstreams about it:
//! `X-Forwarded-For/-Proto/-Host/-Port` and `X-Real-IP`.
//!
//! Incoming values are believed only from a peer in `server.trusted_proxies`; from anyone else
//! they are replaced, so a client cannot claim another address or scheme.
//!
//! The client address is decided once per request and feeds the access log, the upstream headers
//! and the rate limit alike: every `X-Forwarded-For` line joined (a proxy such as HAProxy may add
//! its own line rather than extend the first), then the rightmost address that is not a trusted
//! proxy. Everything left of it was written by the client and is not forwarded, so an upstream
//! that reads the leftmost address (a common habit) reads the real client too.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// What the gateway knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The TCP peer.
    pub addr: Option<IpAddr>,
    /// Whether the connection to the gateway was TLS.
    pub tls: bool,
    /// The gateway's own port the connection arrived on.
    pub local_port: Option<u16>,
}

/// Incoming header values relevant here (`xff`: every line, joined with `,`).
#[derive(Debug, Default)]
pub struct Incoming<'a> {
    pub xff: Option<&'a str>,
    pub proto: Option<&'a str>,
    pub host: Option<&'a str>,
    pub port: Option<&'a str>,
}

/// The forwarded headers to send upstream, and the client they describe.
#[derive(Debug, PartialEq, Eq)]
pub struct Forwarded {
    /// The believed client address (also `X-Real-IP`).
    pub client: Option<IpAddr>,
    /// `X-Forwarded-For`: the client, then each trusted hop, then the peer.
    pub for_chain: Option<String>,
    pub proto: &'static str,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Whether the peer is a trusted proxy.
    pub trusted_peer: bool,
}

pub fn is_trusted(peer: Option<IpAddr>, trusted: &[IpNet]) -> bool {
    peer.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)))
}

/// Decides the forwarded headers for one request; `authority` is the host that was routed.
pub fn forwarded(
    peer: Peer,
    incoming: &Incoming<'_>,
    trusted: &[IpNet],
    authority: Option<&str>,
) -> Forwarded {
    let own_proto = if peer.tls { "https" } else { "http" };
    let peer_ip = peer.addr.map(ip_text);
    if !is_trusted(peer.addr, trusted) {
        return Forwarded {
            client: peer.addr,
            for_chain: peer_ip,
            proto: own_proto,
            host: authority.map(str::to_string),
            port: peer.local_port,
            trusted_peer: false,
        };
    }
    let hops = incoming.xff.map(hops).unwrap_or_default();
    let (start, client) = believed_client(&hops, trusted);
    let mut chain: Vec<&str> = hops[start..].to_vec();
    chain.extend(peer_ip.as_deref());
    Forwarded {
        client: client.or(peer.addr),
        for_chain: (!chain.is_empty()).then(|| chain.join(", ")),
        proto: match incoming.proto.map(str::trim) {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            Some(p) if p.eq_ignore_ascii_case("http") => "http",
            _ => own_proto,
        },
        host: incoming
            .host
            .filter(|h| crate::policy::canonical_host(h.trim()).is_some())
            .map(|h| h.trim().to_string())
            .or_else(|| authority.map(str::to_string)),
        port: incoming
            .port
            .and_then(|p| p.trim().parse().ok())
            .or(peer.local_port),
        trusted_peer: true,
    }
}

/// The client address the gateway believes: see the module docs.
pub fn client_ip(peer: Option<IpAddr>, xff: Option<&str>, trusted: &[IpNet]) -> Option<IpAddr> {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops = xff.map(hops).unwrap_or_default();
    believed_client(&hops, trusted).1.or(peer)
}

fn hops(xff: &str) -> Vec<&str> {
    xff.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect()
}

/// Walks the hops from the right past trusted proxies: the index the forwarded chain starts at,
/// and the client. A hop that is no address ends the walk at the last address that was one
/// (the proxy that relayed it), since nothing left of it can be believed.
fn believed_client(hops: &[&str], trusted: &[IpNet]) -> (usize, Option<IpAddr>) {
    let mut last: (usize, Option<IpAddr>) = (hops.len(), None);
    for (i, hop) in hops.iter().enumerate().rev() {
        let Some(ip) = parse_hop(hop) else {
            return last;
        };
        last = (i, Some(ip));
        if !trusted.iter().any(|net| net.contains(&ip)) {
            break;
        }
    }
    last
}

/// `ip` as text, exactly as `Display` writes it. IPv4 is written digit by digit: `Display` goes
/// through the formatting machinery per octet (~1,300 instructions, and it runs for the chain,
/// `X-Real-IP` and the access log of every request); IPv6 is rare enough to keep `Display`.
pub fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]:443` or `1.2.3.4:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn peer(addr: &str) -> Peer {
        Peer {
            addr: ip(addr),
            tls: false,
            local_port: Some(8080),
        }
    }

    fn trusted() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().expect("cidr")]
    }

    #[test]
    fn untrusted_values_are_replaced() {
        let incoming = Incoming {
            xff: Some("1.2.3.4"),
            proto: Some("https"),
            host: Some("evil.example"),
            port: Some("443"),
        };
        let from_client = forwarded(
            peer("192.0.2.7"),
            &incoming,
            &trusted(),
            Some("app.example"),
        );
        assert_eq!(
            from_client,
            Forwarded {
                client: ip("192.0.2.7"),
                for_chain: Some("192.0.2.7".into()),
                proto: "http",
                host: Some("app.example".into()),
                port: Some(8080),
                trusted_peer: false,
            }
        );
        let from_proxy = forwarded(peer("10.1.2.3"), &incoming, &trusted(), Some("app.example"));
        assert_eq!(
            from_proxy,
            Forwarded {
                client: ip("1.2.3.4"),
                for_chain: Some("1.2.3.4, 10.1.2.3".into()),
                proto: "https",
                host: Some("evil.example".into()),
                port: Some(443),
                trusted_peer: true,
            }
        );
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let t = trusted();
        let cases = [
            // (peer, joined X-Forwarded-For, believed client)
            ("192.0.2.7", Some("1.2.3.4"), "192.0.2.7"),
            ("10.1.2.3", Some("9.9.9.9, 1.2.3.4"), "1.2.3.4"),
            // HAProxy adds its own line: the lines are joined before walking.
            ("10.1.2.3", Some("6.6.6.6,1.2.3.4"), "1.2.3.4"),
            ("10.1.2.3", Some("6.6.6.6, 1.2.3.4, 10.9.9.9"), "1.2.3.4"),
            ("10.1.2.3", Some("10.5.5.5, 10.9.9.9"), "10.5.5.5"),
            ("10.1.2.3", Some("garbage, 10.9.9.9"), "10.9.9.9"),
            ("10.1.2.3", Some("1.2.3.4, garbage"), "10.1.2.3"),
            ("10.1.2.3", Some("[2001:db8::1]:443"), "2001:db8::1"),
            ("10.1.2.3", None, "10.1.2.3"),
            ("10.1.2.3", Some(""), "10.1.2.3"),
        ];
        for (from, xff, want) in cases {
            assert_eq!(client_ip(ip(from), xff, &t), ip(want), "{from} {xff:?}");
            let incoming = Incoming {
                xff,
                ..Incoming::default()
            };
            let decided = forwarded(peer(from), &incoming, &t, None);
            assert_eq!(decided.client, ip(want), "{from} {xff:?}");
        }
    }

    #[test]
    fn ip_text_is_display() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.99.100",
            "127.0.0.1",
            "192.168.10.9",
            "255.255.255.255",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let addr: IpAddr = text.parse().expect("address");
            assert_eq!(ip_text(addr), addr.to_string());
        }
        for n in (0..=u32::MAX).step_by(16_777_259) {
            let addr = IpAddr::from(n.to_be_bytes());
            assert_eq!(ip_text(addr), addr.to_string());
        }
    }

    #[test]
    fn the_forwarded_chain_starts_at_the_client() {
        let incoming = Incoming {
            xff: Some("6.6.6.6, 1.2.3.4, 10.9.9.9"),
            proto: Some("gopher"),
            host: Some("bad host"),
            port: Some("x"),
        };
        let decided = forwarded(peer("10.1.2.3"), &incoming, &trusted(), Some("app:81"));
        assert_eq!(
            decided.for_chain.as_deref(),
            Some("1.2.3.4, 10.9.9.9, 10.1.2.3")
        );
        assert_eq!(decided.proto, "http");
        assert_eq!(decided.host.as_deref(), Some("app:81"));
        assert_eq!(decided.port, Some(8080));
    }
}
