//! Link layout for the two ways into the kernel (see `kernel/src/pvh/mod.rs`).
//!
//! - `--image-base=0x200000`: the kernel stays a position-independent
//!   executable (the bootloader relocates it, as before), but its segments'
//!   addresses, and so their `p_paddr`, start at 2 MiB: a PVH loader (`qemu
//!   -kernel`) puts each `PT_LOAD` at its `p_paddr`, which must be RAM, above
//!   the BIOS area below 1 MiB.
//! - `--apply-dynamic-relocs`: the file holds every relocated value for that
//!   base, so the image runs unrelocated where PVH loads it; the bootloader
//!   overwrites them with its own.
//! - `skiff_pvh_entry_abs`: the PVH entry's address as an absolute symbol, for
//!   the ELF note and the 32-bit stub (a PIE cannot hold 32-bit absolute
//!   addresses of its own symbols).

/// Where the image is linked; PVH loads it here.
const IMAGE_BASE: &str = "0x200000";

fn main() {
    for arg in [
        format!("--image-base={IMAGE_BASE}"),
        "--apply-dynamic-relocs".to_string(),
        "--defsym=skiff_pvh_entry_abs=ABSOLUTE(skiff_pvh_start32)".to_string(),
    ] {
        println!("cargo:rustc-link-arg-bin=skiff-kernel={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
