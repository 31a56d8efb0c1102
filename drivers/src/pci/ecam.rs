//! PCI Express enhanced configuration access (ECAM): every function's 4 KiB
//! of configuration space, memory-mapped at `base + (bus << 20 | device << 15
//! | function << 12)`.
//!
//! `virtio-drivers` has an ECAM accessor too, but it cannot be cloned for the
//! writes Skiff makes outside `PciRoot` (MSI-X set-up); this one is a plain
//! pointer, and volatile accesses through copies of it are as sound as
//! through one.
//!
//! Ref: PCI Express Base Specification, 7.2.2.

use core::ptr::NonNull;

use virtio_drivers::transport::pci::bus::{Cam, ConfigurationAccess, DeviceFunction};

/// Configuration space through an ECAM window.
#[derive(Clone, Copy, Debug)]
pub struct Ecam {
    base: NonNull<u8>,
}

impl Ecam {
    /// Bytes an ECAM window for all 256 buses covers.
    pub const SIZE: usize = 256 << 20;

    /// Configuration access through the window mapped at `base`.
    ///
    /// # Safety
    /// `base` must map `Ecam::SIZE` bytes of an ECAM region, uncached, for as
    /// long as any copy of this value is used, and nothing else may treat
    /// that memory as ordinary memory.
    pub unsafe fn new(base: NonNull<u8>) -> Self {
        Ecam { base }
    }

    fn register(&self, function: DeviceFunction, offset: u8) -> *mut u32 {
        let at = Cam::Ecam.cam_offset(function, offset & 0xFC) as usize;
        // In bounds: cam_offset is below Cam::Ecam.size() == Ecam::SIZE.
        self.base.as_ptr().wrapping_add(at).cast()
    }
}

impl ConfigurationAccess for Ecam {
    fn read_word(&self, function: DeviceFunction, offset: u8) -> u32 {
        // SAFETY: the register is inside the mapped window (constructor
        // contract) and dword-aligned; configuration reads have no side effects.
        unsafe { self.register(function, offset).read_volatile() }
    }

    fn write_word(&mut self, function: DeviceFunction, offset: u8, data: u32) {
        // SAFETY: as in `read_word`; callers write registers as the PCI
        // specification defines them.
        unsafe { self.register(function, offset).write_volatile(data) }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        *self
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn registers_are_at_bus_device_function_offsets() {
        let mut memory = vec![0u32; Ecam::SIZE / 4];
        let base = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `memory` stands in for the window and outlives `ecam`.
        let mut ecam = unsafe { Ecam::new(base) };
        let f = DeviceFunction { bus: 2, device: 3, function: 4 };
        ecam.write_word(f, 0x10, 0xdead_beef);
        let index = ((2 << 20) | (3 << 15) | (4 << 12) | 0x10) / 4;
        assert_eq!(memory[index], 0xdead_beef);
        memory[index + 1] = 7;
        assert_eq!(ecam.read_word(f, 0x14), 7);
        assert_eq!(ecam.read_word(f, 0x16), 7, "sub-dword offsets read the containing dword");
    }
}
