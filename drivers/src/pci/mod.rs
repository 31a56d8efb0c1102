//! PCI: finding every function, its BARs and its capabilities.
//!
//! The bus types come from `virtio-drivers` (`PciRoot`, `DeviceFunction`,
//! `BarInfo`, the ECAM `MmioCam`); Skiff adds the legacy port-I/O
//! configuration mechanism ([`PortCam`]), a scan of all buses that logs what
//! it finds, BAR sizing with decoding off, and assignment of BARs that the
//! firmware left empty.
//!
//! Ref: PCI Local Bus Specification 3.0, 6.1 (configuration header), 6.2.5
//! (BARs), 6.7 (capabilities); PCI Express Base Specification, 7.2.2 (ECAM).

mod assign;
mod cba;
mod ecam;
pub mod intx;
mod msix;
mod port_cam;
mod scan;

pub use assign::{AddressWindow, AssignError, assign_missing_bars, free_windows};
pub use cba::find_cba;
pub use ecam::Ecam;
pub use msix::{MsixInfo, MsixTable, X86_MSI_ADDRESS};
pub use port_cam::PortCam;
pub use scan::{Function, class_name, scan};
pub use virtio_drivers::transport::pci::bus::{
    BarInfo, Cam, CapabilityInfo, Command, ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType,
    MemoryBarType, MmioCam, PciRoot,
};

/// Physical addresses on x86-64 have at most 52 bits (Intel SDM vol. 3A,
/// 4.1.4; AMD APM vol. 2, 5.1): a BAR region ending above this cannot be
/// mapped, and is refused rather than handed to the page tables.
pub const PHYS_ADDR_LIMIT: u64 = 1 << 52;

/// Capability IDs named in logs (PCI Code and ID Assignment Specification, 2).
pub const CAP_MSI: u8 = 0x05;
/// Vendor-specific capability: virtio's modern transport describes its
/// register blocks with these (virtio 1.2, 4.1.4).
pub const CAP_VENDOR: u8 = 0x09;
/// MSI-X (PCI 3.0, 6.8.2).
pub const CAP_MSIX: u8 = 0x11;
/// PCI Express.
pub const CAP_PCIE: u8 = 0x10;
/// Power management.
pub const CAP_POWER: u8 = 0x01;

/// A short name for a capability ID.
pub fn capability_name(id: u8) -> &'static str {
    match id {
        CAP_POWER => "pm",
        CAP_MSI => "msi",
        CAP_VENDOR => "vendor",
        CAP_PCIE => "pcie",
        CAP_MSIX => "msix",
        _ => "other",
    }
}

/// Turns on what a driver needs of a function: memory and I/O decoding, bus
/// mastering (DMA), and its INTx line. Firmware often leaves bus mastering
/// off (SeaBIOS does), and a virtio device that cannot master the bus never
/// touches its queues.
pub fn enable_device<C: ConfigurationAccess>(root: &mut PciRoot<C>, function: DeviceFunction) {
    let (_, command) = root.get_status_command(function);
    let command =
        (command | Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER) - Command::INTERRUPT_DISABLE;
    root.set_command(function, command);
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod test {
    use super::fake::{FakeBar, FakeConfig};
    use super::*;

    const NIC: DeviceFunction = DeviceFunction { bus: 0, device: 3, function: 0 };
    const BRIDGE: DeviceFunction = DeviceFunction { bus: 0, device: 0, function: 0 };
    const FAR: DeviceFunction = DeviceFunction { bus: 7, device: 31, function: 7 };

    fn config() -> FakeConfig {
        let c = FakeConfig::default();
        let mem64 = FakeBar { size: 0x4000, type_bits: 0b100 };
        let io = FakeBar { size: 0x20, type_bits: 1 };
        let mem32 = FakeBar { size: 0x1000, type_bits: 0 };
        c.add(
            NIC,
            0x1af4,
            0x1000,
            0x02,
            [io, mem32, FakeBar::default(), FakeBar::default(), mem64, FakeBar::default()],
        );
        c.capabilities(NIC, &[(CAP_MSIX, 0x98), (CAP_VENDOR, 0x84), (CAP_VENDOR, 0x70)]);
        c.add(BRIDGE, 0x8086, 0x29c0, 0x06, Default::default());
        c.add(FAR, 0x1234, 0x5678, 0x01, Default::default());
        c
    }

    #[test]
    fn scan_finds_functions_on_every_bus_with_bars_and_capabilities() {
        let mut root = PciRoot::new(config());
        let found = scan(&mut root, 0..=255);
        let addresses: Vec<_> = found.iter().map(|f| f.address).collect();
        assert_eq!(addresses, [BRIDGE, NIC, FAR]);
        let nic = &found[1];
        assert_eq!((nic.info.vendor_id, nic.info.device_id, nic.info.class), (0x1af4, 0x1000, 0x02));
        assert_eq!(
            nic.capabilities.iter().map(|c| (c.id, c.offset)).collect::<Vec<_>>(),
            [(0x11, 0x98), (0x09, 0x84), (0x09, 0x70)]
        );
        assert!(matches!(nic.bars[0], Some(BarInfo::IO { address: 0, size: 0x20 })));
        assert!(matches!(nic.bars[1], Some(BarInfo::Memory { address: 0, size: 0x1000, .. })));
        assert!(matches!(
            nic.bars[4],
            Some(BarInfo::Memory { size: 0x4000, address_type: MemoryBarType::Width64, .. })
        ));
        assert!(nic.capability(CAP_MSIX).is_some() && nic.capability(CAP_MSI).is_none());
        let line = nic.to_string();
        assert!(line.starts_with("00:03.0 1af4:1000 class 02.00.00 (network) caps msix@0x98"), "{line}");
    }

    #[test]
    fn bars_are_sized_with_decoding_off_and_the_command_restored() {
        let c = config();
        let command = (Command::IO_SPACE | Command::MEMORY_SPACE).bits();
        c.set_reg(NIC, 4, c.reg(NIC, 4) | u32::from(command));
        let mut root = PciRoot::new(c.clone());
        scan(&mut root, 0..=255);
        let writes: Vec<_> = c.writes().into_iter().filter(|w| w.0 == NIC).collect();
        let first_probe = writes.iter().position(|w| w.1 == 0x10 && w.2 == u32::MAX).expect("BAR 0 probed");
        let decode_off =
            writes[..first_probe].iter().rposition(|w| w.1 == 0x04).expect("command written before probing");
        assert_eq!(writes[decode_off].2 as u16 & command, 0, "decoding still on while probing");
        assert_eq!(c.reg(NIC, 4) as u16 & command, command, "command not restored");
    }

    #[test]
    fn unassigned_bars_get_aligned_addresses_from_their_windows() {
        let c = config();
        let mut root = PciRoot::new(c.clone());
        let mut nic = scan(&mut root, 0..=255).remove(1);
        let mut memory = AddressWindow { next: 0x8000_0800, end: 0x8001_0000 };
        let mut io = AddressWindow { next: 0xc001, end: 0x1_0000 };
        assert_eq!(assign_missing_bars(&mut root, &mut nic, &mut memory, &mut io), Ok(3));
        assert_eq!(c.reg(NIC, 0x10) & !0x3, 0xc020, "I/O BAR aligned to its 0x20 size");
        assert_eq!(c.reg(NIC, 0x14), 0x8000_1000);
        assert_eq!((c.reg(NIC, 0x20) & !0xf, c.reg(NIC, 0x24)), (0x8000_4000, 0), "64-bit BAR in two halves");
        // A re-scan reads the new addresses back.
        let again = scan(&mut root, 0..=255).remove(1);
        assert!(matches!(again.bars[1], Some(BarInfo::Memory { address: 0x8000_1000, .. })));
        // Nothing left to assign the second time.
        assert_eq!(assign_missing_bars(&mut root, &mut nic, &mut memory, &mut io), Ok(0));
    }

    #[test]
    fn free_windows_start_above_what_firmware_assigned() {
        let c = config();
        c.set_reg(NIC, 0x10, 0xc041); // I/O BAR 0 at 0xc040 (+0x20)
        c.set_reg(NIC, 0x14, 0xfebf_1000); // memory BAR 1 (+0x1000)
        let mut root = PciRoot::new(c);
        let found = scan(&mut root, 0..=255);
        let (memory, io) = free_windows(&found);
        assert_eq!(memory, AddressWindow { next: 0xfebf_2000, end: 0xfec0_0000 });
        assert_eq!(io, AddressWindow { next: 0xc060, end: 0x1_0000 });
        let (memory, io) = free_windows(&[]);
        assert_eq!((memory.next, io.next), (0xc000_0000, 0x1000));
    }

    #[test]
    fn a_full_window_is_an_error_not_a_panic() {
        let mut root = PciRoot::new(config());
        let mut nic = scan(&mut root, 0..=255).remove(1);
        let mut memory = AddressWindow { next: 0x1000, end: 0x1800 };
        let mut io = AddressWindow { next: 0xc000, end: 0xd000 };
        assert_eq!(
            assign_missing_bars(&mut root, &mut nic, &mut memory, &mut io),
            Err(AssignError::NoRoom { bar: 1, size: 0x1000 })
        );
    }

    #[test]
    fn a_capability_loop_ends() {
        let c = config();
        // 0x98 → 0x84 → 0x70 → back to 0x98, forever.
        c.set_reg(NIC, 0x70, c.reg(NIC, 0x70) | 0x98 << 8);
        let mut root = PciRoot::new(c);
        let nic = scan(&mut root, 0..=255).remove(1);
        assert_eq!(nic.capabilities.len(), scan::MAX_CAPABILITIES);
    }

    #[test]
    fn enable_device_turns_on_decoding_and_bus_mastering() {
        let c = config();
        let mut root = PciRoot::new(c.clone());
        enable_device(&mut root, NIC);
        let command = c.reg(NIC, 4) as u16;
        let want = (Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER).bits();
        assert_eq!(command & want, want);
    }
}
