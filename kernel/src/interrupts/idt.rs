//! The interrupt descriptor table: 256 gates, each pointing at its entry stub.
//!
//! Skiff builds the gates itself rather than through `x86_64`'s typed IDT,
//! because every vector shares one entry path (see `trap.rs`) and the typed
//! table wants a differently-typed handler per exception.

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, Segment};
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

use super::trap;
use crate::gdt;

/// One 16-byte interrupt gate (Intel SDM vol. 3, 6.14.1).
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    /// Bits 0–2: interrupt stack table index (0 = none).
    ist: u8,
    /// Present, DPL 0, type 0xE (64-bit interrupt gate: clears IF on entry).
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const PRESENT_INTERRUPT_GATE: u8 = 0x8E;

impl Gate {
    fn new(handler: u64, selector: u16, ist: u8) -> Self {
        Gate {
            offset_low: handler as u16,
            selector,
            ist,
            type_attr: PRESENT_INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Once<Idt> = Once::new();

pub fn load() {
    let idt = IDT.call_once(|| {
        let cs = CS::get_reg().0;
        Idt(core::array::from_fn(|v| {
            // Double faults switch to their own stack (IST slots are 1-based here).
            let ist = if v == usize::from(super::DOUBLE_FAULT) { gdt::DOUBLE_FAULT_IST_INDEX as u8 + 1 } else { 0 };
            Gate::new(trap::stub_address(v as u8), cs, ist)
        }))
    });
    let pointer = DescriptorTablePointer { limit: (size_of::<Idt>() - 1) as u16, base: VirtAddr::from_ptr(idt) };
    // SAFETY: the table is 'static and every gate points at a valid stub in
    // the kernel code segment, which `gdt::init` loaded into CS.
    unsafe { lidt(&pointer) };
}
