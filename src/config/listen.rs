//! `server.listen` as one address (`listen = "0.0.0.0:443"`) or a list of them.

use std::fmt;
use std::net::SocketAddr;

use serde::de::{Deserializer, SeqAccess, Visitor};

/// Deserializes one socket address or a sequence of them into a list.
pub(super) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    d.deserialize_any(OneOrMany)
}

struct OneOrMany;

impl<'de> Visitor<'de> for OneOrMany {
    type Value = Vec<SocketAddr>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an address such as \"127.0.0.1:8080\", or a list of them")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse(v).map(|addr| vec![addr])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Element by element, so an error names its index (`server.listen[1]`).
        let mut addrs = Vec::new();
        while let Some(addr) = seq.next_element::<SocketAddr>()? {
            addrs.push(addr);
        }
        Ok(addrs)
    }
}

fn parse<E: serde::de::Error>(text: &str) -> Result<SocketAddr, E> {
    text.parse().map_err(|_| {
        E::custom(format!(
            "`{text}` is not an address such as \"127.0.0.1:8080\""
        ))
    })
}
