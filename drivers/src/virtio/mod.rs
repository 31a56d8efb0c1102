//! Virtio: the queue, the legacy PCI transport, and the network device.
//!
//! The modern PCI transport is `virtio-drivers`' `PciTransport`; the legacy
//! one (for `disable-modern=on` devices, which have no virtio capabilities) is
//! [`legacy::LegacyTransport`]. Both implement `virtio_drivers::transport::Transport`,
//! and [`net::VirtioNet`] works over either, or over `virtio-drivers`'
//! `MmioTransport` (QEMU's `microvm`), all three as one [`card::CardTransport`];
//! [`mmio_cmdline`] reads where a virtio-mmio device is from the command line.
//!
//! Ref: Virtual I/O Device (VIRTIO) Version 1.2 (the "virtio spec").

pub mod card;
pub mod legacy;
pub mod mmio_cmdline;
pub mod modern;
pub mod net;
pub mod pci;
pub mod queue;

/// Host-side fakes for tests, and for the fuzz targets (feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
pub mod fake;

pub use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
pub use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
pub use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Reads of the configuration before giving up on the generation counter
/// settling. A device changes its configuration rarely (a link change, a
/// MAC set by the host); one that changes it on every read is broken, and
/// waiting for it would hang the boot, as `Transport::read_consistent`'s
/// default (which loops forever) would.
pub const CONFIG_READ_ATTEMPTS: u32 = 16;

/// `Transport::read_consistent` with a bound: runs `read` until the
/// configuration generation (from `generation`) is the same before and after
/// it (spec 2.5.1, 4.1.4.3.1), at most [`CONFIG_READ_ATTEMPTS`] times, then
/// gives up with `Error::NotReady`.
pub fn read_consistent_bounded<T>(
    generation: impl Fn() -> u32,
    read: impl Fn() -> virtio_drivers::Result<T>,
) -> virtio_drivers::Result<T> {
    for _ in 0..CONFIG_READ_ATTEMPTS {
        let before = generation();
        let result = read();
        if generation() == before {
            return result;
        }
    }
    log::warn!("virtio: the configuration changed during each of {CONFIG_READ_ATTEMPTS} reads; giving up");
    Err(virtio_drivers::Error::NotReady)
}
