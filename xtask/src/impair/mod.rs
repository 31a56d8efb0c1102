//! A damaged link, made in user space (this machine's kernel has no
//! `sch_netem`): a relay between QEMU's `-netdev dgram` (UDP on the test
//! namespace's loopback) and the namespace's TAP device, which loses,
//! duplicates, reorders, delays and corrupts frames, each direction on its
//! own seeded random stream, so that a failure reproduces from its seed.
//!
//! - this file: the pure impairment logic (no I/O, time passed in), tested;
//! - `relay.rs`: the relay process (`cargo xtask impair-relay`, hidden),
//!   which the harness starts inside the boot's namespace;
//! - `client.rs`: the damaged-link case's client (`cargo xtask lossy-client`,
//!   hidden), run inside the namespace like the hostile suite's.

pub mod case;
pub mod client;
pub mod flows;
pub mod h2load;
pub mod relay;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::frames::{ETHERNET_HEADER, ETHERTYPE_IPV4, IPV4_HEADER};

/// Rates are in parts per million of frames, so that a spec is exact, `Eq`,
/// and prints back as it was written.
pub const MILLION: u32 = 1_000_000;

/// How long a frame picked for reordering waits for a later frame of its
/// direction to overtake it; if none comes, it goes anyway (then it was
/// only delayed). A few round trips of the TCG guest's loopback link.
pub const REORDER_HOLD: Duration = Duration::from_millis(20);

/// What one direction does to its frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    /// Frames dropped, per million.
    pub loss: u32,
    /// Frames sent twice, per million.
    pub duplicate: u32,
    /// Frames held back until the next frame has passed them, per million.
    pub reorder: u32,
    /// IPv4 frames with one bit of the IP datagram flipped, per million
    /// (never the Ethernet header, never ARP: there a flip would go unnoticed).
    pub flip: u32,
    /// Added to every frame's trip (order kept).
    pub delay: Duration,
}

impl Spec {
    /// A perfect wire.
    pub const CLEAN: Spec = Spec { loss: 0, duplicate: 0, reorder: 0, flip: 0, delay: Duration::ZERO };

    /// Parses `loss=2%,dup=2%,reorder=5%,flip=1%,delay=1ms` (any subset;
    /// rates in percent with up to four decimals, the delay in ms).
    pub fn parse(text: &str) -> Result<Spec, String> {
        let mut spec = Spec::CLEAN;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty() && *p != "clean") {
            let (key, value) = part.split_once('=').ok_or_else(|| format!("{part:?}: expected key=value"))?;
            if key == "delay" {
                let ms = value.strip_suffix("ms").unwrap_or(value);
                let ms: u64 = ms.parse().map_err(|e| format!("delay {value:?}: {e}"))?;
                spec.delay = Duration::from_millis(ms);
                continue;
            }
            let rate = parse_percent(value)?;
            match key {
                "loss" => spec.loss = rate,
                "dup" => spec.duplicate = rate,
                "reorder" => spec.reorder = rate,
                "flip" => spec.flip = rate,
                _ => return Err(format!("unknown impairment {key:?} (loss, dup, reorder, flip, delay)")),
            }
        }
        Ok(spec)
    }
}

/// "2%", "0.25%" or "2" (percent) as parts per million.
fn parse_percent(value: &str) -> Result<u32, String> {
    let number = value.strip_suffix('%').unwrap_or(value);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.len() > 4 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("rate {value:?}: at most four decimals"));
    }
    let whole: u32 = whole.parse().map_err(|e| format!("rate {value:?}: {e}"))?;
    let fraction: u32 = format!("{fraction:0<4}").parse().map_err(|e| format!("rate {value:?}: {e}"))?;
    let ppm = whole.checked_mul(10_000).and_then(|w| w.checked_add(fraction)).unwrap_or(u32::MAX);
    if ppm > MILLION {
        return Err(format!("rate {value:?} is over 100%"));
    }
    Ok(ppm)
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let pct = |ppm: u32| {
            let s = format!("{}.{:04}", ppm / 10_000, ppm % 10_000);
            format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
        };
        write!(
            f,
            "loss={},dup={},reorder={},flip={},delay={}ms",
            pct(self.loss),
            pct(self.duplicate),
            pct(self.reorder),
            pct(self.flip),
            self.delay.as_millis()
        )
    }
}

/// Both directions and the seed: everything that makes a run reproducible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Impairment {
    /// Frames from the namespace (the host's clients) to the guest.
    pub to_guest: Spec,
    /// Frames from the guest to the namespace.
    pub from_guest: Spec,
    pub seed: u64,
}

impl Impairment {
    /// The same damage both ways.
    pub fn both(spec: Spec, seed: u64) -> Impairment {
        Impairment { to_guest: spec, from_guest: spec, seed }
    }
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "to guest {}; from guest {}; seed {:#x}", self.to_guest, self.from_guest, self.seed)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and every seed,
/// zero included, gives a full-period stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `ppm` per million.
    pub fn chance(&mut self, ppm: u32) -> bool {
        // The high bits, scaled: no modulo bias worth speaking of at 2^64.
        ((u128::from(self.next_u64()) * u128::from(MILLION)) >> 64) < u128::from(ppm)
    }
}

/// What one direction did, frame by frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub frames_in: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub flipped: u64,
    pub frames_out: u64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} in, {} lost, {} duplicated, {} reordered, {} bit-flipped, {} out",
            self.frames_in, self.lost, self.duplicated, self.reordered, self.flipped, self.frames_out
        )
    }
}

/// One direction of the damaged link. Time is microseconds since the relay
/// started, passed in, so that the logic is pure and testable.
pub struct Direction {
    spec: Spec,
    /// This direction's seed: with a frame's place in its connection, it
    /// makes the frame's own draws.
    base: u64,
    /// The draws of frames that belong to no numbered connection, in turn.
    rng: Rng,
    /// A frame picked for reordering: it leaves right after the next frame,
    /// or at its deadline.
    held: Option<(u64, Vec<u8>)>,
    /// Frames on their way, in order, each with the time it may leave.
    queue: VecDeque<(u64, Vec<u8>)>,
    counts: Counts,
}

/// A seed for `b` within `a`, through one SplitMix step, so that nearby
/// pairs (seeds n and n + 1, connections k and k + 1) give unrelated streams.
fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Direction {
    /// `stream` tells the directions of one seed apart.
    pub fn new(spec: Spec, seed: u64, stream: u64) -> Direction {
        // Mix the stream in through one SplitMix step, so that seeds n and
        // n + 1 do not give overlapping streams.
        let base = mix(seed, stream);
        Direction { spec, base, rng: Rng::new(base), held: None, queue: VecDeque::new(), counts: Counts::default() }
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// A frame arrives at `now`; `place` is its connection and its index in
    /// this direction of it (`flows::Flows::place`), if it has one. The same
    /// random numbers are drawn for every frame, whatever happens to it, so
    /// the damage done to a frame depends only on the seed and its place:
    /// (connection, index) for a frame of a numbered connection, whatever
    /// else the link carried; its turn among the others for the rest.
    pub fn push(&mut self, now: u64, frame: Vec<u8>, place: Option<(u32, u64)>) {
        self.counts.frames_in += 1;
        let mut own;
        let rng = match place {
            Some((flow, index)) => {
                own = Rng::new(mix(mix(self.base, u64::from(flow)), index));
                &mut own
            }
            None => &mut self.rng,
        };
        let lose = rng.chance(self.spec.loss);
        let duplicate = rng.chance(self.spec.duplicate);
        let reorder = rng.chance(self.spec.reorder);
        let flip = rng.chance(self.spec.flip);
        let bit = rng.next_u64();
        if lose {
            self.counts.lost += 1;
            return;
        }
        let mut frame = frame;
        if flip && flip_bit(&mut frame, bit) {
            self.counts.flipped += 1;
        }
        let due = now.saturating_add(micros(self.spec.delay));
        let mut out = vec![frame];
        if duplicate {
            self.counts.duplicated += 1;
            out.push(out[0].clone());
        }
        let earlier = self.held.take();
        if reorder
            && earlier.is_none()
            && let Some(last) = out.pop()
        {
            self.counts.reordered += 1;
            self.held = Some((due.saturating_add(micros(REORDER_HOLD)), last));
        }
        for f in out {
            self.enqueue(due, f);
        }
        // The frame held back leaves right behind this one.
        if let Some((_, f)) = earlier {
            self.enqueue(due, f);
        }
    }

    /// Queues in order: a frame never leaves before one queued earlier.
    fn enqueue(&mut self, due: u64, frame: Vec<u8>) {
        let due = self.queue.back().map_or(due, |(last, _)| due.max(*last));
        self.queue.push_back((due, frame));
    }

    /// The next frame that may leave at `now`, if any.
    pub fn pop_due(&mut self, now: u64) -> Option<Vec<u8>> {
        if self.held.as_ref().is_some_and(|(deadline, _)| *deadline <= now)
            && let Some((deadline, f)) = self.held.take()
        {
            self.enqueue(deadline, f);
        }
        if self.queue.front().is_some_and(|(due, _)| *due <= now) {
            self.counts.frames_out += 1;
            return self.queue.pop_front().map(|(_, f)| f);
        }
        None
    }

    /// When `pop_due` will next have something, if anything is waiting.
    pub fn next_wake(&self) -> Option<u64> {
        let queued = self.queue.front().map(|(due, _)| *due);
        let held = self.held.as_ref().map(|(deadline, _)| *deadline);
        match (queued, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Flips bit `bit` (mod the datagram's length) of an IPv4 frame's IP
/// datagram: the IP header checksum or the TCP/UDP/ICMP checksum covers
/// every such bit, so a receiver that checks can always tell. Other frames
/// (ARP has no checksum) are left alone; returns whether a bit was flipped.
pub fn flip_bit(frame: &mut [u8], bit: u64) -> bool {
    if frame.len() < ETHERNET_HEADER + IPV4_HEADER
        || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4
        || frame[ETHERNET_HEADER] >> 4 != 4
    {
        return false;
    }
    let ip_start = ETHERNET_HEADER;
    // The datagram, not the Ethernet padding after it (a flip there is harmless and unseen).
    let total = usize::from(u16::from_be_bytes([frame[ip_start + 2], frame[ip_start + 3]]));
    let len = total.clamp(IPV4_HEADER, frame.len() - ip_start);
    let index = bit % (len as u64 * 8);
    let (byte, shift) = ((index / 8) as usize, index % 8);
    frame[ip_start + byte] ^= 1 << shift;
    true
}

/// A libpcap file (Ethernet link type), so that a damaged run can be read
/// in Wireshark or `tshark -z expert`.
pub struct Pcap<W: std::io::Write> {
    out: W,
}

/// libpcap's magic (microsecond timestamps) and LINKTYPE_ETHERNET.
const PCAP_MAGIC: u32 = 0xA1B2_C3D4;
const LINKTYPE_ETHERNET: u32 = 1;
const PCAP_SNAPLEN: u32 = 65_535;

impl<W: std::io::Write> Pcap<W> {
    pub fn new(mut out: W) -> std::io::Result<Pcap<W>> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&PCAP_MAGIC.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&PCAP_SNAPLEN.to_le_bytes());
        header.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        Ok(Pcap { out })
    }

    /// One frame, stamped `micros` after the epoch.
    pub fn write(&mut self, micros: u64, frame: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let kept = &frame[..frame.len().min(PCAP_SNAPLEN as usize)];
        let mut record = Vec::with_capacity(16 + kept.len());
        record.extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        record.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        record.extend_from_slice(&(kept.len() as u32).to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(kept);
        self.out.write_all(&record)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::frames;

    const ISSUE_14: &str = "loss=2%,dup=2%,reorder=5%,flip=1%";

    /// Frames numbered in their first bytes (not IPv4: never flipped).
    fn numbered(n: u32) -> Vec<u8> {
        let mut f = n.to_be_bytes().to_vec();
        f.resize(64, 0);
        f
    }

    fn number(f: &[u8]) -> u32 {
        u32::from_be_bytes([f[0], f[1], f[2], f[3]])
    }

    /// Pushes `frames` one per millisecond and drains as it goes, then
    /// until nothing is left; returns the output in order.
    fn run(dir: &mut Direction, frames: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut now = 0;
        for f in frames {
            dir.push(now, f, None);
            while let Some(f) = dir.pop_due(now) {
                out.push(f);
            }
            now += 1000;
        }
        while let Some(at) = dir.next_wake() {
            now = now.max(at);
            while let Some(f) = dir.pop_due(now) {
                out.push(f);
            }
        }
        out
    }

    fn udp_frame(i: u32) -> Vec<u8> {
        let (a, b) = (Ipv4Addr::new(10, 0, 2, 2), Ipv4Addr::new(10, 0, 2, 15));
        let payload = format!("datagram {i} {}", "x".repeat((i % 300) as usize));
        let l4 = frames::udp(a, b, 1000, 7, payload.as_bytes());
        frames::ipv4_frame([2; 6], [4; 6], &frames::Ipv4::new(a, b, frames::PROTO_UDP), &l4)
    }

    #[test]
    fn specs_parse_and_print_back() {
        let spec = Spec::parse("loss=2%,dup=2,reorder=5.5%,flip=0.0125%,delay=3ms").unwrap();
        assert_eq!(
            spec,
            Spec { loss: 20_000, duplicate: 20_000, reorder: 55_000, flip: 125, delay: Duration::from_millis(3) }
        );
        assert_eq!(spec.to_string(), "loss=2%,dup=2%,reorder=5.5%,flip=0.0125%,delay=3ms");
        assert_eq!(Spec::parse(&spec.to_string()).unwrap(), spec);
        assert_eq!(Spec::parse("clean").unwrap(), Spec::CLEAN);
        assert_eq!(Spec::parse("").unwrap(), Spec::CLEAN);
        assert!(Spec::parse("loss=101%").is_err());
        assert!(Spec::parse("loss=1.23456%").is_err());
        assert!(Spec::parse("jitter=1%").is_err());
        assert!(Spec::parse("loss").is_err());
        assert!(Spec::parse("loss=-1%").is_err());
    }

    #[test]
    fn a_clean_link_delivers_everything_in_order_unchanged() {
        let mut dir = Direction::new(Spec::CLEAN, 7, 0);
        let input: Vec<_> = (0..1000).map(udp_frame).collect();
        assert_eq!(run(&mut dir, input.clone()), input);
        assert_eq!(dir.counts().frames_out, 1000);
    }

    #[test]
    fn the_same_seed_gives_the_same_output_and_another_seed_does_not() {
        let spec = Spec::parse(ISSUE_14).unwrap();
        let input: Vec<_> = (0..5000).map(udp_frame).collect();
        let a = run(&mut Direction::new(spec, 42, 1), input.clone());
        let b = run(&mut Direction::new(spec, 42, 1), input.clone());
        assert_eq!(a, b);
        assert_ne!(a, run(&mut Direction::new(spec, 43, 1), input.clone()));
        // The two directions of one seed differ too.
        assert_ne!(a, run(&mut Direction::new(spec, 42, 0), input));
    }

    #[test]
    fn a_frame_of_a_connection_meets_the_same_fate_whatever_else_the_link_carried() {
        let spec = Spec::parse("loss=10%").unwrap();
        // Two guests, one seed: the second sends other frames in between
        // (more ACKs, another connection), yet the k-th frame of connection
        // 3 is lost for both or for neither.
        let lost = |extra: u64| {
            let mut dir = Direction::new(spec, 14, 1);
            let mut kept = Vec::new();
            for i in 0..2000u32 {
                for _ in 0..extra {
                    dir.push(0, numbered(u32::MAX), None);
                }
                dir.push(0, numbered(i), Some((3, u64::from(i))));
                while let Some(f) = dir.pop_due(0) {
                    kept.push(number(&f));
                }
            }
            (0..2000).filter(|i| !kept.contains(i)).collect::<Vec<u32>>()
        };
        let a = lost(0);
        assert!(a.len() > 150 && a.len() < 250, "{}", a.len());
        assert_eq!(a, lost(2));
        // Another connection's frames fare otherwise.
        let mut dir = Direction::new(spec, 14, 1);
        let mut kept = Vec::new();
        for i in 0..2000u32 {
            dir.push(0, numbered(i), Some((4, u64::from(i))));
            while let Some(f) = dir.pop_due(0) {
                kept.push(number(&f));
            }
        }
        assert_ne!(a, (0..2000).filter(|i| !kept.contains(i)).collect::<Vec<u32>>());
    }

    #[test]
    fn rates_are_near_what_was_asked() {
        let spec = Spec::parse("loss=2%,dup=3%,reorder=5%,flip=1%").unwrap();
        let mut dir = Direction::new(spec, 2026, 0);
        let n = 200_000u32;
        let out = run(&mut dir, (0..n).map(udp_frame));
        let c = dir.counts();
        let near = |got: u64, ppm: u32| {
            let want = f64::from(n) * f64::from(ppm) / f64::from(MILLION);
            // Well beyond four standard deviations of a binomial count.
            (got as f64 - want).abs() < 5.0 * want.sqrt() + 1.0
        };
        assert!(near(c.lost, spec.loss), "{c}");
        // Losses are drawn first: the rest apply to the frames that survive.
        let survivors = f64::from(n) * 0.98;
        assert!((c.duplicated as f64 - survivors * 0.03).abs() < 5.0 * (survivors * 0.03).sqrt(), "{c}");
        assert!((c.flipped as f64 - survivors * 0.01).abs() < 5.0 * (survivors * 0.01).sqrt(), "{c}");
        // A frame can only be held when none is: a little under 5 %.
        assert!(c.reordered as f64 > survivors * 0.045 && c.reordered as f64 <= survivors * 0.05 + 300.0, "{c}");
        assert_eq!(c.frames_out, u64::from(n) - c.lost + c.duplicated, "{c}");
        assert_eq!(out.len() as u64, c.frames_out);
    }

    #[test]
    fn a_reordered_frame_leaves_right_behind_the_next_one() {
        let spec = Spec { reorder: MILLION, ..Spec::CLEAN };
        let mut dir = Direction::new(spec, 1, 0);
        let out: Vec<u32> = run(&mut dir, (0..6).map(numbered)).iter().map(|f| number(f)).collect();
        // 0 is held, 1 passes it; 2 is held, 3 passes it; ...
        assert_eq!(out, [1, 0, 3, 2, 5, 4]);
        assert_eq!(dir.counts().reordered, 3);
    }

    #[test]
    fn a_held_frame_goes_anyway_when_nothing_follows() {
        let spec = Spec { reorder: MILLION, ..Spec::CLEAN };
        let mut dir = Direction::new(spec, 1, 0);
        dir.push(0, numbered(9), None);
        assert_eq!(dir.pop_due(0), None);
        let hold = micros(REORDER_HOLD);
        assert_eq!(dir.next_wake(), Some(hold));
        assert_eq!(dir.pop_due(hold - 1), None);
        assert_eq!(dir.pop_due(hold).map(|f| number(&f)), Some(9));
        assert_eq!(dir.next_wake(), None);
    }

    #[test]
    fn delay_holds_every_frame_and_keeps_order() {
        let spec = Spec { delay: Duration::from_millis(5), ..Spec::CLEAN };
        let mut dir = Direction::new(spec, 1, 0);
        dir.push(0, numbered(1), None);
        dir.push(100, numbered(2), None);
        assert_eq!(dir.pop_due(4_999), None);
        assert_eq!(dir.pop_due(5_000).map(|f| number(&f)), Some(1));
        assert_eq!(dir.pop_due(5_000), None);
        assert_eq!(dir.pop_due(5_100).map(|f| number(&f)), Some(2));
    }

    #[test]
    fn total_loss_delivers_nothing_and_duplication_doubles() {
        let mut lossy = Direction::new(Spec { loss: MILLION, ..Spec::CLEAN }, 1, 0);
        assert!(run(&mut lossy, (0..100).map(numbered)).is_empty());
        let mut dup = Direction::new(Spec { duplicate: MILLION, ..Spec::CLEAN }, 1, 0);
        let out: Vec<u32> = run(&mut dup, (0..3).map(numbered)).iter().map(|f| number(f)).collect();
        assert_eq!(out, [0, 0, 1, 1, 2, 2]);
    }

    /// Whether a frame's IPv4 header and UDP checksums both verify.
    fn checksums_hold(frame: &[u8]) -> bool {
        let ip = &frame[ETHERNET_HEADER..];
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if ihl != IPV4_HEADER || total > ip.len() || frames::checksum(&ip[..ihl], 0) != 0 {
            return false;
        }
        let l4 = &ip[ihl..total];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, ip[9]]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        frames::checksum(l4, u32::from(frames::ones_sum(&pseudo, 0))) == 0
    }

    #[test]
    fn every_flip_is_one_bit_of_the_datagram_and_a_checksum_catches_it() {
        let spec = Spec { flip: MILLION, ..Spec::CLEAN };
        let mut dir = Direction::new(spec, 5, 0);
        let input: Vec<_> = (0..2000).map(udp_frame).collect();
        assert!(input.iter().all(|f| checksums_hold(f)));
        let out = run(&mut dir, input.clone());
        assert_eq!(dir.counts().flipped, 2000);
        for (before, after) in input.iter().zip(&out) {
            let diff: u32 = before.iter().zip(after).map(|(a, b)| (a ^ b).count_ones()).sum();
            assert_eq!(diff, 1);
            assert_eq!(before[..ETHERNET_HEADER], after[..ETHERNET_HEADER], "the Ethernet header was hit");
            assert!(!checksums_hold(after), "a flip went unnoticed");
        }
        // ARP has no checksum: left alone.
        let arp = frames::ethernet([0xFF; 6], [2; 6], frames::ETHERTYPE_ARP, &[0; 28]);
        assert_eq!(run(&mut dir, [arp.clone()]), [arp]);
    }

    #[test]
    fn padding_after_the_datagram_is_never_flipped() {
        let mut frame = udp_frame(0);
        let datagram_end = frame.len();
        frame.resize(datagram_end + 40, 0);
        for bit in 0..20_000 {
            let mut f = frame.clone();
            assert!(flip_bit(&mut f, bit));
            assert_eq!(f[datagram_end..], frame[datagram_end..]);
        }
    }

    #[test]
    fn pcap_has_the_global_header_and_one_record_per_frame() {
        let mut pcap = Pcap::new(Vec::new()).unwrap();
        pcap.write(1_500_000, &[1, 2, 3]).unwrap();
        let bytes = pcap.out;
        assert_eq!(bytes.len(), 24 + 16 + 3);
        assert_eq!(bytes[..4], PCAP_MAGIC.to_le_bytes());
        assert_eq!(bytes[24..28], 1u32.to_le_bytes());
        assert_eq!(bytes[28..32], 500_000u32.to_le_bytes());
        assert_eq!(bytes[40..], [1, 2, 3]);
    }
}
