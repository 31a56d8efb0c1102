//! The kernel heap: `linked_list_allocator` over a region that
//! `memory::init` picked, with counters of bytes in use and the peak.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use linked_list_allocator::LockedHeap;

use crate::memory::MemoryInfo;

/// A heap that counts what it hands out.
pub struct CountingHeap {
    heap: LockedHeap,
    in_use: AtomicUsize,
    peak: AtomicUsize,
}

#[global_allocator]
static HEAP: CountingHeap =
    CountingHeap { heap: LockedHeap::empty(), in_use: AtomicUsize::new(0), peak: AtomicUsize::new(0) };

/// Heap figures, in bytes as requested by callers (the allocator rounds each
/// block up a little, which these do not include).
#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    pub size: usize,
    pub in_use: usize,
    pub peak: usize,
}

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Gives the heap its memory. Allocation before this fails (and panics).
pub fn init(memory: &MemoryInfo) {
    // Re-initialising a heap with live blocks would hand them out again.
    if INITIALISED.swap(true, Ordering::SeqCst) {
        panic!("allocator::init called twice");
    }
    let size = memory.heap.len() as usize;
    // SAFETY: `memory::init` took this range out of the frame allocator's
    // regions, so it is usable RAM that nothing else uses, and it is mapped at
    // `heap_virt` for the kernel's whole life. INITIALISED makes this run once.
    unsafe { HEAP.heap.lock().init(memory.heap_virt.as_mut_ptr(), size) };
    log::info!("{} MiB ready", size >> 20);
}

/// Current heap figures.
pub fn stats() -> HeapStats {
    HeapStats {
        size: HEAP.heap.lock().size(),
        in_use: HEAP.in_use.load(Ordering::Relaxed),
        peak: HEAP.peak.load(Ordering::Relaxed),
    }
}

// SAFETY: allocation is delegated to `LockedHeap`, a correct allocator; the
// counters only observe sizes.
unsafe impl GlobalAlloc for CountingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = self.heap.lock().allocate_first_fit(layout).map_or(core::ptr::null_mut(), NonNull::as_ptr);
        if !ptr.is_null() {
            let now = self.in_use.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: the caller passes a pointer this allocator returned for
            // `layout` (the GlobalAlloc contract).
            unsafe { self.heap.lock().deallocate(ptr, layout) };
            self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
        }
    }
}
