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

/// Implements `Transport` for an enum of two transports by calling the same
/// method on whichever one it holds (`VirtioPciTransport`: modern or legacy;
/// `CardTransport`: PCI or MMIO).
macro_rules! transport_either {
    ($ty:ident, $a:ident, $b:ident) => {
        impl<P: $crate::virtio::legacy::IoPorts> virtio_drivers::transport::Transport for $ty<P> {
            fn device_type(&self) -> virtio_drivers::transport::DeviceType {
                match self {
                    $ty::$a(t) => t.device_type(),
                    $ty::$b(t) => t.device_type(),
                }
            }
            fn read_device_features(&mut self) -> u64 {
                match self {
                    $ty::$a(t) => t.read_device_features(),
                    $ty::$b(t) => t.read_device_features(),
                }
            }
            fn write_driver_features(&mut self, features: u64) {
                match self {
                    $ty::$a(t) => t.write_driver_features(features),
                    $ty::$b(t) => t.write_driver_features(features),
                }
            }
            fn max_queue_size(&mut self, queue: u16) -> u32 {
                match self {
                    $ty::$a(t) => t.max_queue_size(queue),
                    $ty::$b(t) => t.max_queue_size(queue),
                }
            }
            fn notify(&mut self, queue: u16) {
                match self {
                    $ty::$a(t) => t.notify(queue),
                    $ty::$b(t) => t.notify(queue),
                }
            }
            fn get_status(&self) -> virtio_drivers::transport::DeviceStatus {
                match self {
                    $ty::$a(t) => t.get_status(),
                    $ty::$b(t) => t.get_status(),
                }
            }
            fn set_status(&mut self, status: virtio_drivers::transport::DeviceStatus) {
                match self {
                    $ty::$a(t) => t.set_status(status),
                    $ty::$b(t) => t.set_status(status),
                }
            }
            fn set_guest_page_size(&mut self, size: u32) {
                match self {
                    $ty::$a(t) => t.set_guest_page_size(size),
                    $ty::$b(t) => t.set_guest_page_size(size),
                }
            }
            fn requires_legacy_layout(&self) -> bool {
                match self {
                    $ty::$a(t) => t.requires_legacy_layout(),
                    $ty::$b(t) => t.requires_legacy_layout(),
                }
            }
            fn queue_set(
                &mut self,
                queue: u16,
                size: u32,
                desc: virtio_drivers::PhysAddr,
                driver: virtio_drivers::PhysAddr,
                device: virtio_drivers::PhysAddr,
            ) {
                match self {
                    $ty::$a(t) => t.queue_set(queue, size, desc, driver, device),
                    $ty::$b(t) => t.queue_set(queue, size, desc, driver, device),
                }
            }
            fn queue_unset(&mut self, queue: u16) {
                match self {
                    $ty::$a(t) => t.queue_unset(queue),
                    $ty::$b(t) => t.queue_unset(queue),
                }
            }
            fn queue_used(&mut self, queue: u16) -> bool {
                match self {
                    $ty::$a(t) => t.queue_used(queue),
                    $ty::$b(t) => t.queue_used(queue),
                }
            }
            fn ack_interrupt(&mut self) -> virtio_drivers::transport::InterruptStatus {
                match self {
                    $ty::$a(t) => t.ack_interrupt(),
                    $ty::$b(t) => t.ack_interrupt(),
                }
            }
            fn read_config_generation(&self) -> u32 {
                match self {
                    $ty::$a(t) => t.read_config_generation(),
                    $ty::$b(t) => t.read_config_generation(),
                }
            }
            fn read_config_space<T: zerocopy::FromBytes + zerocopy::IntoBytes>(
                &self,
                offset: usize,
            ) -> virtio_drivers::Result<T> {
                match self {
                    $ty::$a(t) => t.read_config_space(offset),
                    $ty::$b(t) => t.read_config_space(offset),
                }
            }
            fn write_config_space<T: zerocopy::IntoBytes + zerocopy::Immutable>(
                &mut self,
                offset: usize,
                value: T,
            ) -> virtio_drivers::Result<()> {
                match self {
                    $ty::$a(t) => t.write_config_space(offset, value),
                    $ty::$b(t) => t.write_config_space(offset, value),
                }
            }
            fn read_consistent<T>(&self, f: impl Fn() -> virtio_drivers::Result<T>) -> virtio_drivers::Result<T> {
                match self {
                    $ty::$a(t) => t.read_consistent(f),
                    $ty::$b(t) => t.read_consistent(f),
                }
            }
        }
    };
}

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
