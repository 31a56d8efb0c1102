//! Choosing the transport for a virtio PCI function: modern (virtio
//! capabilities pointing into memory BARs) or legacy (an I/O BAR).
//!
//! Ref: virtio spec 4.1.2 (PCI device discovery), 4.1.4 (modern layout),
//! 4.1.4.10 (legacy layout).

use core::fmt;

use virtio_drivers::Hal;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{BarInfo, ConfigurationAccess, PciRoot};

use super::legacy::{IoPorts, LegacyError, LegacyTransport};
use super::modern::{
    COMMON_MSIX_CONFIG, COMMON_QUEUE_MSIX_VECTOR, COMMON_QUEUE_SELECT, ModernError, ModernTransport, common_config,
};
use crate::pci::{CAP_VENDOR, Function};

/// Red Hat's PCI vendor ID, which all virtio devices use.
pub const VIRTIO_VENDOR: u16 = 0x1AF4;
/// Transitional (legacy-capable) virtio network device (spec 4.1.2.3).
pub const NET_TRANSITIONAL: u16 = 0x1000;
/// Modern-only virtio network device: 0x1040 + device type 1 (spec 4.1.2.1).
pub const NET_MODERN: u16 = 0x1041;

/// Whether `function` is a virtio network card.
pub fn is_virtio_net(function: &Function) -> bool {
    function.info.vendor_id == VIRTIO_VENDOR && matches!(function.info.device_id, NET_TRANSITIONAL | NET_MODERN)
}

/// A virtio PCI transport of either kind.
pub enum VirtioPciTransport<P: IoPorts> {
    /// `virtio-drivers`' transport for virtio 1.x devices, checked.
    Modern(ModernTransport),
    /// Skiff's transport for legacy devices.
    Legacy(LegacyTransport<P>),
}

/// Why neither transport fits.
#[derive(Debug)]
pub enum ProbeError {
    /// The modern transport failed on a function that has virtio capabilities.
    Modern(ModernError),
    /// No virtio capabilities, and no usable I/O BAR 0 for the legacy interface.
    NoLegacyBar,
    /// The legacy BAR is unusable.
    Legacy(LegacyError),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ProbeError::Modern(e) => write!(f, "modern virtio transport: {e}"),
            ProbeError::NoLegacyBar => write!(f, "no virtio capabilities and no I/O BAR 0 for the legacy interface"),
            ProbeError::Legacy(e) => write!(f, "{e}"),
        }
    }
}

/// Builds the transport for a virtio function: modern if it has virtio
/// vendor capabilities, else legacy over BAR 0 (with `ports`).
/// `msix_enabled` says whether the function's MSI-X is on, which moves a
/// legacy device's configuration space. `access` reads the same
/// configuration space as `root`.
pub fn probe<H: Hal, C: ConfigurationAccess, P: IoPorts>(
    root: &mut PciRoot<C>,
    access: &C,
    function: &Function,
    ports: P,
    msix_enabled: bool,
) -> Result<VirtioPciTransport<P>, ProbeError> {
    if function.capability(CAP_VENDOR).is_some() {
        return ModernTransport::new::<H, C>(root, access, function)
            .map(VirtioPciTransport::Modern)
            .map_err(ProbeError::Modern);
    }
    let Some(BarInfo::IO { address, size }) = function.bars[0] else {
        return Err(ProbeError::NoLegacyBar);
    };
    let device_type = DeviceType::Network;
    LegacyTransport::new(ports, address, size, device_type, msix_enabled)
        .map(VirtioPciTransport::Legacy)
        .map_err(ProbeError::Legacy)
}

/// Why MSI-X vectors could not be given to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorError {
    /// No common configuration capability, or its BAR is not a memory BAR.
    NoCommonConfig,
    /// The device read back "no vector" for one of them.
    Refused,
}

impl fmt::Display for VectorError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            VectorError::NoCommonConfig => write!(f, "no usable virtio common configuration"),
            VectorError::Refused => write!(f, "the device refused an MSI-X vector"),
        }
    }
}

impl<P: IoPorts> VirtioPciTransport<P> {
    /// Tells the device which MSI-X table entry signals configuration
    /// changes (`config`) and each queue (`(queue, entry)`). MSI-X must be
    /// enabled on the function. `virtio-drivers` has no call for this, so
    /// for modern devices Skiff maps the common configuration itself.
    pub fn set_msix_vectors<H: Hal, C: ConfigurationAccess>(
        &mut self,
        access: &C,
        function: &Function,
        config: u16,
        queues: &[(u16, u16)],
    ) -> Result<(), VectorError> {
        match self {
            VirtioPciTransport::Legacy(t) => {
                t.set_msix_vectors(config, queues).then_some(()).ok_or(VectorError::Refused)
            }
            VirtioPciTransport::Modern(_) => {
                let common = common_config::<H, C>(access, function).ok_or(VectorError::NoCommonConfig)?;
                let write = |offset: usize, value: u16| {
                    // SAFETY: `common` maps the device's common configuration
                    // (at least 0x38 bytes, checked by common_config), and
                    // these are 16-bit registers at aligned offsets in it.
                    unsafe { common.as_ptr().add(offset).cast::<u16>().write_volatile(value) }
                };
                let read = |offset: usize| {
                    // SAFETY: as for `write`.
                    unsafe { common.as_ptr().add(offset).cast::<u16>().read_volatile() }
                };
                write(COMMON_MSIX_CONFIG, config);
                let mut ok = read(COMMON_MSIX_CONFIG) == config;
                for &(queue, entry) in queues {
                    write(COMMON_QUEUE_SELECT, queue);
                    write(COMMON_QUEUE_MSIX_VECTOR, entry);
                    ok &= read(COMMON_QUEUE_MSIX_VECTOR) == entry;
                }
                ok.then_some(()).ok_or(VectorError::Refused)
            }
        }
    }

    /// "modern" or "legacy", for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            VirtioPciTransport::Modern(_) => "modern",
            VirtioPciTransport::Legacy(_) => "legacy",
        }
    }
}

transport_either!(VirtioPciTransport, Modern, Legacy);

#[cfg(test)]
mod test;
