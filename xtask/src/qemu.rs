//! Starting QEMU: the command line for each firmware and machine, the
//! interactive run, and captured boots for the tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::build::Artifacts;
use crate::{Result, root, testnet};

pub const DEFAULT_MEMORY: &str = "128M";
/// Where the kernel ELF is linked (`kernel/build.rs`): a direct (PVH) boot
/// runs it there, so gdb needs no offset.
pub const KERNEL_IMAGE_BASE: u64 = 0x20_0000;
/// How far the bootloader moves the kernel, a position-independent ELF: its
/// first segment goes to the first free 512 GiB slot of the address space,
/// 0x100_0000_0000 (bootloader 0.11 without ASLR). gdb loads the symbols of
/// a disk-image boot with this offset.
pub const KERNEL_LOAD_OFFSET: u64 = 0x100_0000_0000 - KERNEL_IMAGE_BASE;
/// QEMU's `isa-debug-exit` device, at the port the kernel writes (kernel/src/qemu.rs).
const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";
/// The fw_cfg file the kernel reads its command line from (kernel/src/cmdline.rs).
const CMDLINE_FW_CFG: &str = "opt/skiff/cmdline";
/// Debian's `ovmf` package: firmware code and a template of its variable store.
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Machine {
    /// The modern chipset: PCIe, ECAM (MCFG).
    Q35,
    /// The i440FX PC: legacy PCI, port-I/O configuration only.
    Pc,
    /// QEMU's minimal machine: no PCI, virtio-mmio devices announced on the
    /// command line, qboot, ACPI off. Direct boots only.
    Microvm,
    /// microvm with PCI Express (`pcie=on`): a generic host bridge whose
    /// ECAM window only the DSDT's `_CBA` announces (no MCFG), so ACPI stays
    /// on (QEMU builds the host bridge only then) and the firmware is
    /// SeaBIOS's microvm build. virtio-net-pci with MSI-X. Direct boots only.
    MicrovmPcie,
}

impl Machine {
    /// Whether the virtio-net card is a PCI function (not virtio-mmio).
    pub fn has_pci(self) -> bool {
        self != Machine::Microvm
    }

    /// Whether PCI configuration goes through ECAM (not ports 0xCF8/0xCFC).
    pub fn has_ecam(self) -> bool {
        matches!(self, Machine::Q35 | Machine::MicrovmPcie)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, booting the MBR image.
    Bios,
    /// OVMF, booting the GPT/ESP image.
    Uefi,
    /// No disk image: QEMU loads the kernel ELF itself (`-kernel`) and enters
    /// it through its PVH note (kernel/src/pvh); SeaBIOS only runs the
    /// `pvh.bin` option ROM that builds the start info. The command line goes
    /// in with `-append`.
    Direct,
}

/// What the virtio-net card is plugged into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// QEMU's user network (slirp), `restrict=on`: a DHCP server and a
    /// gateway at 10.0.2.2, no way out. QEMU offers no checksum offload here.
    User,
    /// A TAP device in a network namespace made for the boot (see
    /// `netns.rs`), with vnet headers, so QEMU offers checksum offload.
    Tap,
    /// The same namespace and TAP device, reached through a damaged link:
    /// QEMU's `-netdev dgram` to a relay that loses, duplicates, reorders
    /// and corrupts frames (see `impair/`). No vnet headers, so no offload.
    Impaired(crate::impair::Impairment),
}

/// A host port forwarded to a guest port (user network only), on 127.0.0.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
}

impl Forward {
    /// `host` forwarded to the guest's HTTP port.
    pub fn http(host: u16) -> Forward {
        Forward { host, guest: testnet::HTTP_PORT }
    }

    /// `host` forwarded to the guest's TCP echo port.
    pub fn echo(host: u16) -> Forward {
        Forward { host, guest: testnet::ECHO_PORT }
    }
}

/// A virtio-net card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub backend: Backend,
    /// `disable-modern=on`: a legacy-only device.
    pub legacy: bool,
    /// Leave the device's checksum offloads on (`csum`, `guest_csum`).
    pub offload: bool,
    /// TCP forwards from 127.0.0.1 (user network only).
    pub forwards: Vec<Forward>,
    /// Offer MSI-X (QEMU's `vectors=0` takes it away).
    pub msix: bool,
    /// Record the card's traffic to this pcap file (QEMU's `filter-dump`).
    pub pcap: Option<PathBuf>,
}

impl Default for Nic {
    fn default() -> Self {
        Nic { backend: Backend::User, legacy: false, offload: true, forwards: Vec::new(), msix: true, pcap: None }
    }
}

/// Bytes of each frame `filter-dump` records: more than any frame with
/// segmentation offload (64 KiB and a header).
pub const PCAP_MAXLEN: u32 = 256 * 1024;

/// One way of booting the kernel.
#[derive(Clone, Debug)]
pub struct Boot {
    pub firmware: Firmware,
    pub machine: Machine,
    pub memory: String,
    /// The kernel command line.
    pub cmdline: String,
    /// Wait for gdb on localhost:1234.
    pub gdb: bool,
    pub nic: Option<Nic>,
    /// Which build of the kernel a direct boot loads.
    pub kernel: Kernel,
}

/// Which build of the kernel a direct boot loads (the disk images always
/// carry the test build).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernel {
    /// The test build (feature `ktest`) when the command line has
    /// `mode=test`, the served one otherwise.
    #[default]
    ForMode,
    /// The served build whatever the command line says: to check that it
    /// refuses `mode=test`.
    Served,
}

impl Boot {
    /// Whether the command line asks for the in-kernel tests.
    pub fn runs_tests(&self) -> bool {
        self.cmdline.split_whitespace().any(|word| word == "mode=test")
    }

    /// The stripped ELF a direct boot loads, and the one with debug info
    /// for gdb (for a disk-image boot, the test build it carries).
    pub fn kernel<'a>(&self, artifacts: &'a Artifacts) -> (&'a Path, &'a Path) {
        let tests = self.firmware != Firmware::Direct || (self.kernel == Kernel::ForMode && self.runs_tests());
        if tests {
            (&artifacts.ktest_stripped, &artifacts.ktest_elf)
        } else {
            (&artifacts.kernel_stripped, &artifacts.kernel_elf)
        }
    }
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            firmware: Firmware::Bios,
            machine: Machine::Q35,
            memory: DEFAULT_MEMORY.into(),
            cmdline: String::new(),
            gdb: false,
            nic: Some(Nic::default()),
            kernel: Kernel::default(),
        }
    }
}

/// How a boot ended, from QEMU's exit status (see kernel/src/qemu.rs for the codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel shut down cleanly (test mode: every test passed).
    Success,
    /// An in-kernel test failed.
    TestsFailed,
    /// The kernel panicked.
    Panicked,
    /// A CPU exception stopped the kernel.
    CpuException,
    /// The network card failed (it asked for a reset) and the kernel stopped.
    DeviceFailed,
    /// The kernel refused what it was booted with (a bad PVH start info).
    BadBootInput,
    /// `mode=test` on a kernel built without the in-kernel tests.
    NoTests,
    /// The harness killed QEMU after its time limit.
    TimedOut,
    /// The harness stopped a serving guest after its client finished.
    Stopped,
    /// QEMU ended some other way: its own error, a signal, a triple fault
    /// (`-no-reboot` turns the reset into a plain exit).
    Other(Option<i32>),
}

impl Outcome {
    /// Decodes QEMU's exit status: `isa-debug-exit` turns the kernel's value
    /// `v` into `(v << 1) | 1`.
    pub fn from_exit_code(code: Option<i32>) -> Outcome {
        match code {
            Some(33) => Outcome::Success,
            Some(35) => Outcome::TestsFailed,
            Some(37) => Outcome::Panicked,
            Some(39) => Outcome::CpuException,
            Some(41) => Outcome::DeviceFailed,
            Some(43) => Outcome::BadBootInput,
            Some(45) => Outcome::NoTests,
            other => Outcome::Other(other),
        }
    }

    fn from_status(status: ExitStatus) -> Outcome {
        Outcome::from_exit_code(status.code())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Outcome::Success => write!(f, "clean exit"),
            Outcome::TestsFailed => write!(f, "in-kernel tests failed"),
            Outcome::Panicked => write!(f, "kernel panic"),
            Outcome::CpuException => write!(f, "CPU exception"),
            Outcome::DeviceFailed => write!(f, "network card failed"),
            Outcome::BadBootInput => write!(f, "bad boot input"),
            Outcome::NoTests => write!(f, "mode=test on a kernel built without its tests"),
            Outcome::TimedOut => write!(f, "timed out (hung)"),
            Outcome::Stopped => write!(f, "stopped after the client ran"),
            Outcome::Other(Some(code)) => write!(f, "QEMU exited with status {code}"),
            Outcome::Other(None) => write!(f, "QEMU was killed by a signal"),
        }
    }
}

/// QEMU's arguments for `boot`. `workdir` holds per-boot files (the UEFI
/// variable store), so that boots can run side by side.
pub fn arguments(artifacts: &Artifacts, boot: &Boot, workdir: &Path) -> Result<Vec<String>> {
    let machine = match boot.machine {
        Machine::Q35 => "q35",
        Machine::Pc => "pc",
        // ACPI off: qboot then announces the virtio-mmio devices on the
        // command line (`virtio_mmio.device=`), which is how Skiff finds them.
        Machine::Microvm if boot.firmware == Firmware::Direct => "microvm,acpi=off",
        Machine::MicrovmPcie if boot.firmware == Firmware::Direct => "microvm,pcie=on",
        Machine::Microvm | Machine::MicrovmPcie => {
            return Err("microvm boots only the kernel ELF (-kernel): no --bios or --uefi".into());
        }
    };
    let mut args: Vec<String> = vec![
        "-machine".into(),
        machine.into(),
        // TCG's "max" CPU has RDRAND, which later network code seeds from.
        "-cpu".into(),
        "max".into(),
        "-m".into(),
        boot.memory.clone(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-device".into(),
        DEBUG_EXIT_DEVICE.into(),
    ];
    let image = match boot.firmware {
        Firmware::Direct => None,
        Firmware::Bios => Some(artifacts.bios_image()?),
        Firmware::Uefi => {
            let image = artifacts.uefi_image()?;
            if !Path::new(OVMF_CODE).exists() {
                return Err(format!("{OVMF_CODE} is missing: run scripts/setup.sh (it installs the ovmf package)"));
            }
            std::fs::create_dir_all(workdir).map_err(|e| format!("cannot create {}: {e}", workdir.display()))?;
            let vars = workdir.join("OVMF_VARS.fd");
            std::fs::copy(OVMF_VARS, &vars).map_err(|e| format!("cannot copy {OVMF_VARS}: {e}"))?;
            args.push("-drive".into());
            args.push(format!("if=pflash,format=raw,readonly=on,file={}", escape_option(OVMF_CODE)));
            args.push("-drive".into());
            args.push(format!("if=pflash,format=raw,file={}", escape_option(&vars.display().to_string())));
            Some(image)
        }
    };
    match image {
        // snapshot=on: the image is never written, so boots can share it.
        Some(image) => {
            args.push("-drive".into());
            args.push(format!("format=raw,snapshot=on,file={}", escape_option(&image.display().to_string())));
        }
        // The stripped ELF: QEMU reads the whole file, debug info and all.
        None => {
            args.push("-kernel".into());
            args.push(boot.kernel(artifacts).0.display().to_string());
        }
    }
    if let Some(nic) = &boot.nic {
        args.push("-netdev".into());
        args.push(match nic.backend {
            Backend::User => {
                let mut netdev = String::from("user,id=net0,restrict=on");
                for f in &nic.forwards {
                    netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest));
                }
                netdev
            }
            Backend::Tap => format!("tap,id=net0,ifname={},script=no,downscript=no,vnet_hdr=on", crate::netns::TAP),
            Backend::Impaired(_) => crate::impair::relay::netdev("net0"),
        });
        // romfile= : Skiff never boots from the network, so skip the iPXE option ROM.
        let mut device = if !boot.machine.has_pci() {
            format!("virtio-net-device,netdev=net0,mac={}", testnet::guest_mac_text())
        } else {
            format!("virtio-net-pci,netdev=net0,mac={},romfile=", testnet::guest_mac_text())
        };
        if nic.legacy {
            device.push_str(",disable-modern=on");
        }
        if !nic.offload {
            device.push_str(",csum=off,guest_csum=off");
        }
        if !nic.msix {
            device.push_str(",vectors=0");
        }
        args.push("-device".into());
        args.push(device);
        // Record the traffic for Wireshark: `run --pcap FILE`, or SKIFF_PCAP
        // to debug a test boot.
        let pcap = nic.pcap.clone().or_else(|| std::env::var_os("SKIFF_PCAP").map(PathBuf::from));
        if let Some(pcap) = pcap {
            args.push("-object".into());
            // maxlen: whole 64 KiB TSO and coalesced frames with their
            // virtio_net_hdr (QEMU's default, 65536, would cut the latter).
            args.push(format!(
                "filter-dump,id=dump0,netdev=net0,file={},maxlen={PCAP_MAXLEN}",
                escape_option(&pcap.display().to_string())
            ));
        }
    }
    if !boot.cmdline.is_empty() {
        if boot.firmware == Firmware::Direct {
            // A plain argument, not an option list: no comma escaping.
            args.push("-append".into());
            args.push(boot.cmdline.clone());
        } else {
            args.push("-fw_cfg".into());
            args.push(format!("name={CMDLINE_FW_CFG},string={}", escape_option(&boot.cmdline)));
        }
    }
    if boot.gdb {
        args.extend(["-s".into(), "-S".into()]);
    }
    Ok(args)
}

/// QEMU option values double their commas.
pub fn escape_option(value: &str) -> String {
    value.replace(',', ",,")
}

/// The command as a person would type it, to re-run a failed boot by hand.
pub fn shell_line(args: &[String]) -> String {
    let quote = |a: &String| {
        if a.chars().all(|c| c.is_ascii_alphanumeric() || "-_=,./:".contains(c)) {
            a.clone()
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    std::iter::once("qemu-system-x86_64".to_string()).chain(args.iter().map(quote)).collect::<Vec<_>>().join(" ")
}

/// Boots with the serial console on this terminal, until the guest or the
/// user ends it. Once the guest answers HTTP on `http_port`, says where.
/// With `netns`, QEMU runs inside that network namespace (`run --tap`).
pub fn run_interactive(
    artifacts: &Artifacts,
    boot: &Boot,
    http_port: u16,
    echo_port: u16,
    netns: Option<&str>,
) -> Result<()> {
    let mut args = arguments(artifacts, boot, &root().join("target/qemu/run"))?;
    // mon:stdio multiplexes the QEMU monitor on the console: Ctrl-A X quits, Ctrl-A C toggles.
    args.extend(["-serial".into(), "mon:stdio".into()]);
    eprintln!("==> booting: {}", shell_line(&args));
    eprintln!("    (Ctrl-A X quits QEMU)");
    if boot.gdb {
        let offset = if boot.firmware == Firmware::Direct { 0 } else { KERNEL_LOAD_OFFSET };
        eprintln!(
            "    waiting for gdb: gdb -q -ex 'symbol-file -o {offset:#x} {}' -ex 'target remote :1234'",
            boot.kernel(artifacts).1.display()
        );
    }
    let mut command = match netns {
        Some(netns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", netns, "qemu-system-x86_64"]);
            c
        }
        None => Command::new("qemu-system-x86_64"),
    };
    let mut qemu = command.args(&args).spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    let started = Instant::now();
    // Announce the URLs once the guest answers; the thread ends with the process.
    std::thread::spawn(move || {
        if crate::clients::wait_until_serving(http_port, Duration::from_secs(300)).is_ok() {
            eprintln!(
                "\r\n==> Skiff answers ({:.1} s after QEMU started):\r\n    http://127.0.0.1:{http_port}/  \
                 (a live view; JSON at http://127.0.0.1:{http_port}/stats)\r\n    echo: nc 127.0.0.1 {echo_port}\r",
                started.elapsed().as_secs_f64()
            );
        }
    });
    let status = qemu.wait().map_err(|e| format!("cannot wait for QEMU: {e}"))?;
    match Outcome::from_status(status) {
        Outcome::Success => Ok(()),
        // With -no-reboot, a guest reset (a triple fault, say) also ends QEMU with 0.
        Outcome::Other(Some(0)) => {
            eprintln!(
                "==> QEMU exited: quit from the monitor, or the guest reset itself (a triple fault looks like this)"
            );
            Ok(())
        }
        outcome => Err(format!("the guest stopped: {outcome}")),
    }
}

/// What a captured boot did.
pub struct Report {
    pub outcome: Outcome,
    /// Everything QEMU printed, serial output and QEMU's own messages, in
    /// the order the two streams delivered them.
    pub lines: Vec<String>,
    pub command_line: String,
    pub elapsed: Duration,
    /// What the host-side client found, if one ran.
    pub client: Option<Result<String>>,
}

/// QEMU, killed when dropped, so that no error path leaves one running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The line the kernel prints once it serves (kernel/src/main.rs).
pub const SERVING_MARKER: &str = "Skiff is up.";

/// A running guest, as its host-side client sees it.
pub struct Guest {
    /// QEMU's process id.
    pub pid: u32,
    /// QEMU's human monitor, on a Unix socket.
    pub monitor: PathBuf,
    /// The network namespace of a TAP boot (see `netns.rs`).
    pub netns: Option<String>,
}

impl Guest {
    /// Runs one QEMU monitor command (such as `set_link net0 off`).
    pub fn monitor(&self, command: &str) -> Result<()> {
        crate::monitor::run(&self.monitor, command, GUEST_MONITOR_TIMEOUT).map(|_| ())
    }
}

/// How long a test's monitor command may take.
const GUEST_MONITOR_TIMEOUT: Duration = Duration::from_secs(10);

/// Host-side checks run against a serving guest; `Ok` says what passed.
pub type Client<'a> = &'a (dyn Fn(&Guest) -> Result<String> + Sync);

/// Boots with serial output captured, and stops QEMU after `timeout`. With a
/// `client`, waits for the kernel to serve, runs the client, then stops QEMU.
pub fn run_captured(
    artifacts: &Artifacts,
    boot: &Boot,
    workdir: &Path,
    timeout: Duration,
    client: Option<Client>,
) -> Result<Report> {
    let mut args = arguments(artifacts, boot, workdir)?;
    std::fs::create_dir_all(workdir).map_err(|e| format!("cannot create {}: {e}", workdir.display()))?;
    let monitor = workdir.join("monitor.sock");
    let _ = std::fs::remove_file(&monitor);
    args.extend([
        "-serial".into(),
        "stdio".into(),
        "-monitor".into(),
        format!("unix:{},server=on,wait=off", escape_option(&monitor.display().to_string())),
    ]);
    let mut command_line = shell_line(&args);
    // A TAP card runs QEMU inside a namespace made for this boot, deleted after it.
    let network = match &boot.nic {
        Some(Nic { backend: Backend::Tap | Backend::Impaired(_), .. }) => {
            let name = workdir.file_name().map_or("boot".into(), |n| n.to_string_lossy().into_owned());
            Some(crate::netns::TestNetwork::create(&name)?)
        }
        _ => None,
    };
    // A damaged link: the relay sits between QEMU and the TAP device, in the
    // same namespace; killed when this boot ends.
    let _relay = match (&boot.nic, &network) {
        (Some(Nic { backend: Backend::Impaired(imp), .. }), Some(net)) => {
            command_line = format!("{command_line}\n    (through the damaged link {imp}: see xtask/src/impair/)");
            Some(Guard(crate::impair::relay::spawn(Some(net.name()), imp, workdir)?))
        }
        _ => None,
    };
    let mut command = match &network {
        Some(net) => {
            command_line =
                format!("{command_line}\n    (inside a network namespace with a TAP device: see xtask/src/netns.rs)");
            let mut c = Command::new("ip");
            c.args(["netns", "exec", net.name(), "qemu-system-x86_64"]);
            c
        }
        None => Command::new("qemu-system-x86_64"),
    };
    let started = Instant::now();
    let child = command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    let mut qemu = Guard(child);

    let lines = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = [
        qemu.0.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        qemu.0.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(std::result::Result::ok) {
                let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
        })
    })
    .collect();

    let serving = || lines.lock().is_ok_and(|l| l.iter().any(|line| line.contains(SERVING_MARKER)));
    let mut client_result = None;
    let outcome = loop {
        match qemu.0.try_wait() {
            Ok(Some(status)) => break Outcome::from_status(status),
            Ok(None) if started.elapsed() >= timeout => break Outcome::TimedOut,
            Ok(None) => match client {
                Some(client) if serving() => {
                    client_result = Some(client(&Guest {
                        pid: qemu.0.id(),
                        monitor: monitor.clone(),
                        netns: network.as_ref().map(|n| n.name().to_string()),
                    }));
                    match qemu.0.try_wait() {
                        Ok(Some(status)) => break Outcome::from_status(status),
                        _ => break Outcome::Stopped,
                    }
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            },
            Err(e) => return Err(format!("cannot wait for QEMU: {e}")),
        }
    };
    let elapsed = started.elapsed();
    drop(qemu); // kills it if it timed out, which closes the pipes
    for reader in readers {
        let _ = reader.join();
    }
    let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
    Ok(Report { outcome, lines, command_line, elapsed, client: client_result })
}

/// Where a named boot keeps its files.
pub fn workdir(name: &str) -> PathBuf {
    root().join("target/qemu").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::Images;

    fn artifacts() -> Artifacts {
        Artifacts {
            kernel_elf: "k.elf".into(),
            kernel_stripped: "k".into(),
            ktest_elf: "kt.elf".into(),
            ktest_stripped: "kt".into(),
            images: Some(Images { bios: "bios.img".into(), uefi: "uefi.img".into() }),
        }
    }

    #[test]
    fn exit_codes_decode_as_the_kernel_encodes_them() {
        assert_eq!(Outcome::from_exit_code(Some((0x10 << 1) | 1)), Outcome::Success);
        assert_eq!(Outcome::from_exit_code(Some((0x11 << 1) | 1)), Outcome::TestsFailed);
        assert_eq!(Outcome::from_exit_code(Some((0x12 << 1) | 1)), Outcome::Panicked);
        assert_eq!(Outcome::from_exit_code(Some((0x13 << 1) | 1)), Outcome::CpuException);
        assert_eq!(Outcome::from_exit_code(Some((0x14 << 1) | 1)), Outcome::DeviceFailed);
        assert_eq!(Outcome::from_exit_code(Some((0x15 << 1) | 1)), Outcome::BadBootInput);
        assert_eq!(Outcome::from_exit_code(Some((0x16 << 1) | 1)), Outcome::NoTests);
        assert_eq!(Outcome::from_exit_code(Some(0)), Outcome::Other(Some(0)));
        assert_eq!(Outcome::from_exit_code(Some(1)), Outcome::Other(Some(1)));
        assert_eq!(Outcome::from_exit_code(None), Outcome::Other(None));
    }

    #[test]
    fn bios_boot_has_debug_exit_snapshot_drive_and_cmdline() {
        let boot = Boot { machine: Machine::Pc, cmdline: "mode=test a=b,c".into(), ..Boot::default() };
        let args = arguments(&artifacts(), &boot, Path::new("/nonexistent")).unwrap();
        let joined = args.join(" ");
        assert!(joined.contains("-machine pc"), "{joined}");
        assert!(joined.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"), "{joined}");
        assert!(joined.contains("-drive format=raw,snapshot=on,file=bios.img"), "{joined}");
        assert!(joined.contains("-fw_cfg name=opt/skiff/cmdline,string=mode=test a=b,,c"), "{joined}");
        assert!(!joined.contains("pflash") && !joined.contains(" -S"), "{joined}");
    }

    #[test]
    fn direct_boot_loads_the_stripped_elf_with_its_cmdline_appended() {
        let boot = Boot { firmware: Firmware::Direct, cmdline: "mode=test a=b,c".into(), ..Boot::default() };
        let args = arguments(&artifacts(), &boot, Path::new("/nonexistent")).unwrap();
        let joined = args.join(" ");
        assert!(joined.contains("-kernel kt "), "{joined}");
        assert!(args.windows(2).any(|w| w == ["-append", "mode=test a=b,c"]), "{args:?}");
        assert!(!joined.contains("-drive") && !joined.contains("-fw_cfg"), "{joined}");
        assert!(joined.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"), "{joined}");
    }

    #[test]
    fn only_mode_test_direct_boots_load_the_test_build() {
        let kernel_of = |boot: &Boot| {
            let args = arguments(&artifacts(), boot, Path::new("/nonexistent")).unwrap();
            args.windows(2).find(|w| w[0] == "-kernel").map(|w| w[1].clone())
        };
        let direct = |cmdline: &str| Boot { firmware: Firmware::Direct, cmdline: cmdline.into(), ..Boot::default() };
        assert_eq!(kernel_of(&direct("")).as_deref(), Some("k"));
        assert_eq!(kernel_of(&direct("log=debug mode=run")).as_deref(), Some("k"));
        assert_eq!(kernel_of(&direct("mode=testing")).as_deref(), Some("k"));
        assert_eq!(kernel_of(&direct("log=info mode=test")).as_deref(), Some("kt"));
        let served = Boot { kernel: Kernel::Served, ..direct("mode=test") };
        assert_eq!(kernel_of(&served).as_deref(), Some("k"));
        // The disk images carry the test build, whatever the command line.
        assert_eq!(Boot::default().kernel(&artifacts()).1, Path::new("kt.elf"));
    }

    #[test]
    fn only_disk_image_boots_need_the_images() {
        let kernel_only = Artifacts { images: None, ..artifacts() };
        let direct = Boot { firmware: Firmware::Direct, ..Boot::default() };
        assert!(arguments(&kernel_only, &direct, Path::new("/nonexistent")).is_ok());
        for firmware in [Firmware::Bios, Firmware::Uefi] {
            let boot = Boot { firmware, ..Boot::default() };
            let err = arguments(&kernel_only, &boot, Path::new("/nonexistent")).unwrap_err();
            assert!(err.contains("disk images were not built"), "{err}");
        }
    }

    #[test]
    fn microvm_boots_the_elf_with_a_virtio_mmio_card() {
        let boot = Boot { firmware: Firmware::Direct, machine: Machine::Microvm, ..Boot::default() };
        let joined = arguments(&artifacts(), &boot, Path::new("/nonexistent")).unwrap().join(" ");
        assert!(joined.contains("-machine microvm,acpi=off "), "{joined}");
        assert!(joined.contains("-device virtio-net-device,netdev=net0,mac=52:54:00:12:34:56"), "{joined}");
        assert!(!joined.contains("virtio-net-pci") && !joined.contains("romfile"), "{joined}");
        let bios = Boot { machine: Machine::Microvm, ..Boot::default() };
        assert!(arguments(&artifacts(), &bios, Path::new("/nonexistent")).is_err());
    }

    #[test]
    fn microvm_pcie_keeps_acpi_and_plugs_a_pci_card() {
        let boot = Boot { firmware: Firmware::Direct, machine: Machine::MicrovmPcie, ..Boot::default() };
        let joined = arguments(&artifacts(), &boot, Path::new("/nonexistent")).unwrap().join(" ");
        // No acpi=off: QEMU creates the PCIe host bridge only with ACPI.
        assert!(joined.contains("-machine microvm,pcie=on "), "{joined}");
        assert!(!joined.contains("acpi=off"), "{joined}");
        assert!(joined.contains("-device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56,romfile="), "{joined}");
        let uefi = Boot { firmware: Firmware::Uefi, ..boot };
        assert!(arguments(&artifacts(), &uefi, Path::new("/nonexistent")).is_err());
    }

    #[test]
    fn paths_with_commas_are_escaped_for_qemu() {
        let mut a = artifacts();
        a.images = Some(Images { bios: "/tmp/a,b/bios.img".into(), uefi: "uefi.img".into() });
        let args = arguments(&a, &Boot::default(), Path::new("/nonexistent")).unwrap();
        assert!(args.contains(&"format=raw,snapshot=on,file=/tmp/a,,b/bios.img".to_string()), "{args:?}");
    }

    #[test]
    fn nic_options_follow_the_boot() {
        let tap = Boot {
            nic: Some(Nic {
                backend: Backend::Tap,
                legacy: true,
                offload: false,
                forwards: vec![],
                msix: false,
                pcap: None,
            }),
            ..Boot::default()
        };
        let joined = arguments(&artifacts(), &tap, Path::new("/nonexistent")).unwrap().join(" ");
        assert!(joined.contains("-netdev tap,id=net0,ifname=skiff0,script=no,downscript=no,vnet_hdr=on"), "{joined}");
        assert!(
            joined.contains("mac=52:54:00:12:34:56,romfile=,disable-modern=on,csum=off,guest_csum=off,vectors=0"),
            "{joined}"
        );
        let user = arguments(&artifacts(), &Boot::default(), Path::new("/nonexistent")).unwrap().join(" ");
        assert!(user.contains("-netdev user,id=net0,restrict=on "), "{user}");
        let forwarded = Boot {
            nic: Some(Nic {
                forwards: vec![Forward { host: 8080, guest: 80 }, Forward { host: 8007, guest: 7 }],
                ..Nic::default()
            }),
            ..Boot::default()
        };
        let joined = arguments(&artifacts(), &forwarded, Path::new("/nonexistent")).unwrap().join(" ");
        assert!(
            joined.contains("restrict=on,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:8007-:7 "),
            "{joined}"
        );
        assert!(!user.contains("disable-modern") && !user.contains("csum=off"), "{user}");
        let none = arguments(&artifacts(), &Boot { nic: None, ..Boot::default() }, Path::new("/nonexistent"))
            .unwrap()
            .join(" ");
        assert!(!none.contains("-netdev"), "{none}");
    }

    #[test]
    fn pcap_records_the_cards_traffic() {
        let nic = Nic { pcap: Some("/tmp/a,b.pcap".into()), ..Nic::default() };
        let joined = arguments(&artifacts(), &Boot { nic: Some(nic), ..Boot::default() }, Path::new("/nonexistent"))
            .unwrap()
            .join(" ");
        assert!(
            joined.contains("-object filter-dump,id=dump0,netdev=net0,file=/tmp/a,,b.pcap,maxlen=262144"),
            "{joined}"
        );
    }

    #[test]
    fn gdb_boot_waits_for_the_debugger() {
        let boot = Boot { gdb: true, ..Boot::default() };
        let args = arguments(&artifacts(), &boot, Path::new("/nonexistent")).unwrap();
        assert!(args.ends_with(&["-s".to_string(), "-S".to_string()]), "{args:?}");
    }

    #[test]
    fn shell_line_quotes_what_a_shell_would_split() {
        let line = shell_line(&["-m".into(), "128M".into(), "name=x,string=mode=test log=debug".into()]);
        assert_eq!(line, "qemu-system-x86_64 -m 128M 'name=x,string=mode=test log=debug'");
        assert_eq!(shell_line(&["it's".into()]), "qemu-system-x86_64 'it'\\''s'");
    }
}
