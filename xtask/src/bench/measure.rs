//! The measurements, run inside the bench's network namespace (`cargo xtask
//! bench-run`, started by `bench::run` through `ip netns exec`): each guest is
//! booted, timed to its first HTTP 200, loaded, watched idle, and booted
//! again with less and less memory; the results become `results.json`.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::bulk::{self, BULK_LOADS};
use super::guest::{self, Accel, Kind, Media, Running};
use super::load::{self, Connections};
use super::summary::Summary;
use crate::{Result, ui};

/// How much of everything a run does.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Boots per guest timed to the first 200 (and watched idle).
    pub boots: usize,
    /// Repeats of each load, one in each of the first boots (at most `boots`).
    pub repeats: usize,
    /// Length of each load run.
    pub load: Duration,
    /// Length of each idle CPU window.
    pub idle: Duration,
    /// The memory bisection's resolution.
    pub memory_step_mib: u32,
    /// Bytes (in MiB) of each bulk transfer (`bulk.rs`).
    pub bulk_mib: u64,
}

/// `cargo xtask bench --quick`: a few minutes, to show the bench works.
/// Its bulk transfers are small: a fraction of a second each.
pub const QUICK: Settings = Settings {
    boots: 2,
    repeats: 1,
    load: Duration::from_secs(1),
    idle: Duration::from_secs(2),
    memory_step_mib: 16,
    bulk_mib: 16,
};
/// `cargo xtask bench`.
pub const FULL: Settings = Settings {
    boots: 5,
    repeats: 3,
    load: Duration::from_secs(5),
    idle: Duration::from_secs(5),
    memory_step_mib: 1,
    bulk_mib: 256,
};

/// Skiff's memory bisection step (see `memory_step`).
const SKIFF_MEMORY_STEP_MIB: u32 = 1;
/// The memory every measurement boots with (the largest the bisection tries).
pub const MEMORY_MIB: u32 = 128;
/// A boot that has not served by then has failed.
const BOOT_LIMIT: Duration = Duration::from_secs(120);
/// The KVM probe: Skiff's direct boot serves in under half a second under
/// TCG, so a KVM boot that has not served in this time does not work. (This
/// host's KVM once served Skiff after 9.8 s and then never booted Linux; 10 s
/// let that through.)
const KVM_PROBE_LIMIT: Duration = Duration::from_secs(3);
/// Quiet time after the first 200, before the idle window.
const SETTLE: Duration = Duration::from_secs(1);
/// Slack for one request of the checks.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP loads: name, path, clients, connections.
/// New connections come last: they leave Skiff's sockets lingering in
/// TIME-WAIT for a moment (net/src/sockets.rs), and the echo loads, on other
/// sockets, follow. Many clients each opening a new connection per request
/// are what a connection pool is for (issue 16, net/src/pool.rs).
pub const HTTP_LOADS: &[(&str, &str, usize, Connections)] = &[
    ("keep_alive_1", "/", 1, Connections::KeepAlive),
    ("keep_alive_16", "/", 16, Connections::KeepAlive),
    ("stats_keep_alive_1", "/stats", 1, Connections::KeepAlive),
    ("new_connection_1", "/", 1, Connections::PerRequest),
    ("new_connection_16", "/", 16, Connections::PerRequest),
    ("new_connection_64", "/", 64, Connections::PerRequest),
];
/// The echo loads: name, streams.
pub const ECHO_LOADS: &[(&str, usize)] = &[("streams_1", 1), ("streams_8", 8)];

fn connections_name(mode: Connections) -> &'static str {
    match mode {
        Connections::KeepAlive => "keep-alive",
        Connections::PerRequest => "new per request",
    }
}

fn summary(samples: &[f64]) -> Value {
    Summary::of(samples).map_or(Value::Null, |s| s.to_json())
}

/// Everything measured, as `results.json`'s `guests` and `accel` parts.
///
/// The guests take turns, one boot each per round, and the loads of a
/// repeat run in that round's boots: whatever else the host does drifts
/// over minutes, so measurements taken side by side make fairer ratios than
/// one guest's after the other's.
pub fn run(media: &mut Media, settings: Settings, workdir: &Path) -> Result<Value> {
    let (accel, accel_note) = probe_accel(media, workdir);
    eprintln!("    accelerator: {} ({accel_note})", accel.name());

    let mut skiff = Runs::new(Kind::Skiff);
    let mut linux = Runs::new(Kind::Linux);
    let step = ui::Step::start(format!(
        "{} rounds of a Skiff boot and a Linux boot: first 200, idle {:.0} s; in the first {}, loads of {:.0} s each",
        settings.boots,
        settings.idle.as_secs_f64(),
        settings.repeats.min(settings.boots),
        settings.load.as_secs_f64()
    ));
    let (mut bios_ms, mut microvm_ms) = (Vec::new(), Vec::new());
    for round in 0..settings.boots {
        let loads = round < settings.repeats;
        skiff.boot(media, settings, accel, &workdir.join("skiff"), round, loads)?;
        // Linux pads its /stats to the size of Skiff's.
        media.stats_bytes = skiff.stats_bytes;
        linux.boot(media, settings, accel, &workdir.join("linux"), round, loads)?;
        bios_ms.push(first_200(media, Kind::SkiffBios, accel, &workdir.join("skiff-bios"), round)?);
        microvm_ms.push(first_200(media, Kind::SkiffMicrovm, accel, &workdir.join("skiff-microvm"), round)?);
    }
    step.done();
    if linux.index != skiff.index {
        return Err(format!(
            "the guests serve different pages at / ({} and {} bytes): xtask/linux-guest/src/http.rs must copy Skiff's",
            skiff.index.len(),
            linux.index.len()
        ));
    }
    let skiff = skiff.finish(media, settings, accel, &workdir.join("skiff"))?;
    let linux = linux.finish(media, settings, accel, &workdir.join("linux"))?;
    let busy = measure_busy(media, settings, accel, &workdir.join("skiff-busy"))?;
    let bios = json!({ "boot_to_first_200_ms": summary(&bios_ms) });
    let microvm = json!({ "boot_to_first_200_ms": summary(&microvm_ms) });
    Ok(json!({
        "accel": accel.name(),
        "accel_note": accel_note,
        "guests": { "skiff": skiff, "linux": linux, "skiff_busy_poll": busy, "skiff_bios_image": bios,
            "skiff_microvm": microvm },
    }))
}

/// One more Skiff boot, timed to its first 200 and stopped: from the BIOS
/// image (what SeaBIOS and the bootloader's stages add to the direct boot),
/// or on microvm (what q35's SeaBIOS and PCI add).
fn first_200(media: &Media, kind: Kind, accel: Accel, workdir: &Path, round: usize) -> Result<f64> {
    let mut vm = boot(media, kind, MEMORY_MIB, accel, workdir, &format!("boot-{}", round + 1))?;
    let ms = vm.wait_serving(BOOT_LIMIT)?.as_secs_f64() * 1000.0;
    eprintln!("      {} boot {}: first 200 after {ms:.0} ms", name(kind), round + 1);
    Ok(ms)
}

/// The memory bisection's step for `kind`: a Skiff boot that fails ends in
/// well under a second (it stops with a message, or serves), so Skiff is
/// always bisected to the MiB; Linux boots take seconds, and fail only at
/// the time limit, so theirs follows the run's settings.
fn memory_step(kind: Kind, s: Settings) -> u32 {
    if kind == Kind::Linux { s.memory_step_mib } else { SKIFF_MEMORY_STEP_MIB }
}

/// KVM if `/dev/kvm` opens and Skiff serves under it in time, else TCG.
pub(super) fn probe_accel(media: &Media, workdir: &Path) -> (Accel, String) {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return (Accel::Tcg, format!("/dev/kvm: {e}"));
    }
    let step = ui::Step::start("probing KVM (a Skiff boot with -accel kvm)");
    let result = guest::arguments(media, Kind::Skiff, MEMORY_MIB, Accel::Kvm, workdir)
        .and_then(|args| Running::start(&args, &workdir.join("kvm-probe.log")))
        .and_then(|mut vm| vm.wait_serving(KVM_PROBE_LIMIT));
    step.done();
    match result {
        Ok(_) => (Accel::Kvm, "a KVM boot served".into()),
        Err(e) => {
            // QEMU's own complaint if it made one, else how the boot failed.
            let log = std::fs::read_to_string(workdir.join("kvm-probe.log")).unwrap_or_default();
            let why = log
                .lines()
                .find(|l| l.contains("error"))
                .map(|l| l.trim_start_matches("qemu-system-x86_64: ").to_string())
                .unwrap_or_else(|| e.split(';').next().unwrap_or_default().to_string());
            (Accel::Tcg, format!("KVM does not work here: {why}"))
        }
    }
}

fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Skiff => "Skiff",
        Kind::SkiffBios => "Skiff (BIOS disk image)",
        Kind::SkiffMicrovm => "Skiff (microvm)",
        Kind::SkiffBusy => "Skiff (net.poll=busy)",
        Kind::Linux => "Linux",
    }
}

fn boot(media: &Media, kind: Kind, memory_mib: u32, accel: Accel, workdir: &Path, tag: &str) -> Result<Running> {
    let args = guest::arguments(media, kind, memory_mib, accel, workdir)?;
    Running::start(&args, &workdir.join(format!("{tag}.log")))
}

/// CPU time used so far by the threads of process `pid`, in seconds, from
/// each thread's `/proc/PID/task/TID/schedstat` (nanoseconds on a CPU: finer
/// than `/proc/PID/stat`'s clock ticks, which are 10 ms apart, when a guest
/// costs well under 1 % of a core).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = 0u64;
    for task in std::fs::read_dir(&tasks).map_err(|e| format!("{tasks}: {e}"))?.flatten() {
        // A thread that ended meanwhile has no file any more: its time is lost, a few µs at most.
        if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += text.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Ok(total as f64 / 1e9)
}

/// Watches the guest sit idle: the share of a host core its QEMU used, in percent.
fn idle_percent(vm: &Running, window: Duration) -> Result<f64> {
    std::thread::sleep(SETTLE);
    let (before, start) = (cpu_seconds(vm.pid())?, std::time::Instant::now());
    std::thread::sleep(window);
    let (after, elapsed) = (cpu_seconds(vm.pid())?, start.elapsed());
    Ok((after - before) / elapsed.as_secs_f64() * 100.0)
}

/// Whether the guest's TCP/IP stack still answers when its server does not:
/// a port nobody listens on is refused at once by a live stack.
fn stack_alive() -> &'static str {
    const CLOSED_PORT: u16 = 9; // discard: neither guest serves it
    let addr = std::net::SocketAddr::from((crate::testnet::GUEST_IP, CLOSED_PORT));
    match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "its TCP/IP stack still refuses a closed port",
        Err(_) => "nothing answers, not even a closed port",
        Ok(_) => "a closed port accepted a connection (?)",
    }
}

fn get_ok(path: &str) -> Result<Vec<u8>> {
    match load::get(guest::HTTP, path, REQUEST_TIMEOUT) {
        Ok((200, body)) => Ok(body),
        Ok((status, _)) => Err(format!("GET {path} answered {status}")),
        Err(e) => Err(format!("GET {path}: {e}")),
    }
}

/// One guest's measurements so far.
struct Runs {
    kind: Kind,
    boot_ms: Vec<f64>,
    idle: Vec<f64>,
    http: Vec<Vec<load::HttpRun>>,
    echo: Vec<Vec<load::EchoRun>>,
    bulk: Vec<Vec<bulk::BulkRun>>,
    /// The body of `GET /` and the size of `GET /stats`'s, from the first boot.
    index: Vec<u8>,
    stats_bytes: usize,
    /// `/stats` after the last loads.
    stats_after: Value,
    /// Boots (numbered from 1) in which the guest stopped answering during the loads.
    stalled: Vec<usize>,
}

impl Runs {
    fn new(kind: Kind) -> Runs {
        Runs {
            kind,
            boot_ms: Vec::new(),
            idle: Vec::new(),
            http: vec![Vec::new(); HTTP_LOADS.len()],
            echo: vec![Vec::new(); ECHO_LOADS.len()],
            bulk: vec![Vec::new(); BULK_LOADS.len()],
            index: Vec::new(),
            stats_bytes: 0,
            stats_after: Value::Null,
            stalled: Vec::new(),
        }
    }

    /// One boot: timed to the first 200, watched idle, and with `loads`, loaded once.
    fn boot(
        &mut self,
        media: &Media,
        s: Settings,
        accel: Accel,
        workdir: &Path,
        round: usize,
        loads: bool,
    ) -> Result<()> {
        let mut vm = boot(media, self.kind, MEMORY_MIB, accel, workdir, &format!("boot-{}", round + 1))?;
        let first = vm.wait_serving(BOOT_LIMIT)?;
        self.boot_ms.push(first.as_secs_f64() * 1000.0);
        self.idle.push(idle_percent(&vm, s.idle)?);
        if round == 0 {
            self.index = get_ok("/")?;
            self.stats_bytes = get_ok("/stats")?.len();
        }
        if loads {
            for (runs, (_, path, clients, mode)) in self.http.iter_mut().zip(HTTP_LOADS) {
                runs.push(load::http(guest::HTTP, path, *clients, *mode, s.load));
            }
            for (runs, (_, streams)) in self.echo.iter_mut().zip(ECHO_LOADS) {
                runs.push(load::echo(guest::ECHO, *streams, s.load));
            }
            for (runs, (_, direction)) in self.bulk.iter_mut().zip(BULK_LOADS) {
                let run = bulk::run(guest::HTTP, *direction, s.bulk_mib << 20);
                if let Some(e) = &run.error {
                    eprintln!("      {} {}: {e}", name(self.kind), direction.request());
                }
                runs.push(run);
            }
            match get_ok("/stats") {
                Ok(body) => self.stats_after = serde_json::from_slice(&body).unwrap_or_default(),
                // Reported, not fatal: the runs it spoiled show it, and the other boots still count.
                Err(e) => {
                    let (summary, full) = vm.diagnose();
                    let file = workdir.join(format!("boot-{}.stalled.txt", round + 1));
                    let _ = std::fs::write(&file, &full);
                    eprintln!(
                        "      {} stopped answering during the loads of boot {} ({e}); {}; QEMU: {summary} (more in {})",
                        name(self.kind),
                        round + 1,
                        stack_alive(),
                        file.display()
                    );
                    self.stalled.push(round + 1);
                }
            }
        }
        eprintln!(
            "      {} boot {}: first 200 after {:.0} ms, idle {:.2}% of a core{}",
            name(self.kind),
            round + 1,
            first.as_secs_f64() * 1000.0,
            self.idle.last().copied().unwrap_or_default(),
            if loads { ", loads done" } else { "" }
        );
        Ok(())
    }

    /// Finds the smallest memory, and sums everything up as JSON.
    fn finish(self, media: &Media, s: Settings, accel: Accel, workdir: &Path) -> Result<Value> {
        let boot_summary = Summary::of(&self.boot_ms).ok_or("no boot times")?;
        let step = memory_step(self.kind, s);
        let min_memory = min_memory(media, self.kind, accel, step, &boot_summary, workdir)?;
        let http: serde_json::Map<String, Value> = HTTP_LOADS
            .iter()
            .zip(&self.http)
            .map(|((name, path, clients, mode), runs)| {
                // A run that served nothing has a rate (0) but no latencies.
                let field = |f: fn(&load::HttpRun) -> f64| {
                    summary(&runs.iter().map(f).filter(|v| v.is_finite()).collect::<Vec<_>>())
                };
                let value = json!({
                    "path": path,
                    "clients": clients,
                    "connections": connections_name(*mode),
                    "requests_per_s": field(load::HttpRun::per_second),
                    "p50_us": field(|r| r.p50_us),
                    "p99_us": field(|r| r.p99_us),
                    "requests": runs.iter().map(|r| r.requests).sum::<u64>(),
                    "errors": runs.iter().map(|r| r.errors).sum::<u64>(),
                });
                (name.to_string(), value)
            })
            .collect();
        let echo: serde_json::Map<String, Value> = ECHO_LOADS
            .iter()
            .zip(&self.echo)
            .map(|((name, streams), runs)| {
                let value = json!({
                    "streams": streams,
                    "mib_per_s": summary(&runs.iter().map(load::EchoRun::mib_per_second).collect::<Vec<_>>()),
                    "bytes": runs.iter().map(|r| r.bytes).sum::<u64>(),
                    "errors": runs.iter().map(|r| r.errors).sum::<u64>(),
                });
                (name.to_string(), value)
            })
            .collect();
        let bulk: serde_json::Map<String, Value> = BULK_LOADS
            .iter()
            .zip(&self.bulk)
            .map(|((name, direction), runs)| {
                let ok: Vec<f64> =
                    runs.iter().filter(|r| r.error.is_none()).map(bulk::BulkRun::mib_per_second).collect();
                let value = json!({
                    "request": direction.request(),
                    "mib_each": s.bulk_mib,
                    "mib_per_s": summary(&ok),
                    "bytes": runs.iter().map(|r| r.bytes).sum::<u64>(),
                    "errors": runs.iter().filter(|r| r.error.is_some()).count(),
                    "first_error": runs.iter().find_map(|r| r.error.clone()),
                });
                (name.to_string(), value)
            })
            .collect();
        Ok(json!({
            "memory_mib": MEMORY_MIB,
            "boot_to_first_200_ms": boot_summary.to_json(),
            "idle_cpu_percent": summary(&self.idle),
            "http": http,
            "echo": echo,
            "bulk": bulk,
            "min_memory_mib": min_memory,
            "memory_step_mib": step,
            "index_bytes": self.index.len(),
            "stats_bytes": self.stats_bytes,
            "stats_after_load": self.stats_after,
            "stalled_boots": self.stalled,
        }))
    }
}

/// The smallest `-m` (in steps of `step` MiB, up to `MEMORY_MIB`) with
/// which the guest boots and answers `/` and `/stats`, by bisection: a boot
/// that does not serve within three times the usual boot time (and 10 s)
/// has failed.
fn min_memory(media: &Media, kind: Kind, accel: Accel, step: u32, usual: &Summary, workdir: &Path) -> Result<u32> {
    let limit = Duration::from_secs_f64((usual.max * 3.0 / 1000.0).max(10.0));
    let ui_step = ui::Step::start(format!("{}: smallest -m that serves (bisecting in {step} MiB steps)", name(kind)));
    let serves = |mib: u32| -> bool {
        let result = boot(media, kind, mib, accel, &workdir.join("memory"), &format!("{mib}M")).and_then(|mut vm| {
            vm.wait_serving(limit)?;
            get_ok("/stats")
        });
        eprintln!("      -m {mib}M: {}", if result.is_ok() { "serves" } else { "does not serve" });
        result.is_ok()
    };
    // In units of `step`: `hi` serves (every measurement above booted with it), `lo` does not or is 0.
    let (mut lo, mut hi) = (0, MEMORY_MIB / step);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if serves(mid * step) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    ui_step.done();
    Ok(hi * step)
}

/// Skiff never halting: what it costs the host while idle.
fn measure_busy(media: &Media, s: Settings, accel: Accel, workdir: &Path) -> Result<Value> {
    let step = ui::Step::start(format!("{}: idle {:.0} s", name(Kind::SkiffBusy), s.idle.as_secs_f64()));
    let mut vm = boot(media, Kind::SkiffBusy, MEMORY_MIB, accel, workdir, "boot")?;
    let first = vm.wait_serving(BOOT_LIMIT)?.as_secs_f64() * 1000.0;
    let idle = idle_percent(&vm, s.idle)?;
    let mode: Value = get_ok("/stats").ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let mode = mode.pointer("/main_loop/mode").and_then(Value::as_str).unwrap_or("?").to_string();
    if mode != "busy" {
        return Err(format!("Skiff with net.poll=busy reports main loop mode {mode:?}"));
    }
    step.done();
    Ok(json!({
        "boot_to_first_200_ms": summary(&[first]),
        "idle_cpu_percent": summary(&[idle]),
        "main_loop_mode": mode,
    }))
}
