//! ACPI tables, read with the `acpi` crate: the MCFG (or, on QEMU's microvm,
//! the DSDT's `_CBA`), which says where PCI Express configuration space
//! (ECAM) is mapped, and the MADT's I/O APIC.
//!
//! Firmware puts the tables in RAM below 4 GiB, which the bootloader's
//! physical-memory mapping covers, so "mapping" a table is an addition.

use core::ptr::NonNull;

use acpi::mcfg::Mcfg;
use acpi::{AcpiHandler, AcpiTable, AcpiTables, PhysicalMapping};

use crate::memory;

/// Reads tables through the bootloader's physical-memory mapping.
#[derive(Clone, Copy)]
struct PhysMapHandler;

impl AcpiHandler for PhysMapHandler {
    unsafe fn map_physical_region<T>(&self, physical_address: usize, size: usize) -> PhysicalMapping<Self, T> {
        // ACPI is read after memory::init, so the mapping exists; without it
        // there is no pointer to give the crate, which would dereference it.
        let Some(virt) = memory::phys_to_virt(x86_64::PhysAddr::new(physical_address as u64))
            .and_then(|v| NonNull::new(v.as_mut_ptr::<T>()))
        else {
            panic!("ACPI table at {physical_address:#x} read before the physical-memory mapping exists");
        };
        // SAFETY: the region lies in RAM that the physical-memory mapping
        // covers for the kernel's whole life; the `acpi` crate only asks for
        // table addresses the firmware published.
        unsafe { PhysicalMapping::new(physical_address, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// One ECAM region: configuration space for `start_bus..=end_bus` of a PCI segment.
#[derive(Clone, Copy, Debug)]
pub struct EcamRegion {
    /// Physical address of bus 0's configuration space (even if `start_bus` > 0).
    pub base: u64,
    /// First bus decoded.
    pub start_bus: u8,
    /// Last bus decoded.
    pub end_bus: u8,
    /// Which table announced it: "MCFG" or "DSDT _CBA".
    pub source: &'static str,
}

/// The first ECAM region of segment 0: from the MCFG, or without one from
/// the host bridge's `_CBA` in the DSDT (QEMU's `microvm,pcie=on` publishes
/// no MCFG).
pub fn find_ecam(rsdp: u64) -> Option<EcamRegion> {
    // SAFETY: `rsdp` is the RSDP address the bootloader got from the firmware.
    let tables = match unsafe { AcpiTables::from_rsdp(PhysMapHandler, rsdp as usize) } {
        Ok(tables) => tables,
        Err(e) => {
            log::warn!("ACPI tables unreadable: {e:?}");
            return None;
        }
    };
    let Ok(mcfg) = tables.find_table::<Mcfg>() else {
        return dsdt_ecam(&tables);
    };
    // `entries()` trusts the header's length; check it first.
    let length = { mcfg.header().length }; // a copy: the header is packed
    if (length as usize) < size_of::<Mcfg>() {
        log::warn!("ACPI MCFG too short ({length} bytes), ignored");
        return None;
    }
    let entry = mcfg.entries().iter().find(|e| e.pci_segment_group == 0)?;
    let entry = *entry; // a copy: the entries are packed
    Some(EcamRegion {
        base: entry.base_address,
        start_bus: entry.bus_number_start,
        end_bus: entry.bus_number_end,
        source: "MCFG",
    })
}

/// The ECAM base a constant `_CBA` in the DSDT returns. `_CBA` gives no bus
/// range; the host bridge's `_CRS` would, but reading it takes an AML
/// interpreter, so Skiff assumes all 256 buses (QEMU's microvm decodes
/// exactly those: 256 MiB at 0xE0000000) and the scan stops at empty buses.
fn dsdt_ecam(tables: &AcpiTables<PhysMapHandler>) -> Option<EcamRegion> {
    let dsdt = tables.dsdt().ok()?;
    let virt = memory::phys_to_virt(x86_64::PhysAddr::new(dsdt.address as u64))?;
    // SAFETY: the DSDT lies in RAM that the physical-memory mapping covers for
    // the kernel's whole life, and `length` is the AML's length from its header
    // (the `acpi` crate checked the table's checksum over it).
    let aml = unsafe { core::slice::from_raw_parts(virt.as_ptr::<u8>(), dsdt.length as usize) };
    let base = skiff_drivers::pci::find_cba(aml)?;
    Some(EcamRegion { base, start_bus: 0, end_bus: u8::MAX, source: "DSDT _CBA" })
}

/// The I/O APIC that receives legacy and PCI INTx interrupts.
#[derive(Clone, Copy, Debug)]
pub struct IoApicInfo {
    /// Physical address of its registers.
    pub address: u64,
    /// The first global system interrupt (GSI) it serves.
    pub gsi_base: u32,
}

/// An ISA IRQ that the firmware wired to a different GSI (MADT type 2).
#[derive(Clone, Copy, Debug)]
pub struct IsaOverride {
    /// The GSI the IRQ (the array index) arrives on.
    pub gsi: u32,
}

/// The first I/O APIC and the ISA overrides, from the MADT.
pub fn find_ioapic(rsdp: u64) -> Option<(IoApicInfo, [Option<IsaOverride>; 16])> {
    use acpi::madt::{Madt, MadtEntry};
    // SAFETY: as in `find_ecam`.
    let tables = unsafe { AcpiTables::from_rsdp(PhysMapHandler, rsdp as usize) }.ok()?;
    let madt = tables.find_table::<Madt>().ok()?;
    let mut ioapic = None;
    let mut overrides = [None; 16];
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::IoApic(e) if ioapic.is_none() => {
                let (address, gsi_base) = (e.io_apic_address, e.global_system_interrupt_base);
                ioapic = Some(IoApicInfo { address: u64::from(address), gsi_base });
            }
            MadtEntry::InterruptSourceOverride(e) => {
                let (irq, gsi) = (e.irq, e.global_system_interrupt);
                if let Some(slot) = overrides.get_mut(usize::from(irq)) {
                    *slot = Some(IsaOverride { gsi });
                }
            }
            _ => {}
        }
    }
    ioapic.map(|i| (i, overrides))
}
