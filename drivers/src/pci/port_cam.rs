//! PCI configuration mechanism #1: two I/O ports, 0xCF8 (address) and 0xCFC
//! (data). Every PC has it; it reaches the first 256 bytes of each function's
//! configuration space. Machines without an ACPI MCFG table (QEMU's `pc`)
//! offer only this.
//!
//! Ref: PCI Local Bus Specification 3.0, 3.2.2.3.2.

use virtio_drivers::transport::pci::bus::{Cam, ConfigurationAccess, DeviceFunction};
use x86_64::instructions::port::Port;

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// Configuration access through ports 0xCF8/0xCFC.
///
/// There is one such pair per machine, and each access is an address write
/// followed by a data access: copies of a `PortCam` must not be used from
/// two CPUs or from an interrupt handler at once (Skiff uses it from its
/// single-CPU boot path only).
#[derive(Clone)]
pub struct PortCam {
    _private: (),
}

impl PortCam {
    /// Claims the configuration ports.
    ///
    /// # Safety
    /// Nothing else may use ports 0xCF8–0xCFF while this value lives, and there
    /// must be only one `PortCam`.
    pub unsafe fn new() -> Self {
        PortCam { _private: () }
    }

    /// The value for port 0xCF8 that selects the dword holding `offset`:
    /// enable bit 31, then bus, device, function and the dword's offset.
    pub fn address(function: DeviceFunction, offset: u8) -> u32 {
        const ENABLE: u32 = 1 << 31;
        ENABLE | Cam::MmioCam.cam_offset(function, offset & 0xFC)
    }

    fn select(function: DeviceFunction, offset: u8) {
        // SAFETY: 0xCF8 is the configuration address port, owned by this
        // PortCam (constructor contract); selecting a register has no effect
        // on its own.
        unsafe { Port::<u32>::new(CONFIG_ADDRESS).write(Self::address(function, offset)) }
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, function: DeviceFunction, offset: u8) -> u32 {
        Self::select(function, offset);
        // SAFETY: 0xCFC is the configuration data port, owned by this PortCam;
        // reading configuration space has no side effects.
        unsafe { Port::<u32>::new(CONFIG_DATA).read() }
    }

    fn write_word(&mut self, function: DeviceFunction, offset: u8, data: u32) {
        Self::select(function, offset);
        // SAFETY: as in `read_word`; callers write registers as the PCI
        // specification defines them.
        unsafe { Port::<u32>::new(CONFIG_DATA).write(data) }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam { _private: () }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn address_packs_bus_device_function_and_dword() {
        let f = DeviceFunction { bus: 0x12, device: 0x1f, function: 5 };
        assert_eq!(PortCam::address(f, 0), 0x8000_0000 | 0x12 << 16 | 0x1f << 11 | 5 << 8);
        assert_eq!(PortCam::address(f, 0x3e), PortCam::address(f, 0x3c));
        assert_eq!(PortCam::address(DeviceFunction { bus: 0, device: 0, function: 0 }, 0x10), 0x8000_0010);
    }
}
