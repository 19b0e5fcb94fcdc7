//! libFuzzer target: see `endpoint_checks::ceremony_json` for the property asserted.
#![no_main]

#[path = "../endpoint_checks.rs"]
mod endpoint_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| endpoint_checks::ceremony_json(data));
