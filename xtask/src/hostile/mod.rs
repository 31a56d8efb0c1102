//! The hostile suite: malformed frames, TCP abuse, floods, load and a soak,
//! sent to a serving guest on the TAP test network, from inside its
//! namespace only (`cargo xtask hostile-client`, run by `ip netns exec`).
//!
//! After every class: QEMU still runs, the guest answers an ICMP echo, HTTP
//! and TCP echo answer correctly, and the drop counters in `/stats` rose by
//! exactly what was sent where that is deterministic. Frames come from a
//! made-up neighbour (`FAKE_IP`, `FAKE_MAC`) that the guest learns by ARP, so
//! the namespace's own TCP stack never sees the guest's answers to them.
//!
//! Every loop is bounded in count and time. `Sizes` holds the counts:
//! `QUICK` for `cargo xtask qemu`, `STRESS` for `cargo xtask stress`.
//!
//! By class: `malformed.rs` (frames broken one field at a time), `tcp.rs`
//! (TCP abuse on connections driven by hand), `floods.rs`, `load.rs` (many
//! connections, slow clients, clients that never read) and `soak.rs`; the
//! checks after every class are in `checks.rs`, the raw frames and the
//! hand-driven TCP connection in `raw.rs`.

mod checks;
mod crowd;
mod floods;
mod load;
mod malformed;
mod raw;
mod soak;
mod tcp;

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::Result;
use crate::frames::{Mac, parse_mac};
use crate::rawlink::RawLink;
use crate::testnet::{ECHO_PORT as ECHO, GUEST_IP, GUEST_MAC, HTTP_PORT as HTTP, LISTENING_SOCKETS};
use checks::Ctx;

/// The made-up neighbour raw frames come from.
const FAKE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 99);
const FAKE_MAC: Mac = [0x02, 0, 0, 0, 0, 0x99];
/// How long the guest may take to answer again after a class.
const RECOVERY: Duration = Duration::from_secs(60);
/// How long a single exchange may take under TCG.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// The guest's HTTP idle timeout on the hostile boot (`http.idle_ms`).
pub const HTTP_IDLE: Duration = Duration::from_secs(3);
/// Heap the guest may hold above its baseline once everything is closed:
/// the neighbour cache and smoltcp's assemblers settle at their own sizes.
const HEAP_SLACK: u64 = 64 * 1024;

/// How much of everything to send.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub name: &'static str,
    /// Rounds of each malformed class (each round sends every variant).
    pub malformed_rounds: usize,
    pub storm: usize,
    pub syn_flood: usize,
    pub arp_flood: usize,
    pub icmp_flood: usize,
    pub udp_flood: usize,
    /// Keep-alive clients at once (`crowd.rs`), and requests each makes.
    pub connections: usize,
    pub crowd_requests: usize,
    pub slow_clients: usize,
    pub never_read: usize,
    pub soak_requests: usize,
    pub soak_echo_bytes: usize,
}

pub const QUICK: Sizes = Sizes {
    name: "quick",
    malformed_rounds: 2,
    storm: 500,
    syn_flood: 2_000,
    arp_flood: 1_000,
    icmp_flood: 1_000,
    udp_flood: 5_000,
    connections: 1_000,
    crowd_requests: 3,
    slow_clients: 8,
    never_read: 16,
    soak_requests: 20_000,
    soak_echo_bytes: 128 << 20,
};

pub const STRESS: Sizes = Sizes {
    name: "stress",
    malformed_rounds: 20,
    storm: 5_000,
    syn_flood: 20_000,
    arp_flood: 10_000,
    icmp_flood: 10_000,
    udp_flood: 100_000,
    connections: 1_000,
    crowd_requests: 20,
    slow_clients: 30,
    never_read: 30,
    soak_requests: 100_000,
    soak_echo_bytes: 1 << 30,
};

pub fn sizes(name: &str) -> Result<Sizes> {
    match name {
        "quick" => Ok(QUICK),
        "stress" => Ok(STRESS),
        _ => Err(format!("unknown size {name:?} (quick or stress)")),
    }
}

/// A small PRNG (xorshift64*), seeded from the OS per run: ports, sequence
/// numbers and payloads differ every run.
pub struct Rng(u64);

impl Rng {
    pub fn from_os() -> Rng {
        let mut seed = [0u8; 8];
        let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed)).is_ok();
        let seed = u64::from_ne_bytes(seed);
        let time =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        Rng(if ok && seed != 0 { seed } else { time | 1 })
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn port(&mut self) -> u16 {
        20_000 + (self.next() % 40_000) as u16
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_ne_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Runs the whole hostile suite against the guest; prints one line per step
/// to stdout. Runs inside the test network's namespace.
pub fn run_in_namespace(sizes: Sizes, qemu_pid: u32, ifname: &str) -> Result<()> {
    // Connections the client closes leave it ports in TIME-WAIT: tens of
    // thousands in the soak. These settings belong to this namespace only.
    for (knob, value) in [("ip_local_port_range", "1024 65000"), ("tcp_tw_reuse", "1")] {
        std::fs::write(format!("/proc/sys/net/ipv4/{knob}"), value).map_err(|e| format!("setting {knob}: {e}"))?;
    }
    let link = RawLink::open(ifname)?;
    let host_mac = read_mac(ifname)?;
    let mut ctx = Ctx { link, host_mac, pid: qemu_pid, rng: Rng::from_os(), sizes };
    let started = Instant::now();
    ctx.wait_serving()?;
    // Warm up (ARP both ways, first connections), then take the baseline.
    ctx.health()?;
    let baseline = ctx.settled_heap()?;
    say(format!("baseline: heap in use {} bytes, {} sockets listening", baseline, LISTENING_SOCKETS));
    // SKIFF_HOSTILE_ONLY=load (say) runs one part, to debug it.
    let only = std::env::var("SKIFF_HOSTILE_ONLY").ok();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if part("malformed") {
        malformed::run(&mut ctx)?;
    }
    if part("tcp") {
        tcp::run(&mut ctx)?;
    }
    if part("floods") {
        floods::run(&mut ctx)?;
    }
    if part("load") {
        load::run(&mut ctx, baseline)?;
    }
    if part("crowd") {
        crowd::crowd(&mut ctx, baseline, sizes.connections, sizes.crowd_requests)?;
    }
    if part("flood-client") {
        crowd::flood_with_client(&mut ctx, ifname, baseline)?;
    }
    if part("soak") {
        soak::run(&mut ctx, baseline)?;
    }
    say(format!("hostile {}: all passed in {:.1} s", sizes.name, started.elapsed().as_secs_f64()));
    Ok(())
}

fn say(line: String) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

fn read_mac(ifname: &str) -> Result<Mac> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))
        .map_err(|e| format!("MAC of {ifname}: {e}"))?;
    parse_mac(&text).ok_or_else(|| format!("MAC of {ifname}: {:?} is not one", text.trim()))
}

/// Runs the hostile suite inside `netns` against QEMU `pid` (from the host
/// side, in `cargo xtask qemu` and `stress`): the report lines, or why it
/// failed. `only` names one part (as `SKIFF_HOSTILE_ONLY` does).
pub fn client(netns: &str, pid: u32, sizes: Sizes, only: Option<&str>) -> Result<Vec<String>> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask's own binary: {e}"))?;
    let mut command = std::process::Command::new("ip");
    if let Some(only) = only {
        command.env("SKIFF_HOSTILE_ONLY", only);
    }
    let out = command
        .args(["netns", "exec", netns])
        .arg(exe)
        .args(["hostile-client", "--size", sizes.name, "--qemu-pid", &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start the hostile client: {e}"))?;
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    if out.status.success() {
        Ok(lines)
    } else {
        Err(format!("{}\n    after:\n      {}", String::from_utf8_lossy(&out.stderr).trim(), lines.join("\n      ")))
    }
}
