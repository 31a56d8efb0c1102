//! `cargo xtask qemu`: the whole test suite.
//!
//! 1. Lint (rustfmt, clippy, rustdoc), then host unit tests of the libraries and of xtask,
//!    then the doc checks (`doccheck`: the docs' line references, paths,
//!    names, xtask flags and code examples against the code).
//! 2. The kernel's own tests (`mode=test`), booted from BIOS on q35 and pc,
//!    from UEFI on q35, and straight from the ELF (`-kernel`, PVH) on q35 and
//!    pc. A boot passes only if QEMU exits with the kernel's success code *and*
//!    the kernel printed a summary with no failure.
//! 3. The harness checks itself: the kernel is told to fail a test, panic,
//!    fault and hang, and each of those boots must be judged a failure, for
//!    the right reason. A harness that passed everything would fail here.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::build::{self, Artifacts};
use crate::clients::{self, Ports};
use crate::qemu::{self, Backend, Boot, Firmware, Forward, Kernel, Machine, Nic, Outcome, Report};
use crate::testnet::guest_mac_text;
use crate::{Result, root, ui};

/// Default per-boot limit. A UEFI boot with the tests takes about 5 s under
/// TCG here; the limit only has to catch a hang, so it is generous.
pub const BOOT_TIMEOUT_SECS: u64 = 120;
/// The limit for the boot that hangs on purpose: its BIOS boot and tests take
/// about 1 s, so 10 s is far from any flake and keeps the suite short.
const HANG_TIMEOUT: Duration = Duration::from_secs(10);
/// Serial lines shown when a boot fails.
const TAIL_LINES: usize = 40;

/// What a boot must do to pass.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Exit cleanly after every in-kernel test passed.
    AllTestsPass,
    /// As `AllTestsPass`, and print each of `lines`: a line that ends with
    /// `$` must end there (so a feature set cannot have extra members).
    PassPrinting(Vec<String>),
    /// Serve: the host-side client's checks pass, and the kernel is still
    /// running (no panic, no exception) when the harness stops it.
    Serves,
    /// As `Serves`, and the function accepts the boot's output (its message
    /// is added to the client's).
    ServesPrinting(fn(&[String]) -> Result<String>),
    /// Be rejected by the `AllTestsPass` check, end with `outcome`, and print
    /// each of `lines` (as substrings).
    Rejected { outcome: Outcome, lines: &'static [&'static str] },
}

/// Host-side checks, given QEMU's process id (see `qemu::Client`).
pub(crate) type ClientFn = dyn Fn(&qemu::Guest) -> Result<String> + Sync;

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) boot: Boot,
    pub(crate) expect: Expect,
    pub(crate) timeout: Duration,
    /// Host-side checks against the serving guest (with `Expect::Serves`).
    pub(crate) client: Option<Box<ClientFn>>,
}

/// The feature sets QEMU 7.2 leaves after Skiff's driver has chosen: the
/// user network has no vnet headers, so QEMU offers no checksum or
/// segmentation offload there (and the driver declines MRG_RXBUF alone);
/// a TAP device with vnet headers offers both.
const NEGOTIATED_MODERN: &str = "MAC STATUS RING_EVENT_IDX VERSION_1";
const NEGOTIATED_MODERN_OFFLOAD: &str =
    "CSUM GUEST_CSUM MAC GUEST_TSO4 GUEST_TSO6 HOST_TSO4 HOST_TSO6 MRG_RXBUF STATUS RING_EVENT_IDX VERSION_1";
const NEGOTIATED_LEGACY: &str = "MAC STATUS ANY_LAYOUT RING_EVENT_IDX";
const NEGOTIATED_LEGACY_OFFLOAD: &str =
    "CSUM GUEST_CSUM MAC GUEST_TSO4 GUEST_TSO6 HOST_TSO4 HOST_TSO6 MRG_RXBUF STATUS ANY_LAYOUT RING_EVENT_IDX";

/// How long the guest is left idle to measure what it costs the host, and
/// the share of one host core it may use meanwhile.
const IDLE_PERIOD: Duration = Duration::from_secs(10);
const IDLE_CPU_LIMIT: f64 = 0.10;

/// The HTTP idle timeout of the boot that checks it. The main serving boot
/// runs with 60 s, so that no connection of its other checks (some held open
/// while the rest are opened) times out under a slow TCG host.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// The serving boot's limit: its client moves 100 MiB and thousands of
/// requests through QEMU's user network.
const SERVE_TIMEOUT: Duration = Duration::from_secs(600);
/// The memory of the smallest serving boot (QEMU's `-m`).
const SMALL_MEMORY: &str = "8M";
/// The echo stream's size.
const ECHO_BYTES: usize = 100 << 20;

/// A serving boot with its HTTP port forwarded from a free host port, which
/// `check` gets along with the guest.
fn http_case(
    name: &'static str,
    machine: Machine,
    msix: bool,
    cmdline: &str,
    timeout: Duration,
    check: fn(u16, &qemu::Guest) -> Result<String>,
) -> Case {
    let port = free_port();
    Case {
        name,
        boot: Boot {
            machine,
            cmdline: cmdline.into(),
            nic: Some(Nic { forwards: vec![Forward::http(port)], msix, ..Nic::default() }),
            ..Boot::default()
        },
        expect: Expect::Serves,
        timeout,
        client: Some(Box::new(move |guest| check(port, guest))),
    }
}

/// A port on 127.0.0.1 that is free now and that this process has not
/// handed out before: the kernel may give the same ephemeral port to two
/// binds in a row once the first is closed, and two forwards on one port
/// stop QEMU ("Could not set up host forwarding rule").
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..FREE_PORT_TRIES {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port());
        if port != 0 && !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    0
}

/// Binds `free_port` tries before it gives up (and QEMU reports port 0).
const FREE_PORT_TRIES: usize = 1000;

/// Everything the host checks against the serving guest.
fn serve_checks(ports: Ports, guest: &qemu::Guest) -> Result<String> {
    fn step(what: &'static str) -> impl Fn(String) -> String {
        move |e| format!("{what}: {e}")
    }
    let first = clients::wait_until_serving(ports.http, Duration::from_secs(60)).map_err(step("first request"))?;
    let before = clients::pages(ports).map_err(step("pages"))?;
    let keep_alive = clients::keep_alive(ports.http, 300).map_err(step("keep-alive"))?;
    clients::pipelining(ports.http).map_err(step("pipelining"))?;
    let bad = clients::bad_requests(ports.http).map_err(step("bad requests"))?;
    // Every connection but the one asking goes back to the pool.
    clients::settle(ports).map_err(step("after bad requests"))?;
    let eight = clients::parallel(ports.http, 8, 50).map_err(step("8 clients"))?;
    let thirty_two = clients::parallel(ports.http, 32, 10).map_err(step("32 clients"))?;
    clients::settle(ports).map_err(step("after 32 clients"))?;
    clients::echo_parallel(ports.echo, 32).map_err(step("32 echo clients"))?;
    let echo = clients::echo_stream(ports.echo, ECHO_BYTES).map_err(step("100 MiB echo"))?;
    // Last, because the 8 connections the guest refuses leave QEMU's user
    // network resetting an occasional later forwarded connection (the guest
    // sends no RST for those; seen with QEMU 7.2).
    let overload = clients::overload(ports.http, 48).map_err(step("48 connections"))?;
    if overload < 32 {
        return Err(format!("only {overload} of 48 simultaneous connections were served; at least 32 must be"));
    }
    clients::settle(ports).map_err(step("after 48 connections"))?;
    link_toggle(ports, guest).map_err(step("link down and up"))?;
    let after = clients::stats(ports).map_err(step("stats afterwards"))?;
    let number = |json: &serde_json::Value, path: &str| json.pointer(path).and_then(|v| v.as_u64()).unwrap_or(0);
    if number(&after, "/apps/http_requests") <= number(&before, "/apps/http_requests") + 1000 {
        return Err("the HTTP request counter did not move".into());
    }
    if number(&after, "/apps/echo_bytes") < ECHO_BYTES as u64 {
        return Err("the echo byte counter did not move".into());
    }
    if number(&after, "/device/rx_frames") <= number(&before, "/device/rx_frames") {
        return Err("the driver's frame counter did not move".into());
    }
    Ok(format!(
        "first 200 {:.1} s after the kernel was up; keep-alive {keep_alive:.0} req/s, 8 connections {eight:.0} req/s, \
         32 connections {thirty_two:.0} req/s; {bad} bad requests answered; {overload} of 48 connections served; \
         echo 100 MiB at {echo:.1} MiB/s; the link went down and up through the config interrupt",
        first.as_secs_f64(),
    ))
}

/// Takes the link down and up from QEMU's monitor: each change raises the
/// card's configuration interrupt, the kernel re-reads the link, and serving
/// goes on afterwards.
fn link_toggle(ports: Ports, guest: &qemu::Guest) -> Result<()> {
    let number = |path: &str| clients::stats_number(ports.http, path);
    let (changes, interrupts) = (number("/device/config_changes")?, number("/interrupts/nic_config")?);
    guest.monitor("set_link net0 off")?;
    // While the link is down nothing can be asked; bring it up and look.
    std::thread::sleep(Duration::from_millis(500));
    guest.monitor("set_link net0 on")?;
    clients::wait_until_serving(ports.http, Duration::from_secs(30))?;
    let (changes_after, interrupts_after) = (number("/device/config_changes")?, number("/interrupts/nic_config")?);
    if changes_after < changes + 2 || interrupts_after < interrupts + 2 {
        return Err(format!(
            "link off and on: config changes {changes} -> {changes_after}, config interrupts {interrupts} -> {interrupts_after}"
        ));
    }
    Ok(())
}

/// An idle guest costs the host almost nothing and answers at once when
/// asked; an idle connection is closed at the timeout.
fn idle_checks(port: u16, pid: u32) -> Result<String> {
    clients::wait_until_serving(port, Duration::from_secs(60))?;
    let share = clients::cpu_share(pid, IDLE_PERIOD)?;
    // Generous: the measured figure goes in the benchmark; this only has to
    // catch a loop that spins instead of sleeping (a whole core, 1.0).
    if share > IDLE_CPU_LIMIT {
        return Err(format!("idle for {IDLE_PERIOD:?}, QEMU used {:.1}% of a core", share * 100.0));
    }
    // Right after the idle gap, a request is answered at once.
    clients::keep_alive(port, 1).map_err(|e| format!("after {IDLE_PERIOD:?} idle: {e}"))?;
    let mode = clients::stats_field(port, "/main_loop/mode")?;
    if mode != "interrupts" {
        return Err(format!("main loop mode {mode}, expected interrupts"));
    }
    let idle = clients::idle_timeout(port, IDLE_TIMEOUT)?;
    Ok(format!(
        "idle {:.0} s at {:.2}% of a core, answered right after; an idle connection closed after {:.1} s",
        IDLE_PERIOD.as_secs_f64(),
        share * 100.0,
        idle.as_secs_f64()
    ))
}

/// Serving works however the card signals (`mode`: "interrupts" for INTx,
/// "timer-poll" with `net.irq=off`); with interrupts, the card's wake the loop.
fn signal_checks(port: u16, mode: &str, what: &str) -> Result<String> {
    clients::wait_until_serving(port, Duration::from_secs(60))?;
    let before = clients::stats_number(port, "/main_loop/wakeups_device")?;
    let rate = clients::keep_alive(port, 200)?;
    clients::pipelining(port)?;
    let after = clients::stats_number(port, "/main_loop/wakeups_device")?;
    let actual = clients::stats_field(port, "/main_loop/mode")?;
    if actual != mode {
        return Err(format!("main loop mode {actual}, expected {mode}"));
    }
    if mode == "interrupts" && after <= before {
        return Err("the card's interrupts never woke the main loop".into());
    }
    Ok(format!("{what}: keep-alive {rate:.0} req/s, {} device wake-ups", after - before))
}

/// A boot that takes the hostile suite at its quick size.
fn hostile_case(name: &'static str, offload: bool, timeout: Duration) -> Case {
    Case {
        name,
        boot: crate::stress::hostile_boot(offload),
        expect: Expect::Serves,
        timeout: SERVE_TIMEOUT.max(timeout),
        client: Some(Box::new(move |guest| crate::stress::hostile_check(name, guest, crate::hostile::QUICK, None))),
    }
}

/// The hostile suite's crowd at its quick size, on a guest limited to
/// `stress::POOL_LIMIT` connections: the clients past it wait, none is reset.
fn limited_case(timeout: Duration) -> Case {
    let name = "hostile-tap-max-conns-100";
    Case {
        name,
        boot: crate::stress::limited_boot(),
        expect: Expect::Serves,
        timeout: SERVE_TIMEOUT.max(timeout),
        client: Some(Box::new(move |guest| {
            crate::stress::hostile_check(name, guest, crate::hostile::QUICK, Some("crowd"))
        })),
    }
}

/// What the kernel's UDP echo test prints (kernel/src/ktest.rs).
const OFFLOADED_BOTH_WAYS: &str = "echo checksums: tx offloaded 1, rx completed 1, rx valid 0$";
const NOT_OFFLOADED: &str = "echo checksums: tx offloaded 0, rx completed 0, rx valid 0$";

fn cases(timeout: Duration) -> Vec<Case> {
    let inject =
        |what: &str| Boot { cmdline: format!("mode=test ktest.net=user ktest.inject={what}"), ..Boot::default() };
    let nic_case = |name, firmware, machine, nic: Nic, negotiated: &str, extra: &[&str]| {
        let net = match nic.backend {
            Backend::User => "user",
            Backend::Tap | Backend::Impaired(_) => "tap",
        };
        let transport = if nic.legacy { "legacy" } else { "modern" };
        Case {
            name,
            boot: Boot {
                firmware,
                machine,
                cmdline: format!("mode=test ktest.net={net}"),
                nic: Some(nic),
                ..Boot::default()
            },
            expect: Expect::PassPrinting(
                [
                    format!("virtio-net: negotiated: {negotiated}$"),
                    format!("virtio-net: MAC {} (from the device)", guest_mac_text()),
                    format!(
                        "({transport} transport, {} config access)",
                        if machine.has_ecam() { "ECAM" } else { "port I/O" }
                    ),
                ]
                .into_iter()
                // Each boot must have come in the way it was meant to.
                .chain([if firmware == Firmware::Direct {
                    "booting (Pvh entry)"
                } else {
                    "booting (Bootloader entry)"
                }
                .to_string()])
                .chain(extra.iter().map(|l| l.to_string()))
                .collect(),
            ),
            timeout,
            client: None,
        }
    };
    let user = Nic::default();
    let legacy = Nic { legacy: true, ..Nic::default() };
    let tap = Nic { backend: Backend::Tap, ..Nic::default() };
    let serve_ports = Ports { http: free_port(), echo: free_port() };
    let direct_serve = http_case("direct-serve-q35", Machine::Q35, true, "", timeout, |port, _| {
        signal_checks(port, "interrupts", "direct boot (-kernel, PVH) on q35")
    });
    let direct_microvm = http_case("direct-serve-microvm", Machine::Microvm, true, "", timeout, |port, _| {
        signal_checks(port, "interrupts", "direct boot on microvm (virtio-mmio)")
    });
    let direct_microvm_pcie =
        http_case("direct-serve-microvm-pcie", Machine::MicrovmPcie, true, "", timeout, |port, _| {
            signal_checks(port, "interrupts", "direct boot on microvm with PCIe (ECAM from the DSDT's _CBA, MSI-X)")
        });
    let serve_intx_microvm_pcie =
        http_case("serve-intx-microvm-pcie", Machine::MicrovmPcie, false, "", timeout, |port, _| {
            signal_checks(port, "interrupts", "INTx (vectors=0) on microvm with PCIe")
        });
    let direct_small = http_case("direct-serve-8m", Machine::Q35, true, "", timeout, |port, _| {
        signal_checks(port, "interrupts", &format!("direct boot with -m {SMALL_MEMORY}"))
    });
    let serving =
        Nic { forwards: vec![Forward::http(serve_ports.http), Forward::echo(serve_ports.echo)], ..Nic::default() };
    vec![
        // Long ones first, so that their waits overlap the other boots.
        // The hostile suite (xtask/src/hostile/) on the TAP network,
        // checksum offload on and off.
        hostile_case("hostile-tap-offload", true, timeout),
        hostile_case("hostile-tap-no-offload", false, timeout),
        limited_case(timeout),
    ]
    .into_iter()
    // TSO and coalescing over TAP, and not over the user network (offloads.rs).
    .chain(crate::offloads::cases(timeout))
    .chain([
        Case {
            name: "serve-http-and-echo",
            boot: Boot { cmdline: "http.idle_ms=60000".into(), nic: Some(serving), ..Boot::default() },
            expect: Expect::Serves,
            timeout: SERVE_TIMEOUT.max(timeout),
            client: Some(Box::new(move |guest| serve_checks(serve_ports, guest))),
        },
        // REDbot judges every resource Skiff serves (xtask/src/judges.rs).
        http_case("serve-redbot", Machine::Q35, true, "", timeout, |port, _| {
            clients::wait_until_serving(port, Duration::from_secs(60))?;
            crate::judges::redbot(port, &["/", "/stats", "/stats.html"])
        }),
        http_case("serve-intx-q35", Machine::Q35, false, "", timeout, |port, _| {
            signal_checks(port, "interrupts", "INTx (vectors=0) on q35")
        }),
        http_case("serve-intx-pc", Machine::Pc, false, "", timeout, |port, _| {
            signal_checks(port, "interrupts", "INTx (vectors=0) on pc")
        }),
        // The GPEX bridge's pins A-D are GSIs 16-19 (QEMU's microvm with a
        // second I/O APIC, its default with ACPI on).
        Case { boot: Boot { firmware: Firmware::Direct, ..serve_intx_microvm_pcie.boot }, ..serve_intx_microvm_pcie },
        http_case("serve-timer-poll", Machine::Q35, true, "net.irq=off", timeout, |port, _| {
            signal_checks(port, "timer-poll", "no interrupts (net.irq=off)")
        }),
        http_case(
            "serve-idle-timeout",
            Machine::Q35,
            true,
            &format!("http.idle_ms={}", IDLE_TIMEOUT.as_millis()),
            timeout,
            |port, guest| idle_checks(port, guest.pid),
        ),
        Case {
            name: "harness-notices-hang",
            boot: inject("hang"),
            expect: Expect::Rejected { outcome: Outcome::TimedOut, lines: &["ktest: running"] },
            timeout: HANG_TIMEOUT.min(timeout),
            client: None,
        },
        nic_case("bios-q35", Firmware::Bios, Machine::Q35, user.clone(), NEGOTIATED_MODERN, &[]),
        nic_case("bios-pc", Firmware::Bios, Machine::Pc, user.clone(), NEGOTIATED_MODERN, &[]),
        nic_case("uefi-q35", Firmware::Uefi, Machine::Q35, user.clone(), NEGOTIATED_MODERN, &[]),
        // Straight from the ELF: QEMU's -kernel and the PVH entry, no disk image.
        nic_case("direct-q35", Firmware::Direct, Machine::Q35, user.clone(), NEGOTIATED_MODERN, &[]),
        nic_case("direct-pc", Firmware::Direct, Machine::Pc, user.clone(), NEGOTIATED_MODERN, &[]),
        Case { boot: Boot { firmware: Firmware::Direct, ..direct_serve.boot }, ..direct_serve },
        // QEMU's microvm: no PCI, the card on virtio-mmio (legacy, QEMU's
        // default there), found from the command line, its IRQ through the
        // I/O APIC without ACPI; the kernel's tests, then serving.
        Case {
            name: "direct-microvm",
            boot: Boot {
                firmware: Firmware::Direct,
                machine: Machine::Microvm,
                cmdline: "mode=test ktest.net=user".into(),
                ..Boot::default()
            },
            expect: Expect::PassPrinting(
                [
                    "booting (Pvh entry)",
                    "(virtio-mmio transport, IRQ",
                    &format!("virtio-net: negotiated: {NEGOTIATED_LEGACY}$"),
                    &format!("virtio-net: MAC {} (from the device)", guest_mac_text()),
                    "INTx through the I/O APIC at 0xfec00000",
                ]
                .map(String::from)
                .to_vec(),
            ),
            timeout,
            client: None,
        },
        Case {
            boot: Boot { firmware: Firmware::Direct, machine: Machine::Microvm, ..direct_microvm.boot },
            ..direct_microvm
        },
        // microvm with PCI Express: no MCFG, the ECAM base from the DSDT's
        // _CBA, the card's BARs assigned by Skiff (the firmware leaves them
        // empty), MSI-X; the kernel's tests, then serving.
        nic_case(
            "direct-microvm-pcie",
            Firmware::Direct,
            Machine::MicrovmPcie,
            user.clone(),
            NEGOTIATED_MODERN,
            &["ECAM at 0xe0000000 (DSDT _CBA)", "virtio-net: MSI-X: config on vector"],
        ),
        Case {
            boot: Boot { firmware: Firmware::Direct, machine: Machine::MicrovmPcie, ..direct_microvm_pcie.boot },
            ..direct_microvm_pcie
        },
        // The smallest memory the issue asks for: the heap takes its region
        // (kernel/src/memory.rs) and the echo buffers fit the heap.
        Case {
            boot: Boot { firmware: Firmware::Direct, memory: SMALL_MEMORY.into(), ..direct_small.boot },
            ..direct_small
        },
        // The in-kernel tests with INTx instead of MSI-X (the MSI-X test skips itself).
        nic_case(
            "bios-q35-intx",
            Firmware::Bios,
            Machine::Q35,
            Nic { msix: false, ..Nic::default() },
            NEGOTIATED_MODERN,
            &["no MSI-X; INTx through the I/O APIC"],
        ),
        nic_case("bios-q35-legacy", Firmware::Bios, Machine::Q35, legacy.clone(), NEGOTIATED_LEGACY, &[]),
        nic_case("bios-pc-legacy", Firmware::Bios, Machine::Pc, legacy.clone(), NEGOTIATED_LEGACY, &[]),
        // Checksum offload both ways: our datagram leaves with a partial
        // checksum, the host's echo arrives with one that the driver completes.
        nic_case(
            "bios-q35-tap-offload",
            Firmware::Bios,
            Machine::Q35,
            tap.clone(),
            NEGOTIATED_MODERN_OFFLOAD,
            &[OFFLOADED_BOTH_WAYS],
        ),
        nic_case(
            "bios-q35-tap-no-offload",
            Firmware::Bios,
            Machine::Q35,
            Nic { offload: false, ..tap.clone() },
            NEGOTIATED_MODERN,
            &[NOT_OFFLOADED],
        ),
        nic_case(
            "bios-pc-legacy-tap-offload",
            Firmware::Bios,
            Machine::Pc,
            Nic { legacy: true, ..tap.clone() },
            NEGOTIATED_LEGACY_OFFLOAD,
            &[OFFLOADED_BOTH_WAYS],
        ),
        Case {
            name: "harness-notices-failed-test",
            boot: inject("fail"),
            expect: Expect::Rejected {
                outcome: Outcome::TestsFailed,
                lines: &["ktest: injected_failure ... FAILED", " passed, 1 failed"],
            },
            timeout,
            client: None,
        },
        Case {
            name: "harness-notices-panic",
            boot: inject("panic"),
            expect: Expect::Rejected {
                outcome: Outcome::Panicked,
                lines: &["KERNEL PANIC", "injected panic", "ktest: injected_panic ... PANICKED"],
            },
            timeout,
            client: None,
        },
        Case {
            name: "harness-notices-page-fault",
            boot: inject("fault"),
            expect: Expect::Rejected {
                outcome: Outcome::CpuException,
                lines: &["EXCEPTION: page fault (vector 14)", "faulting address 0x00007e57dead0000"],
            },
            timeout,
            client: None,
        },
        // Bad boot input stops a direct boot with a message, not a hang:
        // a command line longer than the kernel accepts.
        Case {
            name: "direct-rejects-long-cmdline",
            boot: Boot {
                firmware: Firmware::Direct,
                cmdline: format!("mode=test {}", "x".repeat(600)),
                ..Boot::default()
            },
            expect: Expect::Rejected {
                outcome: Outcome::BadBootInput,
                lines: &["PVH boot stopped: command line longer than 512 bytes"],
            },
            timeout,
            client: None,
        },
        // A virtio-mmio announcement (QEMU's microvm appends them) that does
        // not parse: bad boot input too, said and stopped on, not ignored.
        Case {
            name: "direct-rejects-bad-virtio-mmio",
            boot: Boot {
                firmware: Firmware::Direct,
                cmdline: "mode=test virtio_mmio.device=512@0xfeb00e00".into(),
                ..Boot::default()
            },
            expect: Expect::Rejected {
                outcome: Outcome::BadBootInput,
                lines: &["boot stopped: virtio_mmio.device=512@0xfeb00e00: expected SIZE@BASE:IRQ[:ID]"],
            },
            timeout,
            client: None,
        },
        // The served kernel carries no in-kernel tests (feature `ktest`):
        // asked for them, it says so and fails, rather than serving.
        Case {
            name: "direct-served-refuses-tests",
            boot: Boot {
                firmware: Firmware::Direct,
                cmdline: "mode=test".into(),
                nic: None,
                kernel: Kernel::Served,
                ..Boot::default()
            },
            expect: Expect::Rejected { outcome: Outcome::NoTests, lines: &["this kernel was built without its tests"] },
            timeout,
            client: None,
        },
    ])
    .collect()
}

/// Whether some line matches `want`: contains it, or with a trailing `$`,
/// ends with it.
fn printed(lines: &[String], want: &str) -> bool {
    match want.strip_suffix('$') {
        Some(end) => lines.iter().any(|l| l.ends_with(end)),
        None => lines.iter().any(|l| l.contains(want)),
    }
}

/// The kernel's closing line, "ktest: N passed, M failed", as (N, M).
pub fn ktest_summary(lines: &[String]) -> Option<(u32, u32)> {
    lines.iter().rev().find_map(|line| {
        let rest = line.strip_prefix("ktest: ")?.strip_suffix(" failed")?;
        let (passed, failed) = rest.split_once(" passed, ")?;
        Some((passed.parse().ok()?, failed.parse().ok()?))
    })
}

/// Judges a boot. `Err` says why it does not meet `expect`.
pub fn check(report: &Report, expect: &Expect) -> Result<String> {
    match expect {
        Expect::AllTestsPass => {
            if report.outcome != Outcome::Success {
                return Err(format!("expected a clean exit, got: {}", report.outcome));
            }
            match ktest_summary(&report.lines) {
                Some((passed, 0)) if passed > 0 => Ok(format!("{passed} kernel tests passed")),
                Some((passed, failed)) => Err(format!("kernel reported {passed} passed, {failed} failed")),
                None => Err("the kernel printed no test summary".into()),
            }
        }
        Expect::PassPrinting(lines) => {
            let passed = check(report, &Expect::AllTestsPass)?;
            match lines.iter().find(|want| !printed(&report.lines, want)) {
                Some(missing) => Err(format!("expected the output to contain {missing:?}")),
                None => Ok(passed),
            }
        }
        Expect::Serves => {
            if let Some(line) = report.lines.iter().find(|l| l.contains("KERNEL PANIC") || l.contains("EXCEPTION:")) {
                return Err(format!("the kernel crashed while serving: {line}"));
            }
            if report.outcome != Outcome::Stopped {
                return Err(format!("expected the guest to be serving until stopped, got: {}", report.outcome));
            }
            match &report.client {
                Some(Ok(what)) => Ok(what.clone()),
                Some(Err(why)) => Err(format!("client: {why}")),
                None => Err("the client never ran".into()),
            }
        }
        Expect::ServesPrinting(judge) => {
            let served = check(report, &Expect::Serves)?;
            Ok(format!("{served}; {}", judge(&report.lines)?))
        }
        Expect::Rejected { outcome, lines } => {
            if let Ok(why) = check(report, &Expect::AllTestsPass) {
                return Err(format!("the harness accepted a broken boot ({why})"));
            }
            if report.outcome != *outcome {
                return Err(format!("expected {outcome}, got {}", report.outcome));
            }
            if let Some(missing) = lines.iter().find(|want| !printed(&report.lines, want)) {
                return Err(format!("expected the output to contain {missing:?}"));
            }
            Ok(format!("rejected: {}", report.outcome))
        }
    }
}

pub fn run(filter: Option<&str>, timeout_secs: u64) -> Result<()> {
    let suite_started = Instant::now();
    lint()?;
    host_tests()?;
    // README.md and docs/ against the code (xtask/src/doccheck/).
    crate::doccheck::run(None)?;
    // The fuzz targets, briefly (xtask/src/fuzz.rs); also with --filter fuzz.
    if filter.is_none_or(|f| "fuzz".contains(f)) {
        let fuzzed = crate::fuzz::run(Duration::from_secs(crate::fuzz::SUITE_SECONDS))?;
        eprintln!("    {}", fuzzed.summary());
    }
    // h11, a second HTTP/1.1 parser, on the request corpus (xtask/src/judges.rs).
    if filter.is_none_or(|f| "h11-differential".contains(f) || "fuzz".contains(f)) {
        let step = ui::Step::start("h11 differential: Skiff's request framing on the committed fuzz seeds");
        let summary = crate::judges::h11_differential(&[crate::judges::seed_corpus()])?;
        step.done();
        eprintln!("    {summary}");
    }
    let mut artifacts = build::build()?;
    let timeout = Duration::from_secs(timeout_secs);
    let cases: Vec<Case> = cases(timeout)
        .into_iter()
        .chain(crate::learn::cases::cases(timeout))
        .chain(crate::learn::exercises::cases(timeout))
        .chain(crate::impair::case::cases(timeout))
        // The damaged-link cases run only when asked for (see impair/case.rs).
        .filter(|c| filter.map_or(!crate::impair::case::OPT_IN.contains(&c.name), |f| c.name.contains(f)))
        .collect();
    // The bench's smoke test boots the BIOS image once too.
    let bench = filter.is_none_or(|f| "bench-quick".contains(f));
    if bench || needs_images(&cases) {
        build::images(&mut artifacts)?;
    }
    artifacts.print();
    let workers = std::thread::available_parallelism().map_or(1, usize::from).min(cases.len()).max(1);
    let step = ui::Step::start(format!("booting {} QEMU test runs, {workers} at a time (TCG)", cases.len()));
    let failures = run_cases(&artifacts, &cases, workers);
    step.done();
    // After the boots, alone on the CPU: `cargo xtask bench --quick` as a smoke test.
    let failures = failures + usize::from(bench && !crate::bench::smoke());

    let passed = cases.len() + usize::from(bench) - failures;
    eprintln!("\nall tests took {:.1} s", suite_started.elapsed().as_secs_f64());
    println!("qemu: {passed} passed, {failures} failed");
    if failures == 0 { Ok(()) } else { Err(format!("{failures} QEMU test run(s) failed (details above)")) }
}

/// Whether some case boots a disk image (only those need the bootloader's stages built).
fn needs_images(cases: &[Case]) -> bool {
    cases.iter().any(|c| c.boot.firmware != Firmware::Direct)
}

/// Formatting and clippy, warnings as errors, for the host crates and the kernel.
fn lint() -> Result<()> {
    let step = ui::Step::start("lint (cargo fmt --check, cargo clippy -D warnings, cargo doc -D warnings)");
    let run = |args: &[&str]| -> Result<()> {
        let status = build::cargo(&root()).args(args).status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("cargo {} failed (see above)", args.join(" "))) }
    };
    run(&["fmt", "--all", "--check"])?;
    run(&[
        "clippy",
        "--quiet",
        "--package",
        "skiff-drivers",
        "--package",
        "skiff-net",
        "--package",
        "xtask",
        "--package",
        "skiff-linux-guest",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // The kernel as served, and its test build (feature `ktest`): the other half.
    for features in [&[][..], &["--features", "ktest"]] {
        let target = ["clippy", "--quiet", "--package", "skiff-kernel", "--target", build::KERNEL_TARGET, "--release"];
        run(&[&target[..], features, &["--", "-D", "warnings"]].concat())?;
    }
    // Rustdoc, warnings as errors: docs build and every intra-doc link resolves
    // (missing_docs is denied in drivers and net themselves).
    for extra in [
        &["--package", "skiff-drivers", "--package", "skiff-net", "--package", "xtask"][..],
        &["--package", "skiff-kernel", "--target", build::KERNEL_TARGET],
        &["--package", "skiff-kernel", "--target", build::KERNEL_TARGET, "--features", "ktest"],
    ] {
        let status = build::cargo(&root())
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--quiet", "--no-deps"])
            .args(extra)
            .status()
            .map_err(|e| format!("cannot run cargo doc: {e}"))?;
        if !status.success() {
            return Err(format!("RUSTDOCFLAGS=-D warnings cargo doc --no-deps {} failed (see above)", extra.join(" ")));
        }
    }
    step.done();
    Ok(())
}

/// Runs the unit tests of everything that builds for the host.
fn host_tests() -> Result<()> {
    let step = ui::Step::start(
        "host unit tests (cargo test -p skiff-drivers -p skiff-net -p xtask -p skiff-linux-guest; smoltcp's patches)",
    );
    let status = build::cargo(&root())
        .args(["test", "--package", "skiff-drivers", "--package", "skiff-net", "--package", "xtask"])
        .args(["--package", "skiff-linux-guest"])
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    if !status.success() {
        return Err("host unit tests failed (see above)".into());
    }
    // The vendored smoltcp's patches and their tests (third_party/smoltcp/SKIFF.md).
    let smoltcp = root().join("third_party/smoltcp");
    let status = build::cargo(&smoltcp)
        .args(["test", "--quiet", "--lib", "skiff"])
        .status()
        .map_err(|e| format!("cannot run cargo test in {}: {e}", smoltcp.display()))?;
    if !status.success() {
        return Err("the vendored smoltcp's patch tests failed (see above)".into());
    }
    step.done();
    Ok(())
}

/// Boots every case, `workers` at a time; returns how many failed.
fn run_cases(artifacts: &Artifacts, cases: &[Case], workers: usize) -> usize {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let print = Mutex::new(());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let client = case.client.as_deref();
                    let result =
                        qemu::run_captured(artifacts, &case.boot, &qemu::workdir(case.name), case.timeout, client);
                    let _guard = print.lock();
                    match result {
                        Ok(report) => match check(&report, &case.expect) {
                            Ok(what) => {
                                eprintln!("    PASS {:30} {what} ({:.1} s)", case.name, report.elapsed.as_secs_f64())
                            }
                            Err(why) => {
                                failures.fetch_add(1, Ordering::SeqCst);
                                print_failure(case.name, &why, &report);
                            }
                        },
                        Err(e) => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            eprintln!("    FAIL {}: {e}", case.name);
                        }
                    }
                }
            });
        }
    });
    failures.into_inner()
}

fn print_failure(name: &str, why: &str, report: &Report) {
    eprintln!("    FAIL {name}: {why} ({:.1} s)", report.elapsed.as_secs_f64());
    let skip = report.lines.len().saturating_sub(TAIL_LINES);
    eprintln!("    --- last {} lines of output ---", report.lines.len() - skip);
    for line in &report.lines[skip..] {
        eprintln!("    | {line}");
    }
    eprintln!("    --- re-run by hand with:\n    {}", report.command_line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome, lines: &[&str]) -> Report {
        Report {
            outcome,
            lines: lines.iter().map(|l| l.to_string()).collect(),
            command_line: String::new(),
            elapsed: Duration::ZERO,
            client: None,
        }
    }

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| super::free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
        assert!(!ports.contains(&0));
    }

    #[test]
    fn summary_is_parsed_from_the_last_summary_line() {
        let lines: Vec<String> =
            ["ktest: running 3 tests", "ktest: a ... ok (0 ms)", "ktest: 3 passed, 0 failed"].map(String::from).into();
        assert_eq!(ktest_summary(&lines), Some((3, 0)));
        assert_eq!(ktest_summary(&["ktest: 2 passed, 1 failed".to_string()]), Some((2, 1)));
        assert_eq!(ktest_summary(&["ktest: x passed, 1 failed".to_string()]), None);
        assert_eq!(ktest_summary(&[]), None);
    }

    #[test]
    fn a_clean_exit_with_all_tests_passed_passes() {
        let r = report(Outcome::Success, &["ktest: 10 passed, 0 failed"]);
        assert!(check(&r, &Expect::AllTestsPass).is_ok());
    }

    #[test]
    fn a_clean_exit_without_a_summary_fails() {
        // A kernel that exits "successfully" without running its tests must not pass.
        let r = report(Outcome::Success, &["Skiff is up."]);
        assert!(check(&r, &Expect::AllTestsPass).is_err());
        let r = report(Outcome::Success, &["ktest: 0 passed, 0 failed"]);
        assert!(check(&r, &Expect::AllTestsPass).is_err());
    }

    #[test]
    fn a_failure_summary_fails_even_with_a_clean_exit() {
        let r = report(Outcome::Success, &["ktest: 9 passed, 1 failed"]);
        assert!(check(&r, &Expect::AllTestsPass).is_err());
    }

    #[test]
    fn every_bad_outcome_fails() {
        for outcome in [
            Outcome::TestsFailed,
            Outcome::Panicked,
            Outcome::CpuException,
            Outcome::TimedOut,
            Outcome::Other(Some(1)),
            Outcome::Other(None),
        ] {
            let r = report(outcome, &["ktest: 10 passed, 0 failed"]);
            assert!(check(&r, &Expect::AllTestsPass).is_err(), "{outcome:?} accepted");
        }
    }

    #[test]
    fn rejected_expectation_needs_the_right_outcome_and_lines() {
        let expect = Expect::Rejected { outcome: Outcome::Panicked, lines: &["KERNEL PANIC"] };
        assert!(check(&report(Outcome::Panicked, &["KERNEL PANIC at 3 ms"]), &expect).is_ok());
        assert!(check(&report(Outcome::Panicked, &["something else"]), &expect).is_err());
        assert!(check(&report(Outcome::TimedOut, &["KERNEL PANIC"]), &expect).is_err());
        // A boot that passes can never satisfy a Rejected expectation.
        let expect = Expect::Rejected { outcome: Outcome::Success, lines: &[] };
        assert!(check(&report(Outcome::Success, &["ktest: 1 passed, 0 failed"]), &expect).is_err());
    }

    #[test]
    fn print_expectations_match_whole_line_ends() {
        let lines = vec!["virtio-net: negotiated: MAC STATUS VERSION_1".to_string()];
        assert!(printed(&lines, "negotiated: MAC STATUS VERSION_1$"));
        assert!(!printed(&lines, "negotiated: MAC STATUS$"));
        assert!(printed(&lines, "negotiated: MAC"));
        let r = report(Outcome::Success, &["ktest: 3 passed, 0 failed", "virtio-net: negotiated: CSUM MAC"]);
        assert!(check(&r, &Expect::PassPrinting(vec!["negotiated: CSUM MAC$".into()])).is_ok());
        assert!(check(&r, &Expect::PassPrinting(vec!["negotiated: MAC$".into()])).is_err());
        let failed = report(Outcome::TestsFailed, &["virtio-net: negotiated: CSUM MAC"]);
        assert!(check(&failed, &Expect::PassPrinting(vec!["negotiated: CSUM MAC$".into()])).is_err());
    }

    #[test]
    fn direct_boots_alone_need_no_disk_images() {
        let cases = cases(Duration::from_secs(BOOT_TIMEOUT_SECS));
        let direct: Vec<Case> = cases.into_iter().filter(|c| c.name.starts_with("direct-")).collect();
        assert!(direct.len() >= 3, "{} direct cases", direct.len());
        assert!(!needs_images(&direct));
        let all = super::cases(Duration::from_secs(BOOT_TIMEOUT_SECS));
        assert!(needs_images(&all));
    }

    #[test]
    fn the_matrix_covers_boot_paths_transports_offloads_and_four_failure_kinds() {
        let cases = cases(Duration::from_secs(BOOT_TIMEOUT_SECS));
        let passing: Vec<_> = cases.iter().filter(|c| matches!(c.expect, Expect::PassPrinting(_))).collect();
        let has = |firmware, machine, legacy, backend, offload| {
            passing.iter().any(|c| {
                let nic = c.boot.nic.as_ref().unwrap();
                (c.boot.firmware, c.boot.machine, nic.legacy, nic.backend, nic.offload)
                    == (firmware, machine, legacy, backend, offload)
            })
        };
        assert!(has(Firmware::Bios, Machine::Q35, false, Backend::User, true));
        assert!(has(Firmware::Bios, Machine::Pc, false, Backend::User, true));
        assert!(has(Firmware::Uefi, Machine::Q35, false, Backend::User, true));
        assert!(has(Firmware::Direct, Machine::Q35, false, Backend::User, true));
        assert!(has(Firmware::Direct, Machine::Pc, false, Backend::User, true));
        assert!(has(Firmware::Direct, Machine::MicrovmPcie, false, Backend::User, true));
        assert!(cases.iter().any(|c| c.boot.firmware == Firmware::Direct && matches!(c.expect, Expect::Serves)));
        assert!(has(Firmware::Bios, Machine::Q35, true, Backend::User, true));
        assert!(has(Firmware::Bios, Machine::Pc, true, Backend::User, true));
        assert!(has(Firmware::Bios, Machine::Q35, false, Backend::Tap, true));
        assert!(has(Firmware::Bios, Machine::Q35, false, Backend::Tap, false));
        let outcomes: Vec<_> = cases
            .iter()
            .filter_map(|c| match c.expect {
                Expect::Rejected { outcome, .. } => Some(outcome),
                _ => None,
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                Outcome::TimedOut,
                Outcome::TestsFailed,
                Outcome::Panicked,
                Outcome::CpuException,
                Outcome::BadBootInput,
                Outcome::BadBootInput,
                Outcome::NoTests
            ]
        );
    }
}
