//! Virtio: the queue, the legacy PCI transport, and the network device.
//!
//! The modern PCI transport is `virtio-drivers`' `PciTransport`; the legacy
//! one (for `disable-modern=on` devices, which have no virtio capabilities) is
//! [`legacy::LegacyTransport`]. Both implement `virtio_drivers::transport::Transport`,
//! and [`net::VirtioNet`] works over either.
//!
//! Ref: Virtual I/O Device (VIRTIO) Version 1.2 (the "virtio spec").

pub mod legacy;
pub mod net;
pub mod pci;
pub mod queue;

/// Host-side fakes for tests, and for the fuzz targets (feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
pub mod fake;

pub use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
pub use virtio_drivers::{BufferDirection, Hal, PhysAddr};
