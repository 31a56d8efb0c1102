//! smoltcp's `phy::Device` over a [`NetDevice`]: the place where the stack
//! meets the driver.
//!
//! Frames are lent, not copied: a receive token hands smoltcp the bytes the
//! device wrote, in place, and a transmit token hands it the buffer the device
//! will read. smoltcp answers a packet while it still holds it (an ICMP echo
//! reply, a TCP ACK), so the two tokens borrow the driver's two halves, which
//! are independent.
//!
//! Checksums: with offload, smoltcp does not compute TCP/UDP checksums on
//! transmit (the device does). It never verifies them on receive: frames the
//! device did not vouch for are verified here instead, and dropped if wrong,
//! so that every such drop is counted (smoltcp's own drops are silent).
//! For the same reason, frames smoltcp could not parse are named and counted
//! here first (see [`crate::rx_check`]).

use core::num::{NonZeroU16, NonZeroUsize};

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium, PacketMeta};
use smoltcp::time::Instant;

use crate::device::{NetDevice, RxHalf, TxHalf};
use crate::rx_check::{self, Headers, Malformed, TransportChecksum};
use crate::time_wait::{self, TimeWaitTable};
use crate::{checksum, trace};

/// Ethernet's header, which smoltcp counts in the "MTU" of an Ethernet device.
const ETHERNET_HEADER: usize = 14;

/// Received frames dropped by the adapter, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxDrops {
    /// TCP/UDP frames with a wrong checksum, or one that could not be
    /// checked, verified in software here.
    pub bad_checksum: u64,
    /// Frames shorter than an Ethernet header.
    pub malformed_ethernet: u64,
    /// ARP packets shorter than their header says.
    pub malformed_arp: u64,
    /// IPv4 headers that do not hold together (length, IHL, version).
    pub malformed_ipv4: u64,
    /// IPv4 headers with a wrong checksum.
    pub bad_ipv4_checksum: u64,
    /// IPv4 fragments (not reassembled).
    pub ipv4_fragment: u64,
    /// TCP headers that do not fit (truncated, bad data offset).
    pub malformed_tcp: u64,
    /// UDP headers that do not fit (truncated, bad length).
    pub malformed_udp: u64,
}

impl RxDrops {
    fn count(&mut self, why: Malformed) {
        let counter = match why {
            Malformed::Ethernet => &mut self.malformed_ethernet,
            Malformed::Arp => &mut self.malformed_arp,
            Malformed::Ipv4Header => &mut self.malformed_ipv4,
            Malformed::Ipv4Checksum => &mut self.bad_ipv4_checksum,
            Malformed::Ipv4Fragment => &mut self.ipv4_fragment,
            Malformed::TcpHeader => &mut self.malformed_tcp,
            Malformed::UdpHeader => &mut self.malformed_udp,
        };
        *counter += 1;
    }

    /// Every counter with its `/stats` name.
    pub fn fields(&self) -> [(&'static str, u64); 8] {
        [
            ("rx_drop_bad_checksum", self.bad_checksum),
            ("rx_drop_malformed_ethernet", self.malformed_ethernet),
            ("rx_drop_malformed_arp", self.malformed_arp),
            ("rx_drop_malformed_ipv4", self.malformed_ipv4),
            ("rx_drop_bad_ipv4_checksum", self.bad_ipv4_checksum),
            ("rx_drop_ipv4_fragment", self.ipv4_fragment),
            ("rx_drop_malformed_tcp", self.malformed_tcp),
            ("rx_drop_malformed_udp", self.malformed_udp),
        ]
    }
}

/// Frames dropped by the adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdapterStats {
    /// Received frames dropped, by reason.
    pub rx: RxDrops,
    /// Frames smoltcp wanted to send when no transmit buffer was free.
    pub tx_drop_no_buffer: u64,
    /// Retransmitted FINs of connections closed first, acknowledged from
    /// the TIME-WAIT records after their sockets listened again.
    pub time_wait_fins_answered: u64,
}

/// A [`NetDevice`] as smoltcp sees it.
pub struct Adapter<D: NetDevice> {
    device: D,
    caps: DeviceCapabilities,
    stats: AdapterStats,
    /// Connections closed first, whose retransmitted FINs are answered here
    /// (the stack fills it in, see [`Adapter::time_wait_mut`]).
    time_wait: TimeWaitTable,
}

impl<D: NetDevice> Adapter<D> {
    /// Wraps `device`, taking its MTU, burst size and checksum offloads.
    pub fn new(device: D) -> Self {
        let info = device.info();
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = info.mtu + ETHERNET_HEADER;
        caps.max_burst_size = Some(info.max_burst);
        caps.checksum = checksum_caps(info.tx_checksum_offload);
        // smoltcp then hands over TCP frames up to this size, with the
        // segment size in the packet's metadata (TxToken::set_meta). TSO
        // needs checksum offload: smoltcp asserts it.
        if info.tx_checksum_offload {
            caps.segmentation.tcpv4 = info.tso4_max_frame.and_then(NonZeroUsize::new);
            // Not tcpv6: smoltcp 0.14 drops an IPv6 packet over the MTU
            // before it looks at the metadata (no IPv6 branch reads
            // segmentation_offload_size), so it would lose every big segment.
        }
        Adapter { device, caps, stats: AdapterStats::default(), time_wait: TimeWaitTable::default() }
    }

    /// The wrapped device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The wrapped device, mutably (to flush it, say).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Frames dropped here.
    pub fn stats(&self) -> AdapterStats {
        AdapterStats { time_wait_fins_answered: self.time_wait.answered, ..self.stats }
    }

    /// The TIME-WAIT records that [`phy::Device::receive`] answers FINs from.
    pub fn time_wait(&self) -> &TimeWaitTable {
        &self.time_wait
    }

    /// The TIME-WAIT records, for the stack to remember connections in.
    pub fn time_wait_mut(&mut self) -> &mut TimeWaitTable {
        &mut self.time_wait
    }
}

/// Whether a received frame passes the checks [`RxToken::consume`] makes
/// (without counting: that is done when smoltcp takes the frame).
fn is_good<R: RxHalf>(rx: &R, frame: &R::Frame) -> bool {
    let bytes = rx.bytes(frame);
    let headers = Headers::parse(bytes);
    rx_check::classify(bytes, &headers).is_none()
        && (rx.checksum_verified(frame)
            || match headers.transport_checksum(bytes) {
                TransportChecksum::Segment(segment) => checksum::verify_segment(bytes, &segment),
                TransportChecksum::Unlocatable => false,
                TransportChecksum::None => true,
            })
}

/// Answers `frame` from `table` if it is a remembered connection's FIN
/// (see [`crate::time_wait`]): sends the ACK; returns whether it did.
fn answer_time_wait<R: RxHalf, T: TxHalf>(
    table: &mut TimeWaitTable,
    rx: &R,
    frame: &R::Frame,
    tx: &mut T,
    now: Instant,
) -> bool {
    if !table.candidate(rx.bytes(frame), now) || !is_good(rx, frame) {
        return false;
    }
    let mut answer = [0u8; time_wait::ANSWER_LEN];
    let Some(len) = table.answer(rx.bytes(frame), now, &mut answer) else { return false };
    if trace::enabled() {
        trace::log_frame(trace::Direction::Rx, rx.bytes(frame));
        log::trace!(target: trace::TARGET, "rx        FIN in TIME-WAIT (socket reused): answered with its ACK");
        trace::log_frame(trace::Direction::Tx, &answer[..len]);
    }
    // `receive` made sure there is room; if not, the peer retransmits.
    if let Some(mut out) = tx.reserve(len) {
        tx.bytes_mut(&mut out)[..len].copy_from_slice(&answer[..len]);
        tx.send(out);
    }
    true
}

/// What smoltcp must compute itself, given the device's transmit offload.
/// It never verifies TCP/UDP checksums on receive: the adapter does, counting
/// what it drops.
pub fn checksum_caps(tx_offload: bool) -> ChecksumCapabilities {
    let l4 = if tx_offload { Checksum::None } else { Checksum::Tx };
    let mut caps = ChecksumCapabilities::default();
    caps.tcp = l4;
    caps.udp = l4;
    caps
}

/// Lends smoltcp one received frame.
pub struct RxToken<'a, R: RxHalf> {
    rx: &'a mut R,
    frame: R::Frame,
    dropped: &'a mut RxDrops,
}

/// Lends smoltcp one transmit buffer.
pub struct TxToken<'a, T: TxHalf> {
    tx: &'a mut T,
    dropped: &'a mut u64,
    /// The segment size smoltcp asked the card to cut the frame into (TSO).
    segment_size: Option<NonZeroU16>,
}

impl<R: RxHalf> phy::RxToken for RxToken<'_, R> {
    fn consume<Ret, F: FnOnce(&[u8]) -> Ret>(self, f: F) -> Ret {
        let bytes = self.rx.bytes(&self.frame);
        // One walk over the headers, which the trace and every check below read.
        let headers = Headers::parse(bytes);
        // smoltcp skips empty frames: that is how a bad one is dropped. A
        // frame whose TCP/UDP checksum cannot be checked here is bad too:
        // smoltcp does not check it either.
        if trace::enabled() {
            trace::log_headers(trace::Direction::Rx, bytes, &headers);
        }
        let bad = match rx_check::classify(bytes, &headers) {
            Some(why) => {
                self.dropped.count(why);
                log::trace!(target: trace::TARGET, "rx drop   malformed: {why:?}");
                true
            }
            None => {
                let bad_checksum = !self.rx.checksum_verified(&self.frame)
                    && match headers.transport_checksum(bytes) {
                        TransportChecksum::Segment(segment) => !checksum::verify_segment(bytes, &segment),
                        TransportChecksum::Unlocatable => true,
                        TransportChecksum::None => false,
                    };
                self.dropped.bad_checksum += u64::from(bad_checksum);
                if bad_checksum {
                    log::trace!(target: trace::TARGET, "rx drop   bad TCP/UDP checksum");
                }
                bad_checksum
            }
        };
        let result = if bad { f(&[]) } else { f(bytes) };
        self.rx.recycle(self.frame);
        result
    }
}

impl<T: TxHalf> phy::TxToken for TxToken<'_, T> {
    fn consume<Ret, F: FnOnce(&mut [u8]) -> Ret>(self, len: usize, f: F) -> Ret {
        match self.tx.reserve(len) {
            Some(mut frame) => {
                let result = f(self.tx.bytes_mut(&mut frame));
                if trace::enabled() {
                    trace::log_frame(trace::Direction::Tx, self.tx.bytes_mut(&mut frame));
                }
                match self.segment_size {
                    Some(size) => self.tx.send_segmented(frame, size.get()),
                    None => self.tx.send(frame),
                }
                result
            }
            // Only if smoltcp asks for more than the MTU, or ignores has_room:
            // build the frame somewhere and drop it, counted.
            None => {
                *self.dropped += 1;
                let mut scratch = alloc::vec![0u8; len];
                f(&mut scratch)
            }
        }
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.segment_size = meta.segmentation_offload_size;
    }
}

impl<D: NetDevice> phy::Device for Adapter<D> {
    type RxToken<'a>
        = RxToken<'a, D::Rx>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, D::Tx>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.device.split();
        // A received packet may need an answer: take it only if one could go out.
        if !tx.has_room() {
            return None;
        }
        let frame = loop {
            let frame = rx.receive()?;
            if !answer_time_wait(&mut self.time_wait, rx, &frame, tx, timestamp) {
                break frame;
            }
            rx.recycle(frame);
            if !tx.has_room() {
                return None;
            }
        };
        let AdapterStats { rx: rx_drops, tx_drop_no_buffer, .. } = &mut self.stats;
        Some((RxToken { rx, frame, dropped: rx_drops }, TxToken { tx, dropped: tx_drop_no_buffer, segment_size: None }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let (_, tx) = self.device.split();
        if !tx.has_room() {
            return None;
        }
        Some(TxToken { tx, dropped: &mut self.stats.tx_drop_no_buffer, segment_size: None })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}
