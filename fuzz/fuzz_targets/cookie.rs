//! libFuzzer target: see `checks::cookie` for the property asserted.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::cookie(data));
