//! A queue's packet buffers: one DMA region cut into equal slots, slot `i`
//! for descriptor `i`, so that a used id names its buffer with no lookup.

use core::marker::PhantomData;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// `count` slots of `slot_len` bytes in one DMA region.
///
/// Freeing it returns memory to the heap, so it must only be dropped once
/// the device can no longer write it (reset, or never told of it); the
/// device keeps it alive with `core::mem::forget` otherwise.
pub(super) struct Buffers<H: Hal> {
    paddr: PhysAddr,
    base: NonNull<u8>,
    pages: usize,
    count: u16,
    slot_len: usize,
    _hal: PhantomData<H>,
}

impl<H: Hal> Buffers<H> {
    /// `None` if the memory cannot be had.
    pub(super) fn new(count: u16, slot_len: usize, direction: BufferDirection) -> Option<Self> {
        let pages = usize::from(count).checked_mul(slot_len)?.div_ceil(PAGE_SIZE);
        let (paddr, base) = H::dma_alloc(pages, direction);
        if paddr == 0 {
            return None;
        }
        Some(Buffers { paddr, base, pages, count, slot_len, _hal: PhantomData })
    }

    /// Number of slots.
    pub(super) fn count(&self) -> u16 {
        self.count
    }

    /// Bytes per slot.
    pub(super) fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// The device's address of slot `id`.
    pub(super) fn paddr(&self, id: u16) -> PhysAddr {
        self.paddr + (usize::from(self.checked(id)) * self.slot_len) as u64
    }

    /// Slot `id`, which the device must not own while it is borrowed.
    pub(super) fn slot(&self, id: u16) -> &[u8] {
        let at = usize::from(self.checked(id)) * self.slot_len;
        // SAFETY: `at + slot_len` is within the region (`checked`); the memory
        // is initialised (zeroed by dma_alloc, then written by the device or
        // us) and the caller holds the slot, so the device does not write it.
        unsafe { core::slice::from_raw_parts(self.base.as_ptr().add(at), self.slot_len) }
    }

    /// Slot `id`, mutably; as [`slot`](Self::slot).
    pub(super) fn slot_mut(&mut self, id: u16) -> &mut [u8] {
        let at = usize::from(self.checked(id)) * self.slot_len;
        // SAFETY: as in `slot`, and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr().add(at), self.slot_len) }
    }

    /// Ids reach here from our own bookkeeping (queue-checked used ids, the
    /// free list), never straight from the device: one out of range is a bug.
    fn checked(&self, id: u16) -> u16 {
        assert!(id < self.count, "buffer slot {id} of {}", self.count);
        id
    }
}

impl<H: Hal> Drop for Buffers<H> {
    fn drop(&mut self) {
        // SAFETY: allocated by `H::dma_alloc` with these pages; the owner
        // drops us only once the device cannot use them (see the type's doc).
        unsafe { H::dma_dealloc(self.paddr, self.base, self.pages) };
    }
}
