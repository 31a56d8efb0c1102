//! The address of a PCI function, and how it maps onto the two ways of
//! reaching configuration space.

use core::fmt;

/// A PCI function: bus (0–255), device (0–31) and function (0–7), printed the
/// way `lspci` does (`00:03.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    bus: u8,
    device: u8,
    function: u8,
}

/// A device or function number out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidAddress {
    /// The device number given.
    pub device: u8,
    /// The function number given.
    pub function: u8,
}

impl fmt::Display for InvalidAddress {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "no PCI function {}.{}: devices are 0-31, functions 0-7", self.device, self.function)
    }
}

impl PciAddress {
    /// Devices per bus.
    pub const DEVICES: u8 = 32;
    /// Functions per device.
    pub const FUNCTIONS: u8 = 8;
    /// Bytes of configuration space per function with the legacy port
    /// mechanism; ECAM gives 4096 (PCIe extended configuration space).
    pub const LEGACY_CONFIG_SIZE: u16 = 256;
    /// Bytes of configuration space per function under ECAM.
    pub const ECAM_CONFIG_SIZE: u32 = 4096;

    /// The function at `bus:device.function`, if `device` and `function` are in range.
    pub const fn new(bus: u8, device: u8, function: u8) -> Result<Self, InvalidAddress> {
        if device < Self::DEVICES && function < Self::FUNCTIONS {
            Ok(PciAddress { bus, device, function })
        } else {
            Err(InvalidAddress { device, function })
        }
    }

    /// The bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// The device number on the bus.
    pub const fn device(self) -> u8 {
        self.device
    }

    /// The function number within the device.
    pub const fn function(self) -> u8 {
        self.function
    }

    /// The value to write to port 0xCF8 to reach the aligned dword holding
    /// register `offset` with configuration mechanism #1: enable bit 31, bus in
    /// bits 23–16, device in 15–11, function in 10–8, dword offset in 7–2.
    /// The data then moves through port `0xCFC + (offset & 3)`.
    pub const fn cam_address(self, offset: u8) -> u32 {
        const ENABLE: u32 = 1 << 31;
        ENABLE
            | (self.bus as u32) << 16
            | (self.device as u32) << 11
            | (self.function as u32) << 8
            | (offset as u32 & 0xFC)
    }

    /// The byte offset of this function's 4 KiB configuration space from the
    /// start of an ECAM region whose first bus is `start_bus`, or `None` if
    /// this function's bus is below it: bus, device and function index the
    /// region directly (bits 27–20, 19–15, 14–12).
    pub const fn ecam_offset(self, start_bus: u8) -> Option<u64> {
        if self.bus < start_bus {
            return None;
        }
        Some(
            ((self.bus - start_bus) as u64) << 20
                | (self.device as u64) << 15
                | (self.function as u64) << 12,
        )
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn displays_like_lspci() {
        assert_eq!(PciAddress::new(0, 3, 0).unwrap().to_string(), "00:03.0");
        assert_eq!(PciAddress::new(0xab, 0x1f, 7).unwrap().to_string(), "ab:1f.7");
    }

    #[test]
    fn rejects_device_and_function_out_of_range() {
        assert_eq!(PciAddress::new(0, 32, 0), Err(InvalidAddress { device: 32, function: 0 }));
        assert_eq!(PciAddress::new(0, 0, 8), Err(InvalidAddress { device: 0, function: 8 }));
        assert!(PciAddress::new(255, 31, 7).is_ok());
    }

    #[test]
    fn cam_address_packs_fields_and_aligns_offset() {
        let a = PciAddress::new(0x12, 0x1f, 5).unwrap();
        assert_eq!(a.cam_address(0x00), 0x8000_0000 | 0x12 << 16 | 0x1f << 11 | 5 << 8);
        // Sub-dword offsets address the containing dword.
        assert_eq!(a.cam_address(0x3e), a.cam_address(0x3c));
        assert_eq!(a.cam_address(0x3c) & 0xff, 0x3c);
        assert_eq!(PciAddress::new(0, 0, 0).unwrap().cam_address(0x10), 0x8000_0010);
    }

    #[test]
    fn ecam_offset_is_relative_to_the_start_bus() {
        let a = PciAddress::new(1, 2, 3).unwrap();
        assert_eq!(a.ecam_offset(0), Some(1 << 20 | 2 << 15 | 3 << 12));
        assert_eq!(a.ecam_offset(1), Some(2 << 15 | 3 << 12));
        assert_eq!(a.ecam_offset(2), None);
        let last = PciAddress::new(255, 31, 7).unwrap();
        assert_eq!(last.ecam_offset(0), Some(256 * 1024 * 1024 - 4096));
    }
}
