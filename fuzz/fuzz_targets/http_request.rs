#![no_main]
//! Skiff's HTTP request parsing and framing; see `skiff_fuzz::http`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| skiff_fuzz::http::run(data));
