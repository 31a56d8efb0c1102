//! MSI-X: interrupts as memory writes, one table entry per vector.
//!
//! The capability says where the table is (a BAR and an offset) and how many
//! entries it has. Each 16-byte entry holds the address to write (for x86,
//! the local APIC's 0xFEE0_0000 plus the destination APIC id), the data to
//! write (the vector), and a mask bit. Setting the capability's enable bit
//! switches the function from INTx to MSI-X.
//!
//! Ref: PCI Local Bus Specification 3.0, 6.8.2; Intel SDM vol. 3, 11.11 (MSI
//! message address and data on x86).

use core::ptr::NonNull;

use virtio_drivers::transport::pci::bus::ConfigurationAccess;

use super::CAP_MSIX;
use super::scan::Function;

/// Message control (upper half of the capability's first dword): enable.
const CONTROL_ENABLE: u32 = 1 << 15;
/// Message control: mask every vector of the function.
const CONTROL_FUNCTION_MASK: u32 = 1 << 14;
/// Message control bits 10..0: table size minus one.
const CONTROL_TABLE_SIZE: u32 = 0x7FF;
/// Table entry size, and the offsets within an entry.
const ENTRY_SIZE: usize = 16;
const ENTRY_ADDRESS_LOW: usize = 0;
const ENTRY_ADDRESS_HIGH: usize = 4;
const ENTRY_DATA: usize = 8;
const ENTRY_VECTOR_CONTROL: usize = 12;
/// Vector control: masked.
const VECTOR_MASKED: u32 = 1;
/// The capability's second dword: the table's BAR indicator (bits 2..0) and
/// its offset in that BAR (bits 31..3, 8-byte aligned). PCI 3.0, 6.8.2.4.
const TABLE_REGISTER: u8 = 4;
const TABLE_BIR: u32 = 0x7;
/// The x86 MSI address window (Intel SDM vol. 3, 11.11.1); the destination
/// APIC id goes in bits 19..12.
pub const X86_MSI_ADDRESS: u64 = 0xFEE0_0000;

/// Where a function's MSI-X table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixInfo {
    /// Offset of the capability in configuration space.
    pub capability: u8,
    /// Entries in the table.
    pub table_size: u16,
    /// BAR holding the table.
    pub table_bar: u8,
    /// Offset of the table in that BAR.
    pub table_offset: u32,
}

impl MsixInfo {
    /// Reads the MSI-X capability of `function`, if it has one.
    pub fn read<C: ConfigurationAccess>(access: &C, function: &Function) -> Option<MsixInfo> {
        let cap = function.capability(CAP_MSIX)?;
        let control = u32::from(cap.private_header);
        let table = access.read_word(function.address, cap.offset + TABLE_REGISTER);
        Some(MsixInfo {
            capability: cap.offset,
            table_size: (control & CONTROL_TABLE_SIZE) as u16 + 1,
            table_bar: (table & TABLE_BIR) as u8,
            table_offset: table & !TABLE_BIR,
        })
    }

    /// Bytes the table occupies.
    pub fn table_bytes(&self) -> usize {
        usize::from(self.table_size) * ENTRY_SIZE
    }

    /// Turns MSI-X on (and INTx off) for the function, all vectors unmasked
    /// at the function level (each entry keeps its own mask).
    pub fn enable<C: ConfigurationAccess>(&self, access: &mut C, function: &Function) {
        let header = access.read_word(function.address, self.capability);
        let header = (header | CONTROL_ENABLE << 16) & !(CONTROL_FUNCTION_MASK << 16);
        access.write_word(function.address, self.capability, header);
    }

    /// Whether MSI-X is on.
    pub fn enabled<C: ConfigurationAccess>(&self, access: &C, function: &Function) -> bool {
        access.read_word(function.address, self.capability) & (CONTROL_ENABLE << 16) != 0
    }
}

/// A mapped MSI-X table.
pub struct MsixTable {
    base: NonNull<u8>,
    entries: u16,
}

impl MsixTable {
    /// The table of `entries` entries mapped at `base`.
    ///
    /// # Safety
    /// `base` must map the function's MSI-X table, uncached, for the life of
    /// this value, and nothing else may write it.
    pub unsafe fn new(base: NonNull<u8>, entries: u16) -> Self {
        MsixTable { base, entries }
    }

    /// Points entry `index` at `vector` on the CPU with local APIC `apic_id`,
    /// unmasked. Returns false if there is no such entry.
    pub fn route(&mut self, index: u16, vector: u8, apic_id: u8) -> bool {
        if index >= self.entries {
            return false;
        }
        let address = X86_MSI_ADDRESS | u64::from(apic_id) << 12;
        // Mask while changing the entry, so a half-written one never fires.
        self.write(index, ENTRY_VECTOR_CONTROL, VECTOR_MASKED);
        self.write(index, ENTRY_ADDRESS_LOW, address as u32);
        self.write(index, ENTRY_ADDRESS_HIGH, (address >> 32) as u32);
        // Fixed delivery, edge-triggered: the vector alone.
        self.write(index, ENTRY_DATA, u32::from(vector));
        self.write(index, ENTRY_VECTOR_CONTROL, 0);
        true
    }

    fn write(&mut self, index: u16, field: usize, value: u32) {
        let at = usize::from(index) * ENTRY_SIZE + field;
        // SAFETY: `index < entries`, so `at` is inside the mapped table
        // (constructor contract), and dword-aligned.
        unsafe { self.base.as_ptr().add(at).cast::<u32>().write_volatile(value) }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn entries_hold_address_data_and_unmasked_control() {
        let mut memory = vec![0xFFFF_FFFFu32; 4 * 3];
        let base = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `memory` stands in for a 3-entry table and outlives `table`.
        let mut table = unsafe { MsixTable::new(base, 3) };
        assert!(table.route(2, 0x42, 5));
        assert!(!table.route(3, 0x43, 0), "no fourth entry");
        assert_eq!(&memory[8..12], &[0xFEE0_5000, 0, 0x42, 0]);
        assert_eq!(&memory[0..4], &[0xFFFF_FFFF; 4], "other entries untouched");
    }
}
