//! A soft authenticator with a chosen AAGUID: `SoftPasskey` always reports zeros, so its
//! attestation is rewritten as a browser that strips attestation would send it (format `none`,
//! no statement) with the chosen model id in the authenticator data. The credential, key and
//! signature counter are the soft authenticator's, so it signs in as usual.

use serde_cbor_2::Value;
use std::collections::BTreeMap;
use webauthn_rs::prelude::RegisterPublicKeyCredential;

/// Offset of the AAGUID in authenticator data: rpIdHash (32), flags (1), signCount (4).
const AAGUID_AT: usize = 37;

pub fn with_aaguid(
    mut credential: RegisterPublicKeyCredential,
    aaguid: &str,
) -> RegisterPublicKeyCredential {
    let id: uuid::Uuid = aaguid.parse().expect("aaguid");
    let object: BTreeMap<String, Value> =
        serde_cbor_2::from_slice(&credential.response.attestation_object).expect("cbor");
    let Some(Value::Bytes(mut auth_data)) = object.get("authData").cloned() else {
        panic!("authData");
    };
    auth_data[AAGUID_AT..AAGUID_AT + 16].copy_from_slice(id.as_bytes());
    let mut none = BTreeMap::new();
    none.insert(Value::Text("fmt".into()), Value::Text("none".into()));
    none.insert(Value::Text("attStmt".into()), Value::Map(BTreeMap::new()));
    none.insert(Value::Text("authData".into()), Value::Bytes(auth_data));
    credential.response.attestation_object = serde_cbor_2::to_vec(&Value::Map(none)).expect("cbor");
    credential
}
