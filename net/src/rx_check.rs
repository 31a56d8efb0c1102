//! Received frames: their headers found once, and the frames that smoltcp
//! would drop without a word named and counted before it sees them.
//!
//! [`Headers::parse`] walks a frame's Ethernet and IP headers once and
//! records where each starts and what it says. Everything the adapter does
//! with a received frame reads it through that: [`classify`] here, the
//! TCP/UDP checksum check ([`Headers::transport_checksum`]), and the packet
//! trace (`crate::trace`).
//!
//! smoltcp parses untrusted bytes safely, but a frame it cannot parse just
//! disappears (`net_debug!` at most). So that `/stats` can say what arrived
//! and why it went nowhere, the adapter asks [`classify`] first and drops
//! what it names, counted by reason. It names only frames smoltcp would drop
//! anyway, with the checks of smoltcp's own `new_checked` views, so serving
//! does not change.
//!
//! Ref: RFC 791 (IPv4 header, fragments), RFC 8200 3 (IPv6 header), RFC 9293
//! 3.1 (TCP data offset), RFC 768 (UDP length), IEEE 802.3 (the 14-byte
//! Ethernet II header), IEEE 802.1Q 9.3 (the 4-byte VLAN tag).

use core::ops::Range;

use smoltcp::wire::{ArpPacket, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

use crate::checksum::{self, Segment, Transport};

/// The Ethernet II header: destination, source, type.
pub const ETHERNET_HEADER: usize = 14;
/// Where the type field sits in the Ethernet header.
const ETHERTYPE_AT: usize = 12;
/// The type that announces an 802.1Q tag, and the tag's length; the type
/// of what the tag carries is in its last two bytes.
const ETHERTYPE_VLAN: u16 = 0x8100;
const VLAN_TAG: usize = 4;
const VLAN_INNER_ETHERTYPE_AT: usize = ETHERNET_HEADER + VLAN_TAG - 2;
/// IPv4's fixed header (RFC 791 3.1) and the fields read from it: the
/// total length, the flags and fragment offset (of which the more-fragments
/// flag and the 13-bit offset say "fragment"), the protocol.
const IPV4_MIN_HEADER: usize = 20;
const IPV4_TOTAL_LENGTH_AT: usize = 2;
const IPV4_FRAGMENT_AT: usize = 6;
const IPV4_FRAGMENT_BITS: u16 = 0x3FFF;
const IPV4_PROTOCOL_AT: usize = 9;
/// The first byte's low nibble: the header's length (IHL) in 32-bit words.
const IPV4_IHL_MASK: u8 = 0x0F;
const IPV4_IHL_WORD: usize = 4;
/// IPv6's header (RFC 8200 3) and the fields read from it.
const IPV6_HEADER: usize = 40;
const IPV6_PAYLOAD_LENGTH_AT: usize = 4;
const IPV6_NEXT_HEADER_AT: usize = 6;
/// The addresses in the pseudo-header: IPv4's source and destination
/// (RFC 9293 3.1), IPv6's (RFC 8200 8.1).
const IPV4_ADDRESSES: Range<usize> = 12..20;
const IPV6_ADDRESSES: Range<usize> = 8..40;
/// The smallest TCP and UDP headers.
const TCP_MIN_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// Why a received frame was dropped before smoltcp saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than an Ethernet header.
    Ethernet,
    /// ARP shorter than its header says (RFC 826).
    Arp,
    /// IPv4 whose header does not hold together: truncated, a version other
    /// than 4, an IHL under 5 or past the frame, a total length shorter than
    /// the header or longer than the frame.
    Ipv4Header,
    /// IPv4 with a wrong header checksum.
    Ipv4Checksum,
    /// An IPv4 fragment: Skiff does not reassemble (smoltcp is built without
    /// `proto-ipv4-fragmentation`, and nothing it serves needs fragments).
    Ipv4Fragment,
    /// TCP shorter than its header, or a data offset under 5 or past the segment.
    TcpHeader,
    /// UDP shorter than its header, or a length field that does not fit.
    UdpHeader,
}

/// The big-endian 16-bit field at `at` of a header known to hold it.
fn be16(header: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([header[at], header[at + 1]])
}

/// Where a frame's headers are and what they say, found by one walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// The Ethernet type field; `None` if the frame is shorter than an Ethernet header.
    pub ethertype: Option<EthernetProtocol>,
    /// The network header.
    pub network: Network,
}

/// A frame's network header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// None that Skiff reads: another type, or a frame too short to tell.
    None,
    /// ARP (RFC 826); `whole`: the packet holds the addresses its header
    /// announces (smoltcp's check).
    Arp {
        /// Long enough for its addresses.
        whole: bool,
    },
    /// IPv4, possibly cut short.
    Ipv4(Ip),
    /// IPv6, possibly cut short.
    Ipv6(Ip),
}

/// An IP header: where it is, and its fixed part as far as the frame holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip {
    /// Its offset in the frame.
    pub at: usize,
    /// Behind an 802.1Q tag. smoltcp does not read tagged frames (their type
    /// is unknown to it, and it drops them), so only the checksum check looks
    /// inside.
    pub tagged: bool,
    /// Bytes from the header to the end of the frame.
    pub available: usize,
    /// The smallest header of its version: IPv4's 20 bytes, IPv6's 40.
    pub min_header: usize,
    /// The transport protocol (IPv4's protocol, IPv6's next header), if the
    /// frame reaches that field, even when the rest of the header is cut.
    pub protocol: Option<u8>,
    /// The fixed part, if the frame holds it.
    pub fields: Option<IpFields>,
}

/// The fields of an IP header that say where its payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpFields {
    /// The version field.
    pub version: u8,
    /// The header's length: IHL * 4 for IPv4 (options included), 40 for IPv6.
    pub header_len: usize,
    /// The packet's length, header included (IPv4's total length, IPv6's
    /// payload length plus its header).
    pub total_len: usize,
    /// IPv4 only: more fragments follow, or this one is not the first.
    pub fragment: bool,
}

/// What a frame's TCP/UDP checksum can be checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportChecksum {
    /// A TCP or UDP segment, located.
    Segment(Segment),
    /// TCP or UDP, perhaps, that cannot be located: an IPv4 fragment, an
    /// IPv4 header naming TCP/UDP whose lengths do not add up, or IPv6 with
    /// extension headers. Nothing would check such a checksum.
    Unlocatable,
    /// Neither TCP nor UDP: no such checksum.
    None,
}

impl Headers {
    /// Walks `frame`'s Ethernet header, an optional VLAN tag, and the IP or
    /// ARP header behind them. Never fails: what is missing is recorded so.
    pub fn parse(frame: &[u8]) -> Headers {
        let type_at = |at: usize| frame.get(at..at + 2).map(|b| be16(b, 0));
        let Some(outer) = type_at(ETHERTYPE_AT) else {
            return Headers { ethertype: None, network: Network::None };
        };
        let ethertype = Some(EthernetProtocol::from(outer));
        let (inner, at, tagged) = if outer == ETHERTYPE_VLAN {
            match type_at(VLAN_INNER_ETHERTYPE_AT) {
                Some(inner) => (inner, ETHERNET_HEADER + VLAN_TAG, true),
                None => return Headers { ethertype, network: Network::None },
            }
        } else {
            (outer, ETHERNET_HEADER, false)
        };
        let network = match EthernetProtocol::from(inner) {
            EthernetProtocol::Ipv4 => Network::Ipv4(Ip::ipv4(frame, at, tagged)),
            EthernetProtocol::Ipv6 => Network::Ipv6(Ip::ipv6(frame, at, tagged)),
            EthernetProtocol::Arp if !tagged => Network::Arp { whole: ArpPacket::new_checked(&frame[at..]).is_ok() },
            _ => Network::None,
        };
        Headers { ethertype, network }
    }

    /// Where the frame's TCP/UDP checksum can be checked, if it has one: a
    /// segment of IPv4 (unfragmented) or IPv6 (no extension headers), at
    /// most one VLAN tag in. The segment's length comes from the IP header:
    /// the frame may carry Ethernet padding after it.
    pub fn transport_checksum(&self, frame: &[u8]) -> TransportChecksum {
        let (ip, version, addresses) = match &self.network {
            Network::Ipv4(ip) => (ip, 4, IPV4_ADDRESSES),
            Network::Ipv6(ip) => (ip, 6, IPV6_ADDRESSES),
            _ => return TransportChecksum::None,
        };
        let located = ip
            .fields
            .filter(|f| f.version == version && !f.fragment)
            .and_then(|_| ip.payload())
            .zip(ip.protocol)
            .and_then(|(payload, protocol)| {
                let (transport, min_header) = match protocol {
                    checksum::PROTO_TCP => (Transport::Tcp, TCP_MIN_HEADER),
                    checksum::PROTO_UDP => (Transport::Udp, UDP_HEADER),
                    _ => return None,
                };
                let len = payload.len();
                let addresses = frame.get(ip.at + addresses.start..ip.at + addresses.end)?;
                let pseudo_sum = checksum::sum(addresses, u64::from(protocol) + len as u64);
                (len >= min_header).then_some(Segment { transport, start: payload.start, len, pseudo_sum })
            });
        match located {
            Some(segment) => TransportChecksum::Segment(segment),
            None if version == 4 => match ip.protocol {
                Some(checksum::PROTO_TCP | checksum::PROTO_UDP) => TransportChecksum::Unlocatable,
                _ => TransportChecksum::None,
            },
            None if checksum::ipv6_chain_leads_to_transport(frame, ip.at) => TransportChecksum::Unlocatable,
            None => TransportChecksum::None,
        }
    }
}

/// What is wrong with the frame whose headers are `headers`, if it is one
/// of the [`Malformed`] kinds.
pub fn classify(frame: &[u8], headers: &Headers) -> Option<Malformed> {
    let ip = match headers.network {
        _ if headers.ethertype.is_none() => return Some(Malformed::Ethernet),
        Network::Arp { whole } => return (!whole).then_some(Malformed::Arp),
        Network::Ipv4(ip) if !ip.tagged => ip,
        _ => return None,
    };
    let (Some(payload), Some(fields)) = (ip.payload(), ip.fields.filter(|f| f.version == 4)) else {
        return Some(Malformed::Ipv4Header);
    };
    if !Ipv4Packet::new_checked(&frame[ip.at..]).is_ok_and(|packet| packet.verify_checksum()) {
        return Some(Malformed::Ipv4Checksum);
    }
    if fields.fragment {
        return Some(Malformed::Ipv4Fragment);
    }
    let segment = &frame[payload];
    match ip.protocol.map(IpProtocol::from) {
        Some(IpProtocol::Tcp) if TcpPacket::new_checked(segment).is_err() => Some(Malformed::TcpHeader),
        Some(IpProtocol::Udp) if UdpPacket::new_checked(segment).is_err() => Some(Malformed::UdpHeader),
        _ => None,
    }
}

impl Ip {
    /// The IPv4 header at `at`.
    fn ipv4(frame: &[u8], at: usize, tagged: bool) -> Ip {
        let fields = frame.get(at..at + IPV4_MIN_HEADER).map(|h| IpFields {
            version: h[0] >> 4,
            header_len: usize::from(h[0] & IPV4_IHL_MASK) * IPV4_IHL_WORD,
            total_len: usize::from(be16(h, IPV4_TOTAL_LENGTH_AT)),
            fragment: be16(h, IPV4_FRAGMENT_AT) & IPV4_FRAGMENT_BITS != 0,
        });
        Ip::at(frame, at, tagged, IPV4_MIN_HEADER, frame.get(at + IPV4_PROTOCOL_AT).copied(), fields)
    }

    /// The IPv6 header at `at`.
    fn ipv6(frame: &[u8], at: usize, tagged: bool) -> Ip {
        let fields = frame.get(at..at + IPV6_HEADER).map(|h| IpFields {
            version: h[0] >> 4,
            header_len: IPV6_HEADER,
            total_len: IPV6_HEADER + usize::from(be16(h, IPV6_PAYLOAD_LENGTH_AT)),
            fragment: false,
        });
        Ip::at(frame, at, tagged, IPV6_HEADER, frame.get(at + IPV6_NEXT_HEADER_AT).copied(), fields)
    }

    fn at(
        frame: &[u8],
        at: usize,
        tagged: bool,
        min_header: usize,
        protocol: Option<u8>,
        fields: Option<IpFields>,
    ) -> Ip {
        Ip { at, tagged, available: frame.len().saturating_sub(at), min_header, protocol, fields }
    }

    /// Whether the lengths hold together, as smoltcp's `new_checked`
    /// requires: a header at least the minimum (IHL 5), within the packet,
    /// and the packet within the frame. The version is not looked at.
    pub fn holds_together(&self) -> bool {
        self.fields.is_some_and(|f| {
            f.header_len >= self.min_header && f.header_len <= f.total_len && f.total_len <= self.available
        })
    }

    /// Where the payload is in the frame, if the lengths hold together.
    pub fn payload(&self) -> Option<Range<usize>> {
        let f = self.fields.filter(|_| self.holds_together())?;
        Some(self.at + f.header_len..self.at + f.total_len)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::checksum::test_frames::{self, tcp6_frame, udp4_frame};

    /// `classify`, with the headers found first as the adapter does.
    fn classify(frame: &[u8]) -> Option<Malformed> {
        super::classify(frame, &Headers::parse(frame))
    }

    /// A valid IPv4/UDP frame from the shared test builders (which leave
    /// the IP header checksum zero).
    fn udp() -> alloc::vec::Vec<u8> {
        let mut f = test_frames::udp4_frame(b"hello");
        fix_ip_checksum(&mut f);
        f
    }
    const IP: usize = 14;

    /// Rewrites the IPv4 header checksum after an edit (RFC 791 3.1).
    fn fix_ip_checksum(frame: &mut [u8]) {
        let ihl = usize::from(frame[IP] & 0x0F) * 4;
        frame[IP + 10..IP + 12].copy_from_slice(&[0, 0]);
        let sum = !crate::checksum::fold(crate::checksum::sum(&frame[IP..IP + ihl], 0));
        frame[IP + 10..IP + 12].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn a_valid_frame_passes() {
        assert_eq!(classify(&udp()), None);
    }

    #[test]
    fn one_walk_finds_each_header_tagged_or_not() {
        let f = udp();
        let headers = Headers::parse(&f);
        assert_eq!(headers.ethertype, Some(EthernetProtocol::Ipv4));
        let Network::Ipv4(ip) = headers.network else { panic!("{headers:?}") };
        assert_eq!((ip.at, ip.tagged, ip.payload()), (IP, false, Some(IP + 20..f.len())));
        let at = |frame: &[u8]| match Headers::parse(frame).transport_checksum(frame) {
            TransportChecksum::Segment(segment) => Some(segment.start),
            _ => None,
        };
        assert_eq!(at(&f), Some(IP + 20));
        // Behind a VLAN tag: smoltcp drops it as of an unknown type, so it is
        // not classified, but its checksum is found (and checked) all the same.
        let mut tagged = f.clone();
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        assert_eq!(classify(&tagged), None);
        assert_eq!(at(&tagged), Some(IP + 4 + 20));
    }

    #[test]
    fn a_frame_shorter_than_ethernet_is_malformed_ethernet() {
        for len in 0..14 {
            assert_eq!(classify(&udp()[..len]), Some(Malformed::Ethernet), "{len} bytes");
        }
    }

    #[test]
    fn truncated_ipv4_headers_are_malformed_ipv4() {
        for len in 14..34 {
            assert_eq!(classify(&udp()[..len]), Some(Malformed::Ipv4Header), "{len} bytes");
        }
    }

    #[test]
    fn bad_ihl_version_and_total_length_are_malformed_ipv4() {
        for ihl in [0u8, 4, 15] {
            let mut f = udp();
            f[IP] = 0x40 | ihl;
            assert_eq!(classify(&f), Some(Malformed::Ipv4Header), "ihl {ihl}");
        }
        let mut f = udp();
        f[IP] = 0x65; // version 6 in an IPv4 frame
        assert_eq!(classify(&f), Some(Malformed::Ipv4Header));
        for total in [0u16, 19, 2000] {
            let mut f = udp();
            f[IP + 2..IP + 4].copy_from_slice(&total.to_be_bytes());
            fix_ip_checksum(&mut f);
            assert_eq!(classify(&f), Some(Malformed::Ipv4Header), "total length {total}");
        }
    }

    #[test]
    fn a_wrong_ip_checksum_is_counted_as_such() {
        let mut f = udp();
        f[IP + 10] ^= 0x55;
        assert_eq!(classify(&f), Some(Malformed::Ipv4Checksum));
    }

    #[test]
    fn fragments_are_named() {
        for flags_offset in [0x2000u16, 0x0001, 0x2010] {
            let mut f = udp();
            f[IP + 6..IP + 8].copy_from_slice(&flags_offset.to_be_bytes());
            fix_ip_checksum(&mut f);
            assert_eq!(classify(&f), Some(Malformed::Ipv4Fragment), "{flags_offset:#x}");
        }
        // Don't-fragment alone is not a fragment.
        let mut f = udp();
        f[IP + 6..IP + 8].copy_from_slice(&0x4000u16.to_be_bytes());
        fix_ip_checksum(&mut f);
        assert_eq!(classify(&f), None);
    }

    #[test]
    fn ip_options_are_not_malformed() {
        // IHL 6: one word of options (four NOPs) before the UDP header.
        let f = udp();
        let mut with_options = f[..IP + 20].to_vec();
        with_options.extend_from_slice(&[1, 1, 1, 1]);
        with_options.extend_from_slice(&f[IP + 20..]);
        with_options[IP] = 0x46;
        let total = u16::from_be_bytes([f[IP + 2], f[IP + 3]]) + 4;
        with_options[IP + 2..IP + 4].copy_from_slice(&total.to_be_bytes());
        fix_ip_checksum(&mut with_options);
        assert_eq!(classify(&with_options), None);
    }

    #[test]
    fn a_udp_length_that_does_not_fit_is_malformed_udp() {
        for len in [0u16, 7, 200] {
            let mut f = udp();
            f[IP + 24..IP + 26].copy_from_slice(&len.to_be_bytes());
            assert_eq!(classify(&f), Some(Malformed::UdpHeader), "udp length {len}");
        }
    }

    #[test]
    fn bad_tcp_data_offsets_and_truncated_tcp_are_malformed_tcp() {
        // The UDP frame turned into a TCP one with 20 bytes of header room.
        let mut f = udp();
        f.resize(IP + 20 + 20, 0);
        f[IP + 2..IP + 4].copy_from_slice(&40u16.to_be_bytes());
        f[IP + 9] = 6;
        fix_ip_checksum(&mut f);
        f[IP + 20 + 12] = 5 << 4;
        assert_eq!(classify(&f), None, "a plain 20-byte TCP header");
        for offset in [0u8, 4, 6, 15] {
            let mut g = f.clone();
            g[IP + 20 + 12] = offset << 4;
            assert_eq!(classify(&g), Some(Malformed::TcpHeader), "data offset {offset}");
        }
        let mut short = f.clone();
        short.truncate(IP + 30);
        short[IP + 2..IP + 4].copy_from_slice(&30u16.to_be_bytes());
        fix_ip_checksum(&mut short);
        assert_eq!(classify(&short), Some(Malformed::TcpHeader));
    }

    #[test]
    fn truncated_arp_is_malformed_arp() {
        let mut f = udp();
        f.truncate(14);
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        // Ethernet/IPv4 ARP: hardware type, protocol type, sizes 6 and 4, operation.
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(classify(&f), Some(Malformed::Arp), "no addresses");
        f.extend_from_slice(&[0; 20]);
        assert_eq!(classify(&f), None, "a whole request");
    }

    #[test]
    fn other_ethertypes_pass_untouched() {
        let mut f = udp();
        f[12..14].copy_from_slice(&0x88B5u16.to_be_bytes()); // IEEE 802 local experimental
        assert_eq!(classify(&f), None);
    }

    /// Whether `frame` may carry TCP/UDP whose checksum cannot be checked.
    fn unlocatable(frame: &[u8]) -> bool {
        Headers::parse(frame).transport_checksum(frame) == TransportChecksum::Unlocatable
    }

    #[test]
    fn transport_that_cannot_be_checked_is_recognised() {
        let good = udp4_frame(b"fine");
        assert!(!unlocatable(&good), "a locatable segment can be checked");
        let mut fragment = good.clone();
        fragment[20] = 0x20; // more fragments
        assert!(unlocatable(&fragment));
        let mut icmp = good.clone();
        icmp[23] = 1;
        assert!(!unlocatable(&icmp), "ICMP is not TCP/UDP");
        // TCP behind a hop-by-hop header (router alert, then PadN): cannot be checked here.
        let v6 = tcp6_frame(b"x");
        let hop_by_hop = |next: u8| [next, 0, 5, 2, 0, 0, 1, 0];
        let behind = |next: u8, transport: &[u8]| {
            let mut f = v6[..54].to_vec();
            f[20] = 0; // next header: hop-by-hop options
            let len = u16::from_be_bytes([f[18], f[19]]) + 8;
            f[18..20].copy_from_slice(&len.to_be_bytes());
            f.extend_from_slice(&hop_by_hop(next));
            f.extend_from_slice(transport);
            f
        };
        assert!(unlocatable(&behind(6, &v6[54..])));
        // An MLDv2 report: ICMPv6 (58) behind hop-by-hop. No TCP/UDP checksum to fail.
        assert!(!unlocatable(&behind(58, &[143, 0, 0, 0, 0, 0, 0, 0])));
        // A chain cut short is suspect.
        let mut cut = v6[..54].to_vec();
        cut[20] = 0; // hop-by-hop options, then nothing
        assert!(unlocatable(&cut));
        assert!(!unlocatable(&[0u8; 10]), "too short to be anything");
    }
}
