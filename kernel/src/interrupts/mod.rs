//! Interrupts and CPU exceptions: the IDT, the entry stubs, and dispatch.
//!
//! Every one of the 256 vectors enters through the same path (`trap.rs`): a
//! tiny stub pushes the vector number, a common routine saves the registers
//! and calls [`dispatch`] with a [`TrapFrame`]. Exceptions (vectors 0–31) are
//! reported and stop the machine, except breakpoints, which are counted and
//! resumed. Device and timer vectors run the handler registered for them —
//! which only records that work is pending; the real work happens in the main
//! loop — and are then acknowledged at the local APIC.

mod idt;
mod trap;

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

pub use trap::TrapFrame;

use crate::qemu::{self, ExitCode};

/// First vector that is not a CPU exception.
pub const FIRST_EXTERNAL_VECTOR: u8 = 32;
/// Where the legacy 8259 PICs are remapped before being masked. Masked PICs
/// can still raise "spurious" IRQ 7 and 15; these vectors absorb them.
pub const PIC_VECTOR_BASE: u8 = 0xE0;
/// The local APIC timer.
pub const TIMER_VECTOR: u8 = 0x30;
/// The network card's MSI-X vectors (kernel/src/nic.rs).
pub const NIC_CONFIG_VECTOR: u8 = 0x40;
pub const NIC_RX_VECTOR: u8 = 0x41;
pub const NIC_TX_VECTOR: u8 = 0x42;
/// The network card's INTx candidates, when it has no MSI-X (kernel/src/nic.rs).
pub const INTX_VECTOR_BASE: u8 = 0x50;
/// The local APIC's spurious-interrupt vector (its low 4 bits must be 1s on
/// old APICs, hence 0xFF).
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// Exception vector numbers (Intel SDM vol. 3, table 6-1) that Skiff treats specially.
const BREAKPOINT: u8 = 3;
const DOUBLE_FAULT: u8 = 8;
const PAGE_FAULT: u8 = 14;

/// An interrupt handler: runs with interrupts off, must be short, must not
/// allocate or take locks that the main loop holds.
pub type Handler = fn(vector: u8);

static HANDLERS: [AtomicPtr<()>; 256] = [const { AtomicPtr::new(core::ptr::null_mut()) }; 256];
static COUNTS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];
/// The sum of `COUNTS`, kept as they are counted: `/stats` reads it every
/// poll step, and summing 256 counters there would cost more than the step.
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// Loads the IDT. Interrupts stay disabled until the caller enables them.
pub fn init() {
    idt::load();
    log::info!("IDT loaded: 256 vectors, exceptions stop the machine except #BP");
}

/// Routes `vector` to `handler`. Replaces any earlier handler.
pub fn register(vector: u8, handler: Handler) {
    assert!(vector >= FIRST_EXTERNAL_VECTOR, "vector {vector} is a CPU exception");
    HANDLERS[vector as usize].store(handler as *mut (), Ordering::Release);
}

/// How many times `vector` has been taken since boot.
pub fn count(vector: u8) -> u64 {
    COUNTS[vector as usize].load(Ordering::Relaxed)
}

/// How many interrupts and exceptions have been taken since boot, of every vector.
pub fn total() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// Called by the common entry stub with interrupts disabled.
extern "C" fn dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    COUNTS[vector as usize].fetch_add(1, Ordering::Relaxed);
    TOTAL.fetch_add(1, Ordering::Relaxed);
    match vector {
        // Counted and resumed. Not logged: the console lock may be held by
        // the code that trapped, and exceptions are not masked by `cli`.
        BREAKPOINT => {}
        0..FIRST_EXTERNAL_VECTOR => fatal_exception(frame),
        SPURIOUS_VECTOR => {} // the APIC wants no EOI for these
        v if v == PIC_VECTOR_BASE + 7 || v == PIC_VECTOR_BASE + 15 => {} // nor the PIC
        _ => {
            let handler = HANDLERS[vector as usize].load(Ordering::Acquire);
            if !handler.is_null() {
                // SAFETY: the only non-null values stored in HANDLERS are
                // `Handler` function pointers, written by `register`.
                let handler: Handler = unsafe { core::mem::transmute::<*mut (), Handler>(handler) };
                handler(vector);
            }
            crate::apic::end_of_interrupt();
        }
    }
}

fn fatal_exception(frame: &TrapFrame) -> ! {
    let vector = frame.vector as u8;
    let name = EXCEPTION_NAMES.get(vector as usize).copied().unwrap_or("reserved");
    crate::serial::write_fmt_emergency(format_args!(
        "\nEXCEPTION: {name} (vector {vector}), error code {:#x}\n  at rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x}\n",
        frame.error_code, frame.rip, frame.cs, frame.rflags, frame.rsp
    ));
    if vector == PAGE_FAULT {
        let addr = x86_64::registers::control::Cr2::read_raw();
        crate::serial::write_fmt_emergency(format_args!("  faulting address {addr:#018x}\n"));
    }
    if vector == DOUBLE_FAULT {
        crate::serial::write_fmt_emergency(format_args!(
            "  (on the double-fault stack; a kernel stack overflow looks like this)\n"
        ));
    }
    crate::serial::write_fmt_emergency(format_args!("{frame:#x?}\n"));
    qemu::exit(ExitCode::CpuException)
}

/// Intel SDM vol. 3, table 6-1.
const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "non-maskable interrupt",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection fault",
    "page fault",
    "reserved",
    "x87 floating-point error",
    "alignment check",
    "machine check",
    "SIMD floating-point exception",
    "virtualization exception",
    "control protection exception",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection exception",
    "VMM communication exception",
    "security exception",
    "reserved",
];
