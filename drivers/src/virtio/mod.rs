//! Virtio.
