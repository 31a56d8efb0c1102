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
    /// The transport did not enable the queue: it refused where the rings
    /// are, or where the device said to notify it (the transport logs why).
    NotEnabled,
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
            QueueError::NotEnabled => write!(f, "the transport did not enable the queue"),
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
        let queue = SplitQueue {
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
        };
        // `queue_set` cannot fail; a transport that refuses leaves the queue
        // unused. Dropping `queue` then frees the rings.
        if !transport.queue_used(index) {
            return Err(QueueError::NotEnabled);
        }
        Ok(queue)
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
mod test;
