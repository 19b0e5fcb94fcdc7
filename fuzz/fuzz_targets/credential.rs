//! libFuzzer target: see `checks::credential` for the property asserted.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::credential(data));
