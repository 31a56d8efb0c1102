//! In-kernel tests of the PVH entry: the start-info checks, fed broken input
//! (they run under both entries), and, under PVH, the stub's page tables.

use alloc::format;
use alloc::string::String;

use bootloader_api::info::{MemoryRegion, MemoryRegionKind};
use x86_64::VirtAddr;

use super::start_info::{
    self, BootError, E820_RAM, MAGIC, MAX_MEMMAP_ENTRIES, MAX_REGIONS, MemmapEntry, RSDP_V1_LEN, START_INFO_LEN,
};
use crate::cmdline::MAX_LEN;
use crate::ktest::{Context, Test};
use crate::memory;

pub const TESTS: &[Test] = &[
    Test { name: "pvh_start_info_needs_the_magic_and_a_memory_map", run: start_info_needs_magic_and_memory_map },
    Test { name: "pvh_memory_map_rejects_bad_entries", run: memory_map_rejects_bad_entries },
    Test { name: "pvh_memory_map_skips_an_unused_all_zero_slot", run: memory_map_skips_an_unused_all_zero_slot },
    Test { name: "pvh_memory_map_carves_out_the_kernel_image", run: memory_map_carves_out_the_kernel_image },
    Test { name: "pvh_cmdline_and_rsdp_are_checked", run: cmdline_and_rsdp_are_checked },
    Test { name: "pvh_page_zero_and_the_stack_guard_are_unmapped", run: page_zero_and_stack_guard_unmapped },
];

/// Fails the test with a message unless `cond` holds.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!("{} (line {})", format_args!($($msg)+), line!()));
        }
    };
}

/// A version-1 start info with a memory map of `entries` entries.
fn start_info(magic: u32, version: u32, entries: u32) -> [u8; START_INFO_LEN] {
    let mut raw = [0u8; START_INFO_LEN];
    raw[0..4].copy_from_slice(&magic.to_le_bytes());
    raw[4..8].copy_from_slice(&version.to_le_bytes());
    raw[24..32].copy_from_slice(&0x2000u64.to_le_bytes());
    raw[32..40].copy_from_slice(&0xf_59e0u64.to_le_bytes());
    raw[40..48].copy_from_slice(&0x3000u64.to_le_bytes());
    raw[48..52].copy_from_slice(&entries.to_le_bytes());
    raw
}

fn start_info_needs_magic_and_memory_map(_: &mut Context) -> Result<(), String> {
    let info = start_info::parse(&start_info(MAGIC, 1, 3)).map_err(|e| format!("good start info refused: {e}"))?;
    check!(info.cmdline_paddr == 0x2000 && info.rsdp_paddr == 0xf_59e0, "fields misread: {info:?}");
    check!(info.memmap_paddr == 0x3000 && info.memmap_entries == 3, "memory map misread: {info:?}");
    let wrong = start_info::parse(&start_info(0xdead_beef, 1, 3));
    check!(wrong == Err(BootError::BadMagic(0xdead_beef)), "wrong magic: {wrong:?}");
    let old = start_info::parse(&start_info(MAGIC, 0, 3));
    check!(old == Err(BootError::NoMemoryMap { version: 0 }), "version 0: {old:?}");
    let empty = start_info::parse(&start_info(MAGIC, 1, 0));
    check!(empty == Err(BootError::NoUsableRam), "no entries: {empty:?}");
    let many = start_info::parse(&start_info(MAGIC, 1, MAX_MEMMAP_ENTRIES as u32 + 1));
    check!(many == Err(BootError::TooManyEntries(MAX_MEMMAP_ENTRIES as u32 + 1)), "too many entries: {many:?}");
    Ok(())
}

const MIB: u64 = 1 << 20;
/// A kernel image as the PVH loader places it.
const IMAGE: (u64, u64) = (2 * MIB, 3 * MIB);
const LIMIT: u64 = 4 << 30;

fn ram(addr: u64, size: u64) -> MemmapEntry {
    MemmapEntry { addr, size, kind: E820_RAM }
}

fn regions(entries: &mut [MemmapEntry]) -> Result<([MemoryRegion; MAX_REGIONS], usize), BootError> {
    let mut out = [MemoryRegion::empty(); MAX_REGIONS];
    let n = start_info::memory_regions(entries, IMAGE, LIMIT, &mut out)?;
    Ok((out, n))
}

fn memory_map_rejects_bad_entries(_: &mut Context) -> Result<(), String> {
    let zero = regions(&mut [ram(0, 0x9_fc00), ram(MIB, 0)]);
    check!(zero.err() == Some(BootError::ZeroSizedEntry { index: 1, addr: MIB }), "zero-sized entry accepted");
    let reserved_zero = MemmapEntry { addr: 0xf_0000, size: 0, kind: 2 };
    let zero = regions(&mut [ram(0, 0x9_fc00), reserved_zero, ram(MIB, 127 * MIB)]);
    check!(zero.err() == Some(BootError::ZeroSizedEntry { index: 1, addr: 0xf_0000 }), "zero-sized entry accepted");
    let overlap = regions(&mut [ram(MIB, 127 * MIB), ram(64 * MIB, MIB)]);
    check!(
        overlap.err() == Some(BootError::Overlap { first: (MIB, 128 * MIB), second: (64 * MIB, 65 * MIB) }),
        "overlap accepted"
    );
    let wraps = regions(&mut [ram(u64::MAX - 0xfff, 0x2000)]);
    check!(matches!(wraps.err(), Some(BootError::EntryWraps { index: 0, .. })), "wrapping entry accepted");
    let reserved = MemmapEntry { addr: MIB, size: 127 * MIB, kind: 2 };
    check!(regions(&mut [reserved]).err() == Some(BootError::NoUsableRam), "a map without RAM accepted");
    let high = regions(&mut [ram(LIMIT, 8 << 30)]);
    check!(high.err() == Some(BootError::NoUsableRam), "RAM only above the identity map accepted");
    let elsewhere = regions(&mut [ram(16 * MIB, 112 * MIB)]);
    check!(
        elsewhere.err() == Some(BootError::ImageNotInRam { start: IMAGE.0, end: IMAGE.1 }),
        "a map without the kernel image's RAM accepted"
    );
    Ok(())
}

fn memory_map_skips_an_unused_all_zero_slot(_: &mut Context) -> Result<(), String> {
    // qboot on microvm: five real entries, then an all-zero sixth.
    let mut map = [ram(0, 0x9_fc00), ram(MIB, 127 * MIB), MemmapEntry::default()];
    let (out, n) = regions(&mut map).map_err(|e| format!("rejected: {e}"))?;
    check!(n == 4, "{n} regions: {:?}", &out[..n]);
    check!(out[..n].iter().all(|r| r.start < r.end), "an empty region: {:?}", &out[..n]);
    Ok(())
}

fn memory_map_carves_out_the_kernel_image(_: &mut Context) -> Result<(), String> {
    // Out of order, as a VMM may list them; RAM above 4 GiB is cut off.
    let mut map = [ram(MIB, 127 * MIB), MemmapEntry { addr: 0xf_0000, size: 0x1_0000, kind: 2 }, ram(0, 0x9_fc00)];
    let (out, n) = regions(&mut map).map_err(|e| format!("good map refused: {e}"))?;
    let want = [
        (0, 0x9_fc00, MemoryRegionKind::Usable),
        (0xf_0000, MIB, MemoryRegionKind::UnknownBios(2)),
        (MIB, IMAGE.0, MemoryRegionKind::Usable),
        (IMAGE.0, IMAGE.1, MemoryRegionKind::Bootloader),
        (IMAGE.1, 128 * MIB, MemoryRegionKind::Usable),
    ];
    check!(n == want.len(), "{n} regions: {:?}", &out[..n]);
    for (got, (start, end, kind)) in out[..n].iter().zip(want) {
        check!(
            got.start == start && got.end == end && got.kind == kind,
            "region {got:?}, expected {start:#x}..{end:#x}"
        );
    }
    let (out, n) = regions(&mut [ram(MIB, LIMIT)]).map_err(|e| format!("large map refused: {e}"))?;
    check!(out[..n].iter().all(|r| r.end <= LIMIT), "RAM past the identity map kept: {:?}", &out[..n]);
    Ok(())
}

fn cmdline_and_rsdp_are_checked(_: &mut Context) -> Result<(), String> {
    check!(start_info::cmdline(b"mode=test\0junk") == Ok(&b"mode=test"[..]), "command line not cut at its NUL");
    check!(start_info::cmdline(b"\0") == Ok(&b""[..]), "empty command line refused");
    let mut longest = [b'x'; MAX_LEN + 1];
    longest[MAX_LEN] = 0;
    check!(start_info::cmdline(&longest).is_ok_and(|l| l.len() == MAX_LEN), "a {MAX_LEN}-byte line refused");
    let too_long = [b'x'; MAX_LEN + 1];
    check!(start_info::cmdline(&too_long) == Err(BootError::CmdlineTooLong), "a line without NUL accepted");

    // An ACPI 1.0 RSDP: signature, checksum, OEM id, revision, RSDT address.
    let mut rsdp = [0u8; RSDP_V1_LEN];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(b"BOCHS ");
    rsdp[16..20].copy_from_slice(&0x07fe_14d5u32.to_le_bytes());
    rsdp[8] = 0u8.wrapping_sub(rsdp.iter().fold(0u8, |s, b| s.wrapping_add(*b)));
    check!(start_info::check_rsdp(0xf_59e0, &rsdp).is_ok(), "a good RSDP refused");
    let mut bad_sum = rsdp;
    bad_sum[8] = bad_sum[8].wrapping_add(1);
    check!(start_info::check_rsdp(0xf_59e0, &bad_sum).is_err(), "an RSDP with a bad checksum accepted");
    let mut bad_sig = rsdp;
    bad_sig[0] = b'X';
    check!(start_info::check_rsdp(0xf_59e0, &bad_sig).is_err(), "an RSDP without its signature accepted");
    Ok(())
}

fn page_zero_and_stack_guard_unmapped(_: &mut Context) -> Result<(), String> {
    if !super::booted() {
        crate::println!("ktest:   (skipped: not booted through PVH)");
        return Ok(());
    }
    let guard = super::stack_guard();
    check!(memory::translate(VirtAddr::zero()).is_none(), "page 0 is mapped");
    check!(memory::translate(VirtAddr::new(guard)).is_none(), "the stack guard page {guard:#x} is mapped");
    // Boot data is never read from the guard page (a fault before the IDT
    // would reset the machine) nor past the identity map.
    let mut byte = [0u8; 2];
    check!(super::read_phys("test", guard + 0xfff, &mut byte).is_err(), "a read of the guard page allowed");
    check!(super::read_phys("test", guard - 1, &mut byte).is_err(), "a read into the guard page allowed");
    let end = super::IDENTITY_MAP_END;
    check!(super::read_phys("test", end - 1, &mut byte).is_err(), "a read past the identity map allowed");
    check!(super::read_phys("test", u64::MAX, &mut byte).is_err(), "a wrapping read allowed");
    check!(super::read_phys("test", guard + 0x1000, &mut byte).is_ok(), "a read above the guard page refused");
    // Their neighbours are mapped, one to one.
    for addr in [0x1000, guard + 0x1000, guard - 0x1000] {
        let phys = memory::translate(VirtAddr::new(addr)).map(|p| p.as_u64());
        check!(phys == Some(addr), "{addr:#x} maps to {phys:x?}, expected itself");
    }
    Ok(())
}
