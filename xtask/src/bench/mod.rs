//! `cargo xtask bench [--quick]`: Skiff against a Linux guest in the same
//! QEMU, side by side in one run, so that every claim is a ratio.
//!
//! 1. Build Skiff's kernel and its disk images (one row boots the BIOS
//!    image), and the Linux guest from Debian's kernel package
//!    and a static Rust `/init` (`linux.rs`).
//! 2. Make a network namespace with a TAP device (`netns.rs`), and run the
//!    measurements inside it (`cargo xtask bench-run`, `measure.rs`): QEMU
//!    and the load generator (`load.rs`) talk over the TAP device, with no
//!    user-network proxy in between (QEMU 7.2's listens with a backlog of one).
//! 3. Write `results.json`, `results.md` (a table with Skiff/Linux ratios,
//!    also printed) and SVG plots (`report.rs`) into `target/bench/`
//!    (`target/bench/quick/` for `--quick`).

pub(crate) mod bulk;
mod cpio;
mod guest;
mod linux;
mod load;
mod lossy;
mod measure;
mod report;
mod summary;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::build::{self, Artifacts, Images};
use crate::netns::{TAP, TestNetwork};
use crate::{Result, root, testnet, ui};

/// Where a run writes.
pub fn out_dir(quick: bool) -> PathBuf {
    let dir = root().join("target/bench");
    if quick { dir.join("quick") } else { dir }
}

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything; the damaged-link rows only in a full run (`--quick`
    /// leaves them out: they take minutes).
    All,
    /// Only the damaged-link rows (`--only-lossy`), merged into the last
    /// run's `results.json`.
    OnlyLossy,
}

/// The whole bench; returns the results' directory.
pub fn run(quick: bool) -> Result<PathBuf> {
    run_scoped(quick, Scope::All)
}

/// The bench, or a part of it.
pub fn run_scoped(quick: bool, scope: Scope) -> Result<PathBuf> {
    let started = Instant::now();
    let skiff = build::build_with_images()?;
    let images = skiff.images.as_ref().ok_or("build_with_images built no images")?;
    let linux = linux::prepare()?;
    let out = out_dir(quick);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let plan = json!({
        "quick": quick,
        "only_lossy": scope == Scope::OnlyLossy,
        "out": out,
        "skiff": {
            "kernel_elf": skiff.kernel_elf, "kernel_stripped": skiff.kernel_stripped,
            "ktest_elf": skiff.ktest_elf, "ktest_stripped": skiff.ktest_stripped,
            "bios_image": images.bios, "uefi_image": images.uefi,
        },
        "linux": {
            "package": linux.package, "version": linux.version, "vmlinuz": linux.vmlinuz,
            "initramfs": linux.initramfs, "init": linux.init, "modules": linux.modules,
        },
    });
    let plan_path = out.join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).map_err(|e| format!("{}: {e}", plan_path.display()))?;

    // The namespace, with the guests' address bound to their MAC, so that
    // the first SYN to a booting guest needs no ARP (whose retries are a
    // second apart and would blur the boot time).
    let net = TestNetwork::create("bench")?;
    let (ip, mac) = (testnet::GUEST_IP.to_string(), testnet::guest_mac_text());
    run_ip(&["-n", net.name(), "neigh", "replace", &ip, "lladdr", &mac, "dev", TAP, "nud", "permanent"])?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask's own binary: {e}"))?;
    let status = Command::new("ip")
        .args(["netns", "exec", net.name()])
        .arg(exe)
        .arg("bench-run")
        .arg(&plan_path)
        .status()
        .map_err(|e| format!("cannot run the bench in its namespace: {e}"))?;
    drop(net);
    if !status.success() {
        return Err(format!("the measurements failed ({status}); see above"));
    }
    report::write(&out)?;
    eprintln!("    the bench took {:.0} s; results in {}", started.elapsed().as_secs_f64(), out.display());
    Ok(out)
}

/// The table and plots again, from the last run's `results.json`.
pub fn report(quick: bool) -> Result<()> {
    report::write(&out_dir(quick))
}

fn run_ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `cargo xtask bench-run PLAN` (inside the namespace): measures and writes `results.json`.
pub fn run_inside(plan_path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(plan_path).map_err(|e| format!("{}: {e}", plan_path.display()))?;
    let plan: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", plan_path.display()))?;
    let path = |p: &str| -> Result<PathBuf> {
        plan.pointer(p).and_then(Value::as_str).map(PathBuf::from).ok_or_else(|| format!("the plan has no {p}"))
    };
    let quick = plan.get("quick").and_then(Value::as_bool).unwrap_or(true);
    let out = path("/out")?;
    let skiff = Artifacts {
        kernel_elf: path("/skiff/kernel_elf")?,
        kernel_stripped: path("/skiff/kernel_stripped")?,
        ktest_elf: path("/skiff/ktest_elf")?,
        ktest_stripped: path("/skiff/ktest_stripped")?,
        images: Some(Images { bios: path("/skiff/bios_image")?, uefi: path("/skiff/uefi_image")? }),
    };
    let mut media =
        guest::Media { skiff, vmlinuz: path("/linux/vmlinuz")?, initramfs: path("/linux/initramfs")?, stats_bytes: 0 };
    let mut settings = if quick { measure::QUICK } else { measure::FULL };
    // `SKIFF_BENCH_BULK_MIB=256` gives a quick run the full run's bulk transfers.
    if let Some(mib) = std::env::var("SKIFF_BENCH_BULK_MIB").ok().and_then(|v| v.parse().ok()) {
        settings.bulk_mib = mib;
    }
    let load_before = load_average();
    let started = Instant::now();
    if plan.get("only_lossy").and_then(Value::as_bool).unwrap_or(false) {
        return only_lossy(&mut media, &out, load_before);
    }
    let measured = measure::run(&mut media, settings, &out.join("work"))?;
    let accel = if measured["accel"] == "kvm" { guest::Accel::Kvm } else { guest::Accel::Tcg };
    // Issue 14's damaged link: minutes of loads, so only in a full run.
    let lossy = if quick { Value::Null } else { lossy::run(&media, accel, &out.join("work/lossy"))? };

    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let modules: u64 = plan
        .pointer("/linux/modules")
        .and_then(Value::as_array)
        .map_or(0, |m| m.iter().filter_map(Value::as_str).map(|p| size(Path::new(p))).sum());
    let qemu_version = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let results = json!({
        "date": date(),
        "quick": quick,
        "seconds": started.elapsed().as_secs_f64(),
        "settings": {
            "boots": settings.boots, "repeats": settings.repeats, "load_s": settings.load.as_secs_f64(),
            "idle_s": settings.idle.as_secs_f64(), "memory_step_mib": settings.memory_step_mib,
            "bulk_mib": settings.bulk_mib,
        },
        "host": {
            "cpu": cpu_model(),
            "cores": std::thread::available_parallelism().map_or(0, usize::from),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "qemu": {
            "version": qemu_version,
            "skiff_args": guest::arguments(&media, guest::Kind::Skiff, measure::MEMORY_MIB, accel, &out.join("work"))?,
            "linux_args": guest::arguments(&media, guest::Kind::Linux, measure::MEMORY_MIB, accel, &out.join("work"))?,
        },
        "accel": measured["accel"],
        "accel_note": measured["accel_note"],
        "linux_kernel": format!("{} {}", plan.pointer("/linux/package").and_then(Value::as_str).unwrap_or("?"),
            plan.pointer("/linux/version").and_then(Value::as_str).unwrap_or("?")),
        "sizes": {
            "skiff": {
                "kernel": size(&media.skiff.kernel_stripped),
                "kernel_with_debug_info": size(&media.skiff.kernel_elf),
                // The in-kernel tests' build, which the disk images carry.
                "kernel_with_tests": size(&media.skiff.ktest_stripped),
                "bios_image": media.skiff.bios_image().map_or(0, size),
                "uefi_image": media.skiff.uefi_image().map_or(0, size),
            },
            "linux": {
                "kernel": size(&media.vmlinuz),
                "initramfs": size(&media.initramfs),
                "init": size(&path("/linux/init")?),
                "modules": modules,
            },
        },
        "guests": measured["guests"],
        "lossy": lossy,
    });
    let file = out.join("results.json");
    let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))
}

/// `--only-lossy`: the damaged-link rows, put into the last run's
/// `results.json` (or a new one that has only them).
fn only_lossy(media: &mut guest::Media, out: &Path, load_before: Vec<f64>) -> Result<()> {
    let (accel, accel_note) = measure::probe_accel(media, &out.join("work"));
    // Skiff's /stats size matters only to the Linux guest's padding of its own.
    let lossy = lossy::run(media, accel, &out.join("work/lossy"))?;
    let file = out.join("results.json");
    let mut results: Value = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({ "date": date(), "accel": accel.name(), "accel_note": accel_note }));
    results["lossy"] = lossy;
    results["lossy_host"] = json!({ "date": date(), "load_average_before": load_before,
        "load_average_after": load_average() });
    let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))
}

/// `cargo xtask qemu`'s smoke test: a quick run, then a check that its
/// results are complete and sane (not fast: the suite shares the CPU).
pub fn smoke() -> bool {
    let step = ui::Step::start("bench --quick (Skiff and a Linux guest, smoke test)");
    let started = Instant::now();
    let result = run(true).and_then(|out| report::check(&out.join("results.json")));
    step.done();
    match result {
        Ok(what) => {
            eprintln!("    PASS {:30} {what} ({:.1} s)", "bench-quick", started.elapsed().as_secs_f64());
            true
        }
        Err(why) => {
            eprintln!("    FAIL bench-quick: {why}");
            false
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_default()
}

/// The 1-, 5- and 15-minute load averages.
fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default()
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
