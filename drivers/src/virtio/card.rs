//! The transport a virtio-net card is reached through: PCI (modern or
//! legacy, `pci::VirtioPciTransport`) or virtio-mmio (`virtio-drivers`'
//! `MmioTransport`, for QEMU's `microvm`), as one type, so that one driver,
//! stack and main loop serve either.
//!
//! Ref: virtio 1.2, 4.1 (Virtio Over PCI Bus) and 4.2 (Virtio Over MMIO).

use virtio_drivers::transport::mmio::MmioTransport;

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

transport_either!(CardTransport, Pci, Mmio);
