//! Opaque byte fields of records (a passkey's credential and credential id, a ceremony's state)
//! as base64 text. serde_json writes a `Vec<u8>` as an array of numbers: three to four times the
//! size, slow to encode and parse, and on PostgreSQL a jsonb of a thousand `numeric`s per record
//! to parse on every write (the largest single cost of a sign-in there). Records written before
//! keep their arrays: reading takes either form.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD_NO_PAD.encode(bytes))
}

pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_any(Bytes)
}

struct Bytes;

impl<'de> Visitor<'de> for Bytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("base64 text or an array of bytes")
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<Vec<u8>, E> {
        STANDARD_NO_PAD
            .decode(text)
            .map_err(|e| E::custom(format!("bad base64: {e}")))
    }

    // The form records had before.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
        while let Some(byte) = seq.next_element::<u8>()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Record {
        #[serde(with = "super")]
        bytes: Vec<u8>,
    }

    #[test]
    fn bytes_are_written_as_base64_and_read_in_either_form() {
        let record = Record {
            bytes: vec![0, 1, 254, 255, 42],
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(text, r#"{"bytes":"AAH+/yo"}"#);
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), record);
        let before = r#"{"bytes":[0,1,254,255,42]}"#;
        assert_eq!(serde_json::from_str::<Record>(before).unwrap(), record);
        assert!(serde_json::from_str::<Record>(r#"{"bytes":[256]}"#).is_err());
        assert!(serde_json::from_str::<Record>(r#"{"bytes":"not base64!"}"#).is_err());
    }
}
