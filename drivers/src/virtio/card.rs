//! The transport a virtio-net card is reached through: PCI (modern or
//! legacy, `pci::VirtioPciTransport`) or virtio-mmio (`virtio-drivers`'
//! `MmioTransport`, for QEMU's `microvm`), as one type, so that one driver,
//! stack and main loop serve either.
//!
//! Ref: virtio 1.2, 4.1 (Virtio Over PCI Bus) and 4.2 (Virtio Over MMIO).

use virtio_drivers::PhysAddr;
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::legacy::IoPorts;
use super::pci::VirtioPciTransport;

/// A virtio device's transport, PCI or MMIO.
pub enum CardTransport<P: IoPorts> {
    /// On PCI (`-device virtio-net-pci`).
    Pci(VirtioPciTransport<P>),
    /// Memory-mapped (`-device virtio-net-device` on `microvm`).
    Mmio(MmioTransport<'static>),
}

impl<P: IoPorts> CardTransport<P> {
    /// "modern", "legacy" (PCI) or "virtio-mmio", for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CardTransport::Pci(t) => t.kind(),
            CardTransport::Mmio(_) => "virtio-mmio",
        }
    }
}

/// Calls the same method on whichever transport this is.
macro_rules! delegate {
    ($self:ident, $t:ident => $call:expr) => {
        match $self {
            CardTransport::Pci($t) => $call,
            CardTransport::Mmio($t) => $call,
        }
    };
}

impl<P: IoPorts> Transport for CardTransport<P> {
    fn device_type(&self) -> DeviceType {
        delegate!(self, t => t.device_type())
    }
    fn read_device_features(&mut self) -> u64 {
        delegate!(self, t => t.read_device_features())
    }
    fn write_driver_features(&mut self, features: u64) {
        delegate!(self, t => t.write_driver_features(features))
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        delegate!(self, t => t.max_queue_size(queue))
    }
    fn notify(&mut self, queue: u16) {
        delegate!(self, t => t.notify(queue))
    }
    fn get_status(&self) -> DeviceStatus {
        delegate!(self, t => t.get_status())
    }
    fn set_status(&mut self, status: DeviceStatus) {
        delegate!(self, t => t.set_status(status))
    }
    fn set_guest_page_size(&mut self, size: u32) {
        delegate!(self, t => t.set_guest_page_size(size))
    }
    fn requires_legacy_layout(&self) -> bool {
        delegate!(self, t => t.requires_legacy_layout())
    }
    fn queue_set(&mut self, queue: u16, size: u32, desc: PhysAddr, driver: PhysAddr, device: PhysAddr) {
        delegate!(self, t => t.queue_set(queue, size, desc, driver, device))
    }
    fn queue_unset(&mut self, queue: u16) {
        delegate!(self, t => t.queue_unset(queue))
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        delegate!(self, t => t.queue_used(queue))
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        delegate!(self, t => t.ack_interrupt())
    }
    fn read_config_generation(&self) -> u32 {
        delegate!(self, t => t.read_config_generation())
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> virtio_drivers::Result<T> {
        delegate!(self, t => t.read_config_space(offset))
    }
    fn write_config_space<T: IntoBytes + Immutable>(&mut self, offset: usize, value: T) -> virtio_drivers::Result<()> {
        delegate!(self, t => t.write_config_space(offset, value))
    }
    fn read_consistent<T>(&self, f: impl Fn() -> virtio_drivers::Result<T>) -> virtio_drivers::Result<T> {
        delegate!(self, t => t.read_consistent(f))
    }
}
