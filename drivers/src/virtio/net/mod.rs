//! The virtio network device.
//!
//! - [`device`](VirtioNet): initialisation, configuration, interrupts, failure.
//! - `rx` and `tx`: the two halves the stack borrows, each a queue with its buffers.
//! - `buffers`: the DMA slots behind each queue.
//! - [`offload`]: what checksum offload asks of the driver; [`gso`]: segmentation offload.
//! - [`features`], [`header`]: the feature bits and `virtio_net_hdr`.
//!
//! The device implements `skiff_net::device::NetDevice`, which is all the
//! stack and the kernel's main loop know of it.
//!
//! Ref: virtio spec 5.1.

mod buffers;
mod device;
pub mod features;
pub mod gso;
pub mod header;
mod mac;
pub mod offload;
mod rx;
mod stats;
mod tx;

pub use device::{DEFAULT_MTU, MAX_MTU, MAX_QUEUE_SIZE, MIN_MTU, NetError, VirtioNet};
pub use features::NetFeatures;
pub use mac::{Mac, random_mac};
pub use rx::{MAX_JOINED, RxChecksum, RxFrame, RxRing, ip_frame_len};
pub use stats::NetStats;
pub use tx::{TxFrame, TxRing};

#[cfg(test)]
mod test;
#[cfg(test)]
mod test_mrg;
#[cfg(test)]
mod test_tso;
