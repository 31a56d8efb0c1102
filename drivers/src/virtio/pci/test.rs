//! The PCI transports against a fake function: a configuration space with
//! virtio capabilities (`pci::fake`) and a memory BAR backed by heap memory
//! (the fake `Hal` maps a physical address to the same pointer).

use core::cell::Cell;
use core::ptr::NonNull;
use virtio_drivers::transport::Transport;

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE};

use super::*;
use crate::pci::fake::{FakeBar, FakeConfig};
use crate::pci::{DeviceFunction, PHYS_ADDR_LIMIT, scan};
use crate::virtio::fake::FakeHal;
use crate::virtio::modern::{ModernError, Region};
use crate::virtio::queue::{QueueError, SplitQueue};
use crate::virtio::{CONFIG_READ_ATTEMPTS, legacy::IoPorts};

const NIC: DeviceFunction = DeviceFunction { bus: 0, device: 3, function: 0 };
/// QEMU's layout: BAR 4 (64-bit, 16 KiB) holds the common configuration,
/// ISR, device configuration and notification structures, a page each.
const BAR: u8 = 4;
const BAR_SIZE: u64 = 0x4000;
const COMMON: u32 = 0;
const ISR: u32 = 0x1000;
const DEVICE: u32 = 0x2000;
const NOTIFY: u32 = 0x3000;
const PAGE: u32 = 0x1000;
const MULTIPLIER: u32 = 4;
/// Common configuration registers the fake device sets (spec 4.1.4.3).
const QUEUE_SIZE: usize = 0x18;
const QUEUE_ENABLE: usize = 0x1C;
const QUEUE_NOTIFY_OFF: usize = 0x1E;
const CONFIG_GENERATION: usize = 0x15;

/// No I/O ports: the modern transport uses none.
struct NoPorts;

impl IoPorts for NoPorts {
    fn read8(&self, _: u16) -> u8 {
        unreachable!()
    }
    fn read16(&self, _: u16) -> u16 {
        unreachable!()
    }
    fn read32(&self, _: u16) -> u32 {
        unreachable!()
    }
    fn write8(&mut self, _: u16, _: u8) {
        unreachable!()
    }
    fn write16(&mut self, _: u16, _: u16) {
        unreachable!()
    }
    fn write32(&mut self, _: u16, _: u32) {
        unreachable!()
    }
}

/// A modern virtio-net function whose BAR is heap memory the test reads and
/// writes as the device would. Declare it before the transport, so that the
/// transport (which points into the memory) is dropped first.
struct FakeModern {
    config: FakeConfig,
    memory: NonNull<u8>,
}

impl FakeModern {
    fn new() -> Self {
        let (paddr, memory) = FakeHal::dma_alloc(BAR_SIZE as usize / PAGE_SIZE, BufferDirection::Both);
        let config = FakeConfig::default();
        let mut bars = [FakeBar::default(); 6];
        bars[usize::from(BAR)] = FakeBar { size: BAR_SIZE, type_bits: 0b100 };
        config.add(NIC, VIRTIO_VENDOR, NET_MODERN, 0x02, bars);
        let bar_reg = 0x10 + 4 * BAR;
        config.set_reg(NIC, bar_reg, paddr as u32 | 0b100);
        config.set_reg(NIC, bar_reg + 4, (paddr >> 32) as u32);
        let caps = [(0x40, 1, COMMON), (0x50, 3, ISR), (0x60, 4, DEVICE), (0x70, 2, NOTIFY)];
        config.capabilities(NIC, &caps.map(|(at, _, _)| (CAP_VENDOR, at)));
        for (at, cfg_type, offset) in caps {
            let cap_len: u32 = if cfg_type == 2 { 20 } else { 16 };
            config.set_reg(NIC, at, config.reg(NIC, at) | cap_len << 16 | cfg_type << 24);
            config.set_reg(NIC, at + 4, u32::from(BAR));
            config.set_reg(NIC, at + 8, offset);
            config.set_reg(NIC, at + 12, PAGE);
        }
        config.set_reg(NIC, 0x70 + 16, MULTIPLIER);
        let device = FakeModern { config, memory };
        device.set16(QUEUE_SIZE, 8);
        device
    }

    /// Sets a capability's (offset, length) in the BAR.
    fn set_region(&self, cap_at: u8, offset: u32, length: u32) {
        self.config.set_reg(NIC, cap_at + 8, offset);
        self.config.set_reg(NIC, cap_at + 12, length);
    }

    fn set_bar_address(&self, address: u64) {
        let bar_reg = 0x10 + 4 * BAR;
        self.config.set_reg(NIC, bar_reg, address as u32 | 0b100);
        self.config.set_reg(NIC, bar_reg + 4, (address >> 32) as u32);
    }

    fn get16(&self, offset: usize) -> u16 {
        // SAFETY: `offset` is inside the BAR's heap memory, 2-aligned.
        unsafe { self.memory.as_ptr().add(offset).cast::<u16>().read_volatile() }
    }

    fn set16(&self, offset: usize, value: u16) {
        // SAFETY: as in `get16`.
        unsafe { self.memory.as_ptr().add(offset).cast::<u16>().write_volatile(value) }
    }

    fn probe(&self) -> Result<VirtioPciTransport<NoPorts>, ProbeError> {
        let mut root = PciRoot::new(self.config.clone());
        let function = scan(&mut root, 0..=0).remove(0);
        probe::<FakeHal, _, _>(&mut root, &self.config, &function, NoPorts, false)
    }
}

impl Drop for FakeModern {
    fn drop(&mut self) {
        // SAFETY: allocated by FakeHal::dma_alloc with this size in `new`.
        unsafe { FakeHal::dma_dealloc(0, self.memory, BAR_SIZE as usize / PAGE_SIZE) };
    }
}

#[test]
fn notifications_go_where_queue_set_up_found_them_even_if_the_device_moves_them() {
    let device = FakeModern::new();
    let mut t = device.probe().unwrap();
    assert_eq!(t.kind(), "modern");
    device.set16(QUEUE_NOTIFY_OFF, 5);
    let _queue = SplitQueue::<FakeHal>::new(&mut t, 1, 8, false).unwrap();
    let slot = (NOTIFY + 5 * MULTIPLIER) as usize;
    device.set16(slot, 0xFFFF);
    t.notify(1);
    assert_eq!(device.get16(slot), 1, "the queue index, at notify + queue_notify_off * multiplier");
    // The device now claims an offset far past the notify region: the
    // transport must neither panic nor follow it.
    device.set16(QUEUE_NOTIFY_OFF, 0x7FFF);
    device.set16(slot, 0xFFFF);
    t.notify(1);
    assert_eq!(device.get16(slot), 1);
}

#[test]
fn a_notification_offset_outside_the_region_fails_queue_set_up() {
    let device = FakeModern::new();
    let mut t = device.probe().unwrap();
    // The last 2-byte slot of the 4 KiB region is fine...
    device.set16(QUEUE_NOTIFY_OFF, (PAGE / MULTIPLIER - 1) as u16);
    assert!(SplitQueue::<FakeHal>::new(&mut t, 0, 8, false).is_ok());
    // ...one multiplier further is not.
    device.set16(QUEUE_NOTIFY_OFF, (PAGE / MULTIPLIER) as u16);
    device.set16(QUEUE_ENABLE, 0);
    assert_eq!(SplitQueue::<FakeHal>::new(&mut t, 1, 8, false).err(), Some(QueueError::NotEnabled));
    assert_eq!(device.get16(QUEUE_ENABLE), 0, "the queue was enabled anyway");
}

#[test]
fn a_bar_above_the_physical_address_limit_is_an_error_not_a_panic() {
    let device = FakeModern::new();
    device.set_bar_address(PHYS_ADDR_LIMIT);
    let region = Region { cfg_type: 1, bar: BAR, offset: COMMON, length: PAGE };
    assert!(matches!(device.probe(), Err(ProbeError::Modern(ModernError::BadRegion(r))) if r == region));
    // A BAR that starts below the limit but whose structures end above it.
    device.set_bar_address(PHYS_ADDR_LIMIT - BAR_SIZE / 2);
    assert!(matches!(device.probe(), Err(ProbeError::Modern(ModernError::BadRegion(_)))));
}

#[test]
fn a_structure_whose_end_overflows_32_bits_is_refused() {
    let device = FakeModern::new();
    // offset + length wraps to 0x1000, which is inside the BAR.
    device.set_region(0x50, 0xFFFF_F000, 0x2000);
    let region = Region { cfg_type: 3, bar: BAR, offset: 0xFFFF_F000, length: 0x2000 };
    assert!(matches!(device.probe(), Err(ProbeError::Modern(ModernError::BadRegion(r))) if r == region));
}

#[test]
fn a_configuration_that_never_settles_is_an_error_not_a_hang() {
    let device = FakeModern::new();
    let t = device.probe().unwrap();
    let reads = Cell::new(0u32);
    let result = t.read_consistent(|| {
        reads.set(reads.get() + 1);
        assert!(reads.get() < 1000, "read_consistent does not give up");
        // The device changes its configuration during every read.
        let generation = device.get16(CONFIG_GENERATION & !1);
        device.set16(CONFIG_GENERATION & !1, generation.wrapping_add(0x100));
        Ok(reads.get())
    });
    assert_eq!(result, Err(virtio_drivers::Error::NotReady));
    assert_eq!(reads.get(), CONFIG_READ_ATTEMPTS);
    // A configuration that settles is read once.
    assert_eq!(t.read_consistent(|| Ok(7)), Ok(7));
}

#[test]
fn a_capability_list_that_loops_is_an_error_not_a_hang() {
    let device = FakeModern::new();
    // The notify capability (last) points back at the first.
    device.config.set_reg(NIC, 0x70, device.config.reg(NIC, 0x70) | 0x40 << 8);
    assert!(matches!(device.probe(), Err(ProbeError::Modern(ModernError::CapabilityLoop))));
}
