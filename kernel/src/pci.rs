//! Reaching PCI configuration space, and the bus scan at boot.
//!
//! With an ACPI MCFG (q35), or a `_CBA` in the DSDT (`microvm,pcie=on`),
//! Skiff maps the ECAM region uncached; without either (`-machine pc`) it
//! uses the port mechanism at 0xCF8/0xCFC. The scan
//! itself is `skiff_drivers::pci`.

use alloc::vec::Vec;
use core::ops::RangeInclusive;

use core::ptr::NonNull;

use skiff_drivers::pci::{self, ConfigurationAccess, DeviceFunction, Ecam, Function, PciRoot, PortCam};

use crate::{acpi, memory};

/// ECAM or port I/O. Copies are fine on Skiff's single CPU: each access is
/// one register read or write (ECAM) or an address/data pair that nothing
/// interrupts (port I/O, used from the main flow only).
#[derive(Clone)]
pub enum ConfigAccess {
    /// Memory-mapped (PCIe ECAM).
    Ecam(Ecam),
    /// Ports 0xCF8/0xCFC.
    Port(PortCam),
}

impl ConfigurationAccess for ConfigAccess {
    fn read_word(&self, function: DeviceFunction, offset: u8) -> u32 {
        match self {
            ConfigAccess::Ecam(c) => c.read_word(function, offset),
            ConfigAccess::Port(c) => c.read_word(function, offset),
        }
    }

    fn write_word(&mut self, function: DeviceFunction, offset: u8, data: u32) {
        match self {
            ConfigAccess::Ecam(c) => c.write_word(function, offset, data),
            ConfigAccess::Port(c) => c.write_word(function, offset, data),
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        self.clone()
    }
}

/// The PCI root, what the scan found, and which access is in use.
pub struct Pci {
    pub root: PciRoot<ConfigAccess>,
    /// The same access, for registers `PciRoot` has no call for (MSI-X).
    pub access: ConfigAccess,
    pub functions: Vec<Function>,
    pub mechanism: &'static str,
    /// The ECAM region's physical base, when config access goes through
    /// one: BAR assignment keeps clear of it.
    pub ecam_base: Option<u64>,
}

/// Picks the configuration mechanism and scans the buses it reaches.
pub fn init(rsdp: Option<u64>) -> Pci {
    let ecam = rsdp.and_then(acpi::find_ecam);
    let (access, buses, mechanism) = match ecam {
        Some(ecam) if ecam.start_bus == 0 => match ecam_access(ecam.base) {
            Some(access) => {
                log::info!("ECAM at {:#x} ({}), buses {}-{}", ecam.base, ecam.source, ecam.start_bus, ecam.end_bus);
                (access, ecam.start_bus..=ecam.end_bus, "ECAM")
            }
            None => port_access(),
        },
        Some(ecam) => {
            log::warn!(
                "PCI: MCFG region starts at bus {}, which Skiff does not handle; using port I/O",
                ecam.start_bus
            );
            port_access()
        }
        None => port_access(),
    };
    let mut root = PciRoot::new(access.clone());
    let functions = pci::scan(&mut root, buses);
    log::info!("{} functions found", functions.len());
    let ecam_base = match access {
        ConfigAccess::Ecam(_) => ecam.map(|e| e.base),
        ConfigAccess::Port(_) => None,
    };
    Pci { root, access, functions, mechanism, ecam_base }
}

fn port_access() -> (ConfigAccess, RangeInclusive<u8>, &'static str) {
    log::info!("no MCFG, using configuration mechanism #1 (ports 0xCF8/0xCFC)");
    // SAFETY: this is the only PortCam, and nothing else in Skiff uses the ports.
    (ConfigAccess::Port(unsafe { PortCam::new() }), 0..=u8::MAX, "port I/O")
}

/// Maps the whole 256-bus ECAM window (256 MiB) uncached.
fn ecam_access(base: u64) -> Option<ConfigAccess> {
    match memory::map_mmio(base, Ecam::SIZE as u64) {
        // SAFETY: the mapping covers Ecam::SIZE bytes of the ECAM region, is
        // uncached, stays mapped forever, and nothing else uses it.
        Ok(virt) => NonNull::new(virt.as_mut_ptr()).map(|p| ConfigAccess::Ecam(unsafe { Ecam::new(p) })),
        Err(e) => {
            log::warn!("cannot map ECAM at {base:#x}: {e}");
            None
        }
    }
}
