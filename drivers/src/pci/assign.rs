//! Giving addresses to BARs that the firmware left unassigned.
//!
//! Firmware normally assigns every BAR, but it may skip devices it does not
//! boot from, or run out of its own window. A BAR is unassigned when its
//! address reads back as zero while it has a size. Skiff then takes the next
//! naturally aligned range from an address window (the kernel picks one above
//! everything already assigned) and programs the BAR.

use core::fmt;

use virtio_drivers::transport::pci::bus::{BarInfo, ConfigurationAccess, DeviceFunction, MemoryBarType, PciRoot};

use super::scan::Function;

/// A range of bus addresses to hand out, `[next, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressWindow {
    /// The lowest address not yet handed out.
    pub next: u64,
    /// One past the last usable address.
    pub end: u64,
}

impl AddressWindow {
    /// Takes `size` bytes aligned to `size` (BARs are naturally aligned; a BAR's size is a power of two).
    pub fn take(&mut self, size: u64) -> Option<u64> {
        if !size.is_power_of_two() {
            return None;
        }
        let start = self.next.checked_next_multiple_of(size)?;
        let end = start.checked_add(size)?;
        if end > self.end {
            return None;
        }
        self.next = end;
        Some(start)
    }

    /// The window without `[start, start + len)`, a range that is not BAR
    /// space (an ECAM region): cut at it when it lies inside, moved past its
    /// end when it covers the window's start. QEMU's microvm puts its ECAM
    /// (256 MiB at 0xE000_0000) right above the PCIe bridge's 32-bit window,
    /// inside the default `0xC000_0000..PCI_MEMORY_END`.
    pub fn clear_of(self, start: u64, len: u64) -> AddressWindow {
        let end = start.saturating_add(len);
        if end <= self.next || start >= self.end {
            self
        } else if start > self.next {
            AddressWindow { end: start, ..self }
        } else {
            AddressWindow { next: end.min(self.end), ..self }
        }
    }
}

/// Why a BAR could not be assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignError {
    /// The window has no aligned room for a BAR of this size.
    NoRoom {
        /// Which BAR.
        bar: u8,
        /// Its size in bytes.
        size: u64,
    },
}

impl fmt::Display for AssignError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            AssignError::NoRoom { bar, size } => write!(f, "no room for BAR {bar} ({size:#x} bytes) in the window"),
        }
    }
}

/// Assigns every unassigned BAR of `function`: memory BARs from `memory`
/// (32-bit BARs only below 4 GiB), I/O BARs from `io`. Updates
/// `function.bars` and returns how many BARs were assigned.
pub fn assign_missing_bars<C: ConfigurationAccess>(
    root: &mut PciRoot<C>,
    function: &mut Function,
    memory: &mut AddressWindow,
    io: &mut AddressWindow,
) -> Result<usize, AssignError> {
    let mut assigned = 0;
    for index in 0..function.bars.len() {
        let bar = index as u8;
        match function.bars[index] {
            Some(BarInfo::Memory { address: 0, size, address_type, prefetchable }) if size > 0 => {
                let address = memory.take(size).ok_or(AssignError::NoRoom { bar, size })?;
                match address_type {
                    MemoryBarType::Width64 => root.set_bar_64(function.address, bar, address),
                    _ if address + size <= 1 << 32 => root.set_bar_32(function.address, bar, address as u32),
                    _ => return Err(AssignError::NoRoom { bar, size }),
                }
                function.bars[index] = Some(BarInfo::Memory { address, size, address_type, prefetchable });
                log_assigned(function.address, bar, address, size);
                assigned += 1;
            }
            Some(BarInfo::IO { address: 0, size }) if size > 0 => {
                let address = io.take(u64::from(size)).ok_or(AssignError::NoRoom { bar, size: u64::from(size) })?;
                root.set_bar_32(function.address, bar, address as u32);
                function.bars[index] = Some(BarInfo::IO { address: address as u32, size });
                log_assigned(function.address, bar, address, u64::from(size));
                assigned += 1;
            }
            _ => {}
        }
    }
    Ok(assigned)
}

/// Where 32-bit memory BARs may go on a PC: below the I/O APIC, local APIC
/// and firmware at 0xFEC0_0000 and up.
pub const PCI_MEMORY_END: u64 = 0xFEC0_0000;
/// I/O BARs stay above the legacy ISA ports.
pub const PCI_IO_START: u64 = 0x1000;
/// The end of the 16-bit I/O port space.
pub const PCI_IO_END: u64 = 0x1_0000;

/// Address windows above everything the firmware assigned: memory from the
/// end of the highest 32-bit memory BAR to `PCI_MEMORY_END`, I/O from the
/// end of the highest I/O BAR to the end of the port space.
pub fn free_windows(functions: &[Function]) -> (AddressWindow, AddressWindow) {
    let mut memory_next = 0;
    let mut io_next = PCI_IO_START;
    for bar in functions.iter().flat_map(|f| f.bars.iter().flatten()) {
        match *bar {
            BarInfo::Memory { address, size, .. } if address != 0 && address < PCI_MEMORY_END => {
                memory_next = memory_next.max(address.saturating_add(size));
            }
            BarInfo::IO { address, size } if address != 0 => {
                io_next = io_next.max(u64::from(address) + u64::from(size))
            }
            _ => {}
        }
    }
    // With nothing assigned at all, start in the middle of the 32-bit hole.
    let memory_next = if memory_next == 0 { 0xC000_0000 } else { memory_next };
    (AddressWindow { next: memory_next, end: PCI_MEMORY_END }, AddressWindow { next: io_next, end: PCI_IO_END })
}

fn log_assigned(function: DeviceFunction, bar: u8, address: u64, size: u64) {
    log::info!("pci {function}: BAR {bar} was unassigned, now {address:#x}+{size:#x}");
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn window_aligns_naturally_and_refuses_overflow() {
        let mut w = AddressWindow { next: 0x1001, end: 0x10000 };
        assert_eq!(w.take(0x1000), Some(0x2000));
        assert_eq!(w.take(0x4000), Some(0x4000));
        assert_eq!(w.take(0x8000), Some(0x8000));
        assert_eq!(w.take(0x10), None, "window is full");
        assert_eq!(w.take(3), None, "sizes are powers of two");
        let mut top = AddressWindow { next: u64::MAX - 0x10, end: u64::MAX };
        assert_eq!(top.take(0x100), None);
    }

    #[test]
    fn a_window_stays_clear_of_an_ecam_region() {
        const ECAM: (u64, u64) = (0xE000_0000, 256 << 20);
        let (memory, _) = free_windows(&[]);
        // microvm,pcie=on: nothing assigned, the ECAM inside the default window.
        assert_eq!(memory.clear_of(ECAM.0, ECAM.1), AddressWindow { next: 0xC000_0000, end: 0xE000_0000 });
        // Covering the window's start, and elsewhere.
        let above = AddressWindow { next: 0xE800_0000, end: PCI_MEMORY_END };
        assert_eq!(above.clear_of(ECAM.0, ECAM.1), AddressWindow { next: 0xF000_0000, end: PCI_MEMORY_END });
        let q35 = AddressWindow { next: 0xFEC0_0000 - 0x10_0000, end: PCI_MEMORY_END };
        assert_eq!(q35.clear_of(0xB000_0000, 256 << 20), q35);
        let swallowed = AddressWindow { next: 0xE100_0000, end: 0xE200_0000 };
        assert_eq!(swallowed.clear_of(ECAM.0, ECAM.1).take(0x1000), None);
    }
}
