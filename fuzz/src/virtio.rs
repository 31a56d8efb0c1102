//! `virtio_rx`: Skiff's virtio-net driver (`skiff_drivers::virtio::net`)
//! against a fake device whose every move comes from the fuzz input: the
//! used-ring entries it writes (ids, lengths, index jumps, batches), the
//! `virtio_net_hdr` and frame bytes in the buffers, transmit completions,
//! its `avail_event`, and the features, header layout, queue size and MTU it
//! offers.
//!
//! The harness keeps a model of which buffers the device holds. Checked:
//!
//! - no buffer is ever made available while the device still holds it, and
//!   with everything received, recycled and flushed, the driver has every
//!   receive buffer with the device again (no leak); transmit buffers are
//!   free or in flight, never lost;
//! - the driver kicks a queue exactly when the device asked for it (with
//!   EVENT_IDX, once the new entries pass the `avail_event` it wrote);
//! - while the device keeps its used index honest, every used entry has the
//!   outcome the model predicts — a frame with exactly the bytes the device
//!   wrote (its checksum completed where the header asks), or a drop of the
//!   predicted kind — and the counters say so, one count per entry;
//! - with MRG_RXBUF, a frame spans `num_buffers` used entries: the model
//!   joins them as the device wrote them (or predicts the drop: a count of
//!   0, more than the device holds or has used, a broken chain, lengths that
//!   do not add up), and with GUEST_TSO4/6 it judges the GSO header.

use std::collections::VecDeque;

use crate::input::Input;
use skiff_drivers::virtio::fake::{DeviceQueue, FakeHal, FakeTransport};
use skiff_drivers::virtio::net::gso::{self, BadGso, Tso};
use skiff_drivers::virtio::net::header::{
    FLAG_DATA_VALID, FLAG_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, LEGACY_LEN, MODERN_LEN, NetHeader,
};
use skiff_drivers::virtio::net::{
    MAX_JOINED, NetFeatures, NetStats, RxChecksum, VirtioNet, ip_frame_len, offload,
};
use skiff_net::checksum::{
    self,
    test_frames::{tcp4_frame, udp4_frame},
};
use skiff_net::device::{NetDevice, RxHalf, TxHalf};

type Net = VirtioNet<FakeHal, FakeTransport>;

/// Ethernet's header: the shortest frame the driver hands on.
const ETHERNET_HEADER: usize = 14;
/// Operations per input, so that every input runs in bounded time.
const MAX_OPS: usize = 4096;
/// Frames the harness holds (received, not yet recycled) at most.
const MAX_LENT: usize = 8;

/// What the model expects the driver to make of one used entry.
#[derive(Debug)]
enum Expect {
    Frame { bytes: Vec<u8>, checksum: RxChecksum },
    BadId,
    NotInFlight,
    BadLen,
    Short,
    BadHeader,
    BadNumBuffers,
    BadChain,
    GsoNotNegotiated,
    GsoMismatch,
}

struct Harness {
    net: Net,
    t: FakeTransport,
    event_idx: bool,
    /// Per queue (receive, transmit): available entries the device has
    /// seen, and the `avail_event` it last wrote (EVENT_IDX).
    avail_seen: [u16; 2],
    avail_event: [u16; 2],
    rx: DeviceQueue,
    tx: DeviceQueue,
    size: u16,
    header_len: usize,
    guest_csum: bool,
    /// MRG_RXBUF and GUEST_TSO4/6 as negotiated.
    mergeable: bool,
    gso: Tso,
    /// Per receive buffer: the device holds it (made available, and no used
    /// entry naming it taken by the driver yet); what the device last wrote
    /// there (as the driver may have changed it: completed checksums).
    held: Vec<bool>,
    shadow: Vec<Vec<u8>>,
    tx_held: Vec<bool>,
    /// Used entries the driver has not taken yet, in order. Their outcome
    /// is predicted when the driver takes them: a buffer may have been
    /// reposted since the device wrote the entry.
    expected: VecDeque<(u32, u32)>,
    /// Whether `expected` is exact: false once the device moved its used
    /// index past what the queue holds (the driver then skips entries).
    exact: bool,
    /// Entries published since the driver last found the used ring empty.
    since_empty: usize,
    /// Counts of each expected outcome taken so far, as the driver counts them.
    model: NetStats,
    lent: Vec<skiff_drivers::virtio::net::RxFrame>,
}

/// Whether to print each used entry and what the model expects of it
/// (`SKIFF_FUZZ_TRACE=1`), to follow a crashing input.
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("SKIFF_FUZZ_TRACE").is_some())
}

/// One fuzz input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(mut h) = Harness::new(&mut input) else { return };
    for _ in 0..MAX_OPS {
        if input.done() {
            break;
        }
        let op = input.u8() % 13;
        if trace() {
            eprintln!("op {op}");
        }
        match op {
            0..=2 => h.deliver(&mut input),
            3 => h.jump(&mut input),
            4 => h.receive_one(),
            5 => h.recycle_one(&mut input),
            6 => h.drain(),
            7 => h.send(&mut input),
            8 => h.complete_tx(&mut input),
            9 => h.net.set_interrupts(input.u8() & 1 == 1),
            10 => h.set_avail_event(&mut input),
            11 => h.deliver_chain(&mut input),
            _ => h.send_big(&mut input),
        }
        h.check_tx();
    }
    h.drain();
    let rx_in_flight = h.net.split().0.in_flight();
    assert_eq!(rx_in_flight, usize::from(h.size), "receive buffers leaked");
}

impl Harness {
    fn new(input: &mut Input) -> Option<Harness> {
        let setup = input.u8();
        let legacy = setup & 1 != 0;
        let mut offered = NetFeatures::MAC | NetFeatures::STATUS;
        offered |= if legacy { NetFeatures::ANY_LAYOUT } else { NetFeatures::VERSION_1 };
        for (bit, feature) in [
            (1, NetFeatures::GUEST_CSUM),
            (2, NetFeatures::CSUM),
            (3, NetFeatures::RING_EVENT_IDX),
            (4, NetFeatures::MTU),
            (5, NetFeatures::MRG_RXBUF),
            (6, NetFeatures::GUEST_TSO4 | NetFeatures::GUEST_TSO6),
            (7, NetFeatures::HOST_TSO4 | NetFeatures::HOST_TSO6),
        ] {
            if setup & (1 << bit) != 0 {
                offered |= feature;
            }
        }
        // Legacy queue sizes are the device's and must be powers of two;
        // modern ones are rounded down to one.
        let queue_max = if legacy { 1 << (input.u8() % 6) } else { u32::from(input.u8() % 40) + 1 };
        let mtu = input.u16();
        let mut config = vec![0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0, 1, 0];
        config.extend_from_slice(&mtu.to_le_bytes());
        let t = FakeTransport::new(offered.bits(), config, queue_max);
        t.0.borrow_mut().legacy = legacy;
        let net = Net::new(t.clone(), u64::from(setup)).ok()?;
        let size = net.queue_sizes().0;
        let features = net.features();
        let header_len =
            if features.intersects(NetFeatures::VERSION_1 | NetFeatures::MRG_RXBUF) { MODERN_LEN } else { LEGACY_LEN };
        let mut rx = DeviceQueue::new(t.queue(0));
        let tx = DeviceQueue::new(t.queue(1));
        let mut held = vec![false; usize::from(size)];
        for id in rx.take_avail() {
            assert!(!held[usize::from(id)], "buffer {id} made available twice");
            held[usize::from(id)] = true;
        }
        assert!(held.iter().all(|&h| h), "receive queue not filled at start");
        let shadow = (0..size).map(|id| vec![0; rx.descriptor(id).1 as usize]).collect();
        Some(Harness {
            t: t.clone(),
            event_idx: features.contains(NetFeatures::RING_EVENT_IDX),
            avail_seen: [size, 0],
            avail_event: [0, 0],
            guest_csum: net.info().rx_checksum_offload,
            mergeable: features.contains(NetFeatures::MRG_RXBUF),
            gso: Tso { v4: features.contains(NetFeatures::GUEST_TSO4), v6: features.contains(NetFeatures::GUEST_TSO6) },
            net,
            rx,
            tx,
            size,
            header_len,
            held,
            shadow,
            tx_held: vec![false; usize::from(size)],
            expected: VecDeque::new(),
            exact: true,
            since_empty: 0,
            model: NetStats::default(),
            lent: Vec::new(),
        })
    }

    /// The device writes a frame into a buffer it holds (or not), and a
    /// used entry (honest or not).
    fn deliver(&mut self, input: &mut Input) {
        let size = u32::from(self.size);
        let choice = input.u8();
        let id = match choice {
            0..=0xEF => u32::from(choice) % (size + 2),
            0xF0 => u32::from(u16::MAX),
            0xF1 => size + u32::from(input.u16()),
            _ => input.u32(),
        };
        let bytes = self.packet(input);
        if let Some(slot) = usize::try_from(id).ok().filter(|&i| i < self.held.len() && self.held[i]) {
            self.rx.fill(slot as u16, &bytes);
            let n = bytes.len().min(self.shadow[slot].len());
            self.shadow[slot][..n].copy_from_slice(&bytes[..n]);
        }
        let len = match input.u8() % 8 {
            0 => input.u32(),
            1 => u32::from(input.u8()),
            2 => self.shadow.first().map_or(0, |s| s.len() as u32) + 1,
            _ => bytes.len() as u32,
        };
        self.publish(&[(id, len)]);
    }

    /// A `virtio_net_hdr` and a frame: sane ones with checksum flags, or raw bytes.
    fn packet(&mut self, input: &mut Input) -> Vec<u8> {
        let mode = input.u8();
        let payload_len = usize::from(input.u8());
        let mut frame = if mode & 0x10 != 0 {
            input.bytes(payload_len)
        } else {
            let mut f = udp4_frame(&input.bytes(payload_len % 64));
            if mode & 0x20 != 0 {
                f[23] = 6; // TCP (the segment may now be too short for its header)
            }
            f
        };
        let mut out = vec![0; self.header_len];
        if mode & 1 != 0 {
            out = input.bytes(self.header_len);
        } else {
            let mut header = NetHeader::default();
            if mode & 2 != 0 {
                header.flags |= FLAG_NEEDS_CSUM;
                match offload::prepare(&mut frame) {
                    Some((start, offset)) if mode & 8 == 0 => (header.csum_start, header.csum_offset) = (start, offset),
                    _ => (header.csum_start, header.csum_offset) = (input.u16(), input.u16()),
                }
            }
            if mode & 4 != 0 {
                header.flags |= FLAG_DATA_VALID;
            }
            header.emit(&mut out, self.header_len);
            if self.header_len == MODERN_LEN {
                out[10..12].copy_from_slice(&u16::from(mode >> 6).to_le_bytes()); // num_buffers 0..=3
            }
        }
        out.extend_from_slice(&frame);
        out
    }

    /// Makes `entries` visible at once (one index update for the batch).
    fn publish(&mut self, entries: &[(u32, u32)]) {
        for (ahead, &(id, len)) in entries.iter().enumerate() {
            self.rx.write_used(ahead as u16, id, len);
            if self.exact {
                self.expected.push_back((id, len));
            }
        }
        self.rx.publish_used(entries.len() as u16);
        self.since_empty += entries.len();
        if self.since_empty > usize::from(self.size) {
            self.inexact(); // more entries than slots: the driver sees a jump
        }
    }

    /// Takes a used entry as the driver's queue does: `Err` with the
    /// outcome if the queue refuses it, else its slot (no longer held).
    fn take_entry(&mut self, id: u32, len: u32) -> Result<usize, Expect> {
        let Some(slot) = usize::try_from(id).ok().filter(|&i| i < self.held.len()) else { return Err(Expect::BadId) };
        if !self.held[slot] {
            return Err(Expect::NotInFlight);
        }
        self.held[slot] = false;
        if len as usize > self.shadow[slot].len() {
            return Err(Expect::BadLen);
        }
        Ok(slot)
    }

    /// What the driver should make of a used entry it takes now (and, for
    /// a frame over several buffers, of the entries after it); updates
    /// which buffers the device holds.
    fn predict(&mut self, id: u32, len: u32) -> Expect {
        let slot = match self.take_entry(id, len) {
            Ok(slot) => slot,
            Err(expect) => return expect,
        };
        let len = len as usize;
        let hl = self.header_len;
        if len < hl + ETHERNET_HEADER {
            return Expect::Short;
        }
        let header = NetHeader::parse(&self.shadow[slot], hl).expect("buffer holds a header");
        let count = if self.mergeable { header.num_buffers } else { 1 };
        let in_flight = self.held.iter().filter(|&&h| h).count();
        let unmerged_claim = !self.mergeable && hl == MODERN_LEN && header.num_buffers > 1;
        if count == 0 || usize::from(count) > in_flight + 1 || unmerged_claim {
            return Expect::BadNumBuffers;
        }
        let exact = count > 1 || header.gso_type != GSO_NONE;
        let (guest_csum, gso) = (self.guest_csum, self.gso);
        if count == 1 {
            // In place: the driver completes the checksum in the buffer.
            let data = &mut self.shadow[slot][hl..len];
            return match judge(data, &header, exact, guest_csum, gso, &mut self.model) {
                Ok(checksum) => Expect::Frame { bytes: data.to_vec(), checksum },
                Err(expect) => expect,
            };
        }
        let mut joined = self.shadow[slot][hl..len].to_vec();
        let mut broken = false;
        for _ in 1..count {
            // The device used fewer buffers than it claimed.
            let Some((id, len)) = self.expected.pop_front() else { return Expect::BadNumBuffers };
            match self.take_entry(id, len) {
                Ok(slot) => {
                    let len = len as usize;
                    if len == 0 || joined.len() + len > MAX_JOINED {
                        broken = true;
                    }
                    if !broken {
                        joined.extend_from_slice(&self.shadow[slot][..len]);
                    }
                }
                Err(expect) => {
                    match expect {
                        Expect::BadId => self.model.drop_bad_id += 1,
                        Expect::NotInFlight => self.model.drop_not_in_flight += 1,
                        _ => self.model.rx_drop_bad_len += 1,
                    }
                    return Expect::BadChain;
                }
            }
        }
        if broken {
            return Expect::BadChain;
        }
        self.model.rx_merged_frames += 1;
        match judge(&mut joined, &header, exact, guest_csum, gso, &mut self.model) {
            Ok(checksum) => Expect::Frame { bytes: joined, checksum },
            Err(expect) => expect,
        }
    }

    /// The device writes one packet over up to six buffers it holds, with
    /// a `num_buffers` that is honest or not, and publishes their used
    /// entries at once (lengths honest or not).
    fn deliver_chain(&mut self, input: &mut Input) {
        let want = 1 + usize::from(input.u8() % 6);
        let start = usize::from(input.u8()) % self.held.len();
        let ids: Vec<usize> =
            (0..self.held.len()).map(|i| (start + i) % self.held.len()).filter(|&i| self.held[i]).take(want).collect();
        if ids.is_empty() {
            return;
        }
        let mut bytes = self.big_packet(input);
        let honest = ids.len() as u16;
        let num_buffers = match input.u8() % 8 {
            0 => input.u16(),
            1 => honest + 1,
            2 => honest - 1,
            _ => honest,
        };
        if self.header_len == MODERN_LEN {
            bytes[10..12].copy_from_slice(&num_buffers.to_le_bytes());
        }
        let mut entries = Vec::new();
        let mut at = 0;
        for &slot in &ids {
            let n = (bytes.len() - at).min(self.shadow[slot].len());
            self.rx.fill(slot as u16, &bytes[at..at + n]);
            self.shadow[slot][..n].copy_from_slice(&bytes[at..at + n]);
            entries.push((slot as u32, n as u32));
            at += n;
        }
        if input.u8() % 8 == 0 {
            let i = usize::from(input.u8()) % entries.len();
            entries[i].1 = u32::from(input.u16());
        }
        self.publish(&entries);
    }

    /// A header and a TCP frame of up to 6,000 payload bytes: GSO types
    /// right, wrong or unnegotiated, `gso_size`/`hdr_len` sane or fuzzed,
    /// lengths that agree with the IP header or not.
    fn big_packet(&mut self, input: &mut Input) -> Vec<u8> {
        let mode = input.u8();
        let payload: Vec<u8> = (0..usize::from(input.u16() % 6000)).map(|i| (i * 31) as u8).collect();
        let v6 = mode & 0x10 != 0;
        let mut frame = if v6 { checksum::test_frames::tcp6_frame(&payload) } else { tcp4_frame(&payload) };
        if mode & 0x20 != 0 {
            let cut = usize::from(input.u8());
            if input.u8() & 1 == 0 {
                frame.truncate(frame.len().saturating_sub(cut).max(ETHERNET_HEADER));
            } else {
                frame.extend(std::iter::repeat_n(0, cut));
            }
        }
        let kind = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
        let mut header = NetHeader {
            gso_type: match mode >> 6 {
                0 => GSO_NONE,
                1 => kind,
                2 => input.u8(),
                _ => kind | GSO_ECN,
            },
            gso_size: if mode & 8 != 0 { input.u16() } else { 1448 },
            hdr_len: if mode & 1 != 0 { input.u16() } else { 54 + if v6 { 20 } else { 0 } },
            ..NetHeader::default()
        };
        if mode & 2 != 0 {
            header.flags |= FLAG_NEEDS_CSUM;
            if let Some((start, offset)) = offload::prepare(&mut frame) {
                (header.csum_start, header.csum_offset) = (start, offset);
            }
        }
        if mode & 4 != 0 {
            header.flags |= FLAG_DATA_VALID;
        }
        let mut out = vec![0; self.header_len];
        header.emit(&mut out, self.header_len);
        out.extend_from_slice(&frame);
        out
    }

    /// The device moves its used index by an arbitrary amount: over stale
    /// slots, or further than the queue holds.
    fn jump(&mut self, input: &mut Input) {
        let by = input.u16();
        if input.u8() & 1 == 0 && by > 0 && by <= self.size {
            // A batch of fresh entries, published with one index update.
            let entries: Vec<(u32, u32)> =
                (0..by).map(|_| (u32::from(input.u8()) % u32::from(self.size + 1), u32::from(input.u16()))).collect();
            self.publish(&entries);
        } else {
            self.rx.publish_used(by);
            self.inexact();
        }
    }

    fn inexact(&mut self) {
        self.exact = false;
        self.expected.clear();
    }

    fn receive_one(&mut self) {
        if self.lent.len() >= MAX_LENT {
            return;
        }
        let before = self.net.split().0.stats();
        let frame = self.net.split().0.receive();
        let after = self.net.split().0.stats();
        match frame {
            Some(frame) => {
                assert!(frame.len() >= ETHERNET_HEADER, "a frame shorter than an Ethernet header");
                let bytes = self.net.split().0.bytes(&frame).to_vec();
                assert_eq!(bytes.len(), frame.len());
                self.take_expected(Some((&bytes, frame.checksum)), before, after);
                self.lent.push(frame);
            }
            None => {
                self.take_expected(None, before, after);
                self.since_empty = 0;
            }
        }
    }

    /// Matches what the driver did in one `receive` against the model.
    fn take_expected(&mut self, got: Option<(&[u8], RxChecksum)>, before: NetStats, after: NetStats) {
        if !self.exact {
            return;
        }
        loop {
            let expect = self.expected.pop_front().map(|(id, len)| {
                let expect = self.predict(id, len);
                if trace() {
                    eprintln!("used entry id {id} len {len}: expect {expect:?}");
                }
                expect
            });
            match expect {
                Some(Expect::Frame { bytes, checksum }) => {
                    let (frame, sum) = got.expect("the driver dropped a frame the model expects");
                    assert!(frame == bytes.as_slice(), "frame bytes differ from what the device wrote");
                    assert_eq!(sum, checksum, "checksum state");
                    self.model.rx_frames += 1;
                    self.model.rx_bytes += bytes.len() as u64;
                    break;
                }
                Some(Expect::BadId) => self.model.drop_bad_id += 1,
                Some(Expect::NotInFlight) => self.model.drop_not_in_flight += 1,
                Some(Expect::BadLen) => self.model.rx_drop_bad_len += 1,
                Some(Expect::Short) => self.model.rx_drop_short += 1,
                Some(Expect::BadHeader) => self.model.rx_drop_bad_header += 1,
                Some(Expect::BadNumBuffers) => self.model.rx_drop_bad_num_buffers += 1,
                Some(Expect::BadChain) => self.model.rx_drop_bad_chain += 1,
                Some(Expect::GsoNotNegotiated) => self.model.rx_drop_gso_not_negotiated += 1,
                Some(Expect::GsoMismatch) => self.model.rx_drop_gso_mismatch += 1,
                None => {
                    assert!(got.is_none(), "the driver delivered a frame the model does not expect");
                    break;
                }
            }
        }
        let counted = |s: &NetStats| {
            (s.rx_frames, s.rx_bytes, s.drop_bad_id, s.drop_not_in_flight, s.rx_drop_bad_len, s.rx_drop_short)
        };
        assert_eq!(counted(&after), counted(&self.model), "receive counters (before: {before:?})");
        assert_eq!(after.rx_drop_bad_header, self.model.rx_drop_bad_header, "bad-header counter");
        let offload = |s: &NetStats| {
            (
                s.rx_drop_bad_num_buffers,
                s.rx_drop_bad_chain,
                s.rx_drop_gso_not_negotiated,
                s.rx_drop_gso_mismatch,
                s.rx_merged_frames,
                s.rx_gso_frames,
            )
        };
        assert_eq!(offload(&after), offload(&self.model), "mergeable/GSO counters");
        assert_eq!(after.drop_bad_index, 0);
    }

    fn recycle_one(&mut self, input: &mut Input) {
        if !self.lent.is_empty() {
            let i = usize::from(input.u8()) % self.lent.len();
            let frame = self.lent.swap_remove(i);
            self.net.split().0.recycle(frame);
        }
    }

    /// Everything received and given back, and the buffers reposted.
    fn drain(&mut self) {
        for frame in self.lent.drain(..) {
            self.net.split().0.recycle(frame);
        }
        loop {
            self.receive_one();
            match self.lent.pop() {
                Some(frame) => self.net.split().0.recycle(frame),
                None => break,
            }
        }
        self.flush();
        let in_flight = self.net.split().0.in_flight();
        let held = self.held.iter().filter(|&&h| h).count();
        if self.exact {
            assert_eq!(in_flight, held, "the driver and the device disagree on who holds which buffers");
        }
        assert_eq!(in_flight, usize::from(self.size), "receive buffers leaked");
    }

    /// Flushes the driver and takes what it made available, as the device.
    fn flush(&mut self) {
        let kicks = |t: &FakeTransport, q: u16| t.0.borrow().notifications.iter().filter(|&&n| n == q).count();
        let before = [kicks(&self.t, 0), kicks(&self.t, 1)];
        self.net.flush();
        let rx_ids = self.rx.take_avail();
        let tx_ids = self.tx.take_avail();
        // A kick for a queue exactly when the device asked for one (spec
        // 2.7.10): with EVENT_IDX, when the new entries pass its avail_event;
        // without, for any new entries (this device never sets NO_NOTIFY).
        for (q, count) in [(0, rx_ids.len()), (1, tx_ids.len())] {
            let old = self.avail_seen[q];
            let new = old.wrapping_add(count as u16);
            self.avail_seen[q] = new;
            let event = self.avail_event[q];
            let wanted =
                count > 0 && (!self.event_idx || new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old));
            let kicked = kicks(&self.t, q as u16) - before[q];
            assert_eq!(kicked, usize::from(wanted), "queue {q}: kicks for {old}..{new} with avail_event {event}");
        }
        for id in rx_ids {
            let slot = usize::from(id);
            assert!(slot < self.held.len(), "made available a receive id {id} out of range");
            // (Once inexact, the model no longer knows which entries the driver took.)
            assert!(!self.exact || !self.held[slot], "receive buffer {id} made available while the device holds it");
            self.held[slot] = true;
        }
        for id in tx_ids {
            let slot = usize::from(id);
            assert!(slot < self.tx_held.len(), "made available a transmit id {id} out of range");
            assert!(!self.tx_held[slot], "transmit buffer {id} made available while the device holds it");
            self.tx_held[slot] = true;
        }
    }

    /// The device says after which available entry it wants a kick.
    fn set_avail_event(&mut self, input: &mut Input) {
        let q = usize::from(input.u8() & 1);
        let event = input.u16();
        self.avail_event[q] = event;
        [&self.rx, &self.tx][q].set_avail_event(event);
    }

    fn send(&mut self, input: &mut Input) {
        let len = usize::from(input.u16() % 1600);
        if let Some(mut tx) = self.net.split().1.reserve(len) {
            let frame =
                if input.u8() & 1 == 0 { udp4_frame(&vec![0xA5; len.saturating_sub(42)]) } else { vec![0; len] };
            let n = frame.len().min(len);
            self.net.split().1.bytes_mut(&mut tx)[..n].copy_from_slice(&frame[..n]);
            self.net.split().1.send(tx);
        }
        self.flush();
    }

    /// A TCP frame past the MTU for the device to segment (TSO), when the
    /// driver offers a buffer for one.
    fn send_big(&mut self, input: &mut Input) {
        let payload = vec![0x5A; usize::from(input.u16() % 20_000)];
        let frame = tcp4_frame(&payload);
        let size = input.u16();
        if let Some(mut tx) = self.net.split().1.reserve(frame.len()) {
            self.net.split().1.bytes_mut(&mut tx).copy_from_slice(&frame);
            self.net.split().1.send_segmented(tx, size);
        }
        self.flush();
    }

    /// The device completes a transmit buffer (or claims to).
    fn complete_tx(&mut self, input: &mut Input) {
        let choice = input.u8();
        let id = match choice {
            0..=0xEF => u32::from(choice) % (u32::from(self.size) + 2),
            _ => input.u32(),
        };
        if let Some(slot) = usize::try_from(id).ok().filter(|&i| i < self.tx_held.len()) {
            self.tx_held[slot] = false;
        }
        self.tx.put_used(id, input.u32());
        self.net.split().1.reclaim();
    }

    /// Every transmit buffer is free or with the device.
    fn check_tx(&mut self) {
        let tx = self.net.split().1;
        assert_eq!(tx.free() + tx.in_flight(), usize::from(self.size), "transmit buffers lost");
    }
}

/// What the driver makes of a received frame's bytes (in place or joined):
/// the checks of `rx.rs`'s `inspect`, in its order, counting an accepted
/// GSO frame in `model`. `data` gets its checksum completed where asked.
fn judge(
    data: &mut [u8],
    header: &NetHeader,
    exact: bool,
    guest_csum: bool,
    gso: Tso,
    model: &mut NetStats,
) -> Result<RxChecksum, Expect> {
    if exact && ip_frame_len(data) != Some(data.len()) {
        return Err(Expect::BadChain);
    }
    if header.gso_type != GSO_NONE {
        match gso::check_received(header, data, gso) {
            Ok(()) => model.rx_gso_frames += 1,
            Err(BadGso::NotNegotiated) => return Err(Expect::GsoNotNegotiated),
            Err(BadGso::Mismatch) => return Err(Expect::GsoMismatch),
        }
    }
    if header.flags & FLAG_NEEDS_CSUM != 0 {
        if !guest_csum {
            return Err(Expect::BadHeader);
        }
        // The device sums from csum_start to the end of the segment when
        // the frame says where it ends, else to the end of the frame.
        let start = usize::from(header.csum_start);
        let end = checksum::find_segment(data).filter(|s| s.start == start).map_or(data.len(), |s| s.start + s.len);
        if !offload::complete(data, start, usize::from(header.csum_offset), end) {
            return Err(Expect::BadHeader);
        }
        return Ok(RxChecksum::Valid);
    }
    if header.flags & FLAG_DATA_VALID != 0 && guest_csum {
        return Ok(RxChecksum::Valid);
    }
    Ok(RxChecksum::Unknown)
}
