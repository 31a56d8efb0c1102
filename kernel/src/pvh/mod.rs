//! The PVH entry: `qemu-system-x86_64 -kernel skiff-kernel` with no disk image
//! and no bootloader.
//!
//! Xen's PVH boot ABI (also used by QEMU, Firecracker and Cloud Hypervisor):
//! the loader reads an ELF note `XEN_ELFNOTE_PHYS32_ENTRY` naming a 32-bit
//! physical entry address, loads each `PT_LOAD` segment at its `p_paddr`, and
//! jumps there in 32-bit protected mode, paging off, with `ebx` holding the
//! physical address of an `hvm_start_info` (memory map, command line, RSDP).
//! See Xen's `docs/misc/pvh.pandoc`.
//!
//! `kernel/build.rs` links the kernel at 2 MiB with `p_paddr = p_vaddr` and
//! its dynamic relocations already applied, so the image runs as loaded, at its
//! link address; the bootloader still relocates the same ELF wherever it likes.
//! The stub below builds an identity map of the first 4 GiB (2 MiB pages, which
//! every x86-64 CPU has; 1 GiB pages are optional and TCG's default CPU lacks
//! them), enters long mode and calls `pvh_main`, which checks the start info and
//! runs `kernel_main` with physical memory "mapped at offset 0". RAM above
//! 4 GiB is mapped with 1 GiB pages where the CPU has them, and left unused
//! (with a message) where it does not.

pub mod start_info;
#[cfg(feature = "ktest")]
pub mod tests;

use core::sync::atomic::{AtomicBool, Ordering};

use bootloader_api::info::MemoryRegion;
use spin::Once;

use crate::boot::{BootDescription, CmdlineSource, Entry};
use crate::cmdline::{Cmdline, MAX_LEN};
use crate::qemu::{self, ExitCode};
use start_info::{
    BootError, E820_RAM, MAX_MEMMAP_ENTRIES, MAX_REGIONS, MEMMAP_ENTRY_LEN, MemmapEntry, RSDP_V1_LEN, START_INFO_LEN,
};

/// The ELF note type that names the 32-bit entry (Xen's `public/elfnote.h`).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The end of the identity map the stub builds: 4 page directories of 2 MiB pages.
pub const IDENTITY_MAP_END: u64 = DIRECTORIES as u64 * GIB;
const GIB: u64 = 1 << 30;
/// Page-table entry bits (Intel SDM vol. 3, tables 4-15 and 4-16).
const PRESENT_WRITABLE: u64 = 0b11;
const LARGE_PAGE: u64 = 1 << 7;
/// The stack `pvh_main` and everything after it runs on: as big as the one the
/// bootloader is asked for (`BOOTLOADER_CONFIG` in main.rs).
const STACK_SIZE: usize = 256 * 1024;
const PAGE_SIZE: usize = 4096;
/// Entries in a page table.
const ENTRIES: usize = 512;
/// Page directories in the identity map, one per GiB.
const DIRECTORIES: usize = 4;

/// The bits and registers the stub sets to enter long mode, in the order of
/// Intel SDM vol. 3A, 10.8.5 "Initializing IA-32e Mode" (AMD APM vol. 2,
/// 14.6 "Enabling and Activating Long Mode"): PAE, the page tables, EFER.LME,
/// then paging.
///
/// CR4.PAE, physical address extension (SDM vol. 3A, 2.5 "Control
/// Registers", figure 2-7; APM vol. 2, 3.1.3 "CR4 Register").
const CR4_PAE: u32 = 1 << 5;
/// The IA32_EFER model-specific register's number (SDM vol. 4, table 2-2;
/// SDM vol. 3A, 2.2.1 "Extended Feature Enable Register"; APM vol. 2, 3.1.7
/// "Extended Feature Enable Register (EFER)").
const IA32_EFER: u32 = 0xC000_0080;
/// EFER.LME, long mode enable, and EFER.NXE, no-execute enable (bits 8 and
/// 11; same sections).
const EFER_LME: u32 = 1 << 8;
const EFER_NXE: u32 = 1 << 11;
/// CPUID's leaf that returns the highest extended leaf in EAX, its extended
/// feature leaf, and that leaf's EDX bits for no-execute (XD) and long mode
/// (SDM vol. 2A, CPUID, "Extended Function CPUID Information"; APM vol. 3,
/// E.4.1 "Function 8000_0000h", E.4.2 "Function 8000_0001h").
const CPUID_EXTENDED_MAX: u32 = 0x8000_0000;
const CPUID_EXTENDED_FEATURES: u32 = 0x8000_0001;
const CPUID_EDX_NX: u32 = 1 << 20;
const CPUID_EDX_LM: u32 = 1 << 29;
/// CR0.PG, paging, and CR0.WP, write protect for supervisor writes (SDM
/// vol. 3A, 2.5 "Control Registers"; APM vol. 2, 3.1.1 "CR0 Register").
const CR0_PG: u32 = 1 << 31;
const CR0_WP: u32 = 1 << 16;

/// The 16550's line status register (offset from its base) and its
/// "transmit holding register empty" bit.
const UART_LINE_STATUS: u16 = 5;
const UART_TRANSMIT_EMPTY: u8 = 1 << 5;

/// A 4 KiB page table (any level).
#[repr(C, align(4096))]
struct PageTable([u64; ENTRIES]);

/// The stack, with a guard page below it that the stub leaves unmapped, so
/// that an overflow faults (onto the double-fault stack) instead of
/// overwriting whatever precedes the stack in `.bss`.
#[repr(C, align(4096))]
struct BootStack {
    guard: [u8; PAGE_SIZE],
    stack: [u8; STACK_SIZE],
}

// The stub fills these; Rust code never makes references to them. They are
// `.bss`, which a PVH loader zero-fills like every `PT_LOAD` past its file size.
static mut PML4: PageTable = PageTable([0; ENTRIES]);
static mut PDPT: PageTable = PageTable([0; ENTRIES]);
static mut DIRECTORY: [PageTable; DIRECTORIES] = [const { PageTable([0; ENTRIES]) }; DIRECTORIES];
/// 4 KiB pages for the first 2 MiB. Page 0 is mapped while `describe` copies
/// the start info (firmware puts it there), then `unmap_page_zero` takes it
/// out: a null pointer faults under PVH as it does under the bootloader.
static mut LOW_TABLE: PageTable = PageTable([0; ENTRIES]);
/// 4 KiB pages for the 2 MiB around the stack's guard page.
static mut GUARD_TABLE: PageTable = PageTable([0; ENTRIES]);
static mut STACK: BootStack = BootStack { guard: [0; PAGE_SIZE], stack: [0; STACK_SIZE] };

// SAFETY: the steps, in order; each relies only on what came before it.
// - The note: QEMU finds the entry only in a `PT_NOTE` segment whose `p_align`
//   is 4 (`.balign 4`, and 4-byte name/desc padding). The address is
//   `skiff_pvh_entry_abs`, an absolute copy of `skiff_pvh_start32` defined in
//   build.rs: a position-independent executable cannot hold a plain absolute
//   address in read-only data. It is 8 bytes, as Linux writes it and as
//   QEMU reads it for ELF64.
// - Entry: 32-bit flat segments, paging off, interrupts off (we `cli` again
//   anyway), `ebx` = start info; `esp` undefined. `ebp` gets our own address
//   (absolute, as above); every other address is `ebp` plus a link-time
//   difference within this section (`sym - .Lpvh_base`), because the linker
//   cannot write 32-bit absolute addresses into a PIE. The image runs at its
//   link address, so these are right.
// - `esp` = top of `STACK` (in `.bss`, ours). `esi` keeps the start info
//   pointer (cpuid clobbers `ebx`).
// - CPUID leaf 0x8000_0001 EDX bit 29 (long mode) must be there; without it
//   the stub prints why on COM1 by port I/O and exits (`BadBootInput`).
// - Page tables, in our own `.bss`: PML4[0] -> PDPT; PDPT[0..4] -> the four
//   page directories; directory entries map 2 MiB pages 1:1 over 4 GiB,
//   present + writable + large (Intel SDM vol. 3, 4.5, tables 4-15..4-18).
//   The first 2 MiB use `LOW_TABLE` (4 KiB pages; `pvh_main` unmaps page 0
//   once it has copied the start info, which may lie there), and
//   the 2 MiB holding the stack's guard page use `GUARD_TABLE` with that page
//   not present. The image is linked at 2 MiB, so the guard is never in the
//   first 2 MiB and the two tables never collide. All addresses are below
//   4 GiB, so the entries' high halves stay zero (the `.bss` is zero).
// - CR4.PAE, CR3 = PML4, EFER.LME (and EFER.NXE when CPUID says the CPU has
//   NX: Skiff maps MMIO no-execute, as the bootloader enables NXE), then
//   CR0.PG (+ WP, as the bootloader sets): the CPU is in compatibility mode
//   (SDM vol. 3, 10.8.5).
// - A GDT (in this section) with a 64-bit code segment (0x08) and a data
//   segment (0x10); `lgdt` takes its limit and address from the stack;
//   `lret` to 0x08:.Lpvh_long enters 64-bit mode. `gdt::init` later replaces
//   this GDT.
// - 64-bit: reload the data segments, set `rsp` again (the upper halves of
//   registers are undefined after the switch), pass the start info address
//   zero-extended in `rdi`, and call `pvh_main`, which never returns. The
//   stack top is 4 KiB aligned, so the call leaves `rsp` as the ABI expects.
core::arch::global_asm!(
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4",       // n_namesz: "Xen\0"
    ".long 8",       // n_descsz
    ".long {note}",  // n_type
    ".asciz \"Xen\"",
    ".balign 4",
    ".quad skiff_pvh_entry_abs",
    ".balign 4",
    ".popsection",

    ".pushsection .text.pvh, \"ax\", @progbits",
    ".code32",
    ".global skiff_pvh_start32",
    "skiff_pvh_start32:",
    ".Lpvh_base:",
    "cli",
    "cld",
    "mov %ebx, %esi",
    "mov $skiff_pvh_entry_abs, %ebp",
    "lea ({stack} + {page} + {stack_size} - .Lpvh_base)(%ebp), %esp",

    // A CPU without long mode cannot run Skiff: say so and stop.
    "mov ${cpuid_extended_max}, %eax",
    "cpuid",
    "cmp ${cpuid_extended}, %eax",
    "jb .Lpvh_no_long_mode",
    "mov ${cpuid_extended}, %eax",
    "cpuid",
    "test ${cpuid_lm}, %edx",
    "jz .Lpvh_no_long_mode",

    // Page directories: 2048 large pages, entry n maps n * 2 MiB.
    "lea ({directory} - .Lpvh_base)(%ebp), %edi",
    "xor %ecx, %ecx",
    ".Lpvh_directory_loop:",
    "mov %ecx, %eax",
    "shl $21, %eax",
    "or $({present_writable} | {large}), %eax",
    "mov %eax, (%edi,%ecx,8)",
    "inc %ecx",
    "cmp ${directories} * {entries}, %ecx",
    "jne .Lpvh_directory_loop",
    // PDPT[0..4] -> directories, PML4[0] -> PDPT.
    "lea ({pdpt} - .Lpvh_base)(%ebp), %edi",
    "lea ({directory} + {present_writable} - .Lpvh_base)(%ebp), %eax",
    "xor %ecx, %ecx",
    ".Lpvh_pdpt_loop:",
    "mov %eax, (%edi,%ecx,8)",
    "add ${page}, %eax",
    "inc %ecx",
    "cmp ${directories}, %ecx",
    "jne .Lpvh_pdpt_loop",
    "lea ({pml4} - .Lpvh_base)(%ebp), %edi",
    "lea ({pdpt} + {present_writable} - .Lpvh_base)(%ebp), %eax",
    "mov %eax, (%edi)",
    // The first 2 MiB in 4 KiB pages.
    "lea ({low_table} - .Lpvh_base)(%ebp), %edi",
    "xor %edx, %edx",
    "call .Lpvh_fill_table",
    "lea ({directory} - .Lpvh_base)(%ebp), %ebx",
    "lea {present_writable}(%edi), %eax",
    "mov %eax, (%ebx)",
    // The stack's guard page: split its 2 MiB page, leave it out.
    "lea ({stack} - .Lpvh_base)(%ebp), %eax",
    "mov %eax, %edx",
    "and $~((1 << 21) - 1), %edx",
    "lea ({guard_table} - .Lpvh_base)(%ebp), %edi",
    "call .Lpvh_fill_table",
    "shr $12, %eax",
    "and ${entries} - 1, %eax",
    "movl $0, (%edi,%eax,8)",
    "shr $21, %edx",
    "lea {present_writable}(%edi), %eax",
    "mov %eax, (%ebx,%edx,8)",

    // Long mode.
    "mov %cr4, %eax",
    "or ${cr4_pae}, %eax",
    "mov %eax, %cr4",
    "lea ({pml4} - .Lpvh_base)(%ebp), %eax",
    "mov %eax, %cr3",
    "mov ${cpuid_extended}, %eax",
    "cpuid",
    "mov %edx, %edi", // rdmsr overwrites edx
    "mov ${efer}, %ecx",
    "rdmsr",
    "or ${efer_lme}, %eax",
    "test ${cpuid_nx}, %edi",
    "jz .Lpvh_no_nx",
    "or ${efer_nxe}, %eax",
    ".Lpvh_no_nx:",
    "wrmsr",
    "mov %cr0, %eax",
    "or ${cr0_pg_wp}, %eax",
    "mov %eax, %cr0",
    "lea (.Lpvh_gdt - .Lpvh_base)(%ebp), %eax",
    "push %eax",
    "pushw $(.Lpvh_gdt_end - .Lpvh_gdt - 1)",
    "lgdt (%esp)",
    "add $6, %esp",
    "push $0x08",
    "lea (.Lpvh_long - .Lpvh_base)(%ebp), %eax",
    "push %eax",
    "lret",

    // Prints the message on COM1, polling the line status register's
    // "transmit holding register empty" bit (no UART reads 0xff: no hang),
    // then leaves through the exit device, or halts without one.
    ".Lpvh_no_long_mode:",
    "lea (.Lpvh_no_long_mode_message - .Lpvh_base)(%ebp), %esi",
    ".Lpvh_message_loop:",
    "cmpb $0, (%esi)",
    "je .Lpvh_message_done",
    "mov ${com1} + {uart_lsr}, %dx",
    ".Lpvh_transmit_wait:",
    "in %dx, %al",
    "test ${uart_lsr_thre}, %al",
    "jz .Lpvh_transmit_wait",
    "mov (%esi), %al",
    "mov ${com1}, %dx",
    "out %al, %dx",
    "inc %esi",
    "jmp .Lpvh_message_loop",
    ".Lpvh_message_done:",
    "mov ${exit_port}, %dx",
    "mov ${exit_code}, %eax",
    "out %eax, %dx",
    ".Lpvh_halt:",
    "cli",
    "hlt",
    "jmp .Lpvh_halt",
    ".Lpvh_no_long_mode_message:",
    ".asciz \"Skiff: PVH boot stopped: this CPU has no long mode (x86-64)\\r\\n\"",

    // Fills the 4 KiB-page table at edi with 512 present, writable entries
    // mapping edx onwards; keeps eax, ebx, edx, edi.
    ".Lpvh_fill_table:",
    "push %eax",
    "xor %ecx, %ecx",
    ".Lpvh_fill_loop:",
    "mov %ecx, %eax",
    "shl $12, %eax",
    "add %edx, %eax",
    "or ${present_writable}, %eax",
    "mov %eax, (%edi,%ecx,8)",
    "inc %ecx",
    "cmp ${entries}, %ecx",
    "jne .Lpvh_fill_loop",
    "pop %eax",
    "ret",

    ".code64",
    ".Lpvh_long:",
    "mov $0x10, %eax",
    "mov %ax, %ds",
    "mov %ax, %es",
    "mov %ax, %ss",
    "mov %ax, %fs",
    "mov %ax, %gs",
    "lea ({stack} + {page} + {stack_size})(%rip), %rsp",
    "mov %esi, %edi",
    "xor %ebp, %ebp",
    "call {main}",
    "ud2",

    ".balign 8",
    ".Lpvh_gdt:",
    ".quad 0",
    ".quad 0x00af9b000000ffff", // 64-bit code: present, DPL 0, execute/read, accessed, L
    ".quad 0x00cf93000000ffff", // data: present, DPL 0, read/write, accessed
    ".Lpvh_gdt_end:",
    ".popsection",

    note = const XEN_ELFNOTE_PHYS32_ENTRY,
    stack = sym STACK,
    page = const PAGE_SIZE,
    stack_size = const STACK_SIZE,
    directory = sym DIRECTORY,
    pdpt = sym PDPT,
    pml4 = sym PML4,
    low_table = sym LOW_TABLE,
    guard_table = sym GUARD_TABLE,
    entries = const ENTRIES,
    directories = const DIRECTORIES,
    present_writable = const PRESENT_WRITABLE,
    large = const LARGE_PAGE,
    cr4_pae = const CR4_PAE,
    efer = const IA32_EFER,
    efer_lme = const EFER_LME,
    efer_nxe = const EFER_NXE,
    cpuid_nx = const CPUID_EDX_NX,
    cpuid_lm = const CPUID_EDX_LM,
    com1 = const crate::serial::COM1,
    uart_lsr = const UART_LINE_STATUS,
    uart_lsr_thre = const UART_TRANSMIT_EMPTY,
    exit_port = const qemu::DEBUG_EXIT_PORT,
    exit_code = const ExitCode::BadBootInput as u32,
    cr0_pg_wp = const CR0_PG | CR0_WP,
    cpuid_extended = const CPUID_EXTENDED_FEATURES,
    cpuid_extended_max = const CPUID_EXTENDED_MAX,
    main = sym pvh_main,
    options(att_syntax)
);

/// The memory map handed to `kernel_main`, kept for the life of the kernel.
static REGIONS: Once<([MemoryRegion; MAX_REGIONS], usize)> = Once::new();

/// Set once `pvh_main` runs: the kernel came in through PVH.
static BOOTED: AtomicBool = AtomicBool::new(false);

/// Whether the kernel came in through the PVH entry.
#[cfg(feature = "ktest")]
pub fn booted() -> bool {
    BOOTED.load(Ordering::Relaxed)
}

/// The address of the stack's guard page (unmapped under PVH).
pub fn stack_guard() -> u64 {
    (&raw const STACK) as u64
}

/// The Rust side of the PVH entry, called by the stub in 64-bit mode.
extern "C" fn pvh_main(start_info: u64) -> ! {
    BOOTED.store(true, Ordering::Relaxed);
    crate::serial::init();
    let described = describe(start_info);
    unmap_page_zero();
    match described {
        Ok(boot) => crate::kernel_main(boot),
        Err(e) => {
            crate::println!("Skiff: PVH boot stopped: {e}");
            qemu::exit(ExitCode::BadBootInput)
        }
    }
}

/// Takes page 0 out of the identity map, now that nothing needs it.
fn unmap_page_zero() {
    let first = &raw mut LOW_TABLE;
    // SAFETY: `LOW_TABLE` is the page table the stub installed for the first
    // 2 MiB; nothing else writes it, and nothing holds a reference into page
    // 0 (the start info was copied out by value). Clearing its entry and
    // flushing that one translation only makes page 0 fault.
    unsafe {
        (*first).0[0] = 0;
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::zero());
    }
}

/// Reads and checks the start info at `addr` and everything it points to.
fn describe(addr: u64) -> Result<BootDescription, BootError> {
    let mut raw = [0u8; START_INFO_LEN];
    read_phys("start info", addr, &mut raw)?;
    let info = start_info::parse(&raw)?;

    let count = info.memmap_entries as usize;
    let mut entries = [MemmapEntry::default(); MAX_MEMMAP_ENTRIES];
    for (i, entry) in entries[..count].iter_mut().enumerate() {
        let mut raw = [0u8; MEMMAP_ENTRY_LEN];
        let at = info.memmap_paddr.checked_add((i * MEMMAP_ENTRY_LEN) as u64);
        read_phys("memory map", at.unwrap_or(u64::MAX), &mut raw)?;
        *entry = start_info::parse_entry(&raw);
    }
    let top = entries[..count].iter().filter(|e| e.kind == E820_RAM).map(|e| e.addr.saturating_add(e.size)).max();
    let mapped = extend_identity_map(top.unwrap_or(0));
    let mut regions = [MemoryRegion::empty(); MAX_REGIONS];
    let used = start_info::memory_regions(&mut entries[..count], image(), mapped, &mut regions)?;

    if info.cmdline_paddr == 0 {
        return Err(BootError::NoCmdline);
    }
    // Up to one byte more than a command line may hold, but not past the map.
    let mut raw = [0u8; MAX_LEN + 1];
    let readable = IDENTITY_MAP_END.saturating_sub(info.cmdline_paddr).min(raw.len() as u64) as usize;
    read_phys("command line", info.cmdline_paddr, &mut raw[..readable.max(1)])?;
    let cmdline = Cmdline::from_bytes(start_info::cmdline(&raw[..readable.max(1)])?);

    let rsdp = match info.rsdp_paddr {
        0 => None,
        addr => {
            let mut raw = [0u8; RSDP_V1_LEN];
            read_phys("RSDP", addr, &mut raw)?;
            start_info::check_rsdp(addr, &raw)?;
            Some(addr)
        }
    };

    let (regions, used) = REGIONS.call_once(|| (regions, used));
    Ok(BootDescription {
        entry: Entry::Pvh,
        memory_regions: &regions[..*used],
        physical_memory_offset: Some(0),
        rsdp,
        cmdline: CmdlineSource::Given(cmdline),
    })
}

/// Maps RAM above 4 GiB, up to `top`, with 1 GiB pages (PDPT entries 4 and
/// up; at most 512 GiB), if the CPU has them. Returns the end of the identity
/// map: usable RAM past it is left out of the memory map.
fn extend_identity_map(top: u64) -> u64 {
    if top <= IDENTITY_MAP_END {
        return IDENTITY_MAP_END;
    }
    let has_1gib_pages =
        raw_cpuid::CpuId::new().get_extended_processor_and_feature_identifiers().is_some_and(|f| f.has_1gib_pages());
    if !has_1gib_pages {
        crate::println!(
            "Skiff: PVH: RAM from 4 GiB to {top:#x} left unused: this CPU has no 1 GiB pages to map it with"
        );
        return IDENTITY_MAP_END;
    }
    let end = top.div_ceil(GIB).min(ENTRIES as u64);
    let pdpt = &raw mut PDPT;
    for i in DIRECTORIES as u64..end {
        // SAFETY: `PDPT` is the stub's level-3 table, which only this
        // function changes after the stub; entries 4 and up were empty (the
        // stub fills 0..4), so no existing translation changes, and each new
        // entry maps 1 GiB of physical memory to the same address.
        unsafe { (*pdpt).0[i as usize] = (i * GIB) | PRESENT_WRITABLE | LARGE_PAGE };
    }
    x86_64::instructions::tlb::flush_all();
    end * GIB
}

/// The kernel image in physical memory, `[start, end)`, whole pages: under
/// PVH it runs where it was loaded, so its addresses are physical.
fn image() -> (u64, u64) {
    unsafe extern "C" {
        /// The ELF header, at the image's first byte (defined by the linker).
        static __ehdr_start: u8;
        /// The end of `.bss` (defined by the linker).
        static _end: u8;
    }
    let start = (&raw const __ehdr_start) as u64;
    let end = (&raw const _end) as u64;
    (start & !(PAGE_SIZE as u64 - 1), end.next_multiple_of(PAGE_SIZE as u64))
}

/// Copies `buf.len()` bytes from physical address `addr`, which must lie in
/// the identity map (page 0 included: it is still mapped while this runs) and
/// not touch the stack's guard page, the map's one hole below 4 GiB: this
/// runs before the IDT, so a fault here would reset the machine.
fn read_phys(what: &'static str, addr: u64, buf: &mut [u8]) -> Result<(), BootError> {
    let len = buf.len() as u64;
    let guard = stack_guard();
    let bad = match addr.checked_add(len) {
        None => true,
        Some(end) => end > IDENTITY_MAP_END || (addr < guard + PAGE_SIZE as u64 && guard < end),
    };
    if bad {
        return Err(BootError::Unreadable { what, addr, len });
    }
    for (i, byte) in buf.iter_mut().enumerate() {
        // SAFETY: `addr + i` is below 4 GiB and outside the guard page
        // (checked above), so the stub's identity map has it mapped (page 0
        // still is); the read is
        // volatile and by value, so no Rust reference is made to memory that
        // the firmware (or anything else) owns.
        *byte = unsafe { core::ptr::read_volatile((addr + i as u64) as *const u8) };
    }
    Ok(())
}
