//! Segmentation offload, the virtio side of it.
//!
//! Transmit (HOST_TSO4/6, spec 5.1.6.2): the stack hands over one TCP frame
//! of up to 64 KiB; the header tells the device to cut it into segments of
//! `gso_size` payload bytes, each behind a copy of the first `hdr_len`
//! bytes, and to checksum each (`NEEDS_CSUM` is required with GSO).
//!
//! Receive (GUEST_TSO4/6, spec 5.1.6.4): the device may hand up such a frame
//! itself, several segments coalesced into one. It is device input: its
//! header must describe the frame it arrived with, or the frame is dropped.
//!
//! The protocol parsing (which IP version, where TCP starts) is the stack's:
//! `skiff_net::rx_check`, `skiff_net::checksum`.

use skiff_net::checksum::{Transport, find_segment};
use skiff_net::rx_check::{Headers, Network};

use super::header::{FLAG_NEEDS_CSUM, GSO_ECN, GSO_TCPV4, GSO_TCPV6, NetHeader};
use super::offload;

/// TCP's data offset: the high nibble of byte 12, in 32-bit words (RFC 9293 3.1).
const TCP_DATA_OFFSET_AT: usize = 12;
/// The smallest TCP header (RFC 9293 3.1).
const TCP_MIN_HEADER: usize = 20;

/// Which TSO kinds a device takes or gives (the negotiated features).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tso {
    /// TCP over IPv4 (HOST_TSO4 / GUEST_TSO4).
    pub v4: bool,
    /// TCP over IPv6 (HOST_TSO6 / GUEST_TSO6).
    pub v6: bool,
}

impl Tso {
    /// Whether any kind is on.
    pub fn any(self) -> bool {
        self.v4 || self.v6
    }
}

/// A TCP frame's GSO type and header length (Ethernet, IP and TCP headers):
/// `None` unless it is untagged TCP over IPv4 or IPv6 whose lengths add up.
fn tcp_layout(frame: &[u8]) -> Option<(u8, usize)> {
    let gso_type = match Headers::parse(frame).network {
        Network::Ipv4(ip) if !ip.tagged => GSO_TCPV4,
        Network::Ipv6(ip) if !ip.tagged => GSO_TCPV6,
        _ => return None,
    };
    let segment = find_segment(frame)?;
    if segment.transport != Transport::Tcp {
        return None;
    }
    let tcp_header = usize::from(frame.get(segment.start + TCP_DATA_OFFSET_AT)? >> 4) * 4;
    if tcp_header < TCP_MIN_HEADER || tcp_header > segment.len {
        return None;
    }
    Some((gso_type, segment.start + tcp_header))
}

/// The header for sending `frame` with TSO in segments of `segment_size`
/// payload bytes, having written the pseudo-header sum into its TCP
/// checksum (as for CSUM). `None` if the device cannot take this frame
/// segmented (not TCP, or an IP version it did not offer): the caller sends
/// it as it is.
pub fn tso_header(frame: &mut [u8], segment_size: u16, tso: Tso) -> Option<NetHeader> {
    let (gso_type, hdr_len) = tcp_layout(frame)?;
    let offered = if gso_type == GSO_TCPV4 { tso.v4 } else { tso.v6 };
    if !offered || segment_size == 0 {
        return None;
    }
    let (csum_start, csum_offset) = offload::prepare(frame)?;
    Some(NetHeader {
        flags: FLAG_NEEDS_CSUM,
        gso_type,
        hdr_len: u16::try_from(hdr_len).ok()?,
        gso_size: segment_size,
        csum_start,
        csum_offset,
        num_buffers: 0,
    })
}

/// Why a received GSO header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadGso {
    /// A GSO type the driver did not negotiate (UDP, ECN, an IP version
    /// without GUEST_TSO, or any at all without them).
    NotNegotiated,
    /// The header does not describe the frame: not TCP of the type's IP
    /// version, `gso_size` zero, or `hdr_len` past the end of the frame.
    Mismatch,
}

/// Checks a received frame whose header has a `gso_type` other than NONE.
/// Nothing needs doing to an accepted one: the stack takes a TCP segment of
/// any length the IP header gives, and its checksum is dealt with as for any
/// frame (NEEDS_CSUM or DATA_VALID).
pub fn check_received(header: &NetHeader, frame: &[u8], negotiated: Tso) -> Result<(), BadGso> {
    let (kind, ecn) = (header.gso_type & !GSO_ECN, header.gso_type & GSO_ECN != 0);
    let allowed = match kind {
        GSO_TCPV4 => negotiated.v4,
        GSO_TCPV6 => negotiated.v6,
        _ => false,
    };
    // GUEST_ECN is never negotiated: the ECN bit is refused too.
    if !allowed || ecn {
        return Err(BadGso::NotNegotiated);
    }
    let Some((actual, headers)) = tcp_layout(frame) else { return Err(BadGso::Mismatch) };
    // hdr_len is a hint (Linux sends the length of the linear part, which
    // may reach into the payload), but it may not point past the frame.
    if actual != kind || header.gso_size == 0 || usize::from(header.hdr_len) > frame.len() || headers > frame.len() {
        return Err(BadGso::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use skiff_net::checksum::test_frames::{tcp4_frame, udp4_frame};

    #[test]
    fn a_big_tcp4_frame_gets_a_tso_header() {
        let mut frame = tcp4_frame(&[7u8; 4000]);
        let h = tso_header(&mut frame, 1448, Tso { v4: true, v6: false }).expect("TSO header");
        assert_eq!((h.flags, h.gso_type, h.hdr_len, h.gso_size), (FLAG_NEEDS_CSUM, GSO_TCPV4, 54, 1448));
        assert_eq!((h.csum_start, h.csum_offset), (34, 16));
    }

    #[test]
    fn no_tso_for_udp_or_a_version_not_offered() {
        let mut frame = tcp4_frame(&[7u8; 4000]);
        assert_eq!(tso_header(&mut frame, 1448, Tso { v4: false, v6: true }), None);
        assert_eq!(tso_header(&mut frame, 0, Tso { v4: true, v6: true }), None);
        let mut udp = udp4_frame(&[1u8; 3000]);
        assert_eq!(tso_header(&mut udp, 1448, Tso { v4: true, v6: true }), None);
    }

    #[test]
    fn received_gso_headers_must_be_negotiated_and_match() {
        let frame = tcp4_frame(&[7u8; 3000]);
        let both = Tso { v4: true, v6: true };
        let good = NetHeader { gso_type: GSO_TCPV4, gso_size: 1448, hdr_len: 54, ..NetHeader::default() };
        assert_eq!(check_received(&good, &frame, both), Ok(()));
        assert_eq!(check_received(&good, &frame, Tso::default()), Err(BadGso::NotNegotiated));
        assert_eq!(check_received(&good, &frame, Tso { v4: false, v6: true }), Err(BadGso::NotNegotiated));
        let ecn = NetHeader { gso_type: GSO_TCPV4 | GSO_ECN, ..good };
        assert_eq!(check_received(&ecn, &frame, both), Err(BadGso::NotNegotiated));
        let udp = NetHeader { gso_type: 3, ..good };
        assert_eq!(check_received(&udp, &frame, both), Err(BadGso::NotNegotiated));
        let v6 = NetHeader { gso_type: GSO_TCPV6, ..good };
        assert_eq!(check_received(&v6, &frame, both), Err(BadGso::Mismatch));
        let zero = NetHeader { gso_size: 0, ..good };
        assert_eq!(check_received(&zero, &frame, both), Err(BadGso::Mismatch));
        let past = NetHeader { hdr_len: frame.len() as u16 + 1, ..good };
        assert_eq!(check_received(&past, &frame, both), Err(BadGso::Mismatch));
        let not_tcp = udp4_frame(&[1u8; 3000]);
        assert_eq!(check_received(&good, &not_tcp, both), Err(BadGso::Mismatch));
    }
}
