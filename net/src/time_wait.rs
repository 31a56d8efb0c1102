//! TIME-WAIT without a socket: a small table of connections Skiff closed
//! first, so that a retransmitted FIN from the peer is acknowledged, as RFC
//! 9293 3.10.7.4 asks of TIME-WAIT, instead of meeting a listening socket
//! and a reset.
//!
//! Skiff's connection pool (`crate::pool`) frees a socket in the poll step
//! after TIME-WAIT begins: holding it for smoltcp's 10 s would hold a
//! connection's slot and buffers for nothing. If the ACK of the peer's FIN is
//! lost, the peer (in LAST-ACK) sends its FIN again; smoltcp finds only a
//! listener, which takes no segment with an ACK, and answers with a reset.
//! The peer had all its data, but ends with an error (seen at 10 % loss,
//! issue 14).
//!
//! Here the pool notes each socket it frees in TIME-WAIT ([`Departures`],
//! from `Pool`'s one place that frees sockets), the stack hands those
//! connections to a bounded table once per poll step, and the table
//! remembers them for [`LIFETIME`]; the adapter asks
//! [`TimeWaitTable::answer`] about each good received frame before smoltcp
//! sees it, and a FIN of a remembered connection is answered with its ACK
//! there and goes no further. Until its socket is freed, smoltcp answers
//! such a FIN itself.

use alloc::vec::Vec;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ETHERNET_HEADER_LEN, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IPV4_HEADER_LEN, IpAddress,
    IpEndpoint, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TCP_HEADER_LEN, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber, TcpTimestampRepr,
};

use crate::checksum;

/// How long a connection is remembered after its socket was freed in
/// TIME-WAIT or its FIN was last answered: smoltcp's own TIME-WAIT (`CLOSE_DELAY` in
/// its tcp.rs), which stands in for RFC 9293's 2 MSL. A FIN is retransmitted
/// on the peer's RTO, at most a minute or so in all.
pub const LIFETIME: Duration = Duration::from_secs(10);
/// Connections remembered at once. A full table forgets the one closest to
/// expiring: only connections whose last ACK was lost need their record,
/// a few dozen in 10 s even at issue 14's loss rates.
pub const CAPACITY: usize = 64;
/// The TTL of the answer (RFC 1700's default, smoltcp's too).
const HOP_LIMIT: u8 = 64;
/// The receive window the answer advertises: the connection is over; the
/// window is irrelevant to a peer in LAST-ACK.
const WINDOW: u16 = 0;
/// The timestamp option as sent: two NOPs, then kind, length, TSval and
/// TSecr (RFC 7323 3.2 and its appendix A's layout).
const TIMESTAMP_OPTION_LEN: usize = 12;
/// Ethernet, IPv4 and TCP headers and the timestamp option: the longest answer.
pub const ANSWER_LEN: usize = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + TCP_HEADER_LEN + TIMESTAMP_OPTION_LEN;

/// One connection that Skiff closed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    local: IpEndpoint,
    remote: IpEndpoint,
    expires: Instant,
    /// The peer's FIN as first answered here, then the only FIN that is
    /// (its sequence number, and what it acknowledged of ours): a
    /// retransmission carries the same.
    fin: Option<(TcpSeqNumber, TcpSeqNumber)>,
    /// The connection's TCP timestamp offset, if it used timestamps: its
    /// answers must carry them too (RFC 7323 3.2), with a TSval no older
    /// than the connection's last.
    ts_offset: Option<u32>,
}

/// The table, with its counters for `/stats`.
#[derive(Debug)]
pub struct TimeWaitTable {
    records: [Option<Record>; CAPACITY],
    /// Retransmitted FINs acknowledged.
    pub answered: u64,
    /// Connections forgotten before their time because the table was full.
    pub evicted: u64,
}

impl Default for TimeWaitTable {
    fn default() -> Self {
        TimeWaitTable { records: [None; CAPACITY], answered: 0, evicted: 0 }
    }
}

/// Connections whose sockets the pool freed in TIME-WAIT since the stack
/// last handed them to the table: a handful a step, so that the table never
/// looks at the sockets that are still open.
#[derive(Debug, Default)]
pub struct Departures {
    connections: Vec<(IpEndpoint, IpEndpoint, Option<u32>)>,
}

impl Departures {
    /// Notes `socket`, being freed, if it is in TIME-WAIT.
    pub fn note(&mut self, socket: &tcp::Socket) {
        if socket.state() == tcp::State::TimeWait
            && let (Some(local), Some(remote)) = (socket.local_endpoint(), socket.remote_endpoint())
        {
            self.connections.push((local, remote, socket.timestamp_clock_offset()));
        }
    }

    /// Connections noted and not yet handed over.
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    /// Whether none are waiting to be handed over.
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// Entries the list has room for (for tests: the room a crowd leaves).
    #[cfg(test)]
    pub(crate) fn room(&self) -> usize {
        self.connections.capacity()
    }

    /// Hands every connection noted to `table`, as of `now`.
    pub fn hand_over(&mut self, table: &mut TimeWaitTable, now: Instant) {
        for (local, remote, ts_offset) in self.connections.drain(..) {
            table.insert(local, remote, ts_offset, now);
        }
        // A crowd closing at once must not pin its size.
        crate::room::shrink_when_sparse(&mut self.connections);
    }
}

impl TimeWaitTable {
    /// Remembers one connection (again: its record's lifetime starts over),
    /// with its TCP timestamp offset if it used timestamps.
    pub fn insert(&mut self, local: IpEndpoint, remote: IpEndpoint, ts_offset: Option<u32>, now: Instant) {
        let expires = now + LIFETIME;
        if let Some(r) = self.records.iter_mut().flatten().find(|r| r.local == local && r.remote == remote) {
            r.expires = expires;
            return;
        }
        let record = Some(Record { local, remote, expires, fin: None, ts_offset });
        if let Some(free) = self.records.iter_mut().find(|r| r.is_none_or(|r| r.expires <= now)) {
            *free = record;
            return;
        }
        // Full of live records: the one closest to expiring goes.
        if let Some(oldest) = self.records.iter_mut().min_by_key(|r| r.map(|r| r.expires)) {
            *oldest = record;
            self.evicted += 1;
        }
    }

    /// Connections remembered now (for tests and `/stats`).
    pub fn len(&self, now: Instant) -> usize {
        self.records.iter().flatten().filter(|r| r.expires > now).count()
    }

    /// Whether no connection is remembered.
    pub fn is_empty(&self, now: Instant) -> bool {
        self.len(now) == 0
    }

    /// Whether `frame` could be answered here: a TCP segment with FIN and
    /// ACK while something is remembered. Cheap (no checksum), so that the
    /// adapter verifies checksums early only for these. A SYN of a
    /// remembered connection's four-tuple starts a new connection (a client
    /// reusing its port): the record goes, so that the new connection's own
    /// FIN reaches its socket.
    pub fn candidate(&mut self, frame: &[u8], now: Instant) -> bool {
        if self.is_empty(now) {
            return false;
        }
        let Some((local, remote, syn, fin, ack)) = tcp_of(frame) else { return false };
        if syn && !ack {
            for r in self.records.iter_mut().filter(|r| r.is_some_and(|r| r.local == local && r.remote == remote)) {
                *r = None;
            }
            return false;
        }
        fin && ack
    }

    /// If `frame` (a received Ethernet frame, its checksums already
    /// verified) is a FIN of a remembered connection, writes the ACK it is
    /// owed into `out` and returns its length: the frame is then answered
    /// and must go no further. `out` must hold [`ANSWER_LEN`] bytes.
    pub fn answer(&mut self, frame: &[u8], now: Instant, out: &mut [u8]) -> Option<usize> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return None;
        }
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        if ip.next_header() != IpProtocol::Tcp || ip.more_frags() || ip.frag_offset() != 0 {
            return None;
        }
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        // A retransmitted FIN: FIN and ACK, nothing that starts or resets.
        if !tcp.fin() || !tcp.ack() || tcp.syn() || tcp.rst() {
            return None;
        }
        let local = IpEndpoint::new(IpAddress::Ipv4(ip.dst_addr()), tcp.dst_port());
        let remote = IpEndpoint::new(IpAddress::Ipv4(ip.src_addr()), tcp.src_port());
        let record = self.records.iter_mut().flatten().find(|r| r.local == local && r.remote == remote)?;
        if record.expires <= now {
            return None;
        }
        let fin = (tcp.seq_number(), tcp.ack_number());
        if *record.fin.get_or_insert(fin) != fin {
            // Not the FIN this connection ended with: not ours to answer.
            return None;
        }
        // RFC 9293 3.10.7.4, TIME-WAIT: acknowledge it and restart the timer.
        record.expires = now + LIFETIME;
        let payload = tcp.payload().len();
        let acknowledged = tcp.seq_number() + payload + 1; // the data, then the FIN
        // Its timestamp echoed, with our clock's TSval on the connection's offset.
        let timestamp = record.ts_offset.and_then(|offset| {
            let (src, dst) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
            let theirs = TcpRepr::parse(&tcp, &src, &dst, &ChecksumCapabilities::ignored()).ok()?.timestamp?;
            Some(TcpTimestampRepr::new((now.total_millis() as u32).wrapping_add(offset), theirs.tsval))
        });
        let len = write_ack(out, &eth, ip.dst_addr(), ip.src_addr(), &tcp, acknowledged, timestamp)?;
        self.answered += 1;
        Some(len)
    }
}

/// A TCP/IPv4 frame's four-tuple (local: its destination) and its SYN, FIN
/// and ACK flags.
fn tcp_of(frame: &[u8]) -> Option<(IpEndpoint, IpEndpoint, bool, bool, bool)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let local = IpEndpoint::new(IpAddress::Ipv4(ip.dst_addr()), tcp.dst_port());
    let remote = IpEndpoint::new(IpAddress::Ipv4(ip.src_addr()), tcp.src_port());
    Some((local, remote, tcp.syn(), tcp.fin(), tcp.ack()))
}

/// The ACK of `fin` (received in `eth` from `peer` to `us`) into `out`:
/// its sequence number is what the FIN acknowledged of ours (our SND.NXT).
fn write_ack(
    out: &mut [u8],
    eth: &EthernetFrame<&[u8]>,
    us: Ipv4Address,
    peer: Ipv4Address,
    fin: &TcpPacket<&[u8]>,
    acknowledged: TcpSeqNumber,
    timestamp: Option<TcpTimestampRepr>,
) -> Option<usize> {
    let tcp_repr = TcpRepr {
        src_port: fin.dst_port(),
        dst_port: fin.src_port(),
        control: TcpControl::None,
        seq_number: fin.ack_number(),
        ack_number: Some(acknowledged),
        window_len: WINDOW,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp,
        payload: &[],
    };
    let len = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + tcp_repr.buffer_len();
    let out = out.get_mut(..len)?;
    out.fill(0);
    let eth_repr =
        EthernetRepr { src_addr: eth.dst_addr(), dst_addr: eth.src_addr(), ethertype: EthernetProtocol::Ipv4 };
    if !eth_repr.src_addr.is_unicast() || eth_repr.dst_addr == EthernetAddress::BROADCAST {
        return None;
    }
    let mut frame = EthernetFrame::new_unchecked(&mut *out);
    eth_repr.emit(&mut frame);
    let ip_repr = Ipv4Repr {
        src_addr: us,
        dst_addr: peer,
        next_header: IpProtocol::Tcp,
        payload_len: tcp_repr.buffer_len(),
        hop_limit: HOP_LIMIT,
    };
    let mut ip = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip_repr.emit(&mut ip, &ChecksumCapabilities::default());
    let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
    // The checksum is filled in below, as for the stack's own frames.
    tcp_repr.emit(&mut tcp, &us.into(), &peer.into(), &ChecksumCapabilities::ignored());
    if !checksum::fill_in_software(out) {
        return None;
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
    const PEER: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
    const US_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    const PEER_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0xAB, 0xCD, 0xEF]);

    fn endpoints() -> (IpEndpoint, IpEndpoint) {
        (IpEndpoint::new(US.into(), 80), IpEndpoint::new(PEER.into(), 40_000))
    }

    /// A frame from the peer: `control` with ACK of `ack`, at `seq`.
    fn segment(control: TcpControl, seq: u32, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
        segment_with_timestamp(control, seq, ack, payload, None)
    }

    /// As `segment`, with the timestamp option if `timestamp` is given.
    fn segment_with_timestamp(
        control: TcpControl,
        seq: u32,
        ack: Option<u32>,
        payload: &[u8],
        timestamp: Option<TcpTimestampRepr>,
    ) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: 40_000,
            dst_port: 80,
            control,
            seq_number: TcpSeqNumber(seq as i32),
            ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp,
            payload,
        };
        let ip = Ipv4Repr {
            src_addr: PEER,
            dst_addr: US,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let mut out = vec![0u8; 14 + 20 + tcp.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut out[..]);
        EthernetRepr { src_addr: PEER_MAC, dst_addr: US_MAC, ethertype: EthernetProtocol::Ipv4 }.emit(&mut eth);
        let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
        let caps = smoltcp::phy::ChecksumCapabilities::default();
        ip.emit(&mut ipp, &caps);
        let mut tcpp = TcpPacket::new_unchecked(ipp.payload_mut());
        tcp.emit(&mut tcpp, &PEER.into(), &US.into(), &caps);
        out
    }

    fn parse(frame: &[u8]) -> (Ipv4Address, Ipv4Address, TcpRepr<'_>) {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        assert_eq!((eth.src_addr(), eth.dst_addr()), (US_MAC, PEER_MAC));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let caps = smoltcp::phy::ChecksumCapabilities::default();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let repr = TcpRepr::parse(&tcp, &src.into(), &dst.into(), &caps).unwrap();
        (src, dst, repr)
    }

    #[test]
    fn a_retransmitted_fin_of_a_remembered_connection_gets_its_ack() {
        let mut table = TimeWaitTable::default();
        let (local, remote) = endpoints();
        let now = Instant::from_secs(100);
        table.insert(local, remote, None, now);
        let fin = segment(TcpControl::Fin, 5000, Some(9000), b"");
        let mut out = [0u8; 64];
        let len = table.answer(&fin, now + Duration::from_millis(300), &mut out).expect("answered");
        let (src, dst, ack) = parse(&out[..len]);
        assert_eq!((src, dst), (US, PEER));
        assert_eq!((ack.src_port, ack.dst_port), (80, 40_000));
        assert_eq!(ack.control, TcpControl::None);
        assert_eq!(ack.seq_number, TcpSeqNumber(9000)); // our SND.NXT, past our FIN
        assert_eq!(ack.ack_number, Some(TcpSeqNumber(5001))); // their FIN, acknowledged
        assert_eq!(table.answered, 1);
        // Again (the ACK lost again): answered again, the timer restarted.
        let later = now + LIFETIME - Duration::from_millis(1);
        assert!(table.answer(&fin, later, &mut out).is_some());
        assert!(table.answer(&fin, later + LIFETIME - Duration::from_millis(1), &mut out).is_some());
        assert_eq!(table.answered, 3);
    }

    /// Found in review: once a connection has negotiated TCP Timestamps,
    /// every segment must carry them (RFC 7323 3.2), and a peer may drop
    /// one without; the bare ACK from here would then never end its LAST-ACK.
    #[test]
    fn the_ack_of_a_connection_with_timestamps_carries_them() {
        let (local, remote) = endpoints();
        let now = Instant::from_millis(5_000);
        let offset = 0xFFFF_F000;
        let fin = segment_with_timestamp(TcpControl::Fin, 5000, Some(9000), b"", Some(TcpTimestampRepr::new(777, 1)));
        let mut out = [0u8; ANSWER_LEN];
        let mut table = TimeWaitTable::default();
        table.insert(local, remote, Some(offset), now);
        let len = table.answer(&fin, now, &mut out).expect("answered");
        assert_eq!(len, ANSWER_LEN);
        let ack = parse(&out[..len]).2;
        assert_eq!(ack.ack_number, Some(TcpSeqNumber(5001)));
        // Our clock's milliseconds on the connection's offset (wrapping), their TSval echoed.
        assert_eq!(ack.timestamp, Some(TcpTimestampRepr::new(5_000u32.wrapping_add(offset), 777)));
        // A connection without timestamps, or a FIN without them: none.
        let mut plain = TimeWaitTable::default();
        plain.insert(local, remote, None, now);
        let len = plain.answer(&fin, now, &mut out).expect("answered");
        assert_eq!(parse(&out[..len]).2.timestamp, None);
        let mut table = TimeWaitTable::default();
        table.insert(local, remote, Some(offset), now);
        let len = table.answer(&segment(TcpControl::Fin, 5000, Some(9000), b""), now, &mut out).expect("answered");
        assert_eq!(parse(&out[..len]).2.timestamp, None);
    }

    #[test]
    fn a_fin_with_data_is_acknowledged_past_the_data() {
        let mut table = TimeWaitTable::default();
        let (local, remote) = endpoints();
        table.insert(local, remote, None, Instant::ZERO);
        let mut out = [0u8; 64];
        let len = table.answer(&segment(TcpControl::Fin, 100, Some(7), b"bye"), Instant::ZERO, &mut out).unwrap();
        assert_eq!(parse(&out[..len]).2.ack_number, Some(TcpSeqNumber(104)));
    }

    #[test]
    fn other_segments_and_other_connections_go_on_to_smoltcp() {
        let mut table = TimeWaitTable::default();
        let (local, remote) = endpoints();
        let now = Instant::from_secs(1);
        table.insert(local, remote, None, now);
        let mut out = [0u8; 64];
        // A new connection from the same port (a SYN), a reset, plain data, a FIN without ACK.
        for frame in [
            segment(TcpControl::Syn, 1, None, b""),
            segment(TcpControl::Rst, 1, Some(2), b""),
            segment(TcpControl::None, 1, Some(2), b"data"),
            segment(TcpControl::Fin, 1, None, b""),
        ] {
            assert_eq!(table.answer(&frame, now, &mut out), None);
        }
        // Another peer port.
        let mut other = segment(TcpControl::Fin, 1, Some(2), b"");
        other[14 + 20] ^= 1;
        assert_eq!(table.answer(&other, now, &mut out), None);
        // A FIN other than the one first answered.
        assert!(table.answer(&segment(TcpControl::Fin, 1, Some(2), b""), now, &mut out).is_some());
        assert_eq!(table.answer(&segment(TcpControl::Fin, 50, Some(2), b""), now, &mut out), None);
        // Expired.
        let fin = segment(TcpControl::Fin, 1, Some(2), b"");
        assert_eq!(table.answer(&fin, now + LIFETIME, &mut out), None);
        assert_eq!(table.answered, 1);
    }

    /// Found in review: a client that reuses its port within the record's
    /// life opens a new connection on the same four-tuple; that
    /// connection's FIN must reach its socket, not be answered here.
    #[test]
    fn a_new_connection_on_the_same_four_tuple_ends_the_record() {
        let mut table = TimeWaitTable::default();
        let (local, remote) = endpoints();
        let now = Instant::from_secs(1);
        table.insert(local, remote, None, now);
        let mut out = [0u8; 64];
        assert!(!table.candidate(&segment(TcpControl::Syn, 77_000, None, b""), now));
        let fin = segment(TcpControl::Fin, 77_100, Some(3), b"");
        assert!(!table.candidate(&fin, now));
        assert!(table.is_empty(now));
        assert_eq!(table.answer(&fin, now, &mut out), None);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let mut table = TimeWaitTable::default();
        let local = IpEndpoint::new(US.into(), 80);
        for i in 0..CAPACITY as u16 + 5 {
            let now = Instant::from_millis(i64::from(i));
            table.insert(local, IpEndpoint::new(PEER.into(), 1000 + i), None, now);
        }
        let now = Instant::from_millis(CAPACITY as i64 + 5);
        assert_eq!(table.len(now), CAPACITY);
        assert_eq!(table.evicted, 5);
        // The first five went; the newest is there.
        let mut out = [0u8; 64];
        let fin = |port: u16| {
            let mut f = segment(TcpControl::Fin, 1, Some(2), b"");
            let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
            let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
            let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
            tcp.set_src_port(port);
            f
        };
        assert_eq!(table.answer(&fin(1000), now, &mut out), None);
        assert!(table.answer(&fin(1000 + CAPACITY as u16 + 4), now, &mut out).is_some());
        // Expired records make room without eviction.
        table.insert(local, remote_at(1), None, now + LIFETIME + LIFETIME);
        assert_eq!(table.evicted, 5);
    }

    fn remote_at(port: u16) -> IpEndpoint {
        IpEndpoint::new(PEER.into(), port)
    }
}
