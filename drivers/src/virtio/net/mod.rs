//! The virtio network device.
//!
//! Ref: virtio spec 5.1.

pub mod checksum;
pub mod features;
pub mod header;
