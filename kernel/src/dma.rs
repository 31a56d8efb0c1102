//! DMA memory for devices: `virtio-drivers`' `Hal`, implemented over the heap.
//!
//! The heap is one physically contiguous region, mapped at a fixed offset
//! (see `memory`), so a heap block's physical address is `virt - offset` and
//! any multi-page block is physically contiguous too: exactly what virtqueues
//! and packet buffers need. x86 DMA is cache-coherent, so sharing a buffer
//! needs no flushing, only address translation.

use core::alloc::Layout;
use core::ptr::NonNull;

use skiff_drivers::virtio::{BufferDirection, Hal, PhysAddr};
use x86_64::VirtAddr;

use crate::memory;

/// Skiff's `Hal`.
pub struct KernelHal;

const PAGE: usize = 4096;

fn layout(pages: usize) -> Option<Layout> {
    Layout::from_size_align(pages.checked_mul(PAGE)?, PAGE).ok()
}

// SAFETY: dma_alloc returns zeroed, page-aligned, physically contiguous memory
// with its true physical address; share translates through the page tables.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(layout) = layout(pages).filter(|l| l.size() > 0) else { return (0, NonNull::dangling()) };
        // SAFETY: the layout has a non-zero size.
        let Some(virt) = NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) }) else {
            return (0, NonNull::dangling());
        };
        match memory::heap_virt_to_phys(VirtAddr::from_ptr(virt.as_ptr())) {
            Some(phys) => (phys.as_u64(), virt),
            None => unreachable!("heap block {virt:p} outside the heap"),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        match layout(pages) {
            Some(layout) => {
                // SAFETY: `vaddr` came from dma_alloc with the same page count.
                unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), layout) };
                0
            }
            None => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        match memory::map_mmio(paddr, size as u64) {
            Ok(virt) => NonNull::new(virt.as_mut_ptr()).unwrap_or(NonNull::dangling()),
            // The trait has no way to fail; a device whose registers cannot be
            // mapped cannot be driven, and this happens once, at boot.
            Err(e) => panic!("cannot map device registers at {paddr:#x}: {e}"),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let virt = VirtAddr::from_ptr(buffer.as_ptr().cast::<u8>());
        match memory::translate(virt) {
            Some(phys) => phys.as_u64(),
            None => panic!("buffer at {virt:?} is not mapped"),
        }
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
