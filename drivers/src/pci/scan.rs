//! Walking every bus for functions.

use alloc::vec::Vec;
use core::fmt;
use core::ops::RangeInclusive;

use virtio_drivers::transport::pci::bus::{
    BarInfo, CapabilityInfo, Command, ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType, PciRoot,
};

use super::capability_name;

/// Functions have at most six BARs (type-0 header).
pub const MAX_BARS: usize = 6;
/// Capabilities are at least 4 bytes, dword-aligned, after the 64-byte
/// header in a 256-byte space: at most 48 of them.
pub const MAX_CAPABILITIES: usize = (256 - 64) / 4;

/// A function found on the bus, with what a driver needs to know about it.
#[derive(Clone, Debug)]
pub struct Function {
    /// Where it is.
    pub address: DeviceFunction,
    /// IDs, class and header type.
    pub info: DeviceFunctionInfo,
    /// Its BARs (type-0 headers only; bridges have none here). A 64-bit BAR
    /// fills its slot and leaves the next one `None`.
    pub bars: [Option<BarInfo>; MAX_BARS],
    /// Its capability list, in order.
    pub capabilities: Vec<CapabilityInfo>,
}

impl Function {
    /// The capability with `id`, if the function has one.
    pub fn capability(&self, id: u8) -> Option<&CapabilityInfo> {
        self.capabilities.iter().find(|c| c.id == id)
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let i = &self.info;
        write!(
            f,
            "{} {:04x}:{:04x} class {:02x}.{:02x}.{:02x} ({})",
            self.address,
            i.vendor_id,
            i.device_id,
            i.class,
            i.subclass,
            i.prog_if,
            class_name(i.class)
        )?;
        if !self.capabilities.is_empty() {
            write!(f, " caps")?;
            for c in &self.capabilities {
                write!(f, " {}@{:#x}", capability_name(c.id), c.offset)?;
            }
        }
        for (n, bar) in self.bars.iter().enumerate() {
            match bar {
                Some(BarInfo::Memory { address, size, .. }) if *size > 0 => {
                    write!(f, " bar{n}=mem {address:#x}+{size:#x}")?
                }
                Some(BarInfo::IO { address, size }) if *size > 0 => write!(f, " bar{n}=io {address:#x}+{size:#x}")?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// The PCI base class, by name (PCI Code and ID Assignment Specification, 1).
pub fn class_name(class: u8) -> &'static str {
    match class {
        0x00 => "unclassified",
        0x01 => "storage",
        0x02 => "network",
        0x03 => "display",
        0x04 => "multimedia",
        0x05 => "memory",
        0x06 => "bridge",
        0x07 => "communication",
        0x08 => "system peripheral",
        0x0C => "serial bus",
        _ => "other",
    }
}

/// Finds every function on the buses in `buses` (all 256 for the port
/// mechanism; an ECAM region's own range), logging each at `info`.
///
/// BARs are sized with the function's memory and I/O decoding switched off,
/// so that the all-ones probe value is never decoded as an address.
pub fn scan<C: ConfigurationAccess>(root: &mut PciRoot<C>, buses: RangeInclusive<u8>) -> Vec<Function> {
    let mut found = Vec::new();
    for bus in buses {
        let functions: Vec<_> = root.enumerate_bus(bus).collect();
        for (address, info) in functions {
            let bars = if info.header_type == HeaderType::Standard {
                read_bars(root, address)
            } else {
                [const { None }; MAX_BARS]
            };
            // A buggy device can chain its capabilities into a loop; the list
            // cannot hold more than fit after the 64-byte header.
            let capabilities = root.capabilities(address).take(MAX_CAPABILITIES).collect();
            let function = Function { address, info, bars, capabilities };
            log::info!("pci {function}");
            found.push(function);
        }
    }
    found
}

fn read_bars<C: ConfigurationAccess>(root: &mut PciRoot<C>, address: DeviceFunction) -> [Option<BarInfo>; MAX_BARS] {
    let (_, command) = root.get_status_command(address);
    root.set_command(address, command - (Command::IO_SPACE | Command::MEMORY_SPACE));
    let bars = root.bars(address);
    root.set_command(address, command);
    match bars {
        Ok(bars) => bars,
        Err(e) => {
            log::warn!("pci {address}: cannot read BARs: {e}");
            [const { None }; MAX_BARS]
        }
    }
}
