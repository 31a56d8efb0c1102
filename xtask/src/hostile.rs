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

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::clients::read_response;
use crate::frames::{self, ACK, FIN, Ipv4, Mac, PSH, RST, SYN, Tcp};
use crate::rawlink::RawLink;

pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The made-up neighbour raw frames come from.
const FAKE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 99);
const FAKE_MAC: Mac = [0x02, 0, 0, 0, 0, 0x99];
const GUEST_MAC: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const HTTP: u16 = 80;
const ECHO: u16 = 7;
/// Listening sockets of an idle guest: 40 HTTP + 40 echo (net/src/apps); one
/// is busy answering whoever asks for `/stats`.
const LISTENING: u64 = 80;
/// How long the guest may take to answer again after a class.
const RECOVERY: Duration = Duration::from_secs(60);
/// How long a single exchange may take under TCG.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// The guest's HTTP idle timeout on the hostile boot (`http.idle_ms`).
pub const HTTP_IDLE: Duration = Duration::from_secs(3);
/// Heap the guest may hold above its baseline once everything is closed:
/// the neighbour cache and smoltcp's assemblers settle at their own sizes.
const HEAP_SLACK: u64 = 64 * 1024;
/// Heap the never-reading clients may pin while connected: per connection
/// the HTTP input and output limits (net/src/apps/http), generously.
const HEAP_PER_STUCK_CONNECTION: u64 = 96 * 1024;

/// What a client that never reads writes at most, and how long a write may
/// stall before the client counts its windows as closed.
const NEVER_READ_BYTES: usize = 1 << 20;
const NEVER_READ_STALL: Duration = Duration::from_millis(200);

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
    pub connections: usize,
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

type Result<T> = std::result::Result<T, String>;

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
    say(format!("baseline: heap in use {} bytes, {} sockets listening", baseline, LISTENING));
    // SKIFF_HOSTILE_ONLY=load (say) runs one part, to debug it.
    let only = std::env::var("SKIFF_HOSTILE_ONLY").ok();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if part("malformed") {
        malformed(&mut ctx)?;
    }
    if part("tcp") {
        tcp_abuse(&mut ctx)?;
    }
    if part("floods") {
        floods(&mut ctx)?;
    }
    if part("load") {
        load(&mut ctx, baseline)?;
    }
    if part("soak") {
        soak(&mut ctx, baseline)?;
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
    let mut mac = [0u8; 6];
    for (i, part) in text.trim().split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(part, 16).map_err(|e| format!("MAC {text}: {e}"))?;
    }
    Ok(mac)
}

struct Ctx {
    link: RawLink,
    host_mac: Mac,
    pid: u32,
    rng: Rng,
    sizes: Sizes,
}

fn connect(port: u16) -> Result<TcpStream> {
    let addr = SocketAddr::from((GUEST_IP, port));
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

/// GET `path` on a fresh connection: (status, body).
fn get(path: &str) -> Result<(u16, Vec<u8>)> {
    let mut s = connect(HTTP)?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let r = read_response(&mut s, &mut Vec::new(), false)?;
    Ok((r.status, r.body))
}

fn number(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or(0)
}

/// Frames that reached the driver and went nowhere: every drop counter the
/// guest publishes, by name.
fn drop_counters(v: &Value) -> Vec<(String, u64)> {
    v.pointer("/device")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter().filter(|(k, _)| k.contains("drop")).map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()
        })
        .unwrap_or_default()
}

fn deltas(before: &Value, after: &Value) -> String {
    let b = drop_counters(before);
    let moved: Vec<String> = drop_counters(after)
        .into_iter()
        .filter_map(|(k, v)| {
            let old = b.iter().find(|(n, _)| *n == k).map_or(0, |(_, v)| *v);
            (v != old).then(|| format!("{k} +{}", v - old))
        })
        .collect();
    if moved.is_empty() { "no drop counter moved".into() } else { moved.join(", ") }
}

impl Ctx {
    fn alive(&self) -> Result<()> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map_err(|_| "QEMU is gone: the guest stopped (see its serial log)".to_string())?;
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        if matches!(state, Some(Some('Z' | 'X'))) {
            return Err("QEMU exited: the guest stopped (see its serial log)".into());
        }
        Ok(())
    }

    fn wait_serving(&self) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < RECOVERY {
            if get("/").is_ok_and(|(status, _)| status == 200) {
                return Ok(());
            }
            self.alive()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("GET / did not answer within {RECOVERY:?}"))
    }

    fn stats(&self) -> Result<Value> {
        let start = Instant::now();
        loop {
            match get("/stats") {
                Ok((200, body)) => {
                    return serde_json::from_slice(&body).map_err(|e| format!("/stats is not JSON: {e}"));
                }
                Ok((status, _)) => return Err(format!("/stats answered {status}")),
                Err(e) if start.elapsed() > RECOVERY => return Err(format!("/stats: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Tells the guest where `FAKE_IP` is: smoltcp fills its neighbour cache
    /// from ARP requests for its own address.
    fn announce(&self) -> Result<()> {
        let a = frames::arp(1, FAKE_MAC, FAKE_IP, [0; 6], GUEST_IP);
        self.link.send(&frames::ethernet([0xFF; 6], FAKE_MAC, frames::ETHERTYPE_ARP, &a))?;
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }

    /// An ICMP echo request from the namespace's own address, and its reply.
    fn ping(&mut self) -> Result<Duration> {
        let start = Instant::now();
        let ident = self.rng.next() as u16;
        let mut buf = [0u8; 2048];
        for seq in 0..40u16 {
            let icmp = frames::icmp_echo(frames::ICMP_ECHO_REQUEST, ident, seq, b"skiff hostile ping");
            let ip = Ipv4::new(HOST_IP, GUEST_IP, frames::PROTO_ICMP);
            self.link.send(&frames::ipv4_frame(GUEST_MAC, self.host_mac, &ip, &icmp))?;
            let deadline = Instant::now() + Duration::from_millis(250);
            while let Some(n) = self.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) {
                if frames::parse_echo_reply(&buf[..n]) == Some((GUEST_IP, ident, seq)) {
                    return Ok(start.elapsed());
                }
            }
        }
        Err("no ICMP echo reply in 10 s".into())
    }

    fn echo_ok(&mut self) -> Result<()> {
        let mut data = vec![0u8; 16 * 1024];
        self.rng.fill(&mut data);
        // Right after a flood the echo sockets may still be taken: retry a refused connect.
        let start = Instant::now();
        let mut s = loop {
            match connect(ECHO) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > RECOVERY => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        s.write_all(&data).map_err(|e| format!("echo write: {e}"))?;
        let mut back = vec![0u8; data.len()];
        s.read_exact(&mut back).map_err(|e| format!("echo read: {e}"))?;
        if back != data {
            return Err("echo returned different bytes".into());
        }
        Ok(())
    }

    /// The checks after every class: QEMU runs, ping, HTTP, echo. Returns
    /// how long until the guest answered HTTP again.
    fn health(&mut self) -> Result<Duration> {
        self.alive()?;
        let start = Instant::now();
        self.wait_serving()?;
        let recovered = start.elapsed();
        let (status, body) = get("/")?;
        if status != 200 || !String::from_utf8_lossy(&body).contains("Skiff") {
            return Err(format!("GET / answered {status}"));
        }
        self.ping()?;
        self.echo_ok()?;
        self.alive()?;
        Ok(recovered)
    }

    /// Waits until every socket listens again; returns heap in use then.
    fn settled_heap(&self) -> Result<u64> {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < RECOVERY {
            last = self.stats()?;
            if number(&last, "/sockets/listen") >= LISTENING - 1 {
                return Ok(number(&last, "/heap/in_use"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("sockets did not come back to listening within {RECOVERY:?}: {}", last["sockets"]))
    }

    /// Runs one class: `send` returns the frames it sent and the counters
    /// that must rise by exactly how much; then the health checks.
    fn class(
        &mut self,
        name: &str,
        send: impl FnOnce(&mut Ctx) -> Result<(usize, Vec<(&'static str, u64)>)>,
    ) -> Result<()> {
        let before = self.stats()?;
        let start = Instant::now();
        let (sent, expect) = send(self).map_err(|e| format!("{name}: {e}"))?;
        let sending = start.elapsed();
        let sent_at = Instant::now();
        // Counters move as the guest works through its queue: wait for them.
        let mut after = self.stats()?;
        let answered = sent_at.elapsed();
        let wait = Instant::now();
        let reached = |after: &Value| expect.iter().all(|(path, n)| number(after, path) >= number(&before, path) + n);
        while !reached(&after) && wait.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            after = self.stats()?;
        }
        for (path, n) in &expect {
            let moved = number(&after, path) - number(&before, path);
            if moved != *n {
                return Err(format!("{name}: {path} rose by {moved}, expected {n} ({sent} frames sent)"));
            }
        }
        self.health().map_err(|e| format!("after {name}: {e}"))?;
        say(format!(
            "{name:22} {sent:>6} frames in {:.2} s; {}; HTTP answered {:.2} s after the last frame, \
             ping, HTTP and echo all {:.2} s after",
            sending.as_secs_f64(),
            deltas(&before, &after),
            answered.as_secs_f64(),
            sent_at.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Sends every frame, a short pause after each burst so that the TAP
    /// queue (1000 frames) never overflows; returns how many the kernel took.
    fn send_all(&self, frames: &[Vec<u8>]) -> Result<usize> {
        let mut sent = 0;
        for (i, f) in frames.iter().enumerate() {
            sent += usize::from(self.link.send(f)?);
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(sent)
    }

    /// As `send_all` with no pauses: a flood.
    fn flood(&self, frames: impl Iterator<Item = Vec<u8>>) -> Result<usize> {
        let mut sent = 0;
        for f in frames {
            sent += usize::from(self.link.send(&f)?);
        }
        Ok(sent)
    }

    fn tcp_frame(&self, tcp: &Tcp, payload: &[u8]) -> Vec<u8> {
        let ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_TCP);
        frames::ipv4_frame(GUEST_MAC, FAKE_MAC, &ip, &tcp.build(FAKE_IP, GUEST_IP, payload))
    }

    fn syn(&mut self, port: u16) -> Vec<u8> {
        let tcp = Tcp {
            src_port: self.rng.port(),
            dst_port: port,
            seq: self.rng.next() as u32,
            ack: 0,
            flags: SYN,
            window: 8192,
        };
        self.tcp_frame(&tcp, &[])
    }

    fn udp_frame(&mut self, port: u16, len: usize) -> Vec<u8> {
        let mut payload = vec![0u8; len];
        self.rng.fill(&mut payload);
        let ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_UDP);
        frames::ipv4_frame(GUEST_MAC, FAKE_MAC, &ip, &frames::udp(FAKE_IP, GUEST_IP, self.rng.port(), port, &payload))
    }

    /// Opens a TCP connection from `FAKE_IP` by hand.
    fn raw_connect(&mut self, port: u16) -> Result<RawConn> {
        self.announce()?;
        self.link.drain();
        let mut conn = RawConn { port, local: self.rng.port(), snd_nxt: self.rng.next() as u32, rcv_nxt: 0 };
        let mut buf = [0u8; 2048];
        for _ in 0..5 {
            self.send_seg(&conn, SYN, conn.snd_nxt, 0, 8192, &[])?;
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Some(n) = self.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) {
                if let Some(seg) = conn.ours(&buf[..n])
                    && seg.flags & (SYN | ACK) == SYN | ACK
                    && seg.ack == conn.snd_nxt.wrapping_add(1)
                {
                    conn.snd_nxt = seg.ack;
                    conn.rcv_nxt = seg.seq.wrapping_add(1);
                    self.send_seg(&conn, ACK, conn.snd_nxt, conn.rcv_nxt, 65535, &[])?;
                    return Ok(conn);
                }
            }
        }
        Err(format!("no SYN-ACK from port {port} for a raw connection"))
    }

    fn send_seg(&self, c: &RawConn, flags: u8, seq: u32, ack: u32, window: u16, payload: &[u8]) -> Result<()> {
        let tcp = Tcp { src_port: c.local, dst_port: c.port, seq, ack, flags, window };
        self.link.send(&self.tcp_frame(&tcp, payload)).map(|_| ())
    }

    /// Reads the guest's in-order data on `c` (acknowledging it) until
    /// `done`, or `within` passes. Also returns whether a FIN or RST came.
    fn raw_read(&self, c: &mut RawConn, within: Duration, done: impl Fn(&[u8], u8) -> bool) -> Result<(Vec<u8>, u8)> {
        let mut data = Vec::new();
        let mut flags = 0;
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + within;
        while !done(&data, flags) {
            let Some(n) = self.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) else { break };
            let Some(seg) = c.ours(&buf[..n]) else { continue };
            flags |= seg.flags & (FIN | RST);
            if seg.seq == c.rcv_nxt && !seg.payload.is_empty() {
                data.extend_from_slice(&seg.payload);
                c.rcv_nxt = c.rcv_nxt.wrapping_add(seg.payload.len() as u32);
            }
            if seg.flags & FIN != 0 && seg.seq.wrapping_add(seg.payload.len() as u32) == c.rcv_nxt {
                c.rcv_nxt = c.rcv_nxt.wrapping_add(1);
            }
            if seg.flags & RST == 0 {
                self.send_seg(c, ACK, c.snd_nxt, c.rcv_nxt, 65535, &[])?;
            }
        }
        Ok((data, flags))
    }
}

/// A TCP connection from `FAKE_IP`, driven by hand.
struct RawConn {
    port: u16,
    local: u16,
    snd_nxt: u32,
    rcv_nxt: u32,
}

impl RawConn {
    fn ours(&self, frame: &[u8]) -> Option<frames::TcpSeen> {
        let seg = frames::parse_tcp(frame)?;
        (seg.src == GUEST_IP && seg.dst == FAKE_IP && seg.src_port == self.port && seg.dst_port == self.local)
            .then_some(seg)
    }
}

/// Every malformed class, with the counter each must move.
fn malformed(ctx: &mut Ctx) -> Result<()> {
    let rounds = ctx.sizes.malformed_rounds;
    let base = ctx.syn(HTTP);
    let ip = frames::ETHERNET_HEADER;
    let tcp_at = ip + frames::IPV4_HEADER;

    let b = base.clone();
    ctx.class("truncated-ethernet", |ctx| {
        let frames: Vec<Vec<u8>> =
            (0..rounds).flat_map(|_| (0..frames::ETHERNET_HEADER).map(|n| b[..n].to_vec())).collect();
        // The host kernel refuses frames shorter than a link header; what it takes must be counted.
        let sent = ctx.send_all(&frames)?;
        say(format!(
            "    {} runts attempted, {} refused by the host kernel (shorter than its link header)",
            frames.len(),
            frames.len() - sent
        ));
        Ok((sent, vec![("/device/rx_drop_malformed_ethernet", sent as u64)]))
    })?;

    let b = base.clone();
    ctx.class("truncated-ipv4", |ctx| {
        let frames: Vec<Vec<u8>> =
            (0..rounds).flat_map(|_| (0..frames::IPV4_HEADER).map(|n| b[..ip + n].to_vec())).collect();
        let sent = ctx.send_all(&frames)?;
        Ok((sent, vec![("/device/rx_drop_malformed_ipv4", sent as u64)]))
    })?;

    let b = base.clone();
    ctx.class("bad-ihl-total-length", |ctx| {
        let mut variants = Vec::new();
        for ihl in [0u8, 1, 4, 15] {
            let mut f = b.clone();
            f[ip] = 0x40 | ihl;
            frames::fix_ipv4_checksum(&mut f);
            variants.push(f);
        }
        for version in [0u8, 6, 15] {
            let mut f = b.clone();
            f[ip] = (version << 4) | 5;
            frames::fix_ipv4_checksum(&mut f);
            variants.push(f);
        }
        for total in [0u16, 10, 19, 41, 1500, 65535] {
            let mut f = b.clone();
            f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
            frames::fix_ipv4_checksum(&mut f);
            variants.push(f);
        }
        let frames: Vec<Vec<u8>> = (0..rounds).flat_map(|_| variants.clone()).collect();
        let sent = ctx.send_all(&frames)?;
        Ok((sent, vec![("/device/rx_drop_malformed_ipv4", sent as u64)]))
    })?;

    ctx.class("bad-ip-checksum", |ctx| {
        let frames: Vec<Vec<u8>> = (0..rounds * 25)
            .map(|_| {
                let mut f = ctx.syn(HTTP);
                f[ip + 10] ^= 0x5A;
                f
            })
            .collect();
        let sent = ctx.send_all(&frames)?;
        Ok((sent, vec![("/device/rx_drop_bad_ipv4_checksum", sent as u64)]))
    })?;

    ctx.class("bad-tcp-udp-checksum", |ctx| {
        let mut frames = Vec::new();
        for i in 0..rounds * 25 {
            let mut f =
                if i % 2 == 0 { ctx.syn(if i % 4 == 0 { HTTP } else { ECHO }) } else { ctx.udp_frame(ECHO, 64) };
            let at = if i % 2 == 0 { tcp_at + 16 } else { tcp_at + 6 };
            f[at] ^= 0x81;
            frames.push(f);
        }
        let sent = ctx.send_all(&frames)?;
        Ok((sent, vec![("/device/rx_drop_bad_checksum", sent as u64)]))
    })?;

    let b = base.clone();
    ctx.class("truncated-tcp-bad-offset", |ctx| {
        let mut variants = Vec::new();
        for keep in 0..frames::TCP_HEADER {
            let mut f = b[..tcp_at + keep].to_vec();
            f[ip + 2..ip + 4].copy_from_slice(&((frames::IPV4_HEADER + keep) as u16).to_be_bytes());
            frames::fix_ipv4_checksum(&mut f);
            variants.push(f);
        }
        for offset in (0u8..5).chain(6..16) {
            let mut f = b.clone();
            f[tcp_at + 12] = offset << 4;
            variants.push(f);
        }
        let frames: Vec<Vec<u8>> = (0..rounds).flat_map(|_| variants.clone()).collect();
        let sent = ctx.send_all(&frames)?;
        Ok((sent, vec![("/device/rx_drop_malformed_tcp", sent as u64)]))
    })?;

    let u = ctx.udp_frame(ECHO, 32);
    ctx.class("truncated-udp-bad-length", |ctx| {
        let mut variants = Vec::new();
        for keep in 0..frames::UDP_HEADER {
            let mut f = u[..tcp_at + keep].to_vec();
            f[ip + 2..ip + 4].copy_from_slice(&((frames::IPV4_HEADER + keep) as u16).to_be_bytes());
            frames::fix_ipv4_checksum(&mut f);
            variants.push(f);
        }
        for len in [0u16, 7, 41, 1000] {
            let mut f = u.clone();
            f[tcp_at + 4..tcp_at + 6].copy_from_slice(&len.to_be_bytes());
            variants.push(f);
        }
        let frames: Vec<Vec<u8>> = (0..rounds).flat_map(|_| variants.clone()).collect();
        let sent = ctx.send_all(&frames)?;
        Ok((sent, vec![("/device/rx_drop_malformed_udp", sent as u64)]))
    })?;

    ctx.class("truncated-arp-runts", |ctx| {
        let arp = frames::arp(1, FAKE_MAC, FAKE_IP, [0; 6], GUEST_IP);
        let frames: Vec<Vec<u8>> = (0..rounds)
            .flat_map(|_| {
                (0..arp.len() - 1)
                    .step_by(3)
                    .map(|n| frames::ethernet(GUEST_MAC, FAKE_MAC, frames::ETHERTYPE_ARP, &arp[..n]))
            })
            .collect();
        let sent = ctx.send_all(&frames)?;
        Ok((sent, vec![("/device/rx_drop_malformed_arp", sent as u64)]))
    })?;

    ctx.class("fragments", |ctx| {
        let mut frames = Vec::new();
        for _ in 0..rounds * 5 {
            let payload = vec![0x42u8; 64];
            let datagram = frames::udp(FAKE_IP, GUEST_IP, 4000, ECHO, &payload);
            for (offset, flags) in [(0u16, frames::MORE_FRAGMENTS), (3, frames::MORE_FRAGMENTS), (6, 0), (1, 0)] {
                let mut ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_UDP);
                ip.ident = ctx.rng.next() as u16;
                ip.flags_offset = flags | offset;
                let start = (usize::from(offset) * 8).min(datagram.len());
                let end = (start + 24).min(datagram.len());
                frames.push(frames::ipv4_frame(GUEST_MAC, FAKE_MAC, &ip, &datagram[start..end]));
            }
        }
        let sent = ctx.send_all(&frames)?;
        Ok((sent, vec![("/device/rx_drop_ipv4_fragment", sent as u64)]))
    })?;

    ctx.class("ip-options", |ctx| {
        // Valid options must not cost a connection: each SYN is answered.
        ctx.announce()?;
        ctx.link.drain();
        let options: [&[u8]; 3] = [&[1, 1, 1, 0], &[7, 7, 4, 0, 0, 0, 0, 0], &[0x94, 4, 0, 0]];
        let mut sent = 0;
        let mut answered = 0;
        for i in 0..rounds * 6 {
            let port = ctx.rng.port();
            let mut ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_TCP);
            ip.options = options[i % options.len()].to_vec();
            let tcp = Tcp { src_port: port, dst_port: HTTP, seq: 1000, ack: 0, flags: SYN, window: 8192 };
            sent += usize::from(ctx.link.send(&frames::ipv4_frame(
                GUEST_MAC,
                FAKE_MAC,
                &ip,
                &tcp.build(FAKE_IP, GUEST_IP, &[]),
            ))?);
            let mut buf = [0u8; 2048];
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Some(n) = ctx.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) {
                if let Some(seg) = frames::parse_tcp(&buf[..n])
                    && seg.dst_port == port
                    && seg.flags & (SYN | ACK) == SYN | ACK
                {
                    answered += 1;
                    let rst = Tcp { src_port: port, dst_port: HTTP, seq: 1001, ack: 0, flags: RST, window: 0 };
                    ctx.link.send(&ctx.tcp_frame(&rst, &[]))?;
                    break;
                }
            }
        }
        if answered != sent {
            return Err(format!("{answered} of {sent} SYNs with IP options answered"));
        }
        Ok((sent, vec![]))
    })?;

    ctx.class("oversize-undersize", |ctx| {
        // The TAP device takes jumbo frames once its MTU allows them; the
        // guest's buffers hold 1514 bytes, so QEMU or the driver must drop them.
        let _ = std::process::Command::new("ip").args(["link", "set", "skiff0", "mtu", "9000"]).status();
        let mut frames = Vec::new();
        for len in [1515usize, 1518, 1600, 4000, 9014] {
            let mut f = ctx.udp_frame(ECHO, len - 42);
            f.truncate(len);
            frames.push(f);
        }
        for len in [14usize, 20, 33, 42, 59] {
            let mut f = ctx.udp_frame(9, 64);
            f.truncate(len);
            frames.push(f);
        }
        let all: Vec<Vec<u8>> = (0..rounds).flat_map(|_| frames.clone()).collect();
        let before = ctx.stats()?;
        let sent = ctx.send_all(&all)?;
        let after = ctx.stats()?;
        // The undersize ones are IPv4 whose total length overruns the frame;
        // QEMU drops the oversize ones itself (they fit no receive buffer).
        say(format!(
            "    {sent} sent ({} oversize); the guest received {} frames meanwhile",
            rounds * 5,
            number(&after, "/device/rx_frames") - number(&before, "/device/rx_frames")
        ));
        let _ = std::process::Command::new("ip").args(["link", "set", "skiff0", "mtu", "1500"]).status();
        Ok((sent, vec![]))
    })?;
    Ok(())
}

/// TCP abuse on connections driven by hand.
fn tcp_abuse(ctx: &mut Ctx) -> Result<()> {
    ctx.class("overlapping-segments", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let s = c.snd_nxt;
        let text = b"abcdefghijklmnopqrstuvwxyz";
        // Out of order first, then overlapping pieces, then a duplicate.
        let pieces: [(usize, usize); 6] = [(20, 26), (0, 6), (2, 10), (6, 14), (12, 22), (0, 26)];
        for &(from, to) in &pieces {
            ctx.send_seg(&c, ACK | PSH, s.wrapping_add(from as u32), c.rcv_nxt, 65535, &text[from..to])?;
            std::thread::sleep(Duration::from_millis(20));
        }
        c.snd_nxt = s.wrapping_add(text.len() as u32);
        let (back, _) = ctx.raw_read(&mut c, Duration::from_secs(5), |d, _| d.len() >= text.len())?;
        ctx.send_seg(&c, RST, c.snd_nxt, 0, 0, &[])?;
        if back != text {
            return Err(format!("echoed {:?}", String::from_utf8_lossy(&back)));
        }
        Ok((pieces.len(), vec![]))
    })?;

    ctx.class("out-of-window", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let s = c.snd_nxt;
        let mut sent = 0;
        for _ in 0..50 {
            let far = s.wrapping_add(1 << 30).wrapping_add(ctx.rng.next() as u32 % 1000);
            ctx.send_seg(&c, ACK | PSH, far, c.rcv_nxt, 65535, b"FAR")?;
            ctx.send_seg(&c, ACK | PSH, s.wrapping_sub(100_000), c.rcv_nxt, 65535, b"OLD")?;
            // Acknowledging data the guest never sent.
            ctx.send_seg(&c, ACK | PSH, s, c.rcv_nxt.wrapping_add(1 << 20), 65535, b"ACK")?;
            sent += 3;
        }
        ctx.send_seg(&c, ACK | PSH, s, c.rcv_nxt, 65535, b"good")?;
        c.snd_nxt = s.wrapping_add(4);
        let (back, _) = ctx.raw_read(&mut c, Duration::from_secs(5), |d, _| d.len() >= 4)?;
        ctx.send_seg(&c, RST, c.snd_nxt, 0, 0, &[])?;
        if back != b"good" {
            return Err(format!("echoed {:?}, expected only \"good\"", String::from_utf8_lossy(&back)));
        }
        Ok((sent + 1, vec![]))
    })?;

    ctx.class("zero-window", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let s = c.snd_nxt;
        // Our window is zero: the guest must hold its echo and probe.
        ctx.send_seg(&c, ACK | PSH, s, c.rcv_nxt, 0, b"held back")?;
        c.snd_nxt = s.wrapping_add(9);
        let mut buf = [0u8; 2048];
        let mut leaked = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(1500);
        let mut probes = 0;
        while let Some(n) = ctx.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) {
            if let Some(seg) = c.ours(&buf[..n]) {
                if seg.payload.len() > 1 {
                    leaked.extend_from_slice(&seg.payload);
                }
                // Our zero-window probes' answers: keep the window shut.
                probes += 1;
                ctx.send_seg(&c, ACK, c.snd_nxt, c.rcv_nxt, 0, &[])?;
            }
        }
        if !leaked.is_empty() {
            return Err(format!("the guest sent {} bytes into a zero window", leaked.len()));
        }
        ctx.send_seg(&c, ACK, c.snd_nxt, c.rcv_nxt, 65535, &[])?;
        let (back, _) = ctx.raw_read(&mut c, Duration::from_secs(10), |d, _| d.len() >= 9)?;
        ctx.send_seg(&c, RST, c.snd_nxt, 0, 0, &[])?;
        if back != b"held back" {
            return Err(format!("after the window opened, echoed {:?}", String::from_utf8_lossy(&back)));
        }
        Ok((2 + probes, vec![]))
    })?;

    let storm = ctx.sizes.storm;
    ctx.class("rst-storm", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let mut frames = Vec::new();
        for i in 0..storm {
            // RSTs for connections that do not exist, and blind ones at a
            // live connection, outside its window (RFC 5961 3).
            let tcp = if i % 2 == 0 {
                Tcp {
                    src_port: ctx.rng.port(),
                    dst_port: if i % 4 == 0 { HTTP } else { ECHO },
                    seq: ctx.rng.next() as u32,
                    ack: 0,
                    flags: RST,
                    window: 0,
                }
            } else {
                let off = (1u32 << 20) + (ctx.rng.next() as u32 % (1 << 30));
                Tcp {
                    src_port: c.local,
                    dst_port: ECHO,
                    seq: c.snd_nxt.wrapping_add(off),
                    ack: 0,
                    flags: RST,
                    window: 0,
                }
            };
            frames.push(ctx.tcp_frame(&tcp, &[]));
        }
        let sent = ctx.send_all(&frames)?;
        ctx.link.drain();
        let s = c.snd_nxt;
        ctx.send_seg(&c, ACK | PSH, s, c.rcv_nxt, 65535, b"alive")?;
        c.snd_nxt = s.wrapping_add(5);
        let (back, flags) = ctx.raw_read(&mut c, Duration::from_secs(5), |d, _| d.len() >= 5)?;
        if back != b"alive" || flags & RST != 0 {
            return Err(format!("blind RSTs hurt a live connection: echoed {back:?}"));
        }
        ctx.send_seg(&c, RST, c.snd_nxt, 0, 0, &[])?;
        Ok((sent, vec![]))
    })?;

    ctx.class("fin-storm", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let mut frames = Vec::new();
        for i in 0..storm {
            let tcp = if i % 2 == 0 {
                Tcp {
                    src_port: ctx.rng.port(),
                    dst_port: if i % 4 == 0 { HTTP } else { ECHO },
                    seq: ctx.rng.next() as u32,
                    ack: ctx.rng.next() as u32,
                    flags: FIN | ACK,
                    window: 512,
                }
            } else {
                // Duplicate FINs on the live connection.
                Tcp {
                    src_port: c.local,
                    dst_port: ECHO,
                    seq: c.snd_nxt,
                    ack: c.rcv_nxt,
                    flags: FIN | ACK,
                    window: 65535,
                }
            };
            frames.push(ctx.tcp_frame(&tcp, &[]));
        }
        let sent = ctx.send_all(&frames)?;
        c.snd_nxt = c.snd_nxt.wrapping_add(1);
        // The guest closes its side too: its FIN comes, and we acknowledge it.
        let (_, flags) = ctx.raw_read(&mut c, Duration::from_secs(5), |_, flags| flags & FIN != 0)?;
        if flags & FIN == 0 {
            return Err("the guest never closed the connection whose peer sent FIN".into());
        }
        Ok((sent, vec![]))
    })?;
    Ok(())
}

/// SYN, ARP, ICMP and UDP floods.
fn floods(ctx: &mut Ctx) -> Result<()> {
    let n = ctx.sizes.syn_flood;
    ctx.class("syn-flood", |ctx| {
        // From addresses nobody answers ARP for: the SYN-ACKs go nowhere,
        // as in a spoofed flood.
        let mut rng = Rng::from_os();
        let frames = (0..n).map(|i| {
            let src = Ipv4Addr::new(10, 0, 2, 100 + (rng.next() % 150) as u8);
            let mac = [0x02, 0, 0, 0, 1, src.octets()[3]];
            let tcp = Tcp {
                src_port: rng.port(),
                dst_port: if i % 2 == 0 { HTTP } else { ECHO },
                seq: rng.next() as u32,
                ack: 0,
                flags: SYN,
                window: 8192,
            };
            let ip = Ipv4::new(src, GUEST_IP, frames::PROTO_TCP);
            frames::ipv4_frame(GUEST_MAC, mac, &ip, &tcp.build(src, GUEST_IP, &[]))
        });
        Ok((ctx.flood(frames)?, vec![]))
    })?;

    let n = ctx.sizes.arp_flood;
    ctx.class("arp-flood", |ctx| {
        let mut rng = Rng::from_os();
        let frames = (0..n).map(|i| {
            // Never the gateway's or the guest's own address: ARP has no
            // authentication, and poisoning the gateway is not a Skiff bug.
            let ip = Ipv4Addr::new(10, 0, 2, 16 + (rng.next() % 200) as u8);
            let mac = [0x02, 0, 0, 2, (rng.next() >> 8) as u8, ip.octets()[3]];
            let (op, dst) = if i % 4 == 3 { (2, GUEST_MAC) } else { (1, [0xFF; 6]) };
            frames::ethernet(dst, mac, frames::ETHERTYPE_ARP, &frames::arp(op, mac, ip, [0; 6], GUEST_IP))
        });
        Ok((ctx.flood(frames)?, vec![]))
    })?;

    let n = ctx.sizes.icmp_flood;
    ctx.class("icmp-flood", |ctx| {
        ctx.announce()?;
        let ident = ctx.rng.next() as u16;
        let frames = (0..n).map(|i| {
            let ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_ICMP);
            frames::ipv4_frame(
                GUEST_MAC,
                FAKE_MAC,
                &ip,
                &frames::icmp_echo(frames::ICMP_ECHO_REQUEST, ident, i as u16, &[0x5A; 56]),
            )
        });
        let sent = ctx.flood(frames)?;
        ctx.link.drain();
        Ok((sent, vec![]))
    })?;

    let n = ctx.sizes.udp_flood;
    ctx.class("udp-flood-rx-ring", |ctx| {
        let before = ctx.stats()?;
        let frames: Vec<Vec<u8>> = (0..256).map(|i| ctx.udp_frame(if i % 2 == 0 { 9 } else { ECHO }, 1400)).collect();
        let sent = ctx.flood((0..n).map(|i| frames[i % frames.len()].clone()))?;
        let after = ctx.stats()?;
        say(format!(
            "    udp flood: {sent} frames sent, {} reached the guest",
            number(&after, "/device/rx_frames") - number(&before, "/device/rx_frames")
        ));
        Ok((sent, vec![]))
    })?;
    Ok(())
}

/// Opens `count` connections at once (non-blocking), waiting at most
/// `within`: (connected streams, refused, unresolved).
fn connect_many(port: u16, count: usize, within: Duration) -> Result<(Vec<TcpStream>, usize, usize)> {
    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n";
    use std::os::fd::FromRawFd;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(GUEST_IP.octets()) },
        sin_zero: [0; 8],
    };
    let mut pending: Vec<libc::pollfd> = Vec::new();
    let mut connected = Vec::new();
    let mut refused = 0;
    for _ in 0..count {
        // SAFETY: plain system call.
        let fd =
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `addr` is a valid sockaddr_in of the stated length.
        let r = unsafe {
            libc::connect(
                fd,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        let err = std::io::Error::last_os_error().raw_os_error();
        if r == 0 || err == Some(libc::EINPROGRESS) {
            pending.push(libc::pollfd { fd, events: libc::POLLOUT, revents: 0 });
        } else {
            // SAFETY: `fd` is ours and not used again.
            unsafe { libc::close(fd) };
            refused += 1;
        }
    }
    let deadline = Instant::now() + within;
    while !pending.is_empty() && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now()).as_millis().min(1000) as i32;
        // SAFETY: `pending` is a valid array of pollfds of the stated length.
        unsafe { libc::poll(pending.as_mut_ptr(), pending.len() as libc::nfds_t, left) };
        let mut still = Vec::new();
        for p in pending.drain(..) {
            if p.revents == 0 {
                still.push(libc::pollfd { revents: 0, ..p });
                continue;
            }
            let mut error: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `error` is a c_int of the stated length.
            unsafe {
                libc::getsockopt(
                    p.fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut error as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            if error == 0 {
                // SAFETY: `p.fd` is a connected socket nothing else owns.
                let mut s = unsafe { TcpStream::from_raw_fd(p.fd) };
                // Ask at once, as a real client would: a connection left
                // idle would meet the guest's idle timeout instead.
                s.set_nonblocking(false).map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
                s.write_all(REQUEST).map_err(|e| format!("request on a fresh connection: {e}"))?;
                connected.push(s);
            } else {
                // SAFETY: `p.fd` is ours and not used again.
                unsafe { libc::close(p.fd) };
                refused += 1;
            }
        }
        pending = still;
    }
    let unresolved = pending.len();
    for p in pending {
        // SAFETY: `p.fd` is ours and not used again.
        unsafe { libc::close(p.fd) };
    }
    Ok((connected, refused, unresolved))
}

/// Load and exhaustion: many connections at once, slow clients, clients
/// that never read.
fn load(ctx: &mut Ctx, baseline: u64) -> Result<()> {
    // 1. Connections at once. The guest listens on 40 sockets per port and
    //    has no backlog: beyond those, a SYN is refused with RST. A user
    //    sees each connection either served or refused at once; none hangs.
    let count = ctx.sizes.connections;
    let start = Instant::now();
    let (connected, refused, unresolved) = connect_many(HTTP, count, Duration::from_secs(30))?;
    if unresolved > 0 {
        return Err(format!("{count} connections at once: {unresolved} neither connected nor refused within 30 s"));
    }
    let mut served = 0;
    for mut s in connected {
        s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
        match read_response(&mut s, &mut Vec::new(), false) {
            Ok(r) if r.status == 200 => served += 1,
            Ok(r) => return Err(format!("a connection of the {count} got {}", r.status)),
            Err(e) => return Err(format!("a connection of the {count} that was accepted failed: {e}")),
        }
    }
    let heap = ctx.settled_heap()?;
    let recovered = ctx.health()?;
    say(format!(
        "connections-at-once    {count} attempted: {served} connected and served, {refused} refused, 0 hung, in {:.2} s; \
         heap {heap} (baseline {baseline}); answering again after {:.2} s",
        start.elapsed().as_secs_f64(),
        recovered.as_secs_f64()
    ));
    if served == 0 {
        return Err("no connection of the burst was served".into());
    }

    // 2. Slow clients trickle a header that never ends; each must be closed
    //    within the idle timeout of its first byte, not kept by the trickle.
    let n = ctx.sizes.slow_clients;
    let start = Instant::now();
    let mut slow: Vec<(TcpStream, Option<Duration>)> =
        (0..n).map(|_| connect(HTTP).map(|s| (s, None))).collect::<Result<_>>()?;
    for (s, _) in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(1))).map_err(|e| e.to_string())?;
        s.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").map_err(|e| e.to_string())?;
    }
    let limit = HTTP_IDLE * 3;
    while start.elapsed() < limit && slow.iter().any(|(_, closed)| closed.is_none()) {
        for (s, closed) in &mut slow {
            if closed.is_some() {
                continue;
            }
            let mut buf = [0u8; 1024];
            let gone = match s.read(&mut buf) {
                Ok(_) => true, // EOF, or an error response before the close
                Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            };
            if gone || s.write_all(b"x").is_err() {
                *closed = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let open = slow.iter().filter(|(_, c)| c.is_none()).count();
    if open > 0 {
        return Err(format!(
            "{open} of {n} slow clients trickling a header were still connected after {limit:?} (http.idle_ms {:?})",
            HTTP_IDLE
        ));
    }
    let longest = slow.iter().filter_map(|(_, c)| *c).max().unwrap_or_default();
    drop(slow);
    let recovered = ctx.health()?;
    say(format!(
        "slow-clients           {n} trickling headers: all closed, the last after {:.2} s (idle timeout {:.0} s); answering again after {:.2} s",
        longest.as_secs_f64(),
        HTTP_IDLE.as_secs_f64(),
        recovered.as_secs_f64()
    ));

    // 3. Clients that never read: pipelined requests and echo data pile up
    //    only as far as the guest's bounded buffers and TCP windows allow.
    let n = ctx.sizes.never_read;
    let start = Instant::now();
    let mut stuck = Vec::new();
    let mut pushed = 0usize;
    let request = b"GET /stats HTTP/1.1\r\nHost: skiff\r\n\r\n".repeat(64);
    for i in 0..n {
        let mut s = connect(if i % 2 == 0 { HTTP } else { ECHO })?;
        s.set_write_timeout(Some(NEVER_READ_STALL)).map_err(|e| e.to_string())?;
        // Write until the windows close (a write stalls), or enough to fill
        // the guest's buffers and the host's socket buffers several times.
        for _ in 0..NEVER_READ_BYTES / request.len() {
            match s.write(&request) {
                Ok(k) => pushed += k,
                Err(_) => break,
            }
        }
        stuck.push(s);
    }
    let stats = ctx.stats()?;
    let heap_stuck = number(&stats, "/heap/in_use");
    let bound = baseline + n as u64 * HEAP_PER_STUCK_CONNECTION;
    if heap_stuck > bound {
        return Err(format!("{n} clients that never read pinned heap {heap_stuck} > {bound}"));
    }
    drop(stuck);
    let heap_after = ctx.settled_heap()?;
    let recovered = ctx.health()?;
    say(format!(
        "never-read             {n} clients pushed {} KiB without reading: heap {heap_stuck} while stuck (bound {bound}), \
         {heap_after} after (baseline {baseline}), in {:.2} s; answering again after {:.2} s",
        pushed / 1024,
        start.elapsed().as_secs_f64(),
        recovered.as_secs_f64()
    ));
    if heap_after > baseline + HEAP_SLACK {
        return Err(format!("heap {heap_after} after the stuck clients left, baseline {baseline}"));
    }
    Ok(())
}

/// Mixed HTTP and echo traffic in parallel: keep-alive, a connection per
/// request, pipelined batches, echo streams. Every response is checked.
fn soak(ctx: &mut Ctx, baseline: u64) -> Result<()> {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Pattern {
        KeepAlive,
        /// A connection per request, closed by the server (`Connection: close`).
        ServerCloses,
        /// A connection per request, closed by the client after the answer.
        ClientCloses,
        Pipelined,
    }
    /// The HTTP clients, one pattern each.
    const KINDS: [Pattern; 8] = [
        Pattern::KeepAlive,
        Pattern::Pipelined,
        Pattern::ServerCloses,
        Pattern::KeepAlive,
        Pattern::Pipelined,
        Pattern::ClientCloses,
        Pattern::KeepAlive,
        Pattern::Pipelined,
    ];
    /// Requests on one keep-alive connection before it is replaced.
    const RENEW_AFTER: usize = 1000;
    const ECHO_WORKERS: usize = 4;
    const PIPELINE_DEPTH: usize = 16;
    const ECHO_CHUNK: usize = 64 * 1024;
    let total = ctx.sizes.soak_requests;
    let echo_total = ctx.sizes.soak_echo_bytes;
    let workers = KINDS.len();
    let per_worker = total.div_ceil(workers);
    let requests = AtomicU64::new(0);
    let echoed = AtomicU64::new(0);
    let start = Instant::now();
    let before = ctx.stats()?;
    let result: Result<()> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for w in 0..workers {
            let requests = &requests;
            handles.push(scope.spawn(move || -> Result<()> {
                let kind = KINDS[w % KINDS.len()];
                let label = |e: String| format!("soak HTTP client {w} ({kind:?}): {e}");
                let check = |r: &crate::clients::Response| -> Result<()> {
                    if r.status != 200 || !String::from_utf8_lossy(&r.body).contains("Skiff") {
                        return Err(format!("a response was {} with {} bytes", r.status, r.body.len()));
                    }
                    Ok(())
                };
                let mut done = 0;
                let mut stream: Option<(TcpStream, Vec<u8>)> = None;
                let mut on_connection = 0;
                while done < per_worker {
                    let depth = match kind {
                        Pattern::ServerCloses => {
                            let mut s = connect(HTTP).map_err(label)?;
                            s.write_all(b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n")
                                .map_err(|e| label(e.to_string()))?;
                            check(&read_response(&mut s, &mut Vec::new(), false).map_err(label)?).map_err(label)?;
                            1
                        }
                        Pattern::ClientCloses => {
                            let mut s = connect(HTTP).map_err(label)?;
                            s.write_all(b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n").map_err(|e| label(e.to_string()))?;
                            check(&read_response(&mut s, &mut Vec::new(), false).map_err(label)?).map_err(label)?;
                            1
                        }
                        Pattern::KeepAlive | Pattern::Pipelined => {
                            // Keep-alive connections are renewed now and then, as browsers do.
                            if stream.is_none() || on_connection >= RENEW_AFTER {
                                stream = Some((connect(HTTP).map_err(label)?, Vec::new()));
                                on_connection = 0;
                            }
                            let Some((s, buf)) = stream.as_mut() else { return Err(label("no connection".into())) };
                            let depth =
                                if kind == Pattern::Pipelined { PIPELINE_DEPTH.min(per_worker - done) } else { 1 };
                            let batch = b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n".repeat(depth);
                            s.write_all(&batch).map_err(|e| label(e.to_string()))?;
                            for _ in 0..depth {
                                check(&read_response(s, buf, false).map_err(label)?).map_err(label)?;
                            }
                            depth
                        }
                    };
                    done += depth;
                    on_connection += depth;
                    requests.fetch_add(depth as u64, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        for w in 0..ECHO_WORKERS {
            let echoed = &echoed;
            let share = echo_total / ECHO_WORKERS;
            handles.push(scope.spawn(move || -> Result<()> {
                let s = connect(ECHO)?;
                let mut reader = s.try_clone().map_err(|e| e.to_string())?;
                let mut seed = Rng::from_os();
                let seed = seed.next();
                let writer = std::thread::spawn(move || -> Result<()> {
                    let mut s = s;
                    let mut rng = Rng(seed | 1);
                    let mut chunk = vec![0u8; ECHO_CHUNK];
                    let mut left = share;
                    while left > 0 {
                        let n = left.min(ECHO_CHUNK);
                        rng.fill(&mut chunk[..n]);
                        s.write_all(&chunk[..n]).map_err(|e| format!("echo {w} write: {e}"))?;
                        left -= n;
                    }
                    let _ = s.shutdown(Shutdown::Write);
                    Ok(())
                });
                let mut rng = Rng(seed | 1);
                let mut want = vec![0u8; ECHO_CHUNK];
                let mut got = vec![0u8; ECHO_CHUNK];
                let mut left = share;
                while left > 0 {
                    let n = left.min(ECHO_CHUNK);
                    rng.fill(&mut want[..n]);
                    reader.read_exact(&mut got[..n]).map_err(|e| format!("echo {w} read: {e}"))?;
                    if got[..n] != want[..n] {
                        return Err(format!("echo {w}: bytes differ after {} bytes", share - left));
                    }
                    left -= n;
                    echoed.fetch_add(n as u64, Ordering::Relaxed);
                }
                writer.join().map_err(|_| "echo writer panicked".to_string())??;
                Ok(())
            }));
        }
        for h in handles {
            h.join().map_err(|_| "a soak client panicked".to_string())??;
        }
        Ok(())
    });
    result?;
    let elapsed = start.elapsed();
    let heap_after = ctx.settled_heap()?;
    let after = ctx.stats()?;
    let peak = number(&after, "/heap/peak");
    let served = number(&after, "/apps/http_requests") - number(&before, "/apps/http_requests");
    let recovered = ctx.health()?;
    say(format!(
        "soak                   {} HTTP requests ({served} counted by the guest) and {} MiB echoed in {:.1} s ({:.0} req/s, \
         {:.1} MiB/s echo), no client error; heap {baseline} before, {heap_after} after (peak {peak}); {} sockets listening; \
         answering again after {:.2} s",
        requests.load(Ordering::Relaxed),
        echoed.load(Ordering::Relaxed) >> 20,
        elapsed.as_secs_f64(),
        requests.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        (echoed.load(Ordering::Relaxed) >> 20) as f64 / elapsed.as_secs_f64(),
        number(&after, "/sockets/listen"),
        recovered.as_secs_f64()
    ));
    if (served as usize) < total {
        return Err(format!("the guest counted {served} requests, {total} were sent"));
    }
    if heap_after > baseline + HEAP_SLACK {
        return Err(format!("heap {heap_after} after the soak, baseline {baseline}: it grew"));
    }
    Ok(())
}

/// Runs the hostile suite inside `netns` against QEMU `pid` (from the host
/// side, in `cargo xtask qemu` and `stress`): the report lines, or why it failed.
pub fn client(netns: &str, pid: u32, sizes: Sizes) -> std::result::Result<Vec<String>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask's own binary: {e}"))?;
    let out = std::process::Command::new("ip")
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
