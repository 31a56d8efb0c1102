//! Booting either guest under the same QEMU settings, and knowing when it serves.
//!
//! Both guests get the same arguments from `qemu::arguments` — machine q35,
//! `-cpu max`, the same `-m`, one vCPU, the same virtio-net-pci card on the
//! same TAP netdev — and differ only in what boots: Skiff's kernel ELF
//! through QEMU's `-kernel` (its PVH entry), or Linux's kernel and initramfs
//! through `-kernel`/`-initrd`. Skiff's BIOS disk image boots too, for one
//! row of the table.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::load;
use crate::Result;
use crate::build::Artifacts;
use crate::qemu::{self, Backend, Boot, Firmware, Machine, Nic};
use crate::testnet::{ECHO_PORT, GUEST_IP, HTTP_PORT};

/// The guests' services. Their address is Skiff's static one
/// (net/src/config.rs), which the Linux guest's /init gives its card too.
pub const HTTP: SocketAddr = SocketAddr::V4(SocketAddrV4::new(GUEST_IP, HTTP_PORT));
pub const ECHO: SocketAddr = SocketAddr::V4(SocketAddrV4::new(GUEST_IP, ECHO_PORT));
/// Skiff's command line in the bench: the TAP network has no DHCP server, so
/// the static address at once rather than after the DHCP wait.
const SKIFF_CMDLINE: &str = "net.dhcp=off";
/// Skiff's command line word for busy polling (kernel/src/runloop.rs).
const SKIFF_BUSY: &str = "net.poll=busy";
/// Linux's command line: the console on the serial port, little printing
/// (every character is a port write under TCG), reboot at once on a panic
/// (QEMU's `-no-reboot` then ends, so a failed boot is seen at once), and no
/// speculative-execution mitigations (Skiff has none; under TCG they are pure
/// cost). `skiff_stats_bytes` reaches /init as an environment variable.
const LINUX_CMDLINE: &str = "console=ttyS0 quiet panic=-1 mitigations=off";
/// How often, and how patiently, the first request is tried while a guest boots.
const PROBE_CONNECT: Duration = Duration::from_millis(100);
const PROBE_READ: Duration = Duration::from_secs(2);
const PROBE_PAUSE: Duration = Duration::from_millis(10);
/// How long an answer of QEMU's monitor may take.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(3);

/// Which guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Skiff's ELF, booted directly (`-kernel`, PVH).
    Skiff,
    /// Skiff's BIOS disk image (SeaBIOS and the bootloader's stages).
    SkiffBios,
    /// Skiff's ELF on QEMU's microvm (qboot, virtio-mmio).
    SkiffMicrovm,
    /// Skiff with `net.poll=busy`: it never halts.
    SkiffBusy,
    Linux,
}

/// TCG or KVM, the same for every boot of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// What boots: Skiff's images and Linux's files.
pub struct Media {
    pub skiff: Artifacts,
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
    /// The size of Skiff's `/stats`, which the Linux guest pads its own to.
    pub stats_bytes: usize,
}

/// The Linux guest's kernel command line.
pub fn linux_cmdline(stats_bytes: usize) -> String {
    format!("{LINUX_CMDLINE} skiff_stats_bytes={stats_bytes}")
}

/// QEMU's arguments for `kind` with `memory_mib` of RAM.
pub fn arguments(media: &Media, kind: Kind, memory_mib: u32, accel: Accel, workdir: &Path) -> Result<Vec<String>> {
    let tap = Nic { backend: Backend::Tap, ..Nic::default() };
    arguments_with(media, kind, memory_mib, accel, workdir, tap, "")
}

/// [`arguments`] with another card (the damaged link's) and more of Skiff's
/// command line (`skiff_extra`; Linux's is the same every time).
pub fn arguments_with(
    media: &Media,
    kind: Kind,
    memory_mib: u32,
    accel: Accel,
    workdir: &Path,
    nic: Nic,
    skiff_extra: &str,
) -> Result<Vec<String>> {
    let cmdline = match kind {
        Kind::Skiff | Kind::SkiffBios | Kind::SkiffMicrovm => format!("{SKIFF_CMDLINE} {skiff_extra}"),
        Kind::SkiffBusy => format!("{SKIFF_CMDLINE} {SKIFF_BUSY} {skiff_extra}"),
        Kind::Linux => String::new(),
    };
    let cmdline = cmdline.trim().to_string();
    let boot = Boot {
        firmware: if kind == Kind::SkiffBios { Firmware::Bios } else { Firmware::Direct },
        machine: if kind == Kind::SkiffMicrovm { Machine::Microvm } else { Machine::Q35 },
        memory: format!("{memory_mib}M"),
        cmdline,
        gdb: false,
        nic: Some(nic),
        // The served build (no bench command line has mode=test).
        kernel: qemu::Kernel::ForMode,
    };
    let mut args = qemu::arguments(&media.skiff, &boot, workdir)?;
    if kind == Kind::Linux {
        // What `-kernel` loads is the only thing that differs (Linux's
        // command line is empty above, so there is no `-append` yet).
        let kernel = args.iter().position(|a| a == "-kernel").ok_or("qemu::arguments gave no -kernel")?;
        args.splice(
            kernel..kernel + 2,
            [
                "-kernel".to_string(),
                media.vmlinuz.display().to_string(),
                "-initrd".to_string(),
                media.initramfs.display().to_string(),
                "-append".to_string(),
                linux_cmdline(media.stats_bytes),
            ],
        );
    }
    args.extend(["-smp".into(), "1".into(), "-accel".into(), accel.name().into()]);
    args.extend(["-serial".into(), "stdio".into()]);
    Ok(args)
}

/// A running QEMU, killed when dropped.
pub struct Running {
    child: Child,
    started: Instant,
    log: PathBuf,
    /// QEMU's human monitor (the same for both guests; only read when a
    /// guest stops answering).
    monitor: PathBuf,
}

impl Running {
    /// Starts QEMU with its console and messages going to `log`.
    pub fn start(args: &[String], log: &Path) -> Result<Running> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let monitor = log.with_extension("monitor");
        let _ = std::fs::remove_file(&monitor);
        let monitor_arg = format!("unix:{},server=on,wait=off", qemu::escape_option(&monitor.display().to_string()));
        let started = Instant::now();
        let child = Command::new("qemu-system-x86_64")
            .args(args)
            .args(["-monitor", &monitor_arg])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start QEMU: {e}"))?;
        Ok(Running { child, started, log: log.to_path_buf(), monitor })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for `GET /` to answer 200; returns the time since QEMU started.
    pub fn wait_serving(&mut self, within: Duration) -> Result<Duration> {
        while self.started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("QEMU ended ({status}) before the guest served; {}", self.tail()));
            }
            let attempt = load::connect(HTTP, PROBE_CONNECT).and_then(|mut s| {
                use std::io::Write;
                s.set_read_timeout(Some(PROBE_READ))?;
                s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")?;
                load::read_response(&mut s, &mut Vec::new())
            });
            if let Ok(200) = attempt {
                return Ok(self.started.elapsed());
            }
            std::thread::sleep(PROBE_PAUSE);
        }
        Err(format!("the guest did not answer GET / within {within:?}; {}", self.tail()))
    }

    /// One monitor command's output.
    fn monitor(&self, command: &str) -> Result<String> {
        crate::monitor::run(&self.monitor, command, MONITOR_TIMEOUT)
    }

    /// What QEMU says about a guest that stopped answering: the card's
    /// queues (0 receive, 1 transmit) and whether the CPU is halted. Returns
    /// a one-line summary and the full text.
    pub fn diagnose(&self) -> (String, String) {
        let mut full = String::new();
        let mut summary = Vec::new();
        let devices = self.monitor("info virtio").unwrap_or_else(|e| e);
        full.push_str(&devices);
        let path = devices.lines().find(|l| l.contains("[virtio-net]")).and_then(|l| l.split_whitespace().next());
        if let Some(path) = path {
            for (queue, name) in [(0, "rx"), (1, "tx")] {
                let status = self.monitor(&format!("info virtio-queue-status {path} {queue}")).unwrap_or_else(|e| e);
                let field = |f: &str| {
                    status.lines().find_map(|l| l.trim().strip_prefix(f)).map_or("?".into(), |v| v.trim().to_string())
                };
                summary.push(format!(
                    "{name} queue: avail {} (device took {}), used {}, in use {}",
                    field("shadow_avail_idx:"),
                    field("last_avail_idx:"),
                    field("used_idx:"),
                    field("inuse:")
                ));
                full.push_str(&status);
            }
        }
        let registers = self.monitor("info registers").unwrap_or_else(|e| e);
        let halted = registers.split_whitespace().find(|w| w.starts_with("HLT=")).unwrap_or("HLT=?");
        let rip = registers.split_whitespace().find(|w| w.starts_with("RIP=")).unwrap_or("RIP=?");
        summary.push(format!("CPU {rip} {halted}"));
        full.push_str(&registers);
        (summary.join("; "), full)
    }

    /// The end of the console log, for error messages.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n      | ");
        format!("console ({}):\n      | {tail}", self.log.display())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::Images;

    fn media() -> Media {
        Media {
            skiff: Artifacts {
                kernel_elf: "k.elf".into(),
                kernel_stripped: "k".into(),
                ktest_elf: "kt.elf".into(),
                ktest_stripped: "kt".into(),
                images: Some(Images { bios: "bios.img".into(), uefi: "uefi.img".into() }),
            },
            vmlinuz: "vmlinuz".into(),
            initramfs: "initramfs.cpio".into(),
            stats_bytes: 1234,
        }
    }

    #[test]
    fn both_guests_get_the_same_machine_and_card() {
        let dir = Path::new("/nonexistent");
        let skiff = arguments(&media(), Kind::Skiff, 96, Accel::Tcg, dir).unwrap();
        let linux = arguments(&media(), Kind::Linux, 96, Accel::Tcg, dir).unwrap();
        // Take away what boots (and Skiff's fw_cfg command line): the rest is equal.
        let strip = |args: &[String]| -> Vec<String> {
            let mut out = Vec::new();
            let mut it = args.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "-drive" | "-kernel" | "-initrd" | "-append" | "-fw_cfg" => {
                        it.next();
                    }
                    _ => out.push(a.clone()),
                }
            }
            out
        };
        assert_eq!(strip(&skiff), strip(&linux));
        let joined = linux.join(" ");
        for want in ["-machine q35", "-m 96M", "-smp 1", "-accel tcg", "tap,id=net0", "virtio-net-pci,netdev=net0"] {
            assert!(joined.contains(want), "{want} missing: {joined}");
        }
        assert!(joined.contains("-kernel vmlinuz -initrd initramfs.cpio -append console=ttyS0"), "{joined}");
        assert!(joined.contains("skiff_stats_bytes=1234") && !joined.contains("-drive"), "{joined}");
        let joined = skiff.join(" ");
        assert!(joined.contains("-kernel k -netdev") && joined.contains("-append net.dhcp=off"), "{joined}");
        assert!(!joined.contains("-drive"), "{joined}");
        let bios = arguments(&media(), Kind::SkiffBios, 96, Accel::Tcg, dir).unwrap();
        assert_eq!(strip(&bios), strip(&linux));
        let joined = bios.join(" ");
        assert!(joined.contains("file=bios.img") && joined.contains("string=net.dhcp=off"), "{joined}");
        let microvm = arguments(&media(), Kind::SkiffMicrovm, 96, Accel::Tcg, dir).unwrap().join(" ");
        assert!(microvm.contains("microvm,acpi=off") && microvm.contains("virtio-net-device,netdev=net0"), "{microvm}");
        let busy = arguments(&media(), Kind::SkiffBusy, 96, Accel::Kvm, dir).unwrap().join(" ");
        assert!(busy.contains("net.dhcp=off net.poll=busy") && busy.contains("-accel kvm"), "{busy}");
    }
}
