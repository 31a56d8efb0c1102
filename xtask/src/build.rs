//! Building the kernel ELF and the disk images.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, root, ui};

/// The target the kernel is built for (no OS, soft-float, static PIE).
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// What `build` produced.
pub struct Artifacts {
    /// The kernel with debug info, for gdb.
    pub kernel_elf: PathBuf,
    /// The stripped copy that goes into the images.
    pub kernel_stripped: PathBuf,
    pub bios_image: PathBuf,
    pub uefi_image: PathBuf,
}

impl Artifacts {
    pub fn print(&self) {
        for (what, path) in [
            ("kernel ELF (with debug info)", &self.kernel_elf),
            ("kernel ELF (stripped, in the images)", &self.kernel_stripped),
            ("BIOS disk image", &self.bios_image),
            ("UEFI disk image", &self.uefi_image),
        ] {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            println!("{what:38} {:>9} bytes  {}", size, path.display());
        }
    }
}

/// Builds the kernel (release) and both disk images.
pub fn build() -> Result<Artifacts> {
    let root = root();
    let target_dir = root.join("target");
    let images = target_dir.join("images");

    let step = ui::Step::start(format!("building the kernel (cargo build --release --target {KERNEL_TARGET})"));
    cargo(&root)
        .args(["build", "--release", "--package", "skiff-kernel", "--target", KERNEL_TARGET])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))
        .and_then(|s| if s.success() { Ok(()) } else { Err("the kernel did not build (see above)".into()) })?;
    step.done();
    let kernel_elf = target_dir.join(KERNEL_TARGET).join("release/skiff-kernel");

    std::fs::create_dir_all(&images).map_err(|e| format!("cannot create {}: {e}", images.display()))?;
    let kernel_stripped = images.join("skiff-kernel");
    strip(&kernel_elf, &kernel_stripped)?;

    let bootloader_built = target_dir.join("debug/skiff-boot").exists();
    let step = ui::Step::start(if bootloader_built {
        "building the disk images".to_string()
    } else {
        "building the disk images (the first time compiles the bootloader's stages: 2-3 minutes)".to_string()
    });
    // From boot/, so that rustup picks the nightly in boot/rust-toolchain.toml.
    let status = cargo(&root.join("boot"))
        .args(["run", "--quiet", "--package", "skiff-boot", "--"])
        .arg(&kernel_stripped)
        .arg(&images)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("the disk images were not built (see above)".into());
    }
    step.done();

    Ok(Artifacts {
        kernel_elf,
        kernel_stripped,
        bios_image: images.join("bios.img"),
        uefi_image: images.join("uefi.img"),
    })
}

/// A `cargo` command run in `dir`, with the toolchain that `dir`'s
/// rust-toolchain.toml names: the variables that rustup and cargo set for
/// xtask itself would otherwise pin the nested build to xtask's toolchain.
pub fn cargo(dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(dir);
    for var in ["RUSTUP_TOOLCHAIN", "RUSTC", "RUSTDOC", "CARGO", "CARGO_MANIFEST_DIR", "CARGO_PRIMARY_PACKAGE"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Copies `elf` to `out` without debug info, with rustup's llvm-objcopy
/// (component `llvm-tools`): loading a smaller ELF makes the BIOS boot faster.
fn strip(elf: &Path, out: &Path) -> Result<()> {
    let objcopy = llvm_tool("llvm-objcopy")?;
    let status = Command::new(&objcopy)
        .arg("--strip-debug")
        .arg(elf)
        .arg(out)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", objcopy.display()))?;
    if status.success() { Ok(()) } else { Err(format!("{} failed on {}", objcopy.display(), elf.display())) }
}

/// The path of an LLVM tool from the active toolchain's `llvm-tools` component.
fn llvm_tool(name: &str) -> Result<PathBuf> {
    let output = |args: &[&str]| -> Result<String> {
        let out = Command::new("rustc")
            .args(args)
            .current_dir(root())
            .output()
            .map_err(|e| format!("cannot run rustc: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let sysroot = output(&["--print", "sysroot"])?;
    let host = output(&["-vV"])?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or("rustc -vV printed no host triple")?;
    let path = Path::new(sysroot.trim()).join("lib/rustlib").join(host).join("bin").join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} is missing: run scripts/setup.sh (it adds the llvm-tools component)", path.display()))
    }
}
