//! The legacy virtio PCI transport: registers in an I/O-port BAR.
//!
//! QEMU's `-device virtio-net-pci,disable-modern=on` (and pre-1.0 devices)
//! have no virtio capabilities, so `virtio-drivers`' `PciTransport` cannot
//! drive them. Their interface is a small register block at BAR 0:
//!
//! ```text
//! 0x00  u32  device features (bits 0–31 only)
//! 0x04  u32  driver features
//! 0x08  u32  queue address, as a 4 KiB page number (0 = not set up)
//! 0x0C  u16  queue size (read-only: the driver must use it)
//! 0x0E  u16  queue select
//! 0x10  u16  queue notify
//! 0x12  u8   device status
//! 0x13  u8   ISR status (reading it acknowledges the interrupt)
//! 0x14  ...  with MSI-X enabled: config vector (u16), queue vector (u16)
//! 0x14 or 0x18  device-specific configuration
//! ```
//!
//! Ref: virtio spec 4.1.4.10 (legacy interfaces: a note on PCI device layout),
//! 2.7.2 (legacy queue layout).

use core::fmt;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error, PAGE_SIZE, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[cfg(target_arch = "x86_64")]
pub use crate::ports::CpuPorts;
pub use crate::ports::IoPorts;

const DEVICE_FEATURES: u16 = 0x00;
const DRIVER_FEATURES: u16 = 0x04;
const QUEUE_PFN: u16 = 0x08;
const QUEUE_SIZE: u16 = 0x0C;
const QUEUE_SELECT: u16 = 0x0E;
const QUEUE_NOTIFY: u16 = 0x10;
const DEVICE_STATUS: u16 = 0x12;
const ISR_STATUS: u16 = 0x13;
/// With MSI-X enabled: the MSI-X entry for configuration changes...
const CONFIG_VECTOR: u16 = 0x14;
/// ...and for the selected queue.
const QUEUE_VECTOR: u16 = 0x16;
/// Written to a vector register: no vector (spec 4.1.4.3).
pub const NO_VECTOR: u16 = 0xFFFF;
/// Device configuration starts here without MSI-X...
const CONFIG_NO_MSIX: u16 = 0x14;
/// ...and here with MSI-X enabled (two vector registers come first).
const CONFIG_MSIX: u16 = 0x18;
/// The largest config read or write at once; virtio-net's is 12 bytes.
const MAX_CONFIG_ACCESS: usize = 64;

/// Why a legacy transport could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyError {
    /// The I/O BAR is smaller than the common registers.
    BarTooSmall(u32),
    /// The BAR does not fit in the 16-bit port space.
    BadBar(u32),
}

impl fmt::Display for LegacyError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            LegacyError::BarTooSmall(size) => write!(f, "legacy virtio I/O BAR is only {size} bytes"),
            LegacyError::BadBar(addr) => write!(f, "legacy virtio I/O BAR at {addr:#x} is outside the port space"),
        }
    }
}

/// A legacy virtio device behind an I/O BAR.
pub struct LegacyTransport<P: IoPorts> {
    ports: P,
    base: u16,
    bar_size: u16,
    device_type: DeviceType,
    config: u16,
}

impl<P: IoPorts> LegacyTransport<P> {
    /// A transport over the I/O BAR at `base` of `size` bytes. `msix_enabled`
    /// says where the device configuration starts (it moves by 4 bytes when
    /// the function's MSI-X is on).
    pub fn new(
        ports: P,
        base: u32,
        size: u32,
        device_type: DeviceType,
        msix_enabled: bool,
    ) -> Result<Self, LegacyError> {
        let config = if msix_enabled { CONFIG_MSIX } else { CONFIG_NO_MSIX };
        if size < u32::from(config) {
            return Err(LegacyError::BarTooSmall(size));
        }
        let base16 = u16::try_from(base).map_err(|_| LegacyError::BadBar(base))?;
        let size16 = u16::try_from(size).map_err(|_| LegacyError::BadBar(base))?;
        if base16.checked_add(size16 - 1).is_none() {
            return Err(LegacyError::BadBar(base));
        }
        Ok(LegacyTransport { ports, base: base16, bar_size: size16, device_type, config })
    }

    /// Sets the MSI-X entries for configuration changes and for each
    /// `(queue, entry)`; false if the device refused one (it reads back
    /// `NO_VECTOR`) or MSI-X was not enabled when this transport was made.
    pub fn set_msix_vectors(&mut self, config: u16, queues: &[(u16, u16)]) -> bool {
        if self.config != CONFIG_MSIX {
            return false;
        }
        self.ports.write16(self.port(CONFIG_VECTOR), config);
        let mut ok = self.ports.read16(self.port(CONFIG_VECTOR)) == config;
        for &(queue, entry) in queues {
            self.ports.write16(self.port(QUEUE_SELECT), queue);
            self.ports.write16(self.port(QUEUE_VECTOR), entry);
            ok &= self.ports.read16(self.port(QUEUE_VECTOR)) == entry;
        }
        ok
    }

    fn port(&self, register: u16) -> u16 {
        self.base + register
    }

    /// The port range of `len` config bytes at `offset`, if inside the BAR.
    fn config_port(&self, offset: usize, len: usize) -> Result<u16, Error> {
        if len > MAX_CONFIG_ACCESS {
            return Err(Error::ConfigSpaceTooSmall);
        }
        let start = usize::from(self.config) + offset;
        if start + len > usize::from(self.bar_size) {
            return Err(Error::ConfigSpaceTooSmall);
        }
        Ok(self.base + start as u16)
    }
}

impl<P: IoPorts> Transport for LegacyTransport<P> {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        u64::from(self.ports.read32(self.port(DEVICE_FEATURES)))
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        // Legacy devices have feature bits 0–31 only.
        self.ports.write32(self.port(DRIVER_FEATURES), driver_features as u32);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.ports.write16(self.port(QUEUE_SELECT), queue);
        u32::from(self.ports.read16(self.port(QUEUE_SIZE)))
    }

    fn notify(&mut self, queue: u16) {
        self.ports.write16(self.port(QUEUE_NOTIFY), queue);
    }

    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(u32::from(self.ports.read8(self.port(DEVICE_STATUS))))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.ports.write8(self.port(DEVICE_STATUS), status.bits() as u8);
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {
        // The PCI legacy interface has a fixed 4 KiB page; only MMIO legacy has this register.
    }

    fn requires_legacy_layout(&self) -> bool {
        true
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        // The legacy device derives the rings' places from the descriptor
        // table's page: available ring right after it, used ring on the next
        // page boundary. SplitQueue always lays them out that way.
        let avail_at = descriptors + 16 * u64::from(size);
        let used_at = (avail_at + 6 + 2 * u64::from(size)).next_multiple_of(PAGE_SIZE as u64);
        if driver_area != avail_at || device_area != used_at || !descriptors.is_multiple_of(PAGE_SIZE as u64) {
            log::error!("legacy virtio: queue {queue} rings are not in the legacy layout; not set up");
            return;
        }
        let Ok(pfn) = u32::try_from(descriptors / PAGE_SIZE as u64) else {
            log::error!("legacy virtio: queue {queue} at {descriptors:#x} is above the 44-bit legacy limit");
            return;
        };
        self.ports.write16(self.port(QUEUE_SELECT), queue);
        self.ports.write32(self.port(QUEUE_PFN), pfn);
    }

    fn queue_unset(&mut self, queue: u16) {
        self.ports.write16(self.port(QUEUE_SELECT), queue);
        self.ports.write32(self.port(QUEUE_PFN), 0);
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.ports.write16(self.port(QUEUE_SELECT), queue);
        self.ports.read32(self.port(QUEUE_PFN)) != 0
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::from_bits_truncate(u32::from(self.ports.read8(self.port(ISR_STATUS))))
    }

    fn read_config_generation(&self) -> u32 {
        // Legacy devices have no generation counter, so `read_consistent`
        // reads once; the fields Skiff reads (MAC, status) do not change
        // while it reads them in QEMU, and a torn MAC would only be odd, not unsafe.
        0
    }

    fn read_consistent<T>(&self, f: impl Fn() -> virtio_drivers::Result<T>) -> virtio_drivers::Result<T> {
        super::read_consistent_bounded(|| self.read_config_generation(), f)
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> virtio_drivers::Result<T> {
        let len = size_of::<T>();
        let port = self.config_port(offset, len)?;
        let mut bytes = [0u8; MAX_CONFIG_ACCESS];
        for (i, b) in bytes[..len].iter_mut().enumerate() {
            *b = self.ports.read8(port + i as u16);
        }
        T::read_from_bytes(&bytes[..len]).map_err(|_| Error::ConfigSpaceTooSmall)
    }

    fn write_config_space<T: IntoBytes + Immutable>(&mut self, offset: usize, value: T) -> virtio_drivers::Result<()> {
        let port = self.config_port(offset, size_of::<T>())?;
        for (i, b) in value.as_bytes().iter().enumerate() {
            self.ports.write8(port + i as u16, *b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    /// Ports as a byte map, with a log of accesses.
    #[derive(Default)]
    struct FakePorts {
        bytes: RefCell<HashMap<u16, u8>>,
        log: RefCell<Vec<(char, u16, u32)>>,
    }

    impl FakePorts {
        fn get(&self, port: u16, n: u16) -> u32 {
            (0..n).map(|i| u32::from(*self.bytes.borrow().get(&(port + i)).unwrap_or(&0)) << (8 * i)).sum()
        }
        fn set(&self, port: u16, n: u16, v: u32) {
            for i in 0..n {
                self.bytes.borrow_mut().insert(port + i, (v >> (8 * i)) as u8);
            }
        }
    }

    impl IoPorts for FakePorts {
        fn read8(&self, p: u16) -> u8 {
            self.log.borrow_mut().push(('r', p, 1));
            self.get(p, 1) as u8
        }
        fn read16(&self, p: u16) -> u16 {
            self.log.borrow_mut().push(('r', p, 2));
            self.get(p, 2) as u16
        }
        fn read32(&self, p: u16) -> u32 {
            self.log.borrow_mut().push(('r', p, 4));
            self.get(p, 4)
        }
        fn write8(&mut self, p: u16, v: u8) {
            self.log.borrow_mut().push(('w', p, v.into()));
            self.set(p, 1, v.into())
        }
        fn write16(&mut self, p: u16, v: u16) {
            self.log.borrow_mut().push(('w', p, v.into()));
            self.set(p, 2, v.into())
        }
        fn write32(&mut self, p: u16, v: u32) {
            self.log.borrow_mut().push(('w', p, v));
            self.set(p, 4, v)
        }
    }

    const BASE: u16 = 0xc040;

    fn transport(msix: bool) -> LegacyTransport<FakePorts> {
        let ports = FakePorts::default();
        ports.set(BASE, 4, 0x0001_0020 | 1 << 27); // MAC, STATUS, ANY_LAYOUT
        ports.set(BASE + 0x0C, 2, 256);
        // MAC 52:54:00:12:34:56 and status 1 where the config is without MSI-X
        for (i, b) in [0x52u8, 0x54, 0, 0x12, 0x34, 0x56, 1, 0].iter().enumerate() {
            ports.set(BASE + 0x14 + i as u16, 1, u32::from(*b));
        }
        LegacyTransport::new(ports, u32::from(BASE), 0x20, DeviceType::Network, msix).unwrap()
    }

    #[test]
    fn features_are_32_bits() {
        let mut t = transport(false);
        assert_eq!(t.read_device_features(), 0x0801_0020);
        t.write_driver_features(1 << 32 | 0x20);
        assert_eq!(t.ports.get(BASE + 4, 4), 0x20, "bit 32 cannot be written to a legacy device");
    }

    #[test]
    fn config_reads_come_from_offset_0x14_or_0x18_with_msix() {
        let t = transport(false);
        assert_eq!(t.read_config_space::<[u8; 6]>(0).unwrap(), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(t.read_config_space::<u16>(6).unwrap(), 1);
        let t = transport(true);
        assert_eq!(t.read_config_space::<[u8; 2]>(0).unwrap(), [0x34, 0x56], "config moved by 4 with MSI-X");
    }

    #[test]
    fn config_access_past_the_bar_is_an_error() {
        let t = transport(false);
        assert!(t.read_config_space::<u32>(8).is_ok());
        assert!(matches!(t.read_config_space::<u32>(9), Err(Error::ConfigSpaceTooSmall)));
        assert!(matches!(t.read_config_space::<[u8; 65]>(0), Err(Error::ConfigSpaceTooSmall)));
    }

    #[test]
    fn queue_set_writes_the_page_number_of_the_descriptor_table() {
        let mut t = transport(false);
        assert_eq!(t.max_queue_size(0), 256);
        let desc: u64 = 0x12_3000;
        let avail = desc + 16 * 256;
        let used = (avail + 6 + 512).next_multiple_of(4096);
        t.queue_set(0, 256, desc, avail, used);
        assert!(t.queue_used(0));
        assert_eq!(t.ports.get(BASE + 8, 4), 0x123);
        t.queue_unset(0);
        assert!(!t.queue_used(0));
        // A layout the device could not find is refused, not half-applied.
        t.queue_set(0, 256, desc, avail + 8, used);
        assert!(!t.queue_used(0));
    }

    #[test]
    fn status_isr_and_notify_use_their_registers() {
        let mut t = transport(false);
        t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        assert_eq!(t.ports.get(BASE + 0x12, 1), 3);
        assert_eq!(t.get_status(), DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        t.ports.set(BASE + 0x13, 1, 3);
        assert_eq!(
            t.ack_interrupt().bits(),
            (InterruptStatus::QUEUE_INTERRUPT | InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT).bits()
        );
        t.notify(1);
        assert_eq!(t.ports.log.borrow().last(), Some(&('w', BASE + 0x10, 1)));
    }

    #[test]
    fn bars_outside_the_port_space_are_refused() {
        assert_eq!(
            LegacyTransport::new(FakePorts::default(), 0x1_0000, 0x20, DeviceType::Network, false).err(),
            Some(LegacyError::BadBar(0x1_0000))
        );
        assert_eq!(
            LegacyTransport::new(FakePorts::default(), 0xfff0, 0x20, DeviceType::Network, false).err(),
            Some(LegacyError::BadBar(0xfff0))
        );
        assert_eq!(
            LegacyTransport::new(FakePorts::default(), 0xc000, 0x10, DeviceType::Network, false).err(),
            Some(LegacyError::BarTooSmall(0x10))
        );
    }
}
