//! `cargo xtask stress`: the hostile suite at full size (`hostile::STRESS`:
//! 10,000+ SYNs, 1,000 connections at once, 100,000 HTTP requests and 1 GiB
//! of echo in the soak), booted `rounds` times, checksum offload on and off
//! in turn, after each cargo-fuzz target has run for five minutes.
//! `cargo xtask qemu` runs the same code at `hostile::QUICK` size. Last, the
//! damaged-link cases at issue 14's full loads (`impair/`): issue 14's link,
//! then 10 % loss.

use std::time::{Duration, Instant};

use crate::hostile::{self, Sizes};
use crate::qemu::{self, Backend, Boot, Guest, Nic, Outcome};
use crate::testnet::{self, GATEWAY_IP};
use crate::{Result, build, ui};

/// Boots of `cargo xtask stress` unless `--rounds` says otherwise.
pub const ROUNDS: usize = 4;
/// How long `stress` runs each cargo-fuzz target (the suite gives each 20 s).
pub const FUZZ_PER_TARGET: Duration = Duration::from_secs(300);
/// One stress boot's limit; the client bounds each of its own steps.
const STRESS_TIMEOUT: Duration = Duration::from_secs(3600);

/// The hostile boot: the TAP test network, a fixed address (no DHCP server
/// there), and a short HTTP idle timeout so that the slow-client check is quick.
pub fn hostile_boot(offload: bool) -> Boot {
    Boot {
        cmdline: format!(
            "net.dhcp=off net.ip={} net.gateway={GATEWAY_IP} http.idle_ms={}",
            testnet::guest_cidr(),
            hostile::HTTP_IDLE.as_millis()
        ),
        nic: Some(Nic { backend: Backend::Tap, offload, ..Nic::default() }),
        ..Boot::default()
    }
}

/// The connection limit of the limited boot: fewer than the crowd's
/// clients, which must all be served anyway (issue 16).
pub const POOL_LIMIT: usize = 100;

/// The hostile boot with `net.max_conns=POOL_LIMIT`, for the crowd alone.
pub fn limited_boot() -> Boot {
    let mut boot = hostile_boot(true);
    boot.cmdline.push_str(&format!(" net.max_conns={POOL_LIMIT}"));
    boot
}

/// The client of a hostile boot: runs the suite (or its part `only`) in the
/// boot's namespace, keeps the full report in the boot's directory, and sums it up.
pub fn hostile_check(name: &str, guest: &Guest, sizes: Sizes, only: Option<&str>) -> Result<String> {
    let netns = guest.netns.as_deref().ok_or("the hostile suite needs a TAP boot")?;
    let report = qemu::workdir(name).join("hostile-report.txt");
    let lines = hostile::client(netns, guest.pid, sizes, only);
    let text = match &lines {
        Ok(lines) => lines.join("\n"),
        Err(e) => e.clone(),
    };
    let _ = std::fs::write(&report, format!("{text}\n"));
    let lines = lines?;
    let summary = lines.last().cloned().unwrap_or_default();
    Ok(format!("{summary} ({} steps; report: {})", lines.len(), report.display()))
}

pub fn run(rounds: usize, fuzz_per_target: Duration) -> Result<()> {
    let started = Instant::now();
    let mut artifacts = build::build()?;
    if hostile_boot(true).firmware != qemu::Firmware::Direct {
        build::images(&mut artifacts)?;
    }
    // The cargo-fuzz targets first, for much longer than the suite's step.
    if fuzz_per_target.is_zero() {
        eprintln!("    fuzzing skipped (--fuzz-seconds 0)");
    } else {
        let fuzzed = crate::fuzz::run(fuzz_per_target)?;
        eprintln!("    {}", fuzzed.summary());
    }
    // The last round: the crowd alone, on a guest limited to POOL_LIMIT connections.
    for round in 0..=rounds {
        let offload = round % 2 == 0;
        let limited = round == rounds;
        let name = match limited {
            true => format!("stress-max-conns-{POOL_LIMIT}"),
            false => format!("stress-{round}-{}", if offload { "offload" } else { "no-offload" }),
        };
        let step = match limited {
            true => ui::Step::start(format!("{name}: the crowd at stress size, net.max_conns={POOL_LIMIT}")),
            false => ui::Step::start(format!("{name}: hostile suite at stress size, TAP, checksum offload {offload}")),
        };
        let boot = if limited { limited_boot() } else { hostile_boot(offload) };
        let workdir = qemu::workdir(&name);
        let client_name = name.clone();
        let client = move |guest: &Guest| {
            let out = hostile_check(&client_name, guest, hostile::STRESS, limited.then_some("crowd"));
            if let Ok(text) = std::fs::read_to_string(qemu::workdir(&client_name).join("hostile-report.txt")) {
                for line in text.lines() {
                    eprintln!("    {line}");
                }
            }
            out
        };
        let report = qemu::run_captured(&artifacts, &boot, &workdir, STRESS_TIMEOUT, Some(&client))?;
        if let Some(line) = report.lines.iter().find(|l| l.contains("KERNEL PANIC") || l.contains("EXCEPTION:")) {
            return Err(format!("{name}: the kernel crashed: {line}"));
        }
        match (&report.client, report.outcome) {
            (Some(Ok(_)), Outcome::Stopped) => step.done(),
            (Some(Err(e)), _) => {
                let tail = report.lines.iter().rev().take(20).rev().cloned().collect::<Vec<_>>().join("\n    | ");
                return Err(format!(
                    "{name}: {e}\n    last serial lines:\n    | {tail}\n    re-run by hand with:\n    {}",
                    report.command_line
                ));
            }
            (_, outcome) => return Err(format!("{name}: the guest did not keep serving: {outcome}")),
        }
    }
    lossy_long(&artifacts)?;
    eprintln!("stress: {rounds} rounds passed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Issue 14's damaged link at its full loads (`impair::client::LONG`: 300
/// `GET /`, 4 × 4 MiB of echo, a 1 MiB echo), with its 2 s stall bar; then
/// the same loads at 10 % loss, where the bar is that everything completes
/// intact.
fn lossy_long(artifacts: &build::Artifacts) -> Result<()> {
    use crate::impair::case::{HEAVY_LOSS, ISSUE_14};
    use crate::impair::{Impairment, Spec, case, client};
    let runs = [("stress-lossy", ISSUE_14, Some(client::MAX_STALL)), ("stress-lossy-10pct", HEAVY_LOSS, None)];
    for (name, spec, max_stall) in runs {
        let imp = Impairment::both(Spec::parse(spec)?, case::seed());
        let step = ui::Step::start(format!("{name}: a damaged link at full size ({imp})"));
        let check = move |guest: &Guest| case::check(name, guest, client::LONG, imp, max_stall);
        let report =
            qemu::run_captured(artifacts, &case::boot(imp), &qemu::workdir(name), STRESS_TIMEOUT, Some(&check))?;
        match (&report.client, report.outcome) {
            (Some(Ok(what)), Outcome::Stopped) => {
                step.done();
                eprintln!("    {what}");
            }
            (Some(Err(e)), _) => {
                return Err(format!("{name}: {e}\n    re-run by hand with:\n    {}", report.command_line));
            }
            (_, outcome) => return Err(format!("{name}: the guest did not keep serving: {outcome}")),
        }
    }
    Ok(())
}
