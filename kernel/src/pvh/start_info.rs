//! Xen's `hvm_start_info`, checked and turned into Skiff's boot description.
//!
//! The layout is Xen's `xen/include/public/arch-x86/hvm/start_info.h`
//! (version 1, which adds the memory map). Every field comes from the
//! firmware or the VMM, so each is checked: this module only parses bytes
//! already copied out of guest memory (`pvh::read_phys` does the copying), so
//! the in-kernel tests can feed it broken input under either entry.

use bootloader_api::info::{MemoryRegion, MemoryRegionKind};

use crate::cmdline::MAX_LEN;

/// `hvm_start_info.magic`: "xEn3" with the top bit of the last byte set.
pub const MAGIC: u32 = 0x336e_c578;
/// Size of `hvm_start_info` in version 1 (version 0 stops at `rsdp_paddr`).
pub const START_INFO_LEN: usize = 56;
/// Size of one `hvm_memmap_table_entry`: addr u64, size u64, type u32, reserved u32.
pub const MEMMAP_ENTRY_LEN: usize = 24;
/// The most memory-map entries accepted (QEMU's e820 table holds at most 128).
pub const MAX_MEMMAP_ENTRIES: usize = 128;
/// The E820 type of usable RAM (ACPI 6.5, table 15.312); other types are kept
/// as `UnknownBios(type)`, as the bootloader does.
pub const E820_RAM: u32 = 1;
/// Bytes of an ACPI 1.0 RSDP that its checksum covers (ACPI 6.5, 5.2.5.3).
pub const RSDP_V1_LEN: usize = 20;
/// The RSDP's signature (ACPI 6.5, 5.2.5.3).
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Regions in a description: every map entry, the kernel image, and one more
/// for a RAM entry that the image splits in two.
pub const MAX_REGIONS: usize = MAX_MEMMAP_ENTRIES + 2;

/// The fields of `hvm_start_info` that Skiff uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo {
    pub version: u32,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
}

/// One memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// Why a PVH boot cannot go on. Each says what was wrong, for the serial port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// Something the start info points to lies outside the memory the entry
    /// mapped (or on the stack's guard page).
    Unreadable {
        what: &'static str,
        addr: u64,
        len: u64,
    },
    BadMagic(u32),
    /// Version 0 has no memory map.
    NoMemoryMap {
        version: u32,
    },
    TooManyEntries(u32),
    ZeroSizedEntry {
        index: usize,
        addr: u64,
    },
    /// An entry runs past the end of the address space.
    EntryWraps {
        index: usize,
        addr: u64,
        size: u64,
    },
    Overlap {
        first: (u64, u64),
        second: (u64, u64),
    },
    NoUsableRam,
    /// The kernel image is not inside usable RAM of the map.
    ImageNotInRam {
        start: u64,
        end: u64,
    },
    NoCmdline,
    /// The command line has no NUL within `MAX_LEN` bytes.
    CmdlineTooLong,
    BadRsdp {
        addr: u64,
        why: &'static str,
    },
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match *self {
            BootError::Unreadable { what, addr, len } => {
                write!(f, "{what} ({len} bytes at {addr:#x}) lies outside the memory Skiff can read at boot")
            }
            BootError::BadMagic(m) => write!(f, "start info magic is {m:#010x}, expected {MAGIC:#010x}"),
            BootError::NoMemoryMap { version } => write!(f, "start info version {version} has no memory map"),
            BootError::TooManyEntries(n) => write!(f, "memory map has {n} entries (at most {MAX_MEMMAP_ENTRIES})"),
            BootError::ZeroSizedEntry { index, addr } => {
                write!(f, "memory map entry {index} (at {addr:#x}) has size 0")
            }
            BootError::EntryWraps { index, addr, size } => {
                write!(f, "memory map entry {index} ({size:#x} bytes at {addr:#x}) runs past 2^64")
            }
            BootError::Overlap { first, second } => write!(
                f,
                "memory map entries {:#x}..{:#x} and {:#x}..{:#x} overlap",
                first.0, first.1, second.0, second.1
            ),
            BootError::NoUsableRam => write!(f, "memory map has no usable RAM"),
            BootError::ImageNotInRam { start, end } => {
                write!(f, "the kernel image {start:#x}..{end:#x} is not in usable RAM of the memory map")
            }
            BootError::NoCmdline => write!(f, "no command line (cmdline_paddr is 0)"),
            BootError::CmdlineTooLong => write!(f, "command line longer than {MAX_LEN} bytes"),
            BootError::BadRsdp { addr, why } => write!(f, "RSDP at {addr:#x}: {why}"),
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Parses the start info; the magic must match and the version must have a memory map.
pub fn parse(bytes: &[u8; START_INFO_LEN]) -> Result<StartInfo, BootError> {
    let magic = u32_at(bytes, 0);
    if magic != MAGIC {
        return Err(BootError::BadMagic(magic));
    }
    // Offsets from start_info.h: magic 0, version 4, flags 8, nr_modules 12,
    // modlist_paddr 16, cmdline_paddr 24, rsdp_paddr 32, memmap_paddr 40,
    // memmap_entries 48, reserved 52.
    let info = StartInfo {
        version: u32_at(bytes, 4),
        cmdline_paddr: u64_at(bytes, 24),
        rsdp_paddr: u64_at(bytes, 32),
        memmap_paddr: u64_at(bytes, 40),
        memmap_entries: u32_at(bytes, 48),
    };
    if info.version < 1 {
        return Err(BootError::NoMemoryMap { version: info.version });
    }
    if info.memmap_entries as usize > MAX_MEMMAP_ENTRIES {
        return Err(BootError::TooManyEntries(info.memmap_entries));
    }
    if info.memmap_entries == 0 || info.memmap_paddr == 0 {
        return Err(BootError::NoUsableRam);
    }
    Ok(info)
}

/// Parses one memory-map entry.
pub fn parse_entry(bytes: &[u8; MEMMAP_ENTRY_LEN]) -> MemmapEntry {
    MemmapEntry { addr: u64_at(bytes, 0), size: u64_at(bytes, 8), kind: u32_at(bytes, 16) }
}

/// Checks the memory map and turns it into regions in `out` (returns how
/// many): RAM below `limit` (what the entry mapped) is `Usable` except the
/// kernel image `image` (start, end), which becomes `Bootloader`, as the
/// bootloader marks it; RAM above `limit` is left out.
pub fn memory_regions(
    entries: &mut [MemmapEntry],
    image: (u64, u64),
    limit: u64,
    out: &mut [MemoryRegion; MAX_REGIONS],
) -> Result<usize, BootError> {
    if entries.len() > MAX_MEMMAP_ENTRIES {
        return Err(BootError::TooManyEntries(entries.len() as u32));
    }
    for (index, e) in entries.iter().enumerate() {
        // An all-zero entry is an unused slot of the table, not a claim about
        // memory: qboot (QEMU's microvm firmware) counts one in. It sorts
        // first, overlaps nothing and is neither RAM nor a region below.
        if *e == MemmapEntry::default() {
            continue;
        }
        if e.size == 0 {
            return Err(BootError::ZeroSizedEntry { index, addr: e.addr });
        }
        if e.addr.checked_add(e.size).is_none() {
            return Err(BootError::EntryWraps { index, addr: e.addr, size: e.size });
        }
    }
    // By size too, so that an all-zero slot sorts before RAM at address 0.
    entries.sort_unstable_by_key(|e| (e.addr, e.size));
    for pair in entries.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.addr + a.size > b.addr {
            return Err(BootError::Overlap { first: (a.addr, a.addr + a.size), second: (b.addr, b.addr + b.size) });
        }
    }
    let ram = |e: &MemmapEntry| e.kind == E820_RAM && e.addr < limit;
    if !entries.iter().any(ram) {
        return Err(BootError::NoUsableRam);
    }
    let (image_start, image_end) = image;
    if !entries.iter().any(|e| ram(e) && e.addr <= image_start && image_end <= e.addr + e.size) {
        return Err(BootError::ImageNotInRam { start: image_start, end: image_end });
    }

    let mut count = 0;
    let mut push = |start: u64, end: u64, kind: MemoryRegionKind| {
        if start < end {
            // `out` has room for every entry plus two; see MAX_REGIONS.
            out[count] = MemoryRegion { start, end, kind };
            count += 1;
        }
    };
    for e in entries.iter() {
        let (start, end) = (e.addr, e.addr + e.size);
        if e.kind != E820_RAM {
            push(start, end, MemoryRegionKind::UnknownBios(e.kind));
            continue;
        }
        let end = end.min(limit);
        if start <= image_start && image_end <= end {
            push(start, image_start, MemoryRegionKind::Usable);
            push(image_start, image_end, MemoryRegionKind::Bootloader);
            push(image_end, end, MemoryRegionKind::Usable);
        } else {
            push(start, end, MemoryRegionKind::Usable);
        }
    }
    Ok(count)
}

/// The command line: `bytes` (up to `MAX_LEN + 1` bytes read from its
/// address) up to the NUL that must end it within `MAX_LEN` bytes.
pub fn cmdline(bytes: &[u8]) -> Result<&[u8], BootError> {
    match bytes.iter().take(MAX_LEN + 1).position(|&b| b == 0) {
        Some(len) => Ok(&bytes[..len]),
        None => Err(BootError::CmdlineTooLong),
    }
}

/// Checks an ACPI 1.0 RSDP (signature and checksum) read from `addr`.
pub fn check_rsdp(addr: u64, bytes: &[u8; RSDP_V1_LEN]) -> Result<(), BootError> {
    if &bytes[..RSDP_SIGNATURE.len()] != RSDP_SIGNATURE {
        return Err(BootError::BadRsdp { addr, why: "no \"RSD PTR \" signature" });
    }
    if bytes.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)) != 0 {
        return Err(BootError::BadRsdp { addr, why: "bad checksum" });
    }
    Ok(())
}
