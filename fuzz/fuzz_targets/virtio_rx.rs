#![no_main]
//! Skiff's virtio-net receive path against a hostile fake device; see `skiff_fuzz::virtio`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| skiff_fuzz::virtio::run(data));
