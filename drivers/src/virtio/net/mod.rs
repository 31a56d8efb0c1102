//! The virtio network device.
//!
//! Ref: virtio spec 5.1.

mod device;
pub mod features;
pub mod header;

pub use device::{
    DEFAULT_MTU, MAX_QUEUE_SIZE, Mac, NetError, NetStats, RxChecksum, RxFrame, RxRing, TxFrame, TxRing, VirtioNet,
    random_mac,
};
pub use features::NetFeatures;

#[cfg(test)]
mod test;
