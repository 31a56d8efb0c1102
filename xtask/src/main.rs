//! `cargo xtask`: build, boot and test Skiff.
//!
//! - `cargo xtask build`: the kernel ELF and its BIOS and UEFI disk images.
//! - `cargo xtask run`: build the kernel, then boot it under QEMU straight
//!   from the ELF (`-kernel`, PVH) with the serial console on this terminal
//!   (Ctrl-A X quits); `--bios` and `--uefi` boot a disk image instead.
//! - `cargo xtask bench [--quick]`: Skiff against a Linux guest in the same
//!   QEMU (see `bench/mod.rs`); results in `target/bench/`.
//! - `cargo xtask qemu`: every test: host unit tests of all crates, then the
//!   kernel's own tests booted on each firmware and machine, then a check that
//!   the harness notices failures, panics, faults and hangs.
//! - `cargo xtask doc-check [--stats FILE]`: README.md and docs/ against the code (see `doccheck/`).
//! - `cargo xtask fuzz [--seconds N] [TARGET...]`: the cargo-fuzz targets.
//! - `cargo xtask stress`: the long hostile-network, load and soak runs.
//!
//! Each command first runs `scripts/setup.sh`, which installs what is missing.

mod bench;
mod build;
mod clients;
mod doccheck;
mod forward;
mod frames;
mod fuzz;
mod hostile;
mod impair;
mod judges;
mod learn;
mod monitor;
mod netns;
mod offloads;
mod qemu;
mod rawlink;
mod stress;
mod suite;
mod testnet;
mod ui;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

use crate::qemu::{Firmware, Forward, Machine, Nic};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, boot and test Skiff")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel and its BIOS and UEFI disk images.
    Build,
    /// Build, then boot Skiff under QEMU with its console on this terminal.
    ///
    /// By default QEMU loads the kernel ELF itself (`-kernel`, the PVH entry):
    /// no disk image, no bootloader.
    Run {
        /// Boot the BIOS disk image with SeaBIOS (builds the images first).
        #[arg(long, conflicts_with = "uefi")]
        bios: bool,
        /// Boot the UEFI disk image with OVMF (builds the images first).
        #[arg(long)]
        uefi: bool,
        /// QEMU machine type.
        #[arg(long, value_enum, default_value_t = Machine::Q35)]
        machine: Machine,
        /// Guest memory, in QEMU's syntax (128M, 1G).
        #[arg(long, default_value = qemu::DEFAULT_MEMORY)]
        memory: String,
        /// Wait for a debugger on localhost:1234 before the first instruction.
        #[arg(long)]
        gdb: bool,
        /// Kernel command line (see kernel/src/cmdline.rs), e.g. "log=debug".
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Host port on 127.0.0.1 forwarded to the guest's HTTP server (port 80).
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        /// Host port on 127.0.0.1 forwarded to the guest's TCP echo (port 7).
        #[arg(long, default_value_t = 8007)]
        echo_port: u16,
        /// Record the card's traffic to this pcap file (open it in Wireshark).
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Log every frame at each layer, driver to app (adds packet=trace to log=).
        #[arg(long)]
        trace: bool,
        /// Use a TAP device with vnet headers (so the card offers checksum
        /// and segmentation offload) in a network namespace made for this
        /// run and removed after it; the host ports still reach the guest.
        /// Needs root.
        #[arg(long)]
        tap: bool,
    },
    /// Run every test: host unit tests, then the kernel's tests under QEMU.
    Qemu {
        /// Run only the boots whose name contains this (host tests still run).
        #[arg(long)]
        filter: Option<String>,
        /// Seconds before a boot that has not finished counts as hung.
        #[arg(long, default_value_t = suite::BOOT_TIMEOUT_SECS)]
        timeout: u64,
    },
    /// Check README.md and docs/ against the code (also a step of `qemu`): line
    /// references, paths, links, names, xtask flags, Rust examples.
    DocCheck {
        /// Also compare the docs' /stats samples with this saved /stats
        /// (`curl http://127.0.0.1:8080/stats > FILE` from a `cargo xtask run`).
        #[arg(long)]
        stats: Option<PathBuf>,
    },
    /// Run the cargo-fuzz targets (fuzz/) for a bounded time each (see docs/testing.md).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Targets to run (default: all of them).
        targets: Vec<String>,
    },
    /// The long hostile-network, load and soak runs (see docs/testing.md).
    Stress {
        /// Boots (each a full hostile run at stress size).
        #[arg(long, default_value_t = stress::ROUNDS)]
        rounds: usize,
        /// Seconds each cargo-fuzz target runs first (0: no fuzzing, for a
        /// run of the hostile, crowd and damaged-link boots alone).
        #[arg(long, default_value_t = stress::FUZZ_PER_TARGET.as_secs())]
        fuzz_seconds: u64,
    },
    /// (Internal) the hostile suite's client, run inside the TAP test network.
    #[command(hide = true)]
    HostileClient {
        #[arg(long, default_value = "quick")]
        size: String,
        #[arg(long)]
        qemu_pid: u32,
    },
    /// Measure Skiff against a Linux guest in the same QEMU: tables and plots in target/bench/.
    Bench {
        /// A short run (a few minutes) that shows the bench works; results in target/bench/quick/.
        #[arg(long)]
        quick: bool,
        /// Only write the table and plots again from the last results.json.
        #[arg(long, hide = true)]
        report: bool,
        /// Only the damaged-link rows (issue 14: both guests behind the same
        /// lossy relay), put into the last run's results.json.
        #[arg(long)]
        only_lossy: bool,
    },
    /// (Internal) the bench's measurements, run inside its network namespace.
    #[command(hide = true)]
    BenchRun { plan: PathBuf },
    /// (Internal) the damaged link's relay between QEMU's dgram netdev and
    /// the TAP device, run inside the test network (see xtask/src/impair/).
    #[command(hide = true)]
    ImpairRelay {
        #[arg(long)]
        tap: String,
        /// What happens to frames towards the guest, e.g. "loss=2%,dup=2%,reorder=5%,flip=1%,delay=0ms".
        #[arg(long, default_value = "clean")]
        to_guest: String,
        /// What happens to frames from the guest.
        #[arg(long, default_value = "clean")]
        from_guest: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write every frame delivered, both ways, to this pcap file.
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Keep the counts of what was done to the frames in this file.
        #[arg(long)]
        report: Option<PathBuf>,
        #[arg(long, default_value_t = impair::relay::LIFETIME.as_secs())]
        seconds: u64,
    },
    /// (Internal) the damaged-link case's client, run inside the test network.
    #[command(hide = true)]
    LossyClient {
        #[arg(long, default_value = "quick")]
        size: String,
        /// The longest stall allowed, in ms (0: none, only report it).
        #[arg(long, default_value_t = 0)]
        max_stall_ms: u64,
        /// The guest is the bench's Linux guest: no Skiff /stats to check.
        #[arg(long)]
        linux: bool,
    },
    /// (Internal) echo UDP datagrams on ADDR; the TAP test network runs it.
    #[command(hide = true)]
    UdpEcho {
        addr: String,
        #[arg(long, default_value_t = netns::ECHO_LIFETIME_SECS)]
        seconds: u64,
    },
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    // The internal commands run inside a namespace made by a command that
    // has checked the set-up already.
    let internal = matches!(
        command,
        Cmd::UdpEcho { .. }
            | Cmd::HostileClient { .. }
            | Cmd::BenchRun { .. }
            | Cmd::ImpairRelay { .. }
            | Cmd::LossyClient { .. }
    );
    let result = if internal { Ok(()) } else { setup() }.and_then(|()| run(command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ui::error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
fn run(command: Cmd) -> Result<()> {
    match command {
        Cmd::UdpEcho { addr, seconds } => netns::udp_echo(&addr, seconds),
        Cmd::HostileClient { size, qemu_pid } => {
            hostile::sizes(&size).and_then(|s| hostile::run_in_namespace(s, qemu_pid, netns::TAP))
        }
        Cmd::BenchRun { plan } => bench::run_inside(&plan),
        Cmd::ImpairRelay { tap, to_guest, from_guest, seed, pcap, report, seconds } => {
            let impairment = impair::Impairment {
                to_guest: impair::Spec::parse(&to_guest)?,
                from_guest: impair::Spec::parse(&from_guest)?,
                seed,
            };
            let lifetime = std::time::Duration::from_secs(seconds);
            impair::relay::run(&impair::relay::Args { tap, impairment, pcap, report, lifetime })
        }
        Cmd::LossyClient { size, max_stall_ms, linux } => {
            let bar = (max_stall_ms > 0).then(|| std::time::Duration::from_millis(max_stall_ms));
            impair::client::sizes(&size).and_then(|s| impair::client::run_in_namespace(s, bar, linux))
        }
        Cmd::Build => build::build_with_images().map(|artifacts| artifacts.print()),
        Cmd::Run { bios, uefi, machine, memory, gdb, cmdline, http_port, echo_port, pcap, trace, tap } => {
            let cmdline = if trace { learn::with_trace(&cmdline) } else { cmdline };
            let firmware = match (bios, uefi) {
                (_, true) => Firmware::Uefi,
                (true, false) => Firmware::Bios,
                (false, false) => Firmware::Direct,
            };
            if tap && !forward::is_root() {
                return Err(TAP_NEEDS_ROOT.into());
            }
            let tests = cmdline.split_whitespace().any(|word| word == "mode=test");
            let artifacts = match (firmware, tests) {
                (Firmware::Direct, false) => build::build_served(),
                (Firmware::Direct, true) => build::build(),
                _ => build::build_with_images(),
            };
            artifacts.and_then(|artifacts| {
                if tap {
                    return run_on_tap(
                        &artifacts,
                        firmware,
                        machine,
                        memory,
                        cmdline,
                        gdb,
                        (http_port, echo_port),
                        pcap,
                    );
                }
                let forwards = vec![Forward::http(http_port), Forward::echo(echo_port)];
                let nic = Nic { forwards, pcap, ..Nic::default() };
                let boot = qemu::Boot {
                    firmware,
                    machine,
                    memory,
                    cmdline,
                    gdb,
                    nic: Some(nic),
                    kernel: qemu::Kernel::default(),
                };
                qemu::run_interactive(&artifacts, &boot, http_port, echo_port, None)
            })
        }
        Cmd::Qemu { filter, timeout } => suite::run(filter.as_deref(), timeout),
        Cmd::DocCheck { stats } => doccheck::run(stats.as_deref()),
        Cmd::Fuzz { seconds, targets } => {
            let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
            let targets = if targets.is_empty() { fuzz::TARGETS.to_vec() } else { targets };
            fuzz::run_targets(&targets, std::time::Duration::from_secs(seconds))
                .map(|report| println!("fuzz: {}", report.summary()))?;
            // What the fuzzer found, judged by a second parser too.
            if targets.contains(&"http_request") {
                println!("h11: {}", judges::h11_differential(&judges::corpus_dirs())?);
            }
            Ok(())
        }
        Cmd::Stress { rounds, fuzz_seconds } => stress::run(rounds, std::time::Duration::from_secs(fuzz_seconds)),
        Cmd::Bench { quick, report: true, .. } => bench::report(quick),
        Cmd::Bench { quick, report: false, only_lossy: true } => {
            bench::run_scoped(quick, bench::Scope::OnlyLossy).map(|_| ())
        }
        Cmd::Bench { quick, report: false, only_lossy: false } => bench::run(quick).map(|_| ()),
    }
}

/// Errors are messages for a person: what failed and what to do about it.
pub type Result<T> = std::result::Result<T, String>;

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Installs what is missing (QEMU, OVMF, toolchains); fast when all is there.
fn setup() -> Result<()> {
    let step = ui::Step::start("checking set-up (scripts/setup.sh)");
    let status = Command::new("bash")
        .arg(root().join("scripts/setup.sh"))
        .status()
        .map_err(|e| format!("cannot run scripts/setup.sh: {e}"))?;
    if !status.success() {
        return Err(format!("scripts/setup.sh failed ({status}); its output above says why"));
    }
    step.done();
    Ok(())
}

/// What `cargo xtask run --tap` says to a user who is not root.
const TAP_NEEDS_ROOT: &str = "cargo xtask run --tap needs root: it makes a network namespace and a TAP device \
     (ip netns add, ip tuntap add). Run it as root (e.g. `sudo -E env PATH=$PATH cargo xtask run --tap`), \
     or without --tap for QEMU's user network (no offloads)";

/// `cargo xtask run --tap`: QEMU on a TAP device with vnet headers inside a
/// namespace made for this run (netns.rs, the tests' network: the guest is
/// 10.0.2.15, the TAP's host side 10.0.2.2), and 127.0.0.1's ports forwarded
/// into it (forward.rs). The namespace is removed when QEMU ends.
#[allow(clippy::too_many_arguments)]
fn run_on_tap(
    artifacts: &build::Artifacts,
    firmware: Firmware,
    machine: qemu::Machine,
    memory: String,
    cmdline: String,
    gdb: bool,
    (http_port, echo_port): (u16, u16),
    pcap: Option<PathBuf>,
) -> Result<()> {
    use std::net::SocketAddr;
    let net = netns::TestNetwork::create("run")?;
    forward::survive_signals();
    forward::spawn(http_port, net.name(), SocketAddr::from((testnet::GUEST_IP, testnet::HTTP_PORT)))?;
    forward::spawn(echo_port, net.name(), SocketAddr::from((testnet::GUEST_IP, testnet::ECHO_PORT)))?;
    // Nobody serves DHCP in the namespace: take the static address at once.
    let cmdline =
        if cmdline.contains("net.dhcp") { cmdline } else { format!("net.dhcp=off {cmdline}").trim().to_string() };
    eprintln!("==> TAP network: namespace {} (removed when QEMU ends), guest {}", net.name(), testnet::guest_cidr());
    let nic = Nic { backend: qemu::Backend::Tap, pcap: pcap.clone(), ..Nic::default() };
    let boot = qemu::Boot { firmware, machine, memory, cmdline, gdb, nic: Some(nic), kernel: qemu::Kernel::default() };
    let ran = qemu::run_interactive(artifacts, &boot, http_port, echo_port, Some(net.name()));
    // The TAP's capture holds each frame behind its virtio_net_hdr: make
    // one Wireshark reads (docs/capture.md).
    if let Some(pcap) = pcap {
        match learn::pcap::readable(&pcap, testnet::GUEST_MAC) {
            Ok(said) => eprintln!("==> capture {} (each frame behind its virtio_net_hdr) and {said}", pcap.display()),
            Err(e) => eprintln!("==> capture {}: no readable copy made: {e}", pcap.display()),
        }
    }
    ran
}
