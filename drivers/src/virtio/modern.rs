//! The modern (virtio 1.x) PCI transport: `virtio-drivers`' `PciTransport`,
//! with the checks a device's values need before they become addresses.
//!
//! `PciTransport` trusts the device in three places, each a panic or worse:
//!
//! - It maps each virtio structure at `BAR + offset` without bounding the
//!   address: a BAR at or above 2^52 panics in the kernel's address type, and
//!   `offset + length` can overflow 32 bits and pass its own bounds check.
//!   [`ModernTransport::new`] checks every structure first.
//! - It re-reads `queue_notify_off` on every notification and `unwrap`s the
//!   lookup in the notify region, so a device that moves it panics the
//!   kernel on the next kick. Here the notification address is worked out
//!   once, when the queue is set up, and checked against the region (as
//!   Linux's `vp_modern_map_vq_notify` does); a bad offset leaves the queue
//!   disabled, which `SplitQueue::new` reports as an error.
//! - Its `Drop` waits, without limit, for the device to read back a reset,
//!   and it walks the capability list without limit, so a list that loops
//!   hangs it (the scan stops after as many as fit; here a loop is refused).
//!
//! Ref: virtio spec 4.1.4 (virtio structure PCI capabilities), 4.1.4.3
//! (common configuration), 4.1.4.4 (notification structure), 2.5.1 (the
//! configuration generation counter).

use alloc::vec::Vec;
use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use virtio_drivers::transport::pci::bus::{BarInfo, ConfigurationAccess, PciRoot};
use virtio_drivers::transport::pci::{PciTransport, VirtioPciError};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Hal, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::read_consistent_bounded;
use crate::pci::{CAP_VENDOR, Function, PHYS_ADDR_LIMIT};

/// `cfg_type`s of the virtio vendor capabilities (spec 4.1.4).
pub(crate) const CAP_COMMON_CFG: u8 = 1;
const CAP_NOTIFY_CFG: u8 = 2;
const CAP_ISR_CFG: u8 = 3;
const CAP_DEVICE_CFG: u8 = 4;
/// `cap_len` of a `virtio_pci_cap`, and of a `virtio_pci_notify_cap`, which
/// adds `notify_off_multiplier` (spec 4.1.4, 4.1.4.4).
const CAP_LEN: u32 = 16;
const NOTIFY_CAP_LEN: u32 = 20;
/// Field offsets in `virtio_pci_cap` (spec 4.1.4).
const CAP_BAR: u8 = 4;
const CAP_OFFSET: u8 = 8;
const CAP_LENGTH: u8 = 12;
const CAP_NOTIFY_MULTIPLIER: u8 = 16;
/// The size of `virtio_pci_common_cfg` in virtio 1.0 (spec 4.1.4.3).
pub(crate) const COMMON_CFG_LEN: u32 = 0x38;
/// `virtio_pci_common_cfg` offsets (spec 4.1.4.3).
pub(crate) const COMMON_MSIX_CONFIG: usize = 0x10;
const COMMON_DEVICE_STATUS: usize = 0x14;
pub(crate) const COMMON_QUEUE_SELECT: usize = 0x16;
pub(crate) const COMMON_QUEUE_MSIX_VECTOR: usize = 0x1A;
const COMMON_QUEUE_NOTIFY_OFF: usize = 0x1E;
/// A notification is the queue's 16-bit index written at its address
/// (spec 4.1.4.4, without VIRTIO_F_NOTIFICATION_DATA).
const NOTIFY_WRITE_LEN: u64 = 2;
/// Status reads after a reset before giving up on the device reading back 0
/// (spec 4.1.4.3.2: the driver waits for it; a device that never does is
/// not waited for forever).
const RESET_POLLS: u32 = 100_000;

/// Where one virtio structure lies (a `virtio_pci_cap`, spec 4.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The `cfg_type` of its capability.
    pub cfg_type: u8,
    /// The BAR it is in.
    pub bar: u8,
    /// Its offset in the BAR.
    pub offset: u32,
    /// Its length in bytes.
    pub length: u32,
}

/// The first capability of each type, which is the one a driver uses
/// (spec 4.1.4: the device may offer several; `PciTransport` takes the first).
#[derive(Default)]
struct Capabilities {
    common: Option<Region>,
    notify: Option<(Region, u32)>,
    isr: Option<Region>,
    device: Option<Region>,
}

fn capabilities<C: ConfigurationAccess>(access: &C, function: &Function) -> Capabilities {
    let mut found = Capabilities::default();
    for cap in function.capabilities.iter().filter(|c| c.id == CAP_VENDOR) {
        let read = |offset: u8| access.read_word(function.address, cap.offset.wrapping_add(offset));
        let cap_len = u32::from(cap.private_header as u8);
        let cfg_type = (cap.private_header >> 8) as u8;
        if cap_len < CAP_LEN {
            continue;
        }
        let region = Region { cfg_type, bar: read(CAP_BAR) as u8, offset: read(CAP_OFFSET), length: read(CAP_LENGTH) };
        match cfg_type {
            CAP_COMMON_CFG if found.common.is_none() => found.common = Some(region),
            CAP_NOTIFY_CFG if cap_len >= NOTIFY_CAP_LEN && found.notify.is_none() => {
                found.notify = Some((region, read(CAP_NOTIFY_MULTIPLIER)));
            }
            CAP_ISR_CFG if found.isr.is_none() => found.isr = Some(region),
            CAP_DEVICE_CFG if found.device.is_none() => found.device = Some(region),
            _ => {}
        }
    }
    found
}

/// Why the modern transport cannot drive a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModernError {
    /// A virtio structure is not inside an assigned memory BAR, or lies at
    /// or above the 2^52 physical address limit.
    BadRegion(Region),
    /// No notification capability (spec 4.1.4.4).
    NoNotifyConfig,
    /// The capability list loops (a device bug); `PciTransport` would walk it forever.
    CapabilityLoop,
    /// `virtio-drivers` refused the function.
    Transport(VirtioPciError),
}

impl fmt::Display for ModernError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ModernError::BadRegion(r) => write!(
                f,
                "virtio structure type {} at BAR {} + {:#x} ({:#x} bytes) is not inside an assigned memory BAR below 2^52",
                r.cfg_type, r.bar, r.offset, r.length
            ),
            ModernError::NoNotifyConfig => write!(f, "no virtio notification capability"),
            ModernError::CapabilityLoop => write!(f, "the capability list loops"),
            ModernError::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// The physical address of `region`, if it lies inside an assigned memory
/// BAR of `function`, is at least `min_len` bytes, and ends below the
/// physical address limit.
fn locate(function: &Function, region: Region, min_len: u32) -> Result<PhysAddr, ModernError> {
    let bad = ModernError::BadRegion(region);
    let Some(Some(BarInfo::Memory { address, size, .. })) = function.bars.get(usize::from(region.bar)) else {
        return Err(bad);
    };
    let end = u64::from(region.offset) + u64::from(region.length);
    if *address == 0 || region.length < min_len || end > *size {
        return Err(bad);
    }
    match address.checked_add(end) {
        Some(last) if last <= PHYS_ADDR_LIMIT => Ok(address + u64::from(region.offset)),
        _ => Err(bad),
    }
}

/// Maps the common configuration structure of a modern virtio function
/// (checked as [`ModernTransport::new`] checks it).
pub(crate) fn common_config<H: Hal, C: ConfigurationAccess>(access: &C, function: &Function) -> Option<NonNull<u8>> {
    let region = capabilities(access, function).common?;
    let phys = locate(function, region, COMMON_CFG_LEN).ok()?;
    // SAFETY: the region is inside the function's memory BAR (checked by
    // `locate`), and mapping device registers has no side effects.
    Some(unsafe { H::mmio_phys_to_virt(phys, region.length as usize) })
}

/// A virtio 1.x device over PCI.
pub struct ModernTransport {
    /// Never dropped: its `Drop` waits for the reset without limit; ours
    /// resets with a bound (it holds only pointers, nothing to free).
    inner: ManuallyDrop<PciTransport>,
    /// The common configuration (at least `COMMON_CFG_LEN` bytes).
    common: NonNull<u8>,
    /// The notification region, `notify_len` bytes, 2-byte aligned.
    notify: NonNull<u8>,
    notify_len: u32,
    notify_multiplier: u32,
    /// Each queue's notification offset in the region, fixed and checked
    /// when it was set up; `None` for a queue that was not.
    notify_offsets: Vec<Option<u32>>,
}

// SAFETY: the pointers are to the device's registers, which any CPU may
// access; all access goes through `&mut self` or reads through `&self`.
unsafe impl Send for ModernTransport {}

impl ModernTransport {
    /// Checks every virtio structure of `function` (inside an assigned
    /// memory BAR, below the physical address limit), then builds the
    /// transport. The function's BARs must be assigned and in
    /// `function.bars`; `access` reads the same configuration space as `root` (whose own is
    /// private to `virtio-drivers`).
    pub fn new<H: Hal, C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        access: &C,
        function: &Function,
    ) -> Result<Self, ModernError> {
        let offsets = &function.capabilities;
        if offsets.iter().enumerate().any(|(i, c)| offsets[..i].iter().any(|earlier| earlier.offset == c.offset)) {
            return Err(ModernError::CapabilityLoop);
        }
        let caps = capabilities(access, function);
        for (region, min_len) in [
            (caps.common, COMMON_CFG_LEN),
            (caps.notify.map(|n| n.0), NOTIFY_WRITE_LEN as u32),
            (caps.isr, 1),
            (caps.device, 0),
        ] {
            if let Some(region) = region {
                locate(function, region, min_len)?;
            }
        }
        // Never dropped, even if a check below fails (see `inner`).
        let inner =
            ManuallyDrop::new(PciTransport::new::<H, C>(root, function.address).map_err(ModernError::Transport)?);
        let (notify_region, notify_multiplier) = caps.notify.ok_or(ModernError::NoNotifyConfig)?;
        let notify_phys = locate(function, notify_region, NOTIFY_WRITE_LEN as u32)?;
        let common_region = caps.common.ok_or(ModernError::Transport(VirtioPciError::MissingCommonConfig))?;
        let common_phys = locate(function, common_region, COMMON_CFG_LEN)?;
        // SAFETY: both regions are inside the function's memory BAR (checked
        // by `locate`); mapping device registers has no side effects.
        let (common, notify) = unsafe {
            (
                H::mmio_phys_to_virt(common_phys, common_region.length as usize),
                H::mmio_phys_to_virt(notify_phys, notify_region.length as usize),
            )
        };
        if !notify.as_ptr().cast::<u16>().is_aligned() || !notify_multiplier.is_multiple_of(2) {
            return Err(ModernError::BadRegion(notify_region));
        }
        Ok(ModernTransport {
            inner,
            common,
            notify,
            notify_len: notify_region.length,
            notify_multiplier,
            notify_offsets: Vec::new(),
        })
    }

    fn read_common16(&self, offset: usize) -> u16 {
        // SAFETY: `common` maps at least COMMON_CFG_LEN bytes of the common
        // configuration; callers pass the offset of a 16-bit register in it.
        unsafe { self.common.as_ptr().add(offset).cast::<u16>().read_volatile() }
    }

    fn write_common16(&mut self, offset: usize, value: u16) {
        // SAFETY: as in `read_common16`.
        unsafe { self.common.as_ptr().add(offset).cast::<u16>().write_volatile(value) }
    }
}

impl Drop for ModernTransport {
    fn drop(&mut self) {
        // Reset the device (spec 4.1.4.3.2), as `PciTransport` does, but
        // give up after a bound instead of spinning on a broken device.
        self.inner.set_status(DeviceStatus::empty());
        // SAFETY: a byte register of the common configuration.
        let status = || unsafe { self.common.as_ptr().add(COMMON_DEVICE_STATUS).read_volatile() };
        if !(0..RESET_POLLS).any(|_| status() == 0) {
            log::warn!("virtio: the device did not finish its reset");
        }
    }
}

impl Transport for ModernTransport {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.read_device_features()
    }
    fn write_driver_features(&mut self, features: u64) {
        self.inner.write_driver_features(features)
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }
    /// Writes at the address fixed when the queue was set up, without
    /// asking the device again.
    fn notify(&mut self, queue: u16) {
        match self.notify_offsets.get(usize::from(queue)).copied().flatten() {
            // SAFETY: `queue_set` checked that the 2-byte write at `offset`
            // is inside the `notify_len`-byte region, and `offset` is even
            // (an even multiplier) in a 2-byte aligned region.
            Some(offset) => unsafe { self.notify.as_ptr().add(offset as usize).cast::<u16>().write_volatile(queue) },
            None => log::warn!("virtio: notification for queue {queue}, which is not set up; dropped"),
        }
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.set_status(status)
    }
    fn set_guest_page_size(&mut self, size: u32) {
        self.inner.set_guest_page_size(size)
    }
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    /// Reads the queue's `queue_notify_off` once and checks where it points
    /// (spec 4.1.4.4: `cap.offset + queue_notify_off * notify_off_multiplier`,
    /// inside the notify region). A bad one leaves the queue disabled.
    fn queue_set(&mut self, queue: u16, size: u32, desc: PhysAddr, driver: PhysAddr, device: PhysAddr) {
        self.write_common16(COMMON_QUEUE_SELECT, queue);
        let notify_off = self.read_common16(COMMON_QUEUE_NOTIFY_OFF);
        let offset = u64::from(notify_off) * u64::from(self.notify_multiplier);
        if offset + NOTIFY_WRITE_LEN > u64::from(self.notify_len) {
            log::error!(
                "virtio: queue {queue}'s notification offset {notify_off} × {} is outside the {}-byte notify region; queue not set up",
                self.notify_multiplier,
                self.notify_len
            );
            return;
        }
        let slot = usize::from(queue);
        if self.notify_offsets.len() <= slot {
            self.notify_offsets.resize(slot + 1, None);
        }
        self.notify_offsets[slot] = Some(offset as u32);
        self.inner.queue_set(queue, size, desc, driver, device)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.inner.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> virtio_drivers::Result<T> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<T: IntoBytes + Immutable>(&mut self, offset: usize, value: T) -> virtio_drivers::Result<()> {
        self.inner.write_config_space(offset, value)
    }
    fn read_consistent<T>(&self, f: impl Fn() -> virtio_drivers::Result<T>) -> virtio_drivers::Result<T> {
        read_consistent_bounded(|| self.read_config_generation(), f)
    }
}
