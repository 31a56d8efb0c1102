//! The Linux guest: Debian's kernel, an initramfs with the virtio modules it
//! needs and a static Rust `/init` (xtask/linux-guest) that serves what
//! Skiff serves.
//!
//! The kernel package is the one Debian's `linux-image-amd64` depends on,
//! fetched with `apt-get download` and unpacked with `dpkg -x`, no install.
//! Only the kernel image and the modules the guest loads are kept, in
//! `target/bench/linux/PACKAGE_VERSION/`; later runs reuse them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio;
use crate::{Result, build, root, ui};

/// The metapackage that names Debian's current kernel.
const META_PACKAGE: &str = "linux-image-amd64";
/// The modules the guest needs, besides their dependencies: the virtio PCI
/// transport and the network driver (`CONFIG_VIRTIO_PCI=m`, `CONFIG_VIRTIO_NET=m`
/// in Debian's config).
const ROOT_MODULES: &[&str] = &["virtio_pci", "virtio_net"];
/// The guest's crate, and the target and profile it is built with.
const GUEST_PACKAGE: &str = "skiff-linux-guest";
const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";
const GUEST_PROFILE: &str = "linux-guest";
/// The console device, made in the initramfs (`/dev/console`, char 5:1,
/// Documentation/admin-guide/devices.txt) so init has its stdout.
const CONSOLE: (u32, u32) = (5, 1);

/// The files that boot the Linux guest.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// `linux-image-6.1.0-N-amd64`, and its Debian version.
    pub package: String,
    pub version: String,
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
    /// The `/init` binary and the modules in the initramfs, in load order.
    pub init: PathBuf,
    pub modules: Vec<PathBuf>,
}

fn output(command: &mut Command) -> Result<String> {
    let out = command.output().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{command:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The versioned kernel package `linux-image-amd64` depends on, and its version.
fn kernel_package() -> Result<(String, String)> {
    let depends = output(Command::new("apt-cache").args(["depends", META_PACKAGE]))?;
    let package = depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .ok_or_else(|| format!("apt-cache depends {META_PACKAGE} names no kernel (run apt-get update)"))?
        .to_string();
    let show = output(Command::new("apt-cache").args(["show", "--no-all-versions", &package]))?;
    let version = show
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .ok_or_else(|| format!("apt-cache show {package} gives no version"))?
        .trim()
        .to_string();
    Ok((package, version))
}

/// Fetches the kernel and modules (once), builds `/init` and writes the
/// initramfs. The initramfs is the same for every boot: what differs (the
/// `/stats` size) goes on the kernel command line.
pub fn prepare() -> Result<LinuxGuest> {
    let (package, version) = kernel_package()?;
    let dir = root().join("target/bench/linux").join(format!("{package}_{version}"));
    let vmlinuz = dir.join("vmlinuz");
    let modules_dir = dir.join("modules");
    if !dir.join(".complete").exists() {
        let step =
            ui::Step::start(format!("fetching the Linux baseline: {package} {version} (apt-get download, dpkg -x)"));
        fetch(&package, &version, &dir)?;
        step.done();
    }
    let mut modules: Vec<PathBuf> = std::fs::read_dir(&modules_dir)
        .map_err(|e| format!("{}: {e}", modules_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    modules.sort();

    let step = ui::Step::start(format!("building the Linux guest's /init ({GUEST_PACKAGE}, static)"));
    let init = build_init()?;
    step.done();

    let initramfs = root().join("target/bench/linux/initramfs.cpio");
    write_initramfs(&init, &modules, &initramfs)?;
    Ok(LinuxGuest { package, version, vmlinuz, initramfs, init, modules })
}

/// Downloads and unpacks the package in a scratch directory, keeps the
/// kernel image and the modules the guest needs (decompressed, numbered in
/// load order) in `dir`, and removes the rest.
fn fetch(package: &str, version: &str, dir: &Path) -> Result<()> {
    let scratch = dir.with_extension("unpack");
    let _ = std::fs::remove_dir_all(&scratch);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    // As root, apt-get download warns that its sandbox user cannot write
    // here; downloading as root is what is wanted.
    output(
        Command::new("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", &format!("{package}={version}")])
            .current_dir(&scratch),
    )?;
    let deb = std::fs::read_dir(&scratch)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let tree = scratch.join("tree");
    output(Command::new("dpkg").arg("-x").arg(&deb).arg(&tree))?;

    let boot = tree.join("boot");
    let image = std::fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .ok_or("the package has no boot/vmlinuz-*")?;
    let index = module_index(&tree.join("lib/modules"))?;
    let order = load_order(ROOT_MODULES, &|name| {
        let path = index.get(name).ok_or_else(|| format!("module {name} is not in {package}"))?;
        Ok(depends(&module_bytes(path)?))
    })?;

    let modules = dir.join("modules");
    std::fs::create_dir_all(&modules).map_err(|e| format!("{}: {e}", modules.display()))?;
    std::fs::copy(&image, dir.join("vmlinuz")).map_err(|e| format!("copying {}: {e}", image.display()))?;
    for (i, name) in order.iter().enumerate() {
        let bytes = module_bytes(&index[name])?;
        let out = modules.join(format!("{:02}-{name}.ko", i + 1));
        std::fs::write(&out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    std::fs::remove_dir_all(&scratch).map_err(|e| format!("removing {}: {e}", scratch.display()))?;
    std::fs::write(dir.join(".complete"), format!("{package} {version}\n")).map_err(|e| e.to_string())
}

/// Module name (dashes as underscores, as the kernel names them) to file,
/// for every `*.ko`, `*.ko.xz` and `*.ko.zst` under `dir`.
fn module_index(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut index = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(stem) = [".ko", ".ko.xz", ".ko.zst"].iter().find_map(|ext| name.strip_suffix(ext)) {
                index.insert(stem.replace('-', "_"), path);
            }
        }
    }
    Ok(index)
}

/// A module's bytes, decompressed if Debian shipped it compressed (with
/// the `xz` or `zstd` tools: the kernel would need its own decompressor
/// support otherwise).
fn module_bytes(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else {
        None
    };
    match tool {
        None => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        Some(tool) => {
            let out = Command::new(tool)
                .args(["-d", "-c"])
                .arg(path)
                .output()
                .map_err(|e| format!("cannot run {tool} (scripts/setup.sh installs it): {e}"))?;
            if !out.status.success() {
                return Err(format!("{tool} -d {}: {}", path.display(), String::from_utf8_lossy(&out.stderr)));
            }
            Ok(out.stdout)
        }
    }
}

/// The `depends=` list of a module's `.modinfo` section (NUL-separated
/// `key=value` strings in the ELF file).
fn depends(module: &[u8]) -> Vec<String> {
    module
        .split(|&b| b == 0)
        .find_map(|s| s.strip_prefix(b"depends="))
        .map(|list| {
            String::from_utf8_lossy(list).split(',').filter(|s| !s.is_empty()).map(|s| s.replace('-', "_")).collect()
        })
        .unwrap_or_default()
}

/// `roots` and everything they depend on, each after its dependencies.
fn load_order(roots: &[&str], depends_of: &dyn Fn(&str) -> Result<Vec<String>>) -> Result<Vec<String>> {
    fn visit(
        name: &str,
        depends_of: &dyn Fn(&str) -> Result<Vec<String>>,
        order: &mut Vec<String>,
        path: &mut Vec<String>,
    ) -> Result<()> {
        if order.iter().any(|n| n == name) {
            return Ok(());
        }
        if path.iter().any(|n| n == name) {
            return Err(format!("modules depend on each other in a circle: {} -> {name}", path.join(" -> ")));
        }
        path.push(name.to_string());
        for dep in depends_of(name)? {
            visit(&dep, depends_of, order, path)?;
        }
        path.pop();
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for root in roots {
        visit(root, depends_of, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

/// Builds `/init`: static (`crt-static`), with the `linux-guest` profile
/// (fat LTO, abort on panic, stripped; see the workspace Cargo.toml).
fn build_init() -> Result<PathBuf> {
    let status = build::cargo(&root())
        .args(["build", "--quiet", "--package", GUEST_PACKAGE, "--profile", GUEST_PROFILE, "--target", GUEST_TARGET])
        // With --target, these flags reach the guest and its dependencies only, not build scripts.
        .args(["--config", &format!("target.{GUEST_TARGET}.rustflags=[\"-C\", \"target-feature=+crt-static\"]")])
        // These would take precedence over the flags above.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("{GUEST_PACKAGE} did not build (see above)"));
    }
    let init = root().join("target").join(GUEST_TARGET).join(GUEST_PROFILE).join(GUEST_PACKAGE);
    // The initramfs has no shared libraries: a binary that asks for the
    // dynamic loader would fail to start, and the kernel would panic.
    let bytes = std::fs::read(&init).map_err(|e| format!("{}: {e}", init.display()))?;
    match has_interpreter(&bytes) {
        Some(false) => Ok(init),
        Some(true) => Err(format!("{} is not static: it asks for a dynamic loader", init.display())),
        None => Err(format!("{} is not a 64-bit ELF file", init.display())),
    }
}

/// Whether a 64-bit little-endian ELF file has a `PT_INTERP` program header
/// (ELF-64 Object File Format 1.5: `e_phoff` at 0x20, `e_phentsize` at 0x36,
/// `e_phnum` at 0x38, each header starting with its 32-bit type); `None` if
/// it is not such a file.
fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const MAGIC: &[u8] = b"\x7fELF\x02\x01"; // ELFCLASS64, ELFDATA2LSB
    const PT_INTERP: u32 = 3;
    if !elf.starts_with(MAGIC) {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?) as usize);
    let phoff = u64::from_le_bytes(elf.get(0x20..0x28)?.try_into().ok()?) as usize;
    let (size, count) = (u16_at(0x36)?, u16_at(0x38)?);
    (0..count)
        .map(|i| {
            let at = phoff.checked_add(i.checked_mul(size)?)?;
            Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?))
        })
        .try_fold(false, |found, kind| Some(found || kind? == PT_INTERP))
}

/// The initramfs: `/init`, `/dev/console`, and `/modules/NN-name.ko`.
fn write_initramfs(init: &Path, modules: &[PathBuf], out: &Path) -> Result<()> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut archive = cpio::Archive::new();
    archive.dir("dev");
    archive.char_device("dev/console", 0o600, CONSOLE.0, CONSOLE.1);
    archive.dir("modules");
    for module in modules {
        let name = module.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        archive.file(&format!("modules/{name}"), 0o644, &read(module)?);
    }
    archive.file("init", 0o755, &read(init)?);
    std::fs::write(out, archive.finish()).map_err(|e| format!("{}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_binaries_are_told_apart() {
        let dynamic = std::fs::read("/bin/sh").unwrap();
        assert_eq!(has_interpreter(&dynamic), Some(true));
        // A minimal ELF header with one PT_LOAD header and no PT_INTERP.
        let mut elf = vec![0u8; 0x40 + 0x38];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(has_interpreter(&elf), Some(false));
        elf[0x40..0x44].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(has_interpreter(&elf), Some(true));
        assert_eq!(has_interpreter(&elf[..0x42]), None, "cut short");
        assert_eq!(has_interpreter(b"#!/bin/sh"), None);
    }

    #[test]
    fn depends_are_read_from_modinfo() {
        let module = b"\x7fELF...\0license=GPL\0depends=virtio_ring,virtio,net-failover\0intree=Y\0";
        assert_eq!(depends(module), ["virtio_ring", "virtio", "net_failover"]);
        assert!(depends(b"\0depends=\0").is_empty());
        assert!(depends(b"no modinfo at all").is_empty());
    }

    #[test]
    fn dependencies_load_first_and_once() {
        // Debian 6.1's virtio modules, as modinfo lists them.
        let graph: BTreeMap<&str, &[&str]> = BTreeMap::from([
            ("virtio_net", &["virtio_ring", "virtio", "net_failover"][..]),
            ("virtio_pci", &["virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"][..]),
            ("virtio", &["virtio_ring"][..]),
            ("net_failover", &["failover"][..]),
            ("virtio_ring", &[][..]),
            ("virtio_pci_modern_dev", &[][..]),
            ("virtio_pci_legacy_dev", &[][..]),
            ("failover", &[][..]),
        ]);
        let deps = |n: &str| -> Result<Vec<String>> {
            graph.get(n).map(|d| d.iter().map(|s| s.to_string()).collect()).ok_or(format!("no {n}"))
        };
        let order = load_order(ROOT_MODULES, &deps).unwrap();
        assert_eq!(order.len(), 8, "{order:?}");
        let at = |n: &str| order.iter().position(|m| m == n).unwrap();
        for (module, deps) in &graph {
            for dep in *deps {
                assert!(at(dep) < at(module), "{dep} must load before {module}: {order:?}");
            }
        }
        assert!(load_order(&["missing"], &deps).is_err());
        let circle = |n: &str| -> Result<Vec<String>> { Ok(vec![if n == "a" { "b" } else { "a" }.to_string()]) };
        assert!(load_order(&["a"], &circle).unwrap_err().contains("circle"));
    }
}
