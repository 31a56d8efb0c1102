#![no_main]
//! Arbitrary frames into Skiff's whole stack, apps running; see `skiff_fuzz::stack`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| skiff_fuzz::stack::run(data));
