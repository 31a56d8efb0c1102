//! Host-side fakes: a `Hal` over the process heap (physical address =
//! pointer), a `Transport` with settable features and config, and a device
//! end that reads and writes the rings the way a (possibly hostile) device
//! would.
//!
//! Compiled for the crate's tests, and with the `fuzzing` feature for the
//! fuzz targets in `fuzz/`. Not for the kernel: it needs `std`.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::rc::Rc;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// DMA memory from the heap; a buffer's "physical" address is its pointer.
///
/// It also watches for the worst DMA bug: memory returned to the heap while
/// a device may still write it. A fake device counts as live from the moment
/// a queue is set up on it until its reset completes; every page freed while
/// one is live is counted ([`FakeHal::freed_while_live`]).
pub struct FakeHal;

thread_local! {
    /// Pages allocated and not freed, on this thread (each test has its own).
    static LIVE_PAGES: Cell<usize> = const { Cell::new(0) };
    /// Allocations of more pages than this fail (to fake an exhausted heap).
    static ALLOC_LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Fake devices with queues that have not been reset since.
    static LIVE_DEVICES: Cell<usize> = const { Cell::new(0) };
    /// Pages freed while a fake device was live.
    static FREED_WHILE_LIVE: Cell<usize> = const { Cell::new(0) };
}

impl FakeHal {
    /// Pages allocated and not yet freed on this thread.
    pub fn live_pages() -> usize {
        LIVE_PAGES.get()
    }

    /// Makes every later allocation of more than `pages` pages fail.
    pub fn limit_allocations(pages: usize) {
        ALLOC_LIMIT.set(pages);
    }

    /// Pages freed on this thread while a fake device could still use them.
    pub fn freed_while_live() -> usize {
        FREED_WHILE_LIVE.get()
    }
}

// SAFETY: allocations are page-aligned, zeroed, and live until dma_dealloc;
// addresses handed to the fake device are real pointers into them.
unsafe impl Hal for FakeHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        if pages > ALLOC_LIMIT.get() {
            return (0, NonNull::dangling());
        }
        LIVE_PAGES.set(LIVE_PAGES.get() + pages);
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("out of memory");
        (ptr.as_ptr() as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("layout");
        // SAFETY: `vaddr` came from dma_alloc with the same layout.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        LIVE_PAGES.set(LIVE_PAGES.get() - pages);
        if LIVE_DEVICES.get() > 0 {
            FREED_WHILE_LIVE.set(FREED_WHILE_LIVE.get() + pages);
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // The kernel's Hal cannot map past the physical address limit (its
        // address type panics there); the fake fails the same way, so tests
        // show that drivers check device addresses before mapping them.
        let end = paddr.checked_add(size as u64);
        assert!(end.is_some_and(|e| e <= crate::pci::PHYS_ADDR_LIMIT), "MMIO at {paddr:#x} past the address limit");
        NonNull::new(paddr as *mut u8).expect("null MMIO address")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Where the driver put a queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueAddresses {
    /// Number of descriptors.
    pub size: u16,
    /// The descriptor table.
    pub desc: PhysAddr,
    /// The available ring.
    pub avail: PhysAddr,
    /// The used ring.
    pub used: PhysAddr,
}

/// Everything the fake device holds; tests read and change it freely.
#[derive(Default)]
pub struct State {
    /// Feature bits offered.
    pub device_features: u64,
    /// Feature bits the driver wrote.
    pub driver_features: u64,
    /// `device_status`.
    pub status: u32,
    /// Status bits the device refuses to keep (to fake a device that rejects features).
    pub refuse_status: u32,
    /// The device-specific configuration space.
    pub config: Vec<u8>,
    /// The configuration generation counter.
    pub generation: u32,
    /// The largest queue size the device allows.
    pub queue_max: u32,
    /// Whether the transport uses the legacy layout.
    pub legacy: bool,
    /// Where the driver put each queue.
    pub queues: Vec<Option<QueueAddresses>>,
    /// Queues notified, in order.
    pub notifications: Vec<u16>,
    /// The interrupt status the next `ack_interrupt` returns.
    pub isr: u32,
    /// The device ignores resets (writing 0 to `device_status`).
    pub ignores_reset: bool,
    /// Queues are set up and no reset has completed since: the device may use them.
    pub live: bool,
}

/// A transport whose state the test keeps a handle on.
#[derive(Clone)]
pub struct FakeTransport(pub Rc<RefCell<State>>);

impl FakeTransport {
    /// A network device offering `device_features`, with `config` as its
    /// configuration space and queues of at most `queue_max` descriptors.
    pub fn new(device_features: u64, config: Vec<u8>, queue_max: u32) -> Self {
        FakeTransport(Rc::new(RefCell::new(State {
            device_features,
            config,
            queue_max,
            queues: vec![None; 2],
            ..State::default()
        })))
    }

    /// Where the driver put queue `index`; panics if it has not set it up.
    pub fn queue(&self, index: u16) -> QueueAddresses {
        self.0.borrow().queues[usize::from(index)].expect("queue not set up")
    }
}

impl Transport for FakeTransport {
    fn device_type(&self) -> DeviceType {
        DeviceType::Network
    }
    fn read_device_features(&mut self) -> u64 {
        self.0.borrow().device_features
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.0.borrow_mut().driver_features = driver_features;
    }
    fn max_queue_size(&mut self, _queue: u16) -> u32 {
        self.0.borrow().queue_max
    }
    fn notify(&mut self, queue: u16) {
        self.0.borrow_mut().notifications.push(queue);
    }
    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(self.0.borrow().status)
    }
    fn set_status(&mut self, status: DeviceStatus) {
        let mut s = self.0.borrow_mut();
        if status.is_empty() && s.ignores_reset {
            return;
        }
        s.status = status.bits() & !s.refuse_status;
        if s.status == 0 && s.live {
            s.live = false;
            LIVE_DEVICES.set(LIVE_DEVICES.get() - 1);
        }
    }
    fn set_guest_page_size(&mut self, _guest_page_size: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        self.0.borrow().legacy
    }
    fn queue_set(&mut self, queue: u16, size: u32, desc: PhysAddr, avail: PhysAddr, used: PhysAddr) {
        let mut s = self.0.borrow_mut();
        s.queues[usize::from(queue)] = Some(QueueAddresses { size: size as u16, desc, avail, used });
        if !s.live {
            s.live = true;
            LIVE_DEVICES.set(LIVE_DEVICES.get() + 1);
        }
    }
    fn queue_unset(&mut self, queue: u16) {
        self.0.borrow_mut().queues[usize::from(queue)] = None;
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.borrow().queues[usize::from(queue)].is_some()
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::from_bits_truncate(std::mem::take(&mut self.0.borrow_mut().isr))
    }
    fn read_config_generation(&self) -> u32 {
        self.0.borrow().generation
    }
    fn read_consistent<T>(&self, f: impl Fn() -> virtio_drivers::Result<T>) -> virtio_drivers::Result<T> {
        super::read_consistent_bounded(|| self.read_config_generation(), f)
    }
    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> virtio_drivers::Result<T> {
        let s = self.0.borrow();
        let bytes = s.config.get(offset..offset + size_of::<T>()).ok_or(virtio_drivers::Error::ConfigSpaceTooSmall)?;
        T::read_from_bytes(bytes).map_err(|_| virtio_drivers::Error::ConfigSpaceTooSmall)
    }
    fn write_config_space<T: IntoBytes + Immutable>(&mut self, offset: usize, value: T) -> virtio_drivers::Result<()> {
        let mut s = self.0.borrow_mut();
        let bytes =
            s.config.get_mut(offset..offset + size_of::<T>()).ok_or(virtio_drivers::Error::ConfigSpaceTooSmall)?;
        bytes.copy_from_slice(value.as_bytes());
        Ok(())
    }
}

/// The device end of one queue: reads what the driver made available and
/// writes used entries, including ones no correct device would write.
pub struct DeviceQueue {
    /// The queue's rings.
    pub q: QueueAddresses,
    seen_avail: u16,
}

impl DeviceQueue {
    /// The device end of the queue at `q`, which has made nothing available yet.
    pub fn new(q: QueueAddresses) -> Self {
        DeviceQueue { q, seen_avail: 0 }
    }

    fn read<T: Copy>(addr: PhysAddr) -> T {
        // SAFETY: the fake Hal's "physical" addresses are pointers into live,
        // aligned ring memory owned by the queue under test.
        unsafe { (addr as *const T).read_volatile() }
    }

    fn write<T: Copy>(addr: PhysAddr, value: T) {
        // SAFETY: as in `read`.
        unsafe { (addr as *mut T).write_volatile(value) }
    }

    /// Descriptor ids made available since the last call.
    pub fn take_avail(&mut self) -> Vec<u16> {
        let idx: u16 = Self::read(self.q.avail + 2);
        let mut ids = Vec::new();
        while self.seen_avail != idx {
            let slot = u64::from(self.seen_avail % self.q.size);
            ids.push(Self::read(self.q.avail + 4 + 2 * slot));
            self.seen_avail = self.seen_avail.wrapping_add(1);
        }
        ids
    }

    /// A descriptor's (addr, len, flags).
    pub fn descriptor(&self, id: u16) -> (PhysAddr, u32, u16) {
        let d = self.q.desc + 16 * u64::from(id);
        (Self::read(d), Self::read(d + 8), Self::read(d + 12))
    }

    /// Appends a used entry, valid or not.
    pub fn put_used(&mut self, id: u32, len: u32) {
        let idx: u16 = Self::read(self.q.used + 2);
        let slot = u64::from(idx % self.q.size);
        Self::write(self.q.used + 4 + 8 * slot, id);
        Self::write(self.q.used + 8 + 8 * slot, len);
        Self::write(self.q.used + 2, idx.wrapping_add(1));
    }

    /// The used ring's index: where the next `put_used` goes.
    pub fn used_idx(&self) -> u16 {
        Self::read(self.q.used + 2)
    }

    /// Writes a used entry `ahead` slots past the used index without
    /// publishing it (see `publish_used`): a batch, or a jump over stale slots.
    pub fn write_used(&mut self, ahead: u16, id: u32, len: u32) {
        let slot = u64::from(self.used_idx().wrapping_add(ahead) % self.q.size);
        Self::write(self.q.used + 4 + 8 * slot, id);
        Self::write(self.q.used + 8 + 8 * slot, len);
    }

    /// Moves the used index `count` entries on, whatever the slots hold.
    pub fn publish_used(&mut self, count: u16) {
        Self::write(self.q.used + 2, self.used_idx().wrapping_add(count));
    }

    /// Copies `bytes` into descriptor `id`'s buffer (as much as fits).
    pub fn fill(&self, id: u16, bytes: &[u8]) {
        let (addr, len, _) = self.descriptor(id);
        let n = bytes.len().min(len as usize);
        // SAFETY: the descriptor points into the driver's live buffer memory of `len` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, n) };
    }

    /// The bytes of descriptor `id`'s buffer.
    pub fn contents(&self, id: u16) -> Vec<u8> {
        let (addr, len, _) = self.descriptor(id);
        // SAFETY: as in `fill`.
        unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize).to_vec() }
    }

    /// Sets the used ring's `avail_event` (EVENT_IDX) or `flags`.
    pub fn set_avail_event(&self, value: u16) {
        Self::write(self.q.used + 4 + 8 * u64::from(self.q.size), value);
    }

    /// The driver's `used_event` (EVENT_IDX) and available-ring flags.
    pub fn used_event_and_flags(&self) -> (u16, u16) {
        (Self::read(self.q.avail + 4 + 2 * u64::from(self.q.size)), Self::read(self.q.avail))
    }
}
