//! Turns the Skiff kernel ELF into bootable disk images.
//!
//! `skiff-boot KERNEL_ELF OUT_DIR` writes `OUT_DIR/bios.img` (MBR, for SeaBIOS)
//! and `OUT_DIR/uefi.img` (GPT with an EFI system partition, for OVMF). The
//! `bootloader` crate does the real work; this binary only picks its settings.
//! `cargo xtask build` runs it with the nightly named in `rust-toolchain.toml`
//! beside this file, which the bootloader's own stages need.

use std::path::PathBuf;
use std::process::ExitCode;

use bootloader::{BootConfig, DiskImageBuilder};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, kernel, out_dir] = args.as_slice() else {
        eprintln!("usage: skiff-boot KERNEL_ELF OUT_DIR");
        return ExitCode::from(2);
    };
    match build(PathBuf::from(kernel), PathBuf::from(out_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skiff-boot: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn build(kernel: PathBuf, out_dir: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = BootConfig::default();
    // Drawing log text into the framebuffer is the slowest part of a boot
    // under TCG, and Skiff has no screen: its console is the serial port.
    config.frame_buffer_logging = false;
    // The bootloader's own serial lines stay on, at warnings and above: they
    // show why a boot stops if it never reaches the kernel.
    config.serial_logging = true;
    config.log_level = bootloader_boot_config::LevelFilter::Warn;

    let mut builder = DiskImageBuilder::new(kernel);
    builder.set_boot_config(&config);
    std::fs::create_dir_all(&out_dir)?;
    let bios = out_dir.join("bios.img");
    let uefi = out_dir.join("uefi.img");
    builder.create_bios_image(&bios)?;
    builder.create_uefi_image(&uefi)?;
    println!("{}\n{}", bios.display(), uefi.display());
    Ok(())
}
