//! The global descriptor table and the task state segment.
//!
//! In 64-bit mode segmentation is mostly gone, but the CPU still needs a code
//! segment to run in and a TSS to find its interrupt stacks. Skiff uses the TSS
//! for one thing: a separate stack for double faults (IST 1), so that a kernel
//! stack overflow reports itself instead of triple-faulting the machine.

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// The interrupt stack table slot for double faults (the IDT names it 1-based).
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
/// Size of the double-fault stack: enough to format and print a report.
const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

/// The double-fault stack. The CPU writes it; Rust code never touches it.
#[repr(align(16))]
#[expect(dead_code, reason = "only the CPU reads and writes it")]
struct Stack([u8; DOUBLE_FAULT_STACK_SIZE]);
static mut DOUBLE_FAULT_STACK: Stack = Stack([0; DOUBLE_FAULT_STACK_SIZE]);

struct Gdt {
    table: GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<Gdt> = Once::new();

/// Loads the GDT and TSS and reloads the segment registers.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let stack = &raw const DOUBLE_FAULT_STACK;
        // The stack grows down: the IST entry holds its top.
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
            VirtAddr::from_ptr(stack) + DOUBLE_FAULT_STACK_SIZE as u64;
        tss
    });
    let gdt = GDT.call_once(|| {
        let mut table = GlobalDescriptorTable::new();
        let code = table.append(Descriptor::kernel_code_segment());
        let data = table.append(Descriptor::kernel_data_segment());
        let tss = table.append(Descriptor::tss_segment(tss));
        Gdt { table, code, data, tss }
    });
    gdt.table.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which is
    // 'static; the code and data descriptors are flat 64-bit kernel segments,
    // so every existing address stays valid.
    unsafe {
        CS::set_reg(gdt.code);
        DS::set_reg(gdt.data);
        ES::set_reg(gdt.data);
        SS::set_reg(gdt.data);
        load_tss(gdt.tss);
    }
    log::info!(
        "GDT and TSS loaded (double-fault stack {} KiB on IST{})",
        DOUBLE_FAULT_STACK_SIZE / 1024,
        DOUBLE_FAULT_IST_INDEX + 1
    );
}
