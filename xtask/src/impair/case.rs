//! The damaged-link boots of `cargo xtask qemu`: Skiff on the TAP test
//! network behind the relay, checksum offload off (so every flipped bit is
//! a checksum the guest itself must catch), and the client of `client.rs`.
//!
//! `SKIFF_IMPAIR_SEED=N` replays a run's damage (the seed is in every
//! report); `SKIFF_LOSSY_CMDLINE` adds to the kernel command line (say
//! `log=info,packet=trace` to see each segment on the serial log).

use std::time::Duration;

use super::client::{self, Sizes};
use super::{Impairment, Spec, relay};
use crate::qemu::{self, Backend, Boot, Guest, Nic};
use crate::suite::{Case, Expect};

/// Issue 14's link, both ways.
pub const ISSUE_14: &str = "loss=2%,dup=2%,reorder=5%,flip=1%";
/// Issue 14's other bar: everything completes intact at 10 % loss.
pub const HEAVY_LOSS: &str = "loss=10%";

/// Cases left out of the default suite (run them with `--filter lossy`).
/// `lossy-skiff` is in it: with the smoltcp patches (third_party/smoltcp)
/// Skiff meets issue 14's bar. The 10 % case passes too, but costs the
/// suite another boot of some 30 s.
pub const OPT_IN: &[&str] = &["lossy-skiff-10pct"];

/// The HTTP idle timeout on these boots: longer than the client's own I/O
/// timeout, so that a stalled exchange is reported by the client, not cut
/// short by Skiff's reset. 10 s was not enough at 10 % loss: a Linux client
/// whose SYN-ACK was lost once measures a 1 s round trip and backs off from
/// a 3 s RTO, so a request lost twice reaches the guest 1 + 3 + 6 s after
/// the SYN, and Skiff had reset the idle connection at 10 s.
pub const HTTP_IDLE_MS: u64 = 40_000;
/// A boot's limit: boot, the client's loads (each bounded), and slack.
const LOSSY_TIMEOUT: Duration = Duration::from_secs(600);

/// The seed: `SKIFF_IMPAIR_SEED`, or a new one from the clock.
pub fn seed() -> u64 {
    std::env::var("SKIFF_IMPAIR_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// Skiff on the damaged link `imp`, fixed address, no offload.
pub fn boot(imp: Impairment) -> Boot {
    let extra = std::env::var("SKIFF_LOSSY_CMDLINE").unwrap_or_default();
    Boot {
        cmdline: format!(
            "net.dhcp=off net.ip={}/24 net.gateway=10.0.2.2 http.idle_ms={HTTP_IDLE_MS} {extra}",
            crate::testnet::GUEST_IP
        )
        .trim()
        .to_string(),
        nic: Some(Nic { backend: Backend::Impaired(imp), offload: false, ..Nic::default() }),
        ..Boot::default()
    }
}

/// Runs the client in the boot's namespace; keeps its report, with the
/// relay's counts, in the boot's directory, and sums it up with the seed.
pub fn check(
    name: &str,
    guest: &Guest,
    sizes: Sizes,
    imp: Impairment,
    max_stall: Option<Duration>,
) -> Result<String, String> {
    let netns = guest.netns.as_deref().ok_or("the damaged link needs a TAP boot")?;
    let dir = qemu::workdir(name);
    let result = client::client(netns, sizes, max_stall);
    let relay = std::fs::read_to_string(relay::report_path(&dir)).unwrap_or_default();
    let text = match &result {
        Ok(lines) => lines.join("\n"),
        Err(e) => e.clone(),
    };
    let report = dir.join("lossy-report.txt");
    let _ = std::fs::write(&report, format!("{text}\n{relay}"));
    let seed = format!("seed {} (SKIFF_IMPAIR_SEED={} replays it)", imp.seed, imp.seed);
    let relay_line = relay
        .lines()
        .filter(|l| l.starts_with("to guest") || l.starts_with("from guest") || l.starts_with("frames lost"))
        .collect::<Vec<_>>();
    match result {
        Ok(lines) => Ok(format!(
            "{}; {}; {seed}; report and capture in {}",
            lines.last().cloned().unwrap_or_default(),
            relay_line.join("; "),
            dir.display()
        )),
        Err(e) => {
            Err(format!("{e}\n    {}\n    {seed}; report and capture in {}", relay_line.join("\n    "), dir.display()))
        }
    }
}

fn case(name: &'static str, spec: &str, sizes: Sizes, max_stall: Option<Duration>, timeout: Duration) -> Case {
    let imp = Impairment::both(Spec::parse(spec).unwrap_or(Spec::CLEAN), seed());
    Case {
        name,
        boot: boot(imp),
        expect: Expect::Serves,
        timeout: LOSSY_TIMEOUT.max(timeout),
        client: Some(Box::new(move |guest| check(name, guest, sizes, imp, max_stall))),
    }
}

/// The damaged-link cases at the quick size.
pub fn cases(timeout: Duration) -> Vec<Case> {
    vec![
        case("lossy-skiff", ISSUE_14, client::QUICK, Some(client::MAX_STALL), timeout),
        // At 10 % loss the bar is that everything completes intact.
        case("lossy-skiff-10pct", HEAVY_LOSS, client::QUICK, None, timeout),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specs_parse_and_the_boot_has_no_offload_and_a_dgram_netdev() {
        assert_eq!(Spec::parse(ISSUE_14).unwrap().reorder, 50_000);
        assert_eq!(Spec::parse(HEAVY_LOSS).unwrap().loss, 100_000);
        let cases = cases(Duration::from_secs(1));
        assert_eq!(cases.iter().filter(|c| OPT_IN.contains(&c.name)).count(), 1);
        let nic = cases[0].boot.nic.clone().unwrap();
        assert!(!nic.offload);
        assert!(matches!(nic.backend, Backend::Impaired(_)));
        assert!(relay::netdev("net0").starts_with("dgram,id=net0,local.type=inet,local.host=127.0.0.1,"));
    }
}
