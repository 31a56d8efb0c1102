//! `stack`: arbitrary frames into Skiff's whole stack (`skiff_net::stack::Stack`
//! over the in-memory device of `skiff_net::testlink`), with TCP echo and
//! HTTP serving, DHCP or a static address, and time passing.
//!
//! The input is a list of operations: a raw frame, its checksums made
//! right or not (IPv4 options and fragments, ICMP, IPv6 neighbour
//! discovery); a TCP segment from one of
//! four client connections, with checksums right and fuzzed flags, sequence
//! and acknowledgement numbers, window and payload (so the fuzzer gets past
//! the handshake into echo and HTTP); a DHCP answer to the stack's last
//! request with a fuzzed lease; or time passing. The harness answers
//! the stack's ARP requests for the client, as a peer would. Checked:
//!
//! - every frame the stack sends is well formed: at most the MTU, from its
//!   own MAC and IPv4 address (or 0.0.0.0), IPv4 header checksum right,
//!   TCP/UDP checksum right;
//! - echo never corrupts: every byte the echo port sends is the byte the
//!   client sent at that place in its stream (the client's payload bytes are
//!   a function of their sequence number, so retransmissions agree);
//! - every HTTP answer stream starts with a status line;
//! - the packet trace (`skiff_net::trace`, on for every input, its lines
//!   formatted and dropped) never panics on what arrives or leaves;
//! - nothing is held for ever: after five minutes without traffic, every
//!   TCP socket is listening again (the apps' idle timeouts, TCP's own).

use std::time::Duration;

use crate::input::Input;
use skiff_net::checksum;
use skiff_net::config::NetConfig;
use skiff_net::phy::Adapter;
use skiff_net::stack::Stack;
use skiff_net::stats::{HeapStats, HostStats, InterruptStats, MainLoopStats};
use skiff_net::testlink::{MemDevice, Queue, link};
use smoltcp::wire::Ipv4Cidr;

const SERVER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const CLIENT_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
const SERVER_IP: [u8; 4] = [10, 0, 2, 15];
const CLIENT_IP: [u8; 4] = [10, 0, 2, 2];
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
/// DHCP (RFC 2131, options from RFC 2132).
const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
const DHCP_MAGIC: [u8; 4] = [99, 130, 83, 99];
const DHCP_OFFER: u8 = 2;
const DHCP_ACK: u8 = 5;
const DHCP_NAK: u8 = 6;
const DHCP_SUBNET_MASK: u8 = 1;
const DHCP_ROUTER: u8 = 3;
const DHCP_DNS: u8 = 6;
const DHCP_LEASE_TIME: u8 = 51;
const DHCP_MESSAGE_TYPE: u8 = 53;
const DHCP_SERVER_ID: u8 = 54;
const DHCP_END: u8 = 255;
/// Ethernet header and the largest frame with a 1500-byte MTU.
const ETHERNET_HEADER: usize = 14;
const MAX_FRAME: usize = ETHERNET_HEADER + 1500;
/// TCP header flag bits (RFC 9293 3.1).
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
/// The stack's listening sockets: the pool's, for echo and for HTTP (`net/src/pool.rs`).
const LISTENING: usize = 2 * skiff_net::pool::LISTENERS_PER_PORT;
/// Silence after which every connection must be gone: past the echo's
/// 120 s idle timeout, smoltcp's 60 s timeout and TIME-WAIT.
const SILENCE: Duration = Duration::from_secs(300);
const SILENCE_STEP: Duration = Duration::from_secs(5);
/// Operations per input, so that every input runs in bounded time.
const MAX_OPS: usize = 512;
/// Client ports of the four connections.
const CLIENT_PORT: u16 = 40000;

/// How every HTTP answer starts.
const STATUS_LINE: &[u8] = b"HTTP/1.1 ";
/// HTTP requests the TCP operation can carry.
const REQUESTS: [&[u8]; 6] = [
    b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n",
    b"GET /stats HTTP/1.1\r\nHost: skiff\r\n\r\n",
    b"HEAD /stats.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: skiff\r\n\r\nGET /b HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: skiff\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: skiff\r\nTransfer-Encoding: chunked\r\n\r\n",
];

/// The kernel's part of `/stats`: all zero here.
const HOST: HostStats = HostStats {
    uptime_ms: 0,
    heap: HeapStats { in_use: 0, peak: 0, size: 0 },
    interrupts: InterruptStats { timer: 0, nic_config: 0, nic_rx: 0, nic_tx: 0, total: 0 },
    main_loop: MainLoopStats {
        mode: "fuzz",
        wakeups_device: 0,
        wakeups_timer: 0,
        wakeups_other: 0,
        sleeps_raced: 0,
        halted_cycles: 0,
        loop_cycles: 0,
    },
};

/// What the client knows of one connection, learned from the server's SYN-ACK.
#[derive(Clone, Copy, Default)]
struct Conn {
    /// The client's next sequence number.
    next: u32,
    /// The server's initial sequence number, the client's as the server
    /// took it, and the server's next sequence number seen.
    server_isn: Option<(u32, u32)>,
    server_next: u32,
    /// The client has sent a FIN on this connection. smoltcp 0.14 still
    /// takes segment text after the peer's FIN (RFC 9293 3.10.7.4 says to
    /// ignore it), and echo returns it, one sequence number off: from then
    /// on the echo stream cannot be checked byte for byte.
    fin_sent: bool,
    /// The highest acknowledgement number the client sent. smoltcp takes an
    /// ACK of data it has queued but not sent yet (RFC 9293 3.10.7.4 says to
    /// drop it), so this, not `server_next`, may be its SND.NXT.
    acked: u32,
}

/// The server ports the client connects to: HTTP, echo, and one where
/// nothing listens.
const SERVER_PORTS: [u16; 3] = [80, 7, 9];

struct Harness {
    stack: Stack,
    dev: Adapter<MemDevice>,
    to_server: Queue,
    from_server: Queue,
    now: Duration,
    /// By client port (four), then server port (`SERVER_PORTS`).
    conns: [[Conn; SERVER_PORTS.len()]; 4],
    /// Addresses the stack may send from now (before and after the last poll).
    sources: [Option<[u8; 4]>; 2],
    /// The transaction id of the stack's last DHCP message.
    dhcp_xid: u32,
}

/// The client's payload byte at sequence number `seq`: retransmitted and
/// overlapping segments carry the same bytes, so the echo can be checked.
pub fn stream_byte(seq: u32) -> u8 {
    (seq.wrapping_mul(2_654_435_761) >> 24) as u8
}

/// Whether to print the TCP segments each way (`SKIFF_FUZZ_TRACE=1`), to
/// follow a crashing input: `cargo fuzz run stack artifacts/stack/crash-…`.
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("SKIFF_FUZZ_TRACE").is_some())
}

/// The packet trace's logger: every record whose target is
/// `skiff_net::trace::TARGET` is formatted (so the trace's parsing and
/// `Display` code runs on every fuzzed frame, as with `--trace` in a real
/// boot), then dropped, or printed with `SKIFF_FUZZ_TRACE=1`. Other targets
/// (smoltcp's own debug lines) stay off: formatting them costs runs and
/// tests nothing of Skiff's.
struct TraceSink;

impl log::Log for TraceSink {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target() == skiff_net::trace::TARGET
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if trace() {
            eprintln!("{}", record.args());
        } else {
            /// A `fmt::Write` that keeps nothing.
            struct Discard;
            impl std::fmt::Write for Discard {
                fn write_str(&mut self, _: &str) -> std::fmt::Result {
                    Ok(())
                }
            }
            let _ = std::fmt::write(&mut Discard, *record.args());
        }
    }

    fn flush(&self) {}
}

/// Turns the packet trace on for the rest of the process (once).
fn trace_on() {
    static SINK: TraceSink = TraceSink;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if log::set_logger(&SINK).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
    debug_assert!(skiff_net::trace::enabled(), "the packet trace is off");
}

/// One fuzz input.
pub fn run(data: &[u8]) {
    trace_on();
    let mut input = Input::new(data);
    let setup = input.u8();
    let mut h = Harness::new(setup);
    for _ in 0..MAX_OPS {
        if input.done() {
            break;
        }
        match input.u8() % 5 {
            0 => {
                let fix = input.u8() & 1 != 0;
                let len = usize::from(input.u16()) % (MAX_FRAME + 64);
                let mut frame = input.bytes(len);
                if fix {
                    fix_checksums(&mut frame);
                }
                h.inject(frame);
            }
            1 | 2 => h.tcp(&mut input),
            4 => h.dhcp(&mut input),
            _ => {
                let ms = u64::from(input.u16());
                h.advance(Duration::from_millis(ms));
            }
        }
        h.advance(Duration::from_millis(1));
    }
    h.silence();
}

impl Harness {
    fn new(setup: u8) -> Harness {
        let (a, _b, to_server, from_server, _b_in, _b_out) = link(SERVER_MAC, CLIENT_MAC);
        let mut dev = Adapter::new(a);
        let config = NetConfig {
            dhcp: setup & 1 != 0,
            // The static address soon, so that DHCP runs change little else.
            dhcp_wait: Duration::from_millis(50),
            static_ip: Ipv4Cidr::new(SERVER_IP.into(), 24),
            static_gateway: Some(CLIENT_IP.into()),
            http_idle: Duration::from_secs(15),
            // A fixed wall clock, so that runs repeat (and Date is written).
            boot_unix_secs: Some(1_700_000_000),
            ..NetConfig::default()
        };
        let stack = Stack::new(&mut dev, config, 0x5eed_0000 | u64::from(setup), Duration::ZERO);
        let conns = core::array::from_fn(|c| {
            core::array::from_fn(|p| {
                // The client's initial sequence numbers, apart for each connection.
                Conn { next: (1000 << c) + ((p as u32) << 24), ..Conn::default() }
            })
        });
        Harness { stack, dev, to_server, from_server, now: Duration::ZERO, conns, sources: [None; 2], dhcp_xid: 0 }
    }

    fn inject(&mut self, frame: Vec<u8>) {
        self.to_server.borrow_mut().push_back(frame);
    }

    /// Time passes; the stack is polled until it has nothing left to do now.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        for _ in 0..8 {
            let before = self.address();
            let busy = self.stack.poll(self.now, &mut self.dev, &HOST);
            // Frames may leave from the address before the poll (answers
            // sent during ingress) or after it (a new lease applied).
            self.sources = [before, self.address()];
            if trace() && before != self.sources[1] {
                eprintln!("{:?} address {:?}", self.now, self.stack.ipv4());
            }
            self.check_output();
            if !busy && self.to_server.borrow().is_empty() {
                break;
            }
        }
    }

    /// A TCP segment from the client, checksums right, the rest fuzzed.
    fn tcp(&mut self, input: &mut Input) {
        let which = input.u8();
        let c = usize::from(which & 3);
        let p = match which >> 2 & 3 {
            0 | 1 => 0,
            2 => 1,
            _ => 2,
        };
        let port = SERVER_PORTS[p];
        let flags = input.u8();
        let seq_delta = i32::from(input.u8() as i8);
        let ack_delta = i32::from(input.u8() as i8);
        let window = input.u16();
        let kind = input.u8();
        let conn = &mut self.conns[c][p];
        let seq = conn.next.wrapping_add(seq_delta as u32);
        let ack = conn.server_next.wrapping_add(ack_delta as u32);
        // Payload bytes start after the SYN, if any.
        let data_seq = seq.wrapping_add(u32::from(flags & SYN != 0));
        let payload: Vec<u8> = match kind % 8 {
            0 | 1 if port == 80 => REQUESTS[usize::from(kind >> 3) % REQUESTS.len()].to_vec(),
            0..=2 => {
                let n = usize::from(input.u8()) * 6;
                (0..n as u32).map(|i| stream_byte(data_seq.wrapping_add(i))).collect()
            }
            _ => Vec::new(),
        };
        conn.fin_sent |= flags & FIN != 0;
        if flags & ACK != 0 && ack.wrapping_sub(conn.acked) as i32 > 0 {
            conn.acked = ack;
        }
        if seq_delta == 0 {
            conn.next = data_seq.wrapping_add(payload.len() as u32).wrapping_add(u32::from(flags & FIN != 0));
        }
        if trace() {
            eprintln!("{:?} client {c}->{port} flags {flags:#x} seq {seq} ack {ack} {} bytes", self.now, payload.len());
        }
        let frame = tcp_frame(CLIENT_PORT + c as u16, port, seq, ack, flags, window, &payload);
        self.inject(frame);
    }

    /// Checks and answers what the stack sent.
    fn check_output(&mut self) {
        let frames: Vec<Vec<u8>> = self.from_server.borrow_mut().drain(..).collect();
        for frame in frames {
            assert!(frame.len() >= ETHERNET_HEADER && frame.len() <= MAX_FRAME, "sent a {}-byte frame", frame.len());
            assert_eq!(frame[6..12], SERVER_MAC, "sent from another MAC");
            if trace() {
                eprintln!("{:?} sent ethertype {:02x}{:02x}, {} bytes", self.now, frame[12], frame[13], frame.len());
            }
            match [frame[12], frame[13]] {
                ETHERTYPE_ARP => self.answer_arp(&frame),
                ETHERTYPE_IPV4 => self.check_ipv4(&frame),
                _ => {}
            }
        }
    }

    fn answer_arp(&mut self, frame: &[u8]) {
        let request = frame.get(20..22) == Some(&[0, 1]) && frame.get(38..42) == Some(&CLIENT_IP);
        if request {
            let mut reply = frame_head(&SERVER_MAC, ETHERTYPE_ARP);
            reply.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
            reply.extend_from_slice(&CLIENT_MAC);
            reply.extend_from_slice(&CLIENT_IP);
            reply.extend_from_slice(&frame[22..32]); // the asker's MAC and IP
            self.inject(reply);
        }
    }

    /// The stack's IPv4 address now, if it has one.
    fn address(&self) -> Option<[u8; 4]> {
        self.stack.ipv4().address.map(|a| a.address().octets())
    }

    /// A DHCP answer (RFC 2131) from the client's side of the link to the
    /// stack's last DISCOVER or REQUEST, with fuzzed type, address, mask,
    /// router, DNS servers, lease time and server identifier.
    fn dhcp(&mut self, input: &mut Input) {
        let kind = input.u8();
        let xid = if kind & 0x80 == 0 { self.dhcp_xid } else { input.u16().into() };
        let message_type = match kind & 3 {
            0 => DHCP_OFFER,
            1 => DHCP_ACK,
            2 => DHCP_NAK,
            _ => input.u8(),
        };
        let yiaddr = if kind & 4 != 0 { SERVER_IP } else { [input.u8(), input.u8(), input.u8(), input.u8()] };
        let prefix = input.u8();
        let mask =
            if prefix <= 32 { (!0u32).checked_shl(32 - u32::from(prefix)).unwrap_or(0) } else { input.u16().into() };
        let mut options = vec![DHCP_MESSAGE_TYPE, 1, message_type, DHCP_SERVER_ID, 4];
        options.extend_from_slice(if kind & 8 != 0 { &CLIENT_IP } else { &[0, 0, 0, 0] });
        options.extend_from_slice(&[DHCP_SUBNET_MASK, 4]);
        options.extend_from_slice(&mask.to_be_bytes());
        if kind & 0x10 != 0 {
            options.extend_from_slice(&[DHCP_ROUTER, 4, input.u8(), input.u8(), input.u8(), input.u8()]);
        }
        let dns = usize::from(kind >> 5 & 3);
        options.extend_from_slice(&[DHCP_DNS, (4 * dns) as u8]);
        options.extend(input.bytes(4 * dns));
        options.extend_from_slice(&[DHCP_LEASE_TIME, 4]);
        options.extend(input.bytes(4));
        options.push(DHCP_END);

        let mut bootp = vec![2, 1, 6, 0]; // BOOTREPLY, Ethernet, 6-byte addresses, no hops
        bootp.extend_from_slice(&xid.to_be_bytes());
        bootp.extend_from_slice(&[0; 8]); // secs, flags, ciaddr
        bootp.extend_from_slice(&yiaddr);
        bootp.extend_from_slice(&CLIENT_IP); // siaddr
        bootp.extend_from_slice(&[0; 4]); // giaddr
        bootp.extend_from_slice(&SERVER_MAC);
        bootp.extend_from_slice(&[0; 10 + 64 + 128]); // chaddr padding, sname, file
        bootp.extend_from_slice(&DHCP_MAGIC);
        bootp.extend_from_slice(&options);
        if trace() {
            eprintln!("{:?} dhcp type {message_type} xid {xid:#x} yiaddr {yiaddr:?} mask {mask:#x}", self.now);
        }
        let frame = udp_frame([0xFF; 4], DHCP_SERVER_PORT, DHCP_CLIENT_PORT, &bootp);
        self.inject(frame);
    }

    fn check_ipv4(&mut self, frame: &[u8]) {
        let ip = &frame[ETHERNET_HEADER..];
        assert!(ip.len() >= 20 && ip[0] >> 4 == 4, "a bad IPv4 header was sent");
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert!(ihl >= 20 && total >= ihl && total <= ip.len(), "sent IPv4 lengths that do not add up");
        assert_eq!(checksum::fold(checksum::sum(&ip[..ihl], 0)), 0xFFFF, "sent a bad IPv4 header checksum");
        if let Some(valid) = checksum::verify(frame) {
            assert!(valid, "sent a bad TCP/UDP checksum");
        }
        let source: [u8; 4] = ip[12..16].try_into().unwrap_or_default();
        assert!(
            source == [0; 4] || self.sources.contains(&Some(source)),
            "sent from {source:?}, which is not its address ({:?})",
            self.sources
        );
        if ip[9] == PROTO_UDP && ip.get(ihl + 2..ihl + 4) == Some(&DHCP_SERVER_PORT.to_be_bytes()) {
            // The stack's DISCOVER or REQUEST: answers must carry its transaction id.
            if let Some(xid) = ip.get(ihl + 12..ihl + 16) {
                self.dhcp_xid = u32::from_be_bytes([xid[0], xid[1], xid[2], xid[3]]);
            }
        }
        if ip[9] != PROTO_TCP || ip[16..20] != CLIENT_IP {
            return;
        }
        let tcp = &ip[ihl..total];
        let be16 = |i: usize| u16::from_be_bytes([tcp[i], tcp[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([tcp[i], tcp[i + 1], tcp[i + 2], tcp[i + 3]]);
        let (sport, dport, seq, ack, flags) = (be16(0), be16(2), be32(4), be32(8), tcp[13]);
        let Some(c) = dport.checked_sub(CLIENT_PORT).map(usize::from).filter(|&c| c < 4) else { return };
        let data_offset = usize::from(tcp[12] >> 4) * 4;
        let payload = &tcp[data_offset.min(tcp.len())..];
        let Some(p) = SERVER_PORTS.iter().position(|&port| port == sport) else { return };
        let conn = &mut self.conns[c][p];
        if flags & SYN != 0 {
            // SYN-ACK: the server's initial sequence number, and the client's as it took it.
            conn.server_isn = Some((seq, ack.wrapping_sub(1)));
            conn.acked = seq.wrapping_add(1);
            conn.fin_sent = false;
        }
        let data_seq = seq.wrapping_add(u32::from(flags & SYN != 0));
        let end = data_seq.wrapping_add(payload.len() as u32).wrapping_add(u32::from(flags & FIN != 0));
        // A keep-alive probe repeats the last sent octet's place with a
        // garbage octet (RFC 9293 3.8.4); it is not stream data.
        let probe = payload.len() == 1 && (end == conn.server_next || end == conn.acked);
        if end.wrapping_sub(conn.server_next) as i32 > 0 || flags & SYN != 0 {
            conn.server_next = end;
        }
        if trace() {
            eprintln!(
                "{:?} server {sport}->{dport} flags {flags:#x} seq {seq} ack {ack} {} bytes {:?}",
                self.now,
                payload.len(),
                String::from_utf8_lossy(&payload[..payload.len().min(20)])
            );
        }
        let Some((server_isn, client_isn)) = conn.server_isn else { return };
        let offset = data_seq.wrapping_sub(server_isn).wrapping_sub(1);
        if sport == 7 && !probe && !conn.fin_sent {
            for (i, &b) in payload.iter().enumerate() {
                let at = client_isn.wrapping_add(1).wrapping_add(offset).wrapping_add(i as u32);
                assert_eq!(
                    b,
                    stream_byte(at),
                    "echo byte {} of the stream differs from what was sent",
                    offset as usize + i
                );
            }
        } else if sport == 80 && offset == 0 && !payload.is_empty() {
            // The client's window may let through only a few bytes.
            let n = payload.len().min(STATUS_LINE.len());
            assert!(payload[..n] == STATUS_LINE[..n], "an HTTP answer without a status line");
        }
    }

    /// Five minutes pass with nothing but ARP answers: every socket must be back to listening.
    fn silence(&mut self) {
        let listening = |stack: &Stack| stack.socket_states() == [("listen", LISTENING)];
        if listening(&self.stack) {
            return;
        }
        let end = self.now + SILENCE;
        while self.now < end {
            self.advance(SILENCE_STEP);
        }
        let states = self.stack.socket_states();
        assert!(listening(&self.stack), "after {SILENCE:?} of silence the sockets are {states:?}");
    }
}

/// Makes a raw frame's checksums right where it can (IPv4 header, TCP,
/// UDP, ICMP, ICMPv6), so that fuzzed IP packets get past the checks into
/// the protocols: options, fragments, ICMP, IPv6 neighbour discovery.
fn fix_checksums(f: &mut [u8]) {
    const IP: usize = ETHERNET_HEADER;
    let be16 = |f: &[u8], at: usize| usize::from(u16::from_be_bytes([f[at], f[at + 1]]));
    // The checksum at `at` over `f[start..end]`, starting from `pseudo`.
    let fill = |f: &mut [u8], start: usize, end: usize, at: usize, pseudo: u64| {
        if at + 2 <= end && end <= f.len() {
            f[at..at + 2].copy_from_slice(&[0, 0]);
            let sum = !checksum::fold(checksum::sum(&f[start..end], pseudo));
            f[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
    };
    match f.get(12..14) {
        Some(&[0x08, 0x00]) if f.len() >= IP + 20 => {
            let ihl = usize::from(f[IP] & 0x0F) * 4;
            if ihl < 20 || f.len() < IP + ihl {
                return;
            }
            fill(f, IP, IP + ihl, IP + 10, 0);
            let end = (IP + be16(f, IP + 2)).min(f.len());
            match f[IP + 9] {
                ICMP => fill(f, IP + ihl, end, IP + ihl + 2, 0),
                PROTO_TCP | PROTO_UDP => {
                    checksum::fill_in_software(f);
                }
                _ => {}
            }
        }
        Some(&[0x86, 0xDD]) if f.len() >= IP + 40 => {
            let payload = be16(f, IP + 4);
            match f[IP + 6] {
                ICMPV6 => {
                    let pseudo = checksum::sum(&f[IP + 8..IP + 40], payload as u64 + u64::from(ICMPV6));
                    let end = (IP + 40 + payload).min(f.len());
                    fill(f, IP + 40, end, IP + 42, pseudo);
                }
                PROTO_TCP | PROTO_UDP => {
                    checksum::fill_in_software(f);
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// An Ethernet header from the client to `dst`.
fn frame_head(dst: &[u8; 6], ethertype: [u8; 2]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ethertype);
    f
}

/// An IPv4 header from the client to `dst`, with its checksum, after an Ethernet header.
fn ipv4_head(dst: [u8; 4], protocol: u8, payload_len: usize) -> Vec<u8> {
    let dst_mac = if dst == [0xFF; 4] { [0xFF; 6] } else { SERVER_MAC };
    let mut f = frame_head(&dst_mac, ETHERTYPE_IPV4);
    let total = (20 + payload_len) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, protocol, 0, 0]);
    f.extend_from_slice(&CLIENT_IP);
    f.extend_from_slice(&dst);
    let ip_sum = !checksum::fold(checksum::sum(&f[ETHERNET_HEADER..ETHERNET_HEADER + 20], 0));
    f[ETHERNET_HEADER + 10..ETHERNET_HEADER + 12].copy_from_slice(&ip_sum.to_be_bytes());
    f
}

/// A UDP datagram from the client to `dst`, with both checksums right.
fn udp_frame(dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = ipv4_head(dst, PROTO_UDP, 8 + payload.len());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    checksum::fill_in_software(&mut f);
    f
}

/// A TCP segment from the client to the server, with both checksums right.
pub fn tcp_frame(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, window: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = ipv4_head(SERVER_IP, PROTO_TCP, 20 + payload.len());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[5 << 4, flags]);
    f.extend_from_slice(&window.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]); // checksum (below), urgent pointer
    f.extend_from_slice(payload);
    checksum::fill_in_software(&mut f);
    f
}
