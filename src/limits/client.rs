//! [`ClientPrefix`]: the network a client address counts as, for rate limits and failure tallies.
//!
//! An IPv4 address is one client. An IPv6 host usually owns a whole /64 (SLAAC, privacy
//! addresses), so counting single IPv6 addresses would give one machine 2^64 budgets.

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A client address reduced to the network it counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientPrefix(IpNet);

impl ClientPrefix {
    /// The IPv4 address itself; an IPv6 address truncated to `/ipv6_prefix`. IPv4-mapped IPv6
    /// addresses count as the IPv4 address they carry.
    pub fn of(addr: IpAddr, ipv6_prefix: u8) -> ClientPrefix {
        match addr {
            IpAddr::V4(v4) => ClientPrefix(IpNet::V4(Ipv4Net::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientPrefix(IpNet::V4(Ipv4Net::from(v4))),
                None => {
                    let net = Ipv6Net::new(v6, ipv6_prefix.min(128)).unwrap_or(Ipv6Net::from(v6));
                    ClientPrefix(IpNet::V6(net.trunc()))
                }
            },
        }
    }
}

impl fmt::Display for ClientPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    // Tests may unwrap: a failure is the report.
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn prefix(addr: &str, len: u8) -> String {
        ClientPrefix::of(addr.parse().unwrap(), len).to_string()
    }

    #[test]
    fn ipv4_is_the_address_itself() {
        assert_eq!(prefix("192.0.2.7", 64), "192.0.2.7/32");
        assert_eq!(prefix("::ffff:192.0.2.7", 64), "192.0.2.7/32");
    }

    #[test]
    fn ipv6_counts_as_its_network() {
        assert_eq!(prefix("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(
            prefix("2001:db8:1:2:aaaa::1", 64),
            prefix("2001:db8:1:2:ffff:1:2:3", 64)
        );
        assert_ne!(prefix("2001:db8:1:2::1", 64), prefix("2001:db8:1:3::1", 64));
        assert_eq!(prefix("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(prefix("2001:db8::1", 128), "2001:db8::1/128");
    }
}
