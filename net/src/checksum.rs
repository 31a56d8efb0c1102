//! Internet checksums for TCP and UDP: finding a frame's segment, its
//! pseudo-header sum, computing and verifying the checksum.
//!
//! Every length here comes from the packet, so every one is checked before use.
//!
//! Used by the stack adapter (software verification) and by drivers: what a
//! card's checksum offload asks of its driver (virtio's `csum_start` and
//! `csum_offset`, completing a partial sum) lives with that driver and is
//! built on [`find_segment`], [`sum`] and [`fold`].
//!
//! Ref: RFC 1071 (computing the checksum), RFC 768 and 9293 (UDP and TCP
//! pseudo-headers), RFC 8200 8.1 (IPv6 pseudo-header).

use crate::rx_check::{Headers, TransportChecksum};

/// IPv6's fixed header, after which extension headers start.
const IPV6_HEADER: usize = 40;
/// The protocol numbers of TCP and UDP (IANA), in IPv4's protocol field and IPv6's next header.
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
/// Offset of the checksum field in a TCP header.
pub const TCP_CSUM_OFFSET: u16 = 16;
/// Offset of the checksum field in a UDP header.
pub const UDP_CSUM_OFFSET: u16 = 6;

/// Adds `data` as big-endian 16-bit words to `acc` (an odd last byte is padded with zero).
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits, carries added back in (ones' complement addition).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u16
}

/// The transport protocol of a frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// Where the checksum sits in this protocol's header.
    pub fn csum_offset(self) -> u16 {
        match self {
            Transport::Tcp => TCP_CSUM_OFFSET,
            Transport::Udp => UDP_CSUM_OFFSET,
        }
    }
}

/// Where a frame's TCP or UDP segment is, and its pseudo-header sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// TCP or UDP.
    pub transport: Transport,
    /// Offset of the TCP/UDP header in the frame.
    pub start: usize,
    /// Length of the segment (header and payload), from the IP header; the
    /// frame may carry Ethernet padding after it.
    pub len: usize,
    /// Unfolded sum of the pseudo-header.
    pub pseudo_sum: u64,
}

impl Segment {
    /// Offset of the checksum field in the frame.
    pub fn csum_at(&self) -> usize {
        self.start + usize::from(self.transport.csum_offset())
    }
}

/// Finds the TCP or UDP segment in an Ethernet frame (optionally with one
/// VLAN tag) carrying IPv4 (unfragmented) or IPv6 (no extension headers).
/// `None` for anything else, or for lengths that do not add up. The
/// headers are read by [`Headers::parse`], as for received frames.
pub fn find_segment(frame: &[u8]) -> Option<Segment> {
    match Headers::parse(frame).transport_checksum(frame) {
        TransportChecksum::Segment(segment) => Some(segment),
        TransportChecksum::Unlocatable | TransportChecksum::None => None,
    }
}

/// IPv6 extension headers Skiff can step over (RFC 8200 4): hop-by-hop,
/// routing and destination options (length in 8-byte units, after the
/// first 8), and the fixed 8-byte fragment header.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DESTINATION_OPTIONS: u8 = 60;
/// Extension headers followed before giving up (RFC 8200 allows each once or twice).
const IPV6_MAX_EXTENSIONS: usize = 8;

/// Whether an IPv6 packet at `ip` with extension headers carries TCP or UDP
/// at the end of its chain. Not just any extension header: MLD reports, for
/// one, are ICMPv6 behind a hop-by-hop header, and have no TCP/UDP checksum
/// to fail. A chain that is cut short or too long counts as carrying one.
pub(crate) fn ipv6_chain_leads_to_transport(frame: &[u8], ip: usize) -> bool {
    let Some(&first) = frame.get(ip + 6) else { return false };
    let mut next = first;
    let mut at = ip + IPV6_HEADER;
    for _ in 0..IPV6_MAX_EXTENSIONS {
        let len = match next {
            PROTO_TCP | PROTO_UDP => return true,
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DESTINATION_OPTIONS => match frame.get(at + 1) {
                Some(&units) => (usize::from(units) + 1) * 8,
                None => return true,
            },
            IPV6_FRAGMENT => 8,
            _ => return false,
        };
        match frame.get(at) {
            Some(&n) => next = n,
            None => return true,
        }
        at += len;
    }
    true
}

/// Computes a frame's TCP/UDP checksum in software. Returns `false` if the
/// frame is not TCP/UDP we can describe (it is then sent as it is).
pub fn fill_in_software(frame: &mut [u8]) -> bool {
    let Some(segment) = find_segment(frame) else { return false };
    let at = segment.csum_at();
    frame[at..at + 2].fill(0);
    let value = !fold(sum(&frame[segment.start..segment.start + segment.len], segment.pseudo_sum));
    // Zero means "no checksum" to UDP (RFC 768): a sum of zero is sent as
    // 0xFFFF, its equal in ones' complement.
    let value = if value == 0 { 0xFFFF } else { value };
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
    true
}

/// Checks a frame's TCP/UDP checksum: `Some(true)` if it is right (or a UDP
/// datagram without one), `Some(false)` if wrong, `None` if the frame is not
/// TCP/UDP we can describe.
pub fn verify(frame: &[u8]) -> Option<bool> {
    find_segment(frame).map(|segment| verify_segment(frame, &segment))
}

/// Checks the checksum of `segment`, found in `frame`: whether it is right
/// (or a UDP datagram without one).
pub fn verify_segment(frame: &[u8], segment: &Segment) -> bool {
    let at = segment.csum_at();
    let Some(bytes) = frame.get(segment.start..segment.start + segment.len) else { return false };
    if segment.transport == Transport::Udp && frame.get(at..at + 2) == Some(&[0, 0]) {
        return true;
    }
    fold(sum(bytes, segment.pseudo_sum)) == 0xFFFF
}

/// Frames for tests, here and in the crates that use this module.
#[doc(hidden)]
pub mod test_frames {
    use alloc::vec::Vec;

    /// An Ethernet + IPv4 + UDP frame with `payload`, checksum field zero.
    pub fn udp4_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::from([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x54, 0, 0xab, 0xcd, 0xef, 0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, 2, 15, 10, 0, 2, 2]);
        let udp_len = (8 + payload.len()) as u16;
        f.extend_from_slice(&[0x30, 0x39, 0, 53, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// An Ethernet + IPv4 + TCP frame (20-byte headers) with `payload`,
    /// checksum fields zero.
    pub fn tcp4_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::from([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x54, 0, 0xab, 0xcd, 0xef, 0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&[10, 0, 2, 15, 10, 0, 2, 2]);
        f.extend_from_slice(&[0, 80, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// An Ethernet + IPv6 + TCP frame (20-byte header) with `payload`.
    pub fn tcp6_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::from([0x33, 0x33, 0, 0, 0, 1, 0x52, 0x54, 0, 0xab, 0xcd, 0xef, 0x86, 0xdd]);
        let plen = (20 + payload.len()) as u16;
        f.extend_from_slice(&[0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, 6, 64]);
        f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0, 0xff, 0xfe, 0xab, 0xcd, 0xef]);
        f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[0x1f, 0x90, 0xc3, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }
}

#[cfg(test)]
mod test {
    use super::test_frames::{tcp6_frame, udp4_frame};
    use super::*;

    /// RFC 1071, section 3's worked example.
    #[test]
    fn sum_matches_rfc_1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(fold(sum(&[0xab], 0)), 0xab00, "odd byte padded on the right");
    }

    /// A checksum computed the slow, obvious way: build the pseudo-header as
    /// bytes, append the segment with its checksum zeroed, sum and invert.
    fn reference_checksum(src: &[u8], dst: &[u8], proto: u8, segment: &[u8], csum_at: usize) -> u16 {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(src);
        bytes.extend_from_slice(dst);
        if src.len() == 4 {
            bytes.extend_from_slice(&[0, proto]);
            bytes.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        } else {
            bytes.extend_from_slice(&(segment.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, proto]);
        }
        let mut seg = segment.to_vec();
        seg[csum_at] = 0;
        seg[csum_at + 1] = 0;
        bytes.extend_from_slice(&seg);
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut acc: u32 = 0;
        for w in bytes.chunks(2) {
            acc += u32::from(w[0]) << 8 | u32::from(w[1]);
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn software_checksum_matches_the_reference_for_udp4_and_tcp6() {
        for payload in [&b""[..], b"x", b"hello, skiff", &[0xff; 1001]] {
            let mut f = udp4_frame(payload);
            assert!(fill_in_software(&mut f));
            let want = reference_checksum(&f[26..30], &f[30..34], 17, &f[34..], 6);
            assert_eq!(u16::from_be_bytes([f[40], f[41]]), want, "udp4 payload {}", payload.len());
            assert_eq!(verify(&f), Some(true));

            let mut f = tcp6_frame(payload);
            assert!(fill_in_software(&mut f));
            let want = reference_checksum(&f[22..38], &f[38..54], 6, &f[54..], 16);
            assert_eq!(u16::from_be_bytes([f[70], f[71]]), want, "tcp6 payload {}", payload.len());
            assert_eq!(verify(&f), Some(true));
        }
    }

    #[test]
    fn a_corrupted_segment_fails_verification() {
        let mut f = udp4_frame(b"some data");
        fill_in_software(&mut f);
        *f.last_mut().unwrap() ^= 0x01;
        assert_eq!(verify(&f), Some(false));
    }

    #[test]
    fn udp_without_checksum_is_valid() {
        let f = udp4_frame(b"no checksum");
        assert_eq!(verify(&f), Some(true), "UDP over IPv4 with checksum 0 means none");
    }

    #[test]
    fn padding_after_the_ip_packet_is_not_summed() {
        let mut f = udp4_frame(b"pad me");
        fill_in_software(&mut f);
        f.extend_from_slice(&[0xEE; 10]); // Ethernet padding to the 60-byte minimum
        assert_eq!(verify(&f), Some(true));
    }

    #[test]
    fn frames_that_do_not_add_up_are_refused_not_trusted() {
        let good = udp4_frame(b"0123456789");
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut f = good.clone();
        f[16..18].copy_from_slice(&2000u16.to_be_bytes());
        cases.push(("IP total length past the frame", f));
        let mut f = good.clone();
        f[14] = 0x44;
        cases.push(("IHL below 5", f));
        let mut f = good.clone();
        f[14] = 0x4f;
        cases.push(("IHL past the total length", f));
        let mut f = good.clone();
        f[20] = 0x20;
        cases.push(("a fragment", f));
        let mut f = good.clone();
        f[23] = 1;
        cases.push(("ICMP", f));
        cases.push(("truncated IP header", good[..30].to_vec()));
        cases.push(("empty", Vec::new()));
        let mut f = good.clone();
        f[16..18].copy_from_slice(&24u16.to_be_bytes());
        cases.push(("UDP shorter than its header", f));
        for (what, f) in cases {
            assert_eq!(find_segment(&f), None, "{what}");
            assert_eq!(verify(&f), None, "{what}");
            let mut g = f.clone();
            assert!(!fill_in_software(&mut g), "{what}");
            assert_eq!(g, f, "{what}: changed a frame it could not describe");
        }
    }

    #[test]
    fn vlan_tagged_frames_are_understood() {
        let mut f = udp4_frame(b"tagged");
        f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        assert!(fill_in_software(&mut f));
        assert_eq!(verify(&f), Some(true));
        assert_eq!(find_segment(&f).unwrap().start, 14 + 4 + 20);
    }
}
