//! Received frames that smoltcp would drop without a word, named and
//! counted before it sees them.
//!
//! smoltcp parses untrusted bytes safely, but a frame it cannot parse just
//! disappears (`net_debug!` at most). So that `/stats` can say what arrived
//! and why it went nowhere, the adapter asks [`classify`] first and drops
//! what it names, counted by reason. It names only frames smoltcp would drop
//! anyway, using smoltcp's own `new_checked` views, so serving does not change.
//!
//! Ref: RFC 791 (IPv4 header, fragments), RFC 9293 3.1 (TCP data offset),
//! RFC 768 (UDP length), IEEE 802.3 (the 14-byte Ethernet II header).

use smoltcp::wire::{ArpPacket, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

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

/// What is wrong with `frame`, if it is one of the [`Malformed`] kinds.
pub fn classify(frame: &[u8]) -> Option<Malformed> {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return Some(Malformed::Ethernet);
    };
    match ethernet.ethertype() {
        EthernetProtocol::Ipv4 => {}
        EthernetProtocol::Arp => return ArpPacket::new_checked(ethernet.payload()).err().map(|_| Malformed::Arp),
        _ => return None,
    }
    let ip = match Ipv4Packet::new_checked(ethernet.payload()) {
        Ok(ip) if ip.version() == 4 => ip,
        _ => return Some(Malformed::Ipv4Header),
    };
    if !ip.verify_checksum() {
        return Some(Malformed::Ipv4Checksum);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Some(Malformed::Ipv4Fragment);
    }
    match ip.next_header() {
        IpProtocol::Tcp if TcpPacket::new_checked(ip.payload()).is_err() => Some(Malformed::TcpHeader),
        IpProtocol::Udp if UdpPacket::new_checked(ip.payload()).is_err() => Some(Malformed::UdpHeader),
        _ => None,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::checksum::test_frames;

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
}
