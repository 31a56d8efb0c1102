//! Physical memory: the frame allocator, the heap's region, and MMIO mappings.
//!
//! The entry (the bootloader, or the PVH stub in `pvh`) hands over a memory map
//! and maps all physical memory at `physical_memory_offset` (normal, cached
//! memory; 0 under PVH, whose stub identity-maps the first 4 GiB). From that Skiff:
//! - carves the heap out of the largest usable region, so that the heap is
//!   physically contiguous and its physical addresses are `virt - offset`
//!   (which DMA will rely on);
//! - hands out the remaining usable memory as 4 KiB frames, for page tables;
//! - maps device registers (MMIO) uncached, in a 512 GiB window of its own:
//!   device BARs can sit far above the bootloader's physical mapping (OVMF puts
//!   virtio BARs at 0xe0_0000_0000), and device registers must not be cached.

use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use spin::{Mutex, Once};
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// The most usable regions kept, after merging neighbours. OVMF's map has
/// about 70 entries, most of them adjacent; merged, under ten remain.
const MAX_REGIONS: usize = 128;
/// What the frame allocator keeps for page tables, the only thing it hands
/// out: the MMIO mappings' (q35's ECAM, 256 buses of 1 MiB, takes 128 page
/// tables, 512 KiB; the APIC, the I/O APIC and the card's BARs a few more),
/// with room to spare. The heap, which holds everything else (DMA included),
/// gets the rest of its region.
pub const FRAME_RESERVE: u64 = 1 << 20;
/// Below this the kernel cannot do its work; boot stops with a clear message.
pub const MIN_HEAP_SIZE: u64 = 4 << 20;

/// A range of physical memory, `[start, end)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

impl PhysRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Hands out 4 KiB frames from the usable regions, lowest first. Frames are
/// never returned: Skiff allocates page tables once and keeps them.
pub struct BootFrameAllocator {
    regions: [PhysRange; MAX_REGIONS],
    count: usize,
    /// Index of the region being allocated from, and the next free address in it.
    current: usize,
    next: u64,
    allocated: u64,
}

impl BootFrameAllocator {
    /// Frames handed out so far.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Bytes still free.
    pub fn free_bytes(&self) -> u64 {
        let regions = &self.regions[..self.count];
        let here = regions.get(self.current).map_or(0, |r| r.end.saturating_sub(self.next));
        let later: u64 = regions.iter().skip(self.current + 1).map(PhysRange::len).sum();
        here + later
    }
}

// SAFETY: every frame returned lies in a region the memory map calls usable,
// outside the heap, and is returned only once (`next` only moves forward).
unsafe impl FrameAllocator<Size4KiB> for BootFrameAllocator {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        while self.current < self.count {
            let region = self.regions[self.current];
            if self.next + Size4KiB::SIZE <= region.end {
                let frame = PhysFrame::containing_address(PhysAddr::new(self.next));
                self.next += Size4KiB::SIZE;
                self.allocated += 1;
                return Some(frame);
            }
            self.current += 1;
            self.next = self.regions.get(self.current).map_or(0, |r| r.start);
        }
        None
    }
}

/// What `init` found and set up.
pub struct MemoryInfo {
    /// Where the heap lives, physically.
    pub heap: PhysRange,
    /// Virtual address of the heap (through the physical-memory mapping).
    pub heap_virt: VirtAddr,
}

struct Memory {
    phys_offset: VirtAddr,
    heap: PhysRange,
    frames: BootFrameAllocator,
    mapper: OffsetPageTable<'static>,
    /// Next free address in the MMIO window, and its end.
    mmio_next: VirtAddr,
    mmio_end: VirtAddr,
}

static MEMORY: Once<Mutex<Memory>> = Once::new();

/// Errors from memory set-up and mapping.
#[derive(Debug)]
pub enum MemoryError {
    /// The bootloader did not map physical memory (the kernel's config asks it to).
    NoPhysicalMapping,
    /// No usable region is big enough for the minimum heap.
    TooLittleMemory { largest: u64 },
    /// Every upper-half slot of the top-level page table is in use.
    NoMmioWindow,
    /// The MMIO window or the frames for page tables ran out.
    OutOfSpace,
    /// The page tables refused the mapping.
    Map(MapToError<Size4KiB>),
    /// `init` ran before.
    AlreadyInitialised,
    /// A device region that is not a physical address range: it ends at or
    /// above 2^52 (x86-64's limit), or past the end of the address space.
    BadAddress { phys: u64, size: u64 },
}

impl core::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            MemoryError::NoPhysicalMapping => write!(f, "the bootloader did not map physical memory"),
            MemoryError::TooLittleMemory { largest } => {
                write!(f, "largest usable region is {} KiB, the heap needs {} KiB", largest >> 10, MIN_HEAP_SIZE >> 10)
            }
            MemoryError::NoMmioWindow => write!(f, "no free top-level page-table slot for MMIO mappings"),
            MemoryError::OutOfSpace => write!(f, "out of MMIO address space or page-table frames"),
            MemoryError::Map(e) => write!(f, "page mapping failed: {e:?}"),
            MemoryError::AlreadyInitialised => write!(f, "memory::init called twice"),
            MemoryError::BadAddress { phys, size } => {
                write!(f, "{size:#x} bytes at {phys:#x} are not a physical address range (limit 2^52)")
            }
        }
    }
}

/// Reads the memory map, picks the heap's region, and takes over the page
/// tables. Returns where the heap goes; `allocator::init` puts it there.
pub fn init(regions: &[MemoryRegion], phys_offset: Option<u64>) -> Result<MemoryInfo, MemoryError> {
    // A second mapper over the same page tables would alias them.
    if MEMORY.is_completed() {
        return Err(MemoryError::AlreadyInitialised);
    }
    let phys_offset = VirtAddr::new(phys_offset.ok_or(MemoryError::NoPhysicalMapping)?);

    let mut usable = [PhysRange::default(); MAX_REGIONS];
    let mut count = 0;
    let mut total = 0;
    for r in regions.iter() {
        log::debug!("memory map: {:#012x}..{:#012x} {:?}", r.start, r.end, r.kind);
        // Round inwards to whole frames; skip page 0 so that a null physical
        // address is never a valid frame.
        let start = r.start.max(Size4KiB::SIZE).next_multiple_of(Size4KiB::SIZE);
        let end = r.end & !(Size4KiB::SIZE - 1);
        if r.kind != MemoryRegionKind::Usable || end <= start {
            continue;
        }
        total += end - start;
        if count > 0 && usable[count - 1].end == start {
            usable[count - 1].end = end;
        } else if count < MAX_REGIONS {
            usable[count] = PhysRange { start, end };
            count += 1;
        } else {
            log::warn!("memory map: more than {MAX_REGIONS} usable regions, {:#x}..{:#x} unused", start, end);
            total -= end - start;
        }
    }

    // The heap takes the top of the largest region: all of it, except what
    // the other regions lack of the frames' reserve.
    let largest = (0..count).max_by_key(|&i| usable[i].len()).ok_or(MemoryError::TooLittleMemory { largest: 0 })?;
    let heap_size = heap_size(usable[largest].len(), total);
    if heap_size < MIN_HEAP_SIZE {
        return Err(MemoryError::TooLittleMemory { largest: usable[largest].len() });
    }
    let heap = PhysRange { start: usable[largest].end - heap_size, end: usable[largest].end };
    usable[largest].end = heap.start;

    // SAFETY: CR3 holds the active level-4 table, which the bootloader built;
    // it is reached through the physical-memory mapping at `phys_offset`.
    // This is the only mapper over it: `init` runs once (checked above, and
    // boot is single-threaded), and from now on only this module changes it.
    let mapper = unsafe {
        let (l4_frame, _) = Cr3::read();
        let l4: *mut PageTable = (phys_offset + l4_frame.start_address().as_u64()).as_mut_ptr();
        OffsetPageTable::new(&mut *l4, phys_offset)
    };
    // A free top-level slot in the upper half becomes the MMIO window.
    // Slot 511 is left out: its window would end at 2^64.
    let slot = (256..511).find(|&i| mapper.level_4_table()[i].is_unused()).ok_or(MemoryError::NoMmioWindow)?;
    let mmio_start = VirtAddr::new_truncate((slot as u64) << 39);

    let frames = BootFrameAllocator { regions: usable, count, current: 0, next: usable[0].start, allocated: 0 };
    log::info!(
        "{} MiB usable in {count} regions, heap {} MiB at {:#x}, {} MiB left for frames, MMIO window at {:#x}",
        total >> 20,
        heap_size >> 20,
        heap.start,
        frames.free_bytes() >> 20,
        mmio_start
    );
    MEMORY.call_once(|| {
        Mutex::new(Memory {
            phys_offset,
            heap,
            frames,
            mapper,
            mmio_next: mmio_start,
            mmio_end: mmio_start + (1u64 << 39),
        })
    });
    Ok(MemoryInfo { heap, heap_virt: phys_offset + heap.start })
}

/// The heap's size, given the largest usable region (where it goes) and all
/// usable memory: the region, less what the regions outside it lack of
/// `FRAME_RESERVE`, in whole frames.
pub fn heap_size(largest: u64, total: u64) -> u64 {
    let outside = total - largest;
    largest.saturating_sub(FRAME_RESERVE.saturating_sub(outside)) & !(Size4KiB::SIZE - 1)
}

/// Maps `size` bytes of device registers at physical address `phys`, uncached,
/// and returns the virtual address of `phys`. The address usually comes from
/// a device or firmware, so a range past the physical address limit is an
/// error, not a panic.
pub fn map_mmio(phys: u64, size: u64) -> Result<VirtAddr, MemoryError> {
    let bad = MemoryError::BadAddress { phys, size };
    let last = phys.checked_add(size.max(1) - 1).ok_or(bad)?;
    let (Ok(phys), Ok(last)) = (PhysAddr::try_new(phys), PhysAddr::try_new(last)) else {
        return Err(MemoryError::BadAddress { phys, size });
    };
    let memory = MEMORY.get().ok_or(MemoryError::OutOfSpace)?;
    let mut m = memory.lock();
    let first = PhysFrame::<Size4KiB>::containing_address(phys);
    let last = PhysFrame::<Size4KiB>::containing_address(last);
    let pages = (last.start_address() - first.start_address()) / Size4KiB::SIZE + 1;
    let virt = m.mmio_next;
    if pages > (m.mmio_end - virt) / Size4KiB::SIZE {
        return Err(MemoryError::OutOfSpace);
    }
    let flags = PageTableFlags::PRESENT
        | PageTableFlags::WRITABLE
        | PageTableFlags::NO_CACHE
        | PageTableFlags::WRITE_THROUGH
        | PageTableFlags::NO_EXECUTE;
    // Claim the range first: if a page fails to map, the pages before it stay
    // mapped, and a later call must not try them again.
    m.mmio_next = virt + pages * Size4KiB::SIZE;
    let Memory { mapper, frames, .. } = &mut *m;
    for i in 0..pages {
        let page = Page::<Size4KiB>::containing_address(virt + i * Size4KiB::SIZE);
        let frame = first + i;
        // SAFETY: `page` is in the MMIO window, which nothing else maps, and
        // `frame` is device memory that the caller owns; mapping it uncached
        // cannot alias any Rust object.
        unsafe { mapper.map_to(page, frame, flags, frames) }.map_err(MemoryError::Map)?.flush();
    }
    Ok(virt + (phys.as_u64() - first.start_address().as_u64()))
}

/// A frame from the allocator (for tests and page tables).
#[cfg(feature = "ktest")]
pub fn allocate_frame() -> Option<PhysFrame> {
    MEMORY.get()?.lock().frames.allocate_frame()
}

/// Frames handed out so far, and bytes still free.
pub fn frame_stats() -> (u64, u64) {
    MEMORY.get().map_or((0, 0), |m| {
        let m = m.lock();
        (m.frames.allocated(), m.frames.free_bytes())
    })
}

/// The virtual address of physical address `phys` in the bootloader's mapping.
pub fn phys_to_virt(phys: PhysAddr) -> Option<VirtAddr> {
    Some(MEMORY.get()?.lock().phys_offset + phys.as_u64())
}

/// The physical address of a heap address: the heap is one physical region
/// mapped at a fixed offset. `None` outside the heap.
pub fn heap_virt_to_phys(virt: VirtAddr) -> Option<PhysAddr> {
    let m = MEMORY.get()?.lock();
    let phys = virt.as_u64().checked_sub(m.phys_offset.as_u64())?;
    (m.heap.start <= phys && phys < m.heap.end).then(|| PhysAddr::new(phys))
}

/// The physical address behind any mapped virtual address (through the page tables).
pub fn translate(virt: VirtAddr) -> Option<PhysAddr> {
    use x86_64::structures::paging::Translate;
    MEMORY.get()?.lock().mapper.translate_addr(virt)
}

/// Whether `frame` lies in a usable region of the map outside the heap.
#[cfg(feature = "ktest")]
pub fn is_allocatable(frame: PhysFrame) -> bool {
    MEMORY.get().is_some_and(|m| {
        let m = m.lock();
        let a = frame.start_address().as_u64();
        m.frames.regions[..m.frames.count].iter().any(|r| r.start <= a && a + Size4KiB::SIZE <= r.end)
    })
}
