//! The boot description: what `kernel_main` needs from whoever started the
//! kernel, the same whichever way in it came.
//!
//! Skiff has two entries. The `bootloader` crate's (BIOS and UEFI disk images)
//! calls `_start` in 64-bit mode with a `BootInfo`; `from_bootloader` turns
//! that into a `BootDescription`. The PVH entry (`qemu -kernel`, see `pvh`)
//! starts in 32-bit mode with Xen's `hvm_start_info`, builds its own page
//! tables and makes the same description from the start info.

use bootloader_api::BootInfo;
use bootloader_api::info::MemoryRegion;

use crate::cmdline::Cmdline;

/// Which entry started the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The `bootloader` crate, from a BIOS or UEFI disk image.
    Bootloader,
    /// Xen's PVH direct boot (`qemu -kernel`).
    Pvh,
}

/// Where the kernel command line comes from.
#[expect(clippy::large_enum_variant, reason = "made once at boot, before there is a heap to box it in")]
pub enum CmdlineSource {
    /// QEMU's fw_cfg file `opt/skiff/cmdline` (the bootloader passes none).
    FwCfg,
    /// Given by the entry (PVH: the start info's command line, already checked).
    Given(Cmdline),
}

/// Everything `kernel_main` takes from the entry.
pub struct BootDescription {
    /// Which way in this boot took (logged; the suite checks the line).
    pub entry: Entry,
    /// The physical memory map; the kernel image and the entry's own data are
    /// not `Usable`.
    pub memory_regions: &'static [MemoryRegion],
    /// Where all physical memory is mapped (virtual = physical + offset).
    pub physical_memory_offset: Option<u64>,
    /// The ACPI RSDP's physical address, if the firmware has one.
    pub rsdp: Option<u64>,
    /// The kernel command line, or where to read it.
    pub cmdline: CmdlineSource,
}

impl BootDescription {
    /// The description of a bootloader_api boot.
    pub fn from_bootloader(info: &'static mut BootInfo) -> Self {
        let rsdp = info.rsdp_addr.into_option();
        let physical_memory_offset = info.physical_memory_offset.into_option();
        BootDescription {
            entry: Entry::Bootloader,
            memory_regions: &info.memory_regions,
            physical_memory_offset,
            rsdp,
            cmdline: CmdlineSource::FwCfg,
        }
    }
}
