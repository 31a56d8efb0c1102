//! The packet trace: one log line per frame at each layer it crosses.
//!
//! `cargo xtask run --trace` boots with `log=info,packet=trace`, and the
//! kernel's logger then prints every record whose target is [`TARGET`]:
//! the driver's descriptor (`virtq`), then Ethernet, IPv4/IPv6/ARP and
//! TCP/UDP/ICMP from here, then the socket and the app. A received frame is
//! told bottom-up, a sent one top-down, so a request and its answer read as
//! one story (see docs/packet-journey.md for a real one).
//!
//! Where the headers are comes from [`Headers::parse`] (for a received
//! frame, the one walk the adapter's checks read too); their fields are read
//! with `smoltcp::wire`'s checked views at those places (`new_checked`: no
//! accessor can panic afterwards). Nothing is allocated, and nothing is
//! formatted unless the trace is on: callers ask [`enabled`] first, which,
//! while the trace is off, is one comparison with `log`'s maximum level.

use core::fmt;

use smoltcp::wire::{
    ArpOperation, ArpPacket, EthernetAddress, EthernetProtocol, Icmpv4Message, Icmpv4Packet, IpProtocol, Ipv4Packet,
    Ipv6Packet, TcpPacket, UdpPacket,
};

use crate::rx_check::{ETHERNET_HEADER, Headers, Network};

/// The `log` target of every trace line (`log=info,packet=trace` turns it
/// on): the device's, so that the drivers' lines are in the same trace.
pub const TARGET: &str = crate::device::TRACE_TARGET;

/// Whether the packet trace is on: callers check this before building a line.
#[inline]
pub fn enabled() -> bool {
    log::log_enabled!(target: TARGET, log::Level::Trace)
}

/// Which way a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the wire towards the app.
    Rx,
    /// From the app towards the wire.
    Tx,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
        })
    }
}

/// The layers of one frame, outermost first: at most Ethernet, a network
/// header and a transport header.
#[derive(Clone, Copy, Debug)]
pub struct Layers {
    layers: [Option<Layer>; 3],
}

impl Layers {
    /// Reads the headers of the Ethernet frame `frame`. Whatever cannot be
    /// read becomes a [`Layer::Malformed`] and ends the list.
    pub fn parse(frame: &[u8]) -> Layers {
        Layers::read(frame, &Headers::parse(frame))
    }

    /// As [`parse`](Self::parse), for a frame whose headers have been found
    /// already: the views are made where `headers` says each header is.
    pub fn read(frame: &[u8], headers: &Headers) -> Layers {
        let mut layers = [None; 3];
        let (Some(ethertype), Some(dst), Some(src)) = (headers.ethertype, mac_at(frame, 0), mac_at(frame, 6)) else {
            layers[0] = Some(Layer::Malformed { what: "ethernet", len: frame.len() });
            return Layers { layers };
        };
        layers[0] = Some(Layer::Ethernet { src, dst, ethertype, len: frame.len() });
        let payload_len = frame.len() - ETHERNET_HEADER;
        // A tagged frame is of an unknown type to smoltcp (and to the trace).
        let (network, transport) = match headers.network {
            Network::Ipv4(ip) if !ip.tagged => match Ipv4Packet::new_checked(&frame[ip.at..]) {
                Ok(ip) => {
                    let network = Layer::Ipv4 {
                        src: ip.src_addr(),
                        dst: ip.dst_addr(),
                        protocol: ip.next_header(),
                        len: ip.total_len(),
                        ttl: ip.hop_limit(),
                    };
                    // A fragment's payload is not a whole transport header.
                    let transport = if ip.more_frags() || ip.frag_offset() != 0 {
                        Some(Layer::Fragment { offset: ip.frag_offset() })
                    } else {
                        transport(ip.next_header(), ip.payload())
                    };
                    (Some(network), transport)
                }
                Err(_) => (Some(Layer::Malformed { what: "ipv4", len: payload_len }), None),
            },
            Network::Ipv6(ip) if !ip.tagged => match Ipv6Packet::new_checked(&frame[ip.at..]) {
                Ok(ip) => {
                    let network = Layer::Ipv6 {
                        src: ip.src_addr(),
                        dst: ip.dst_addr(),
                        protocol: ip.next_header(),
                        payload_len: ip.payload_len(),
                        hop_limit: ip.hop_limit(),
                    };
                    (Some(network), transport(ip.next_header(), ip.payload()))
                }
                Err(_) => (Some(Layer::Malformed { what: "ipv6", len: payload_len }), None),
            },
            Network::Arp { .. } => match ArpPacket::new_checked(&frame[ETHERNET_HEADER..]) {
                Ok(arp) => (Some(arp_layer(&arp, payload_len)), None),
                Err(_) => (Some(Layer::Malformed { what: "arp", len: payload_len }), None),
            },
            Network::Ipv4(_) | Network::Ipv6(_) | Network::None => (None, None),
        };
        layers[1] = network;
        layers[2] = transport;
        Layers { layers }
    }

    /// The layers, outermost (Ethernet) first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Layer> {
        self.layers.iter().flatten()
    }
}

/// One header, ready to print as one trace line (without the direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// An Ethernet II header; `len` is the whole frame's.
    Ethernet {
        /// Source MAC.
        src: EthernetAddress,
        /// Destination MAC.
        dst: EthernetAddress,
        /// What the payload is.
        ethertype: EthernetProtocol,
        /// The frame's length, header included.
        len: usize,
    },
    /// An IPv4 header (RFC 791).
    Ipv4 {
        /// Source address.
        src: core::net::Ipv4Addr,
        /// Destination address.
        dst: core::net::Ipv4Addr,
        /// The payload's protocol.
        protocol: IpProtocol,
        /// Total length, header included.
        len: u16,
        /// Time to live.
        ttl: u8,
    },
    /// An IPv6 header (RFC 8200).
    Ipv6 {
        /// Source address.
        src: core::net::Ipv6Addr,
        /// Destination address.
        dst: core::net::Ipv6Addr,
        /// The next header's protocol.
        protocol: IpProtocol,
        /// Payload length.
        payload_len: u16,
        /// Hop limit.
        hop_limit: u8,
    },
    /// An IPv4 fragment other than a whole datagram.
    Fragment {
        /// The fragment's offset, in bytes.
        offset: u16,
    },
    /// An ARP request or reply (RFC 826), for IPv4 over Ethernet.
    Arp {
        /// Request or reply.
        operation: ArpOperation,
        /// The sender's IPv4 address.
        sender: [u8; 4],
        /// The target's IPv4 address.
        target: [u8; 4],
        /// The sender's MAC.
        sender_mac: EthernetAddress,
    },
    /// A TCP segment (RFC 9293).
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// The flags, as tcpdump prints them (`S`, `.` for ACK, `P`, `F`, `R`).
        flags: TcpFlags,
        /// Sequence number (absolute, as on the wire).
        seq: u32,
        /// Acknowledgement number (meaningful with the ACK flag).
        ack: u32,
        /// Receive window, unscaled.
        window: u16,
        /// Payload bytes.
        len: usize,
    },
    /// A UDP datagram (RFC 768).
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload bytes.
        len: usize,
    },
    /// An ICMPv4 message (RFC 792).
    Icmpv4 {
        /// The message type.
        message: Icmpv4Message,
        /// The code.
        code: u8,
        /// Echo identifier and sequence number, for echo requests and replies.
        echo: Option<(u16, u16)>,
    },
    /// A header of a protocol the trace does not take apart (ICMPv6, ...).
    Other {
        /// The protocol.
        protocol: IpProtocol,
        /// Its bytes.
        len: usize,
    },
    /// A header too short or inconsistent to read.
    Malformed {
        /// Which header.
        what: &'static str,
        /// The bytes there were.
        len: usize,
    },
}

/// TCP's flags, printed as tcpdump does: `[S]`, `[S.]`, `[P.]`, `[F.]`, `[R]`, `[.]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// PSH.
    pub psh: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("[")?;
        for (set, c) in [(self.syn, "S"), (self.fin, "F"), (self.psh, "P"), (self.rst, "R"), (self.ack, ".")] {
            if set {
                f.write_str(c)?;
            }
        }
        f.write_str("]")
    }
}

/// A MAC address as the boot log and Wireshark write it: `52:54:00:12:34:56`.
struct Mac(EthernetAddress);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The 6-byte MAC address at `at` in `frame`, if the frame holds it.
fn mac_at(frame: &[u8], at: usize) -> Option<EthernetAddress> {
    frame.get(at..at + 6).and_then(|bytes| <[u8; 6]>::try_from(bytes).ok()).map(EthernetAddress)
}

fn transport(protocol: IpProtocol, payload: &[u8]) -> Option<Layer> {
    Some(match protocol {
        IpProtocol::Tcp => match TcpPacket::new_checked(payload) {
            Ok(tcp) => Layer::Tcp {
                src_port: tcp.src_port(),
                dst_port: tcp.dst_port(),
                flags: TcpFlags { syn: tcp.syn(), ack: tcp.ack(), psh: tcp.psh(), fin: tcp.fin(), rst: tcp.rst() },
                seq: tcp.seq_number().0 as u32,
                ack: tcp.ack_number().0 as u32,
                window: tcp.window_len(),
                len: tcp.payload().len(),
            },
            Err(_) => Layer::Malformed { what: "tcp", len: payload.len() },
        },
        IpProtocol::Udp => match UdpPacket::new_checked(payload) {
            Ok(udp) => Layer::Udp { src_port: udp.src_port(), dst_port: udp.dst_port(), len: udp.payload().len() },
            Err(_) => Layer::Malformed { what: "udp", len: payload.len() },
        },
        IpProtocol::Icmp => match Icmpv4Packet::new_checked(payload) {
            Ok(icmp) => {
                let message = icmp.msg_type();
                let echo = matches!(message, Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply)
                    .then(|| (icmp.echo_ident(), icmp.echo_seq_no()));
                Layer::Icmpv4 { message, code: icmp.msg_code(), echo }
            }
            Err(_) => Layer::Malformed { what: "icmp", len: payload.len() },
        },
        protocol => Layer::Other { protocol, len: payload.len() },
    })
}

fn arp_layer(arp: &ArpPacket<&[u8]>, len: usize) -> Layer {
    // Only IPv4 over Ethernet (6-byte hardware, 4-byte protocol addresses) is read.
    // Both lengths come from the packet: each address is taken only if it is
    // that size (`EthernetAddress::from_bytes` panics on any other length).
    let ipv4 = |bytes: &[u8]| <[u8; 4]>::try_from(bytes).ok();
    let mac = <[u8; 6]>::try_from(arp.source_hardware_addr()).ok().map(EthernetAddress);
    match (ipv4(arp.source_protocol_addr()), ipv4(arp.target_protocol_addr()), mac) {
        (Some(sender), Some(target), Some(sender_mac)) => {
            Layer::Arp { operation: arp.operation(), sender, target, sender_mac }
        }
        _ => Layer::Malformed { what: "arp", len },
    }
}

/// A protocol's name in lower case, as tcpdump would write it.
fn protocol_name(protocol: IpProtocol) -> &'static str {
    match protocol {
        IpProtocol::Tcp => "tcp",
        IpProtocol::Udp => "udp",
        IpProtocol::Icmp => "icmp",
        IpProtocol::Icmpv6 => "icmpv6",
        IpProtocol::HopByHop => "hop-by-hop",
        IpProtocol::Igmp => "igmp",
        _ => "other",
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Layer::Ethernet { src, dst, ethertype, len } => {
                let kind = match ethertype {
                    EthernetProtocol::Ipv4 => "ipv4",
                    EthernetProtocol::Ipv6 => "ipv6",
                    EthernetProtocol::Arp => "arp",
                    EthernetProtocol::Unknown(_) => "other",
                };
                write!(f, "eth    {} > {} {kind}, {len} bytes", Mac(src), Mac(dst))?;
                if let EthernetProtocol::Unknown(t) = ethertype {
                    write!(f, " (type {t:#06x})")?;
                }
                Ok(())
            }
            Layer::Ipv4 { src, dst, protocol, len, ttl } => {
                write!(f, "ipv4   {src} > {dst} {}, len {len}, ttl {ttl}", protocol_name(protocol))
            }
            Layer::Ipv6 { src, dst, protocol, payload_len, hop_limit } => {
                write!(
                    f,
                    "ipv6   {src} > {dst} {}, payload {payload_len}, hop limit {hop_limit}",
                    protocol_name(protocol)
                )
            }
            Layer::Fragment { offset } => write!(f, "frag   offset {offset}"),
            Layer::Arp { operation, sender, target, sender_mac } => {
                let [s0, s1, s2, s3] = sender;
                let [t0, t1, t2, t3] = target;
                match operation {
                    ArpOperation::Request => {
                        write!(f, "arp    who-has {t0}.{t1}.{t2}.{t3} tell {s0}.{s1}.{s2}.{s3}")
                    }
                    ArpOperation::Reply => write!(f, "arp    {s0}.{s1}.{s2}.{s3} is-at {}", Mac(sender_mac)),
                    ArpOperation::Unknown(op) => write!(f, "arp    operation {op}"),
                }
            }
            Layer::Tcp { src_port, dst_port, flags, seq, ack, window, len } => {
                write!(f, "tcp    {src_port} > {dst_port} {flags} seq {seq}")?;
                if flags.ack {
                    write!(f, " ack {ack}")?;
                }
                write!(f, " win {window} len {len}")
            }
            Layer::Udp { src_port, dst_port, len } => write!(f, "udp    {src_port} > {dst_port} len {len}"),
            Layer::Icmpv4 { message, code, echo } => {
                write!(f, "icmp   {message} code {code}")?;
                if let Some((id, seq)) = echo {
                    write!(f, " id {id} seq {seq}")?;
                }
                Ok(())
            }
            Layer::Other { protocol, len } => write!(f, "{:<6} {len} bytes", protocol_name(protocol)),
            Layer::Malformed { what, len } => write!(f, "bad    {what} header ({len} bytes)"),
        }
    }
}

/// Logs `frame`'s layers: received frames outermost first, sent ones
/// innermost first (the order each crossed them). Call only if [`enabled`].
pub fn log_frame(direction: Direction, frame: &[u8]) {
    log_headers(direction, frame, &Headers::parse(frame));
}

/// As [`log_frame`], for a frame whose headers have been found already.
pub fn log_headers(direction: Direction, frame: &[u8], headers: &Headers) {
    let layers = Layers::read(frame, headers);
    let mut log = |layer: &Layer| log::trace!(target: TARGET, "{direction} {layer}");
    match direction {
        Direction::Rx => layers.iter().for_each(&mut log),
        Direction::Tx => layers.iter().rev().for_each(&mut log),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    fn lines(frame: &[u8]) -> Vec<String> {
        Layers::parse(frame).iter().map(|l| l.to_string()).collect()
    }

    /// A SYN from 10.0.2.2:40312 to 10.0.2.15:80, built by hand (the
    /// trace reads no checksums, so they are left as they fell).
    const SYN: &[u8] = &[
        // Ethernet: dst 52:54:00:12:34:56, src 52:55:0a:00:02:02, IPv4
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x00,
        // IPv4: len 44, ttl 64, TCP, 10.0.2.2 > 10.0.2.15
        0x45, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0x62, 0xb6, 0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00,
        0x02, 0x0f, // TCP: 40312 > 80, seq 0x01020304, SYN, window 65535, MSS 1460
        0x9d, 0x78, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xff, 0xff, 0x00, 0x00,
        0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];

    #[test]
    fn a_syn_is_read_at_every_layer() {
        assert_eq!(
            lines(SYN),
            [
                "eth    52:55:0a:00:02:02 > 52:54:00:12:34:56 ipv4, 58 bytes",
                "ipv4   10.0.2.2 > 10.0.2.15 tcp, len 44, ttl 64",
                "tcp    40312 > 80 [S] seq 16909060 win 65535 len 0",
            ]
        );
    }

    #[test]
    fn an_acked_segment_shows_ack_and_payload() {
        let mut frame = SYN.to_vec();
        // ACK and PSH, ack number 7, four payload bytes.
        frame[14 + 20 + 8..14 + 20 + 12].copy_from_slice(&7u32.to_be_bytes());
        frame[14 + 20 + 13] = 0x18;
        frame.extend_from_slice(b"GET ");
        frame[16..18].copy_from_slice(&48u16.to_be_bytes());
        assert_eq!(lines(&frame)[2], "tcp    40312 > 80 [P.] seq 16909060 ack 7 win 65535 len 4");
        assert_eq!(lines(&frame)[1], "ipv4   10.0.2.2 > 10.0.2.15 tcp, len 48, ttl 64");
    }

    #[test]
    fn an_arp_request_says_who_has() {
        let mut frame = [0u8; 42];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        // Ethernet/IPv4, 6 and 4 byte addresses, request.
        frame[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
        frame[22..28].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        frame[28..32].copy_from_slice(&[10, 0, 2, 15]);
        frame[38..42].copy_from_slice(&[10, 0, 2, 2]);
        assert_eq!(
            lines(&frame),
            ["eth    52:54:00:12:34:56 > ff:ff:ff:ff:ff:ff arp, 42 bytes", "arp    who-has 10.0.2.2 tell 10.0.2.15"]
        );
    }

    /// An ARP frame whose hardware addresses are `hlen` bytes long (the
    /// protocol addresses stay IPv4's 4), with room for all four addresses.
    fn arp_with_hardware_len(hlen: u8) -> Vec<u8> {
        let mut frame = alloc::vec![0u8; 14 + 8 + 2 * (usize::from(hlen) + 4)];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        frame[14..22].copy_from_slice(&[0, 1, 0x08, 0, hlen, 4, 0, 2]);
        frame
    }

    /// Found in review: with the trace on (`--trace`), an ARP packet whose
    /// hardware length was not 6 reached `EthernetAddress::from_bytes`, which
    /// panics on any other length: one frame from the link stopped Skiff.
    #[test]
    fn arp_with_a_hardware_length_other_than_6_is_malformed_not_a_panic() {
        for hlen in [0u8, 5, 8, 255] {
            let frame = arp_with_hardware_len(hlen);
            assert_eq!(lines(&frame)[1], alloc::format!("bad    arp header ({} bytes)", frame.len() - 14), "{hlen}");
        }
        // The well-formed reply still reads.
        let mut reply = arp_with_hardware_len(6);
        reply[22..28].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(lines(&reply)[1], "arp    0.0.0.0 is-at 52:54:00:12:34:56");
    }

    #[test]
    fn a_udp_datagram_shows_ports_and_length() {
        let mut frame = SYN[..34].to_vec();
        frame[14 + 9] = 17; // UDP
        frame[16..18].copy_from_slice(&31u16.to_be_bytes());
        frame.extend_from_slice(&[0x00, 0x44, 0x00, 0x43, 0x00, 0x0b, 0, 0, 1, 2, 3]);
        assert_eq!(lines(&frame)[2], "udp    68 > 67 len 3");
    }

    #[test]
    fn cut_headers_are_reported_not_read() {
        assert_eq!(lines(&SYN[..10]), ["bad    ethernet header (10 bytes)"]);
        assert_eq!(lines(&SYN[..30])[1], "bad    ipv4 header (16 bytes)");
        // The IPv4 header claims more than there is.
        assert_eq!(lines(&SYN[..50])[1], "bad    ipv4 header (36 bytes)");
    }

    #[test]
    fn sent_frames_are_told_from_the_top() {
        let layers = Layers::parse(SYN);
        let top_down: Vec<String> = layers.iter().rev().map(|l| l.to_string()).collect();
        assert!(top_down[0].starts_with("tcp ") && top_down[2].starts_with("eth "), "{top_down:?}");
    }

    #[test]
    fn tcp_flags_print_like_tcpdump() {
        let f = |syn, ack, psh, fin, rst| TcpFlags { syn, ack, psh, fin, rst }.to_string();
        assert_eq!(f(true, true, false, false, false), "[S.]");
        assert_eq!(f(false, true, false, true, false), "[F.]");
        assert_eq!(f(false, false, false, false, true), "[R]");
        assert_eq!(f(false, true, false, false, false), "[.]");
    }
}
