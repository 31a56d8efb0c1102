//! Building the kernel ELF and the disk images.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, root, ui};

/// The target the kernel is built for (no OS, soft-float, static PIE).
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// What `build` produced: two builds of the kernel, the served one and the
/// one with the in-kernel tests (feature `ktest`), which the served one does
/// not carry (issue 15: what boots stays small).
pub struct Artifacts {
    /// The served kernel with debug info, for gdb.
    pub kernel_elf: PathBuf,
    /// Its stripped copy: what `-kernel` loads for every boot but `mode=test`.
    pub kernel_stripped: PathBuf,
    /// The test build with debug info, for gdb.
    pub ktest_elf: PathBuf,
    /// Its stripped copy: what `-kernel` loads for `mode=test`, and what goes
    /// into the disk images (so that their `mode=test` boots run the tests).
    pub ktest_stripped: PathBuf,
    /// The disk images, once `images` has built them: only the BIOS and UEFI
    /// boots need them, and their first build compiles the bootloader's
    /// stages (2-3 minutes), so nothing builds them unless it boots one.
    pub images: Option<Images>,
}

/// The bootloader's disk images of the kernel.
pub struct Images {
    /// MBR image, for SeaBIOS.
    pub bios: PathBuf,
    /// GPT image with an EFI system partition, for OVMF.
    pub uefi: PathBuf,
}

impl Artifacts {
    pub fn print(&self) {
        let mut files = vec![
            ("kernel ELF (with debug info)", &self.kernel_elf),
            ("kernel ELF (stripped, -kernel loads it)", &self.kernel_stripped),
            ("test kernel ELF (with debug info)", &self.ktest_elf),
            ("test kernel ELF (stripped, mode=test)", &self.ktest_stripped),
        ];
        if let Some(images) = &self.images {
            files.extend([("BIOS disk image", &images.bios), ("UEFI disk image", &images.uefi)]);
        }
        for (what, path) in files {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            println!("{what:40} {:>9} bytes  {}", size, path.display());
        }
    }

    /// The BIOS image, or why there is none.
    pub fn bios_image(&self) -> Result<&Path> {
        self.images.as_ref().map(|i| i.bios.as_path()).ok_or_else(not_built)
    }

    /// The UEFI image, or why there is none.
    pub fn uefi_image(&self) -> Result<&Path> {
        self.images.as_ref().map(|i| i.uefi.as_path()).ok_or_else(not_built)
    }
}

fn not_built() -> String {
    "the disk images were not built (xtask builds them only for a BIOS or UEFI boot: build::images)".into()
}

/// Builds the kernel (release) twice, with the in-kernel tests and without,
/// and their stripped copies; no disk images. The served build goes last, so
/// that `target/x86_64-unknown-none/release/skiff-kernel` (what gdb loads) is
/// the served kernel; cargo keeps both feature sets built, so the second
/// build is only a link once both have been built.
pub fn build() -> Result<Artifacts> {
    build_kernels(true)
}

/// Builds only the served kernel: all `cargo xtask run` needs unless it
/// boots `mode=test`, so that a fresh clone's first run compiles the kernel
/// once, not twice. The test kernel's paths in the result are where
/// [`build`] puts it, and are not to be booted.
pub fn build_served() -> Result<Artifacts> {
    build_kernels(false)
}

fn build_kernels(with_tests: bool) -> Result<Artifacts> {
    let root = root();
    let target_dir = root.join("target");
    let images = target_dir.join("images");
    std::fs::create_dir_all(&images).map_err(|e| format!("cannot create {}: {e}", images.display()))?;
    let release = target_dir.join(KERNEL_TARGET).join("release");
    let kernel_elf = release.join("skiff-kernel");

    let ktest_elf = release.join("skiff-kernel-ktest");
    let ktest_stripped = images.join("skiff-kernel-ktest");
    if with_tests {
        build_kernel(&root, Some("ktest"))?;
        // Cargo puts both builds at the same path: keep the test build's.
        std::fs::copy(&kernel_elf, &ktest_elf).map_err(|e| format!("cannot copy {}: {e}", kernel_elf.display()))?;
        strip(&ktest_elf, &ktest_stripped)?;
    }

    build_kernel(&root, None)?;
    let kernel_stripped = images.join("skiff-kernel");
    strip(&kernel_elf, &kernel_stripped)?;
    Ok(Artifacts { kernel_elf, kernel_stripped, ktest_elf, ktest_stripped, images: None })
}

/// `cargo build --release` of the kernel, with `feature` if given.
fn build_kernel(root: &Path, feature: Option<&str>) -> Result<()> {
    let mut args = vec!["build", "--release", "--package", "skiff-kernel", "--target", KERNEL_TARGET];
    if let Some(feature) = feature {
        args.extend(["--features", feature]);
    }
    let step = ui::Step::start(format!("building the kernel (cargo {})", args.join(" ")));
    cargo(root)
        .args(&args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))
        .and_then(|s| if s.success() { Ok(()) } else { Err("the kernel did not build (see above)".into()) })?;
    step.done();
    Ok(())
}

/// Builds the kernel and both disk images.
pub fn build_with_images() -> Result<Artifacts> {
    let mut artifacts = build()?;
    images(&mut artifacts)?;
    Ok(artifacts)
}

/// Builds the BIOS and UEFI disk images of `artifacts`' stripped test kernel
/// (nothing if they are there already): the suite's disk-image boots run the
/// in-kernel tests, and the same image serves (`run --bios`).
pub fn images(artifacts: &mut Artifacts) -> Result<()> {
    if artifacts.images.is_some() {
        return Ok(());
    }
    let root = root();
    let target_dir = root.join("target");
    let images = target_dir.join("images");
    let bootloader_built = target_dir.join("debug/skiff-boot").exists();
    let step = ui::Step::start(if bootloader_built {
        "building the disk images".to_string()
    } else {
        "building the disk images (the first time compiles the bootloader's stages: 2-3 minutes)".to_string()
    });
    // From boot/, so that rustup picks the nightly in boot/rust-toolchain.toml.
    let status = cargo(&root.join("boot"))
        .args(["run", "--quiet", "--package", "skiff-boot", "--"])
        .arg(&artifacts.ktest_stripped)
        .arg(&images)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("the disk images were not built (see above)".into());
    }
    step.done();
    artifacts.images = Some(Images { bios: images.join("bios.img"), uefi: images.join("uefi.img") });
    Ok(())
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

/// Copies `elf` to `out` without debug info and without the symbol table
/// (gdb reads the unstripped ELF; neither QEMU's `-kernel` nor the
/// bootloader needs symbols, and relocation uses the dynamic section), with
/// rustup's llvm-objcopy (component `llvm-tools`): a smaller ELF loads faster.
fn strip(elf: &Path, out: &Path) -> Result<()> {
    let objcopy = llvm_tool("llvm-objcopy")?;
    let status = Command::new(&objcopy)
        .arg("--strip-all")
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
