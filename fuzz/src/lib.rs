//! The harnesses behind Skiff's fuzz targets, one module per target, and the
//! generator of their seed corpora. Each target in `fuzz_targets/` is one
//! line that calls `run` here, so the harnesses also build (and their seed
//! corpora can be generated) without libFuzzer's instrumentation.
//!
//! Every harness checks properties, not only that nothing panics: the HTTP
//! parser against an independent model of HTTP/1.1 framing, the virtio-net
//! receive path against a model of which buffers the device holds, the whole
//! stack against what it may send and that it lets go of every connection.

pub mod http;
pub mod input;
pub mod seeds;
pub mod stack;
pub mod virtio;
