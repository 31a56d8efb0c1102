//! A split virtqueue, sized by the device, that checks what the device writes.
//!
//! Three areas in DMA memory, shared with the device (spec 2.7):
//!
//! ```text
//! descriptor table  size × { addr: u64, len: u32, flags: u16, next: u16 }   driver writes
//! available ring    flags: u16, idx: u16, ring: [u16; size], used_event: u16 driver writes
//! used ring         flags: u16, idx: u16, ring: [{ id: u32, len: u32 }; size],
//!                   avail_event: u16                                         device writes
//! ```
//!
//! The driver puts descriptor ids in the available ring and bumps its `idx`;
//! the device returns them in the used ring with the bytes it wrote. Skiff
//! gives every buffer one descriptor, for good: descriptor `i` always points
//! at buffer slot `i`, so an id names a buffer.
//!
//! Why not `virtio-drivers`' `VirtQueue`: its size is a const generic, while
//! the size must come from the device (and a legacy device dictates it); an
//! unexpected used id makes it return `WrongToken` forever; its EVENT_IDX
//! kick test is not wrap-safe. Here every used entry is checked — id in
//! range, id actually in flight, length within the buffer, the used index
//! moving no further than the queue holds — and a bad entry is reported and
//! skipped, so the queue keeps working. (A device that returns a buffer it
//! was given again, after the driver reposted it, cannot be told from a
//! correct one; no ring check can catch that.)
//!
//! The layout is the legacy one (used ring on the next 4 KiB boundary), which
//! modern devices accept too, so one layout serves both transports.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};

use virtio_drivers::transport::Transport;
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// Descriptor flag: the device writes this buffer (spec 2.7.5).
const DESC_F_WRITE: u16 = 2;
/// Used-ring flag: the device does not need kicks (spec 2.7.10).
const USED_F_NO_NOTIFY: u16 = 1;
/// Available-ring flag: the driver does not want interrupts (spec 2.7.7).
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const DESCRIPTOR_SIZE: usize = 16;
/// Legacy alignment of the used ring (spec 2.7.2, "legacy interfaces").
const LEGACY_USED_ALIGN: usize = 4096;
/// The largest queue the spec allows (2.7).
pub const MAX_SIZE: u16 = 32768;

/// A used-ring entry that checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Used {
    /// The descriptor (and so buffer) id.
    pub id: u16,
    /// Bytes the device wrote into the buffer.
    pub len: u32,
}

/// A used-ring entry that did not, and was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadUsed {
    /// The id is not a descriptor of this queue.
    IdOutOfRange {
        /// The id the device wrote.
        id: u32,
    },
    /// The descriptor was not in flight: returned twice, or never given.
    NotInFlight {
        /// The id the device wrote.
        id: u16,
    },
    /// The device moved its used index further than it has descriptors:
    /// the entries in between cannot all be real. Skiff skips to the new
    /// index; descriptors the device never returned stay in flight.
    IndexJump {
        /// How far the index moved past the last entry taken.
        distance: u16,
    },
    /// The device claims more bytes than the buffer holds. The descriptor
    /// was in flight and is now free: the caller gives it back.
    LenTooLong {
        /// The descriptor, now free.
        id: u16,
        /// The length the device wrote.
        len: u32,
        /// The buffer's length.
        max: u32,
    },
}

impl fmt::Display for BadUsed {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            BadUsed::IdOutOfRange { id } => write!(f, "used id {id} out of range"),
            BadUsed::NotInFlight { id } => write!(f, "used id {id} was not in flight"),
            BadUsed::IndexJump { distance } => {
                write!(f, "used index moved {distance} entries, more than the queue holds")
            }
            BadUsed::LenTooLong { id, len, max } => write!(f, "used id {id} claims {len} bytes of a {max}-byte buffer"),
        }
    }
}

/// Errors setting up or using a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The device has no such queue (its size reads zero).
    NotAvailable,
    /// The queue is already set up.
    AlreadyUsed,
    /// A legacy device's fixed size is not a power of two, or is too large.
    BadSize(u32),
    /// No DMA memory for the rings.
    NoMemory,
    /// Our own bug: a descriptor id out of range or already in flight.
    InvalidId(u16),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            QueueError::NotAvailable => write!(f, "the device has no such queue"),
            QueueError::AlreadyUsed => write!(f, "the queue is already in use"),
            QueueError::BadSize(n) => write!(f, "unusable queue size {n}"),
            QueueError::NoMemory => write!(f, "no DMA memory for the rings"),
            QueueError::InvalidId(id) => write!(f, "descriptor {id} is out of range or already in flight"),
        }
    }
}

/// Byte offsets of the three areas in the queue's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    avail: usize,
    used: usize,
    total: usize,
}

impl Layout {
    fn new(size: u16) -> Layout {
        let size = usize::from(size);
        let avail = DESCRIPTOR_SIZE * size;
        let used = (avail + 6 + 2 * size).next_multiple_of(LEGACY_USED_ALIGN);
        let total = used + 6 + 8 * size;
        Layout { avail, used, total }
    }
}

/// A split virtqueue over DMA memory from `H` (spec 2.7: descriptor table
/// 2.7.5, available ring 2.7.6, used ring 2.7.8).
pub struct SplitQueue<H: Hal> {
    index: u16,
    size: u16,
    layout: Layout,
    paddr: PhysAddr,
    base: NonNull<u8>,
    pages: usize,
    /// Shadow of each descriptor's length, so the device cannot change what we check against.
    lens: Vec<u32>,
    in_flight: Vec<bool>,
    /// The next available-ring index we will write, and the last one published.
    avail_idx: u16,
    published_idx: u16,
    last_used: u16,
    event_idx: bool,
    /// Whether the driver asked for used-buffer interrupts (`set_interrupts`).
    interrupts: bool,
    _hal: core::marker::PhantomData<H>,
}

// SAFETY: the queue owns its DMA memory; the raw pointer is only a handle to
// it, and all access goes through `&self`/`&mut self`.
unsafe impl<H: Hal> Send for SplitQueue<H> {}

impl<H: Hal> SplitQueue<H> {
    /// Sets up queue `index` on `transport`, with the device's size (modern
    /// devices: the largest power of two up to both the device's maximum and
    /// `max_size`; legacy devices fix the size themselves). Spec 4.1.5.1.3
    /// (virtqueue configuration over PCI), 4.1.4.10 for legacy devices.
    pub fn new<T: Transport>(
        transport: &mut T,
        index: u16,
        max_size: u16,
        event_idx: bool,
    ) -> Result<Self, QueueError> {
        if transport.queue_used(index) {
            return Err(QueueError::AlreadyUsed);
        }
        let device_max = transport.max_queue_size(index);
        if device_max == 0 {
            return Err(QueueError::NotAvailable);
        }
        let size = if transport.requires_legacy_layout() {
            // A legacy queue's size is read-only: use it or nothing.
            if !device_max.is_power_of_two() || device_max > u32::from(MAX_SIZE) {
                return Err(QueueError::BadSize(device_max));
            }
            device_max as u16
        } else {
            let limit = device_max.min(u32::from(max_size.clamp(1, MAX_SIZE)));
            1 << (31 - limit.leading_zeros()) // largest power of two <= limit
        };
        let layout = Layout::new(size);
        let pages = layout.total.div_ceil(PAGE_SIZE);
        let (paddr, base) = H::dma_alloc(pages, BufferDirection::Both);
        if paddr == 0 {
            return Err(QueueError::NoMemory);
        }
        // Hal::dma_alloc returns zeroed memory: all flags and indices start at 0.
        transport.queue_set(index, u32::from(size), paddr, paddr + layout.avail as u64, paddr + layout.used as u64);
        Ok(SplitQueue {
            index,
            size,
            layout,
            paddr,
            base,
            pages,
            lens: vec![0; usize::from(size)],
            in_flight: vec![false; usize::from(size)],
            avail_idx: 0,
            published_idx: 0,
            last_used: 0,
            event_idx,
            // Zeroed rings ask for interrupts: flags 0, used_event 0.
            interrupts: true,
            _hal: core::marker::PhantomData,
        })
    }

    /// The queue's index on its device.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Number of descriptors (and ring slots).
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Descriptors currently owned by the device.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().filter(|&&f| f).count()
    }

    /// Whether descriptor `id` is owned by the device.
    pub fn is_in_flight(&self, id: u16) -> bool {
        self.in_flight.get(usize::from(id)).copied().unwrap_or(false)
    }

    /// Physical addresses of the descriptor table, available ring and used ring.
    pub fn addresses(&self) -> (PhysAddr, PhysAddr, PhysAddr) {
        (self.paddr, self.paddr + self.layout.avail as u64, self.paddr + self.layout.used as u64)
    }

    /// Points descriptor `id` at `len` bytes at `paddr`, which the device
    /// reads (`device_writes == false`) or writes. The descriptor must not be
    /// in flight. Spec 2.7.5 (the virtqueue descriptor table).
    pub fn set_buffer(&mut self, id: u16, paddr: PhysAddr, len: u32, device_writes: bool) -> Result<(), QueueError> {
        if id >= self.size || self.in_flight[usize::from(id)] {
            return Err(QueueError::InvalidId(id));
        }
        let flags = if device_writes { DESC_F_WRITE } else { 0 };
        let at = usize::from(id) * DESCRIPTOR_SIZE;
        self.write::<u64>(at, paddr);
        self.write::<u32>(at + 8, len);
        self.write::<u16>(at + 12, flags);
        self.write::<u16>(at + 14, 0);
        self.lens[usize::from(id)] = len;
        Ok(())
    }

    /// Gives descriptor `id` to the device. It becomes visible at the next
    /// [`publish`](Self::publish). Spec 2.7.13.2 (updating the available ring).
    pub fn push(&mut self, id: u16) -> Result<(), QueueError> {
        if id >= self.size || self.in_flight[usize::from(id)] {
            return Err(QueueError::InvalidId(id));
        }
        let slot = usize::from(self.avail_idx % self.size);
        self.write::<u16>(self.layout.avail + 4 + 2 * slot, id);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.in_flight[usize::from(id)] = true;
        Ok(())
    }

    /// Makes everything pushed since the last call visible to the device, and
    /// says whether the device wants a notification (a "kick") for it.
    /// Spec 2.7.13.3 (updating `idx`), 2.7.13.4 (notifying the device).
    pub fn publish(&mut self) -> bool {
        if self.avail_idx == self.published_idx {
            return false;
        }
        // The ring entries must be visible before the index that covers them.
        fence(Ordering::Release);
        self.write::<u16>(self.layout.avail + 2, self.avail_idx);
        // And the index must be visible before we read whether the device
        // wants a kick; otherwise both sides can wait for each other (spec 2.7.13.4).
        fence(Ordering::SeqCst);
        let old = self.published_idx;
        self.published_idx = self.avail_idx;
        if self.event_idx {
            let avail_event = self.read::<u16>(self.layout.used + 4 + 8 * usize::from(self.size));
            need_event(avail_event, self.avail_idx, old)
        } else {
            self.read::<u16>(self.layout.used) & USED_F_NO_NOTIFY == 0
        }
    }

    /// Whether the device has returned descriptors we have not popped.
    pub fn has_used(&self) -> bool {
        self.used_idx() != self.last_used
    }

    /// Takes the next entry from the used ring: `None` when it is empty,
    /// `Some(Err(..))` for an entry that failed a check (it is consumed, so
    /// the next call moves on). Spec 2.7.8 (the used ring), 2.7.14
    /// (receiving used buffers from the device).
    pub fn pop_used(&mut self) -> Option<Result<Used, BadUsed>> {
        let used_idx = self.used_idx();
        if used_idx == self.last_used {
            return None;
        }
        let distance = used_idx.wrapping_sub(self.last_used);
        if distance > self.size {
            self.last_used = used_idx;
            return Some(Err(BadUsed::IndexJump { distance }));
        }
        // Read the entry only after seeing the index that covers it.
        fence(Ordering::Acquire);
        let slot = usize::from(self.last_used % self.size);
        let entry = self.layout.used + 4 + 8 * slot;
        let id = self.read::<u32>(entry);
        let len = self.read::<u32>(entry + 4);
        self.last_used = self.last_used.wrapping_add(1);
        if self.event_idx && !self.interrupts {
            // Keep "off" out of reach as entries are taken.
            self.write_used_event();
        }

        let Some(id) = u16::try_from(id).ok().filter(|&i| i < self.size) else {
            return Some(Err(BadUsed::IdOutOfRange { id }));
        };
        if !self.in_flight[usize::from(id)] {
            return Some(Err(BadUsed::NotInFlight { id }));
        }
        self.in_flight[usize::from(id)] = false;
        let max = self.lens[usize::from(id)];
        if len > max {
            return Some(Err(BadUsed::LenTooLong { id, len, max }));
        }
        Some(Ok(Used { id, len }))
    }

    /// Asks the device to interrupt (or not) when it uses buffers. A hint:
    /// the device may interrupt anyway. With EVENT_IDX, "on" means "after the
    /// next used buffer" and "off" moves the event index out of reach.
    /// Spec 2.7.7 (used buffer notification suppression), 2.7.10 (EVENT_IDX).
    pub fn set_interrupts(&mut self, enabled: bool) {
        self.interrupts = enabled;
        if self.event_idx {
            self.write_used_event();
        } else {
            self.write::<u16>(self.layout.avail, if enabled { 0 } else { AVAIL_F_NO_INTERRUPT });
        }
        fence(Ordering::SeqCst);
    }

    /// With EVENT_IDX: "interrupt after the next used buffer" when on; when
    /// off, an index half the ring-index space ahead, which the device cannot
    /// reach before `pop_used` moves it on again.
    fn write_used_event(&mut self) {
        let event = if self.interrupts { self.last_used } else { self.last_used.wrapping_add(0x8000) };
        self.write::<u16>(self.layout.avail + 4 + 2 * usize::from(self.size), event);
    }

    fn used_idx(&self) -> u16 {
        self.read::<u16>(self.layout.used + 2)
    }

    fn write<T: Copy>(&self, offset: usize, value: T) {
        assert!(offset + size_of::<T>() <= self.layout.total && offset.is_multiple_of(align_of::<T>()));
        // SAFETY: the assertion keeps the access inside the queue's DMA
        // allocation and aligned (the allocation is page-aligned); volatile,
        // because the device reads this memory behind the compiler's back.
        unsafe { self.base.add(offset).cast::<T>().write_volatile(value) }
    }

    fn read<T: Copy>(&self, offset: usize) -> T {
        assert!(offset + size_of::<T>() <= self.layout.total && offset.is_multiple_of(align_of::<T>()));
        // SAFETY: as in `write`; every bit pattern is a valid integer.
        unsafe { self.base.add(offset).cast::<T>().read_volatile() }
    }
}

impl<H: Hal> Drop for SplitQueue<H> {
    fn drop(&mut self) {
        // SAFETY: the memory came from `H::dma_alloc` with these pages; the
        // owner resets the device (or its queue) before dropping a queue, so
        // the device no longer uses it.
        unsafe { H::dma_dealloc(self.paddr, self.base, self.pages) };
    }
}

/// Whether moving the available index from `old` to `new` crossed the
/// device's `event` index: `vring_need_event` from the spec (2.7.10), whose
/// wrapping 16-bit arithmetic stays right across the index wrap.
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

#[cfg(test)]
mod test {
    use super::super::fake::{DeviceQueue, FakeHal, FakeTransport};
    use super::*;

    fn queue(max: u32, cap: u16, event_idx: bool) -> (SplitQueue<FakeHal>, DeviceQueue, FakeTransport) {
        let mut t = FakeTransport::new(0, vec![], max);
        let q = SplitQueue::<FakeHal>::new(&mut t, 0, cap, event_idx).unwrap();
        let dev = DeviceQueue::new(t.queue(0));
        (q, dev, t)
    }

    /// Gives every descriptor a 64-byte buffer at a made-up address.
    fn fill(q: &mut SplitQueue<FakeHal>) {
        for id in 0..q.size() {
            q.set_buffer(id, 0x10_0000 + 64 * u64::from(id), 64, true).unwrap();
        }
    }

    #[test]
    fn size_comes_from_the_device_capped_and_rounded_to_a_power_of_two() {
        assert_eq!(queue(256, 1024, false).0.size(), 256);
        assert_eq!(queue(1024, 256, false).0.size(), 256);
        assert_eq!(queue(100, 1024, false).0.size(), 64);
        let mut t = FakeTransport::new(0, vec![], 0);
        assert_eq!(SplitQueue::<FakeHal>::new(&mut t, 0, 256, false).err(), Some(QueueError::NotAvailable));
    }

    #[test]
    fn a_legacy_queue_takes_the_device_size_or_nothing() {
        let mut t = FakeTransport::new(0, vec![], 512);
        t.0.borrow_mut().legacy = true;
        assert_eq!(SplitQueue::<FakeHal>::new(&mut t, 0, 256, false).unwrap().size(), 512);
        let mut t = FakeTransport::new(0, vec![], 100);
        t.0.borrow_mut().legacy = true;
        assert_eq!(SplitQueue::<FakeHal>::new(&mut t, 0, 256, false).err(), Some(QueueError::BadSize(100)));
    }

    #[test]
    fn pushed_buffers_reach_the_device_only_when_published() {
        let (mut q, mut dev, _) = queue(8, 8, false);
        fill(&mut q);
        q.push(3).unwrap();
        q.push(5).unwrap();
        assert!(dev.take_avail().is_empty(), "visible before publish");
        assert!(q.publish(), "device did not suppress notifications");
        assert_eq!(dev.take_avail(), [3, 5]);
        assert_eq!(dev.descriptor(5), (0x10_0000 + 5 * 64, 64, DESC_F_WRITE));
        assert!(!q.publish(), "nothing new, no kick");
        assert_eq!(q.push(3), Err(QueueError::InvalidId(3)), "already in flight");
        assert_eq!(q.push(8), Err(QueueError::InvalidId(8)));
    }

    #[test]
    fn used_entries_come_back_in_device_order() {
        let (mut q, mut dev, _) = queue(8, 8, false);
        fill(&mut q);
        for id in [1, 2, 3] {
            q.push(id).unwrap();
        }
        q.publish();
        dev.put_used(2, 60);
        dev.put_used(1, 10);
        assert_eq!(q.pop_used(), Some(Ok(Used { id: 2, len: 60 })));
        assert_eq!(q.pop_used(), Some(Ok(Used { id: 1, len: 10 })));
        assert_eq!(q.pop_used(), None);
        assert_eq!(q.in_flight(), 1);
    }

    #[test]
    fn hostile_used_entries_are_reported_skipped_and_the_queue_goes_on() {
        let (mut q, mut dev, _) = queue(8, 8, false);
        fill(&mut q);
        for id in 0..4 {
            q.push(id).unwrap();
        }
        q.publish();
        assert_eq!(dev.take_avail(), [0, 1, 2, 3]);
        dev.put_used(9, 10); // not a descriptor
        dev.put_used(u32::MAX, 10); // not even a u16
        dev.put_used(6, 10); // never given
        dev.put_used(0, 10);
        dev.put_used(0, 10); // returned twice
        dev.put_used(1, 65); // longer than the 64-byte buffer
        dev.put_used(2, 64);
        assert_eq!(q.pop_used(), Some(Err(BadUsed::IdOutOfRange { id: 9 })));
        assert_eq!(q.pop_used(), Some(Err(BadUsed::IdOutOfRange { id: u32::MAX })));
        assert_eq!(q.pop_used(), Some(Err(BadUsed::NotInFlight { id: 6 })));
        assert_eq!(q.pop_used(), Some(Ok(Used { id: 0, len: 10 })));
        assert_eq!(q.pop_used(), Some(Err(BadUsed::NotInFlight { id: 0 })));
        assert_eq!(q.pop_used(), Some(Err(BadUsed::LenTooLong { id: 1, len: 65, max: 64 })));
        assert_eq!(q.pop_used(), Some(Ok(Used { id: 2, len: 64 })));
        assert_eq!(q.pop_used(), None);
        // The freed descriptors can be used again, and the queue still works.
        q.push(0).unwrap();
        q.push(1).unwrap();
        q.publish();
        assert_eq!(dev.take_avail(), [0, 1]);
        dev.put_used(1, 5);
        assert_eq!(q.pop_used(), Some(Ok(Used { id: 1, len: 5 })));
    }

    #[test]
    fn a_used_index_that_jumps_past_the_queue_is_reported_and_skipped() {
        let (mut q, mut dev, _) = queue(8, 8, false);
        fill(&mut q);
        q.push(0).unwrap();
        q.publish();
        dev.take_avail();
        // The device claims 20 entries at once in an 8-entry queue.
        for _ in 0..20 {
            dev.put_used(0, 1);
        }
        assert_eq!(q.pop_used(), Some(Err(BadUsed::IndexJump { distance: 20 })));
        assert_eq!(q.pop_used(), None, "skipped to the device's index");
        // Later entries are taken normally.
        dev.put_used(0, 3);
        assert_eq!(q.pop_used(), Some(Ok(Used { id: 0, len: 3 })));
    }

    #[test]
    fn device_notification_suppression_is_honoured() {
        let (mut q, dev, _) = queue(8, 8, false);
        fill(&mut q);
        // SAFETY: the used ring's flags word, in the live queue memory.
        unsafe { (dev.q.used as *mut u16).write_volatile(USED_F_NO_NOTIFY) };
        q.push(0).unwrap();
        assert!(!q.publish());
    }

    #[test]
    fn event_idx_kicks_exactly_when_the_device_asks_across_65536_buffers() {
        // More buffers than the 16-bit indices can count, so they wrap.
        let (mut q, mut dev, _) = queue(4, 4, true);
        fill(&mut q);
        let mut kicks = 0;
        for round in 0..70_000u32 {
            let id = (round % 4) as u16;
            // The device asks to be kicked once the driver has made available
            // the entry after the one it has seen (what a busy device does
            // every few buffers); here it asks every other round.
            if round % 2 == 0 {
                dev.set_avail_event(round as u16);
            }
            q.push(id).unwrap();
            let kicked = q.publish();
            assert_eq!(kicked, round % 2 == 0, "round {round}");
            kicks += u32::from(kicked);
            assert_eq!(dev.take_avail(), [id]);
            dev.put_used(u32::from(id), 1);
            assert_eq!(q.pop_used(), Some(Ok(Used { id, len: 1 })), "round {round}");
        }
        assert_eq!(kicks, 35_000);
    }

    #[test]
    fn interrupt_suppression_writes_flags_or_used_event() {
        let (mut q, dev, _) = queue(8, 8, false);
        q.set_interrupts(false);
        assert_eq!(dev.used_event_and_flags().1, AVAIL_F_NO_INTERRUPT);
        q.set_interrupts(true);
        assert_eq!(dev.used_event_and_flags().1, 0);
        let (mut q, dev, _) = queue(8, 8, true);
        q.set_interrupts(true);
        assert_eq!(dev.used_event_and_flags().0, 0, "interrupt after the next used buffer");
        q.set_interrupts(false);
        assert_eq!(dev.used_event_and_flags().0, 0x8000, "out of reach of 8 in-flight buffers");
        // It stays out of reach while entries are taken with interrupts off.
        let mut dev = dev;
        for id in 0..8 {
            q.set_buffer(id, 0x1000, 64, true).unwrap();
        }
        for round in 0..20u16 {
            let id = round % 8;
            q.push(id).unwrap();
            q.publish();
            dev.take_avail();
            dev.put_used(u32::from(id), 1);
            assert!(q.pop_used().is_some());
            assert_eq!(dev.used_event_and_flags().0, (round + 1).wrapping_add(0x8000), "round {round}");
        }
    }

    #[test]
    fn layout_puts_the_used_ring_on_a_page_boundary() {
        assert_eq!(Layout::new(256), Layout { avail: 4096, used: 8192, total: 8192 + 6 + 2048 });
        assert_eq!(Layout::new(8), Layout { avail: 128, used: 4096, total: 4096 + 6 + 64 });
    }

    #[test]
    fn need_event_is_right_across_the_wrap() {
        // Device wants a kick once index 5 is passed.
        assert!(need_event(5, 6, 5));
        assert!(need_event(5, 10, 3));
        assert!(!need_event(5, 5, 3));
        assert!(!need_event(9, 8, 3));
        // The same, with the indices wrapped past 65535.
        assert!(need_event(65534, 2, 65530), "crossed 65534 while wrapping");
        assert!(!need_event(3, 2, 65530), "not yet at 3");
        assert!(need_event(65535, 0, 65535));
    }
}
