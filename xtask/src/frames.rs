//! Small builders for the frames the hostile suite sends: Ethernet, ARP,
//! IPv4 (with options), ICMP, UDP and TCP, with correct checksums, so that a
//! test can build a valid frame and then break exactly one thing in it.
//!
//! Ref: RFC 791 (IPv4), RFC 792 (ICMP), RFC 768 (UDP), RFC 9293 (TCP),
//! RFC 826 (ARP), RFC 1071 (the Internet checksum).

use std::net::Ipv4Addr;

/// Ethernet II header length: destination, source, EtherType (IEEE 802.3 3.1.1).
pub const ETHERNET_HEADER: usize = 14;
/// Where the EtherType sits in an Ethernet II header.
pub const ETHERTYPE_OFFSET: usize = 12;
/// The largest IP packet a frame carries on the test networks (Ethernet's MTU).
pub const MTU: usize = 1500;
/// IPv4 header without options (RFC 791 3.1).
pub const IPV4_HEADER: usize = 20;
/// IPv6 header, without extension headers (RFC 8200 3).
pub const IPV6_HEADER: usize = 40;
/// TCP header without options (RFC 9293 3.1).
pub const TCP_HEADER: usize = 20;
/// UDP header (RFC 768).
pub const UDP_HEADER: usize = 8;
/// Fields' offsets in an IPv4 header (RFC 791 3.1): total length, header checksum.
pub const IPV4_TOTAL_LENGTH_OFFSET: usize = 2;
pub const IPV4_CHECKSUM_OFFSET: usize = 10;
/// Fields' offsets in a TCP header (RFC 9293 3.1): data offset, checksum.
pub const TCP_DATA_OFFSET: usize = 12;
pub const TCP_CHECKSUM_OFFSET: usize = 16;
/// Fields' offsets in a UDP header (RFC 768): length, checksum.
pub const UDP_LENGTH_OFFSET: usize = 4;
pub const UDP_CHECKSUM_OFFSET: usize = 6;
/// EtherTypes (IANA "IEEE 802 Numbers").
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
/// TCP flags (RFC 9293 3.1).
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
/// IPv4 "more fragments" flag, in the flags/offset word.
pub const MORE_FRAGMENTS: u16 = 0x2000;
/// ICMP echo request and reply types (RFC 792).
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_ECHO_REPLY: u8 = 0;

/// An Ethernet (MAC-48) address.
pub type Mac = [u8; 6];

/// `mac` as `52:54:00:12:34:56`: how QEMU's `mac=`, `ip neigh`, sysfs,
/// Skiff's `/stats` and tshark write one. The one MAC formatter of xtask.
pub fn mac_text(mac: Mac) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// Reads a MAC written as [`mac_text`] writes it (either case).
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The source address of an Ethernet II frame (after the destination's).
pub fn source_mac(frame: &[u8]) -> Option<Mac> {
    frame.get(6..12)?.try_into().ok()
}

/// The EtherType of an Ethernet II frame.
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    be16(frame, ETHERTYPE_OFFSET)
}

/// The one's-complement sum of `data` as big-endian 16-bit words (RFC 1071),
/// starting from `acc`, folded to 16 bits. Written here rather than taken
/// from `skiff_net::checksum`, so that the tests judge Skiff's checksums
/// with code of their own.
pub fn ones_sum(data: &[u8], mut acc: u32) -> u16 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u32::from(*last) << 8;
    }
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data` (RFC 1071), starting from `acc`.
pub fn checksum(data: &[u8], acc: u32) -> u16 {
    !ones_sum(data, acc)
}

/// The sum of the TCP/UDP pseudo-header (RFC 9293 3.1, RFC 768).
fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    let (s, d) = (src.octets(), dst.octets());
    [u16::from_be_bytes([s[0], s[1]]), u16::from_be_bytes([s[2], s[3]]), u16::from_be_bytes([d[0], d[1]])]
        .into_iter()
        .chain([u16::from_be_bytes([d[2], d[3]]), u16::from(proto), len as u16])
        .map(u32::from)
        .sum()
}

/// An Ethernet II frame.
pub fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETHERNET_HEADER + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet's fields; `build` fills in lengths and the checksum.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ident: u16,
    /// Flags and fragment offset (in 8-byte units).
    pub flags_offset: u16,
    /// Options, padded by the caller to a multiple of 4 bytes.
    pub options: Vec<u8>,
}

impl Ipv4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Ipv4 {
        Ipv4 { src, dst, proto, ident: 1, flags_offset: 0, options: Vec::new() }
    }

    /// Header and payload, with the right total length and checksum.
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let header = IPV4_HEADER + self.options.len();
        let total = (header + payload.len()) as u16;
        let mut p = vec![0x40 | (header / 4) as u8, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&self.ident.to_be_bytes());
        p.extend_from_slice(&self.flags_offset.to_be_bytes());
        p.extend_from_slice(&[64, self.proto, 0, 0]);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        p.extend_from_slice(&self.options);
        let sum = checksum(&p, 0);
        p[IPV4_CHECKSUM_OFFSET..IPV4_CHECKSUM_OFFSET + 2].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }
}

/// Recomputes the IPv4 header checksum of the packet after the Ethernet header.
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    let ip = ETHERNET_HEADER;
    let ihl = usize::from(frame[ip] & 0x0F) * 4;
    let end = (ip + ihl).min(frame.len());
    let field = ip + IPV4_CHECKSUM_OFFSET..ip + IPV4_CHECKSUM_OFFSET + 2;
    frame[field.clone()].copy_from_slice(&[0, 0]);
    let sum = checksum(&frame[ip..end], 0);
    frame[field].copy_from_slice(&sum.to_be_bytes());
}

/// A TCP segment's fields; `build` fills in the checksum.
#[derive(Clone, Debug)]
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

impl Tcp {
    /// The segment with `payload`, checksummed for `src` → `dst`.
    pub fn build(&self, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let mut s = Vec::with_capacity(TCP_HEADER + payload.len());
        s.extend_from_slice(&self.src_port.to_be_bytes());
        s.extend_from_slice(&self.dst_port.to_be_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.ack.to_be_bytes());
        s.extend_from_slice(&[((TCP_HEADER / 4) as u8) << 4, self.flags]);
        s.extend_from_slice(&self.window.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        s.extend_from_slice(payload);
        let sum = checksum(&s, pseudo_sum(src, dst, PROTO_TCP, s.len()));
        s[TCP_CHECKSUM_OFFSET..TCP_CHECKSUM_OFFSET + 2].copy_from_slice(&sum.to_be_bytes());
        s
    }
}

/// A UDP datagram, checksummed for `src` → `dst`.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let len = (UDP_HEADER + payload.len()) as u16;
    let mut d = Vec::with_capacity(usize::from(len));
    d.extend_from_slice(&src_port.to_be_bytes());
    d.extend_from_slice(&dst_port.to_be_bytes());
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let sum = checksum(&d, pseudo_sum(src, dst, PROTO_UDP, d.len()));
    // Zero means "no checksum" in UDP; its ones'-complement twin goes instead.
    let sum = if sum == 0 { 0xFFFF } else { sum };
    d[UDP_CHECKSUM_OFFSET..UDP_CHECKSUM_OFFSET + 2].copy_from_slice(&sum.to_be_bytes());
    d
}

/// An ICMP echo request (or reply) with `payload`.
pub fn icmp_echo(kind: u8, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let sum = checksum(&m, 0);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// An ARP request (operation 1) or reply (2) for IPv4 over Ethernet.
pub fn arp(operation: u16, sender_mac: Mac, sender_ip: Ipv4Addr, target_mac: Mac, target_ip: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&operation.to_be_bytes());
    a.extend_from_slice(&sender_mac);
    a.extend_from_slice(&sender_ip.octets());
    a.extend_from_slice(&target_mac);
    a.extend_from_slice(&target_ip.octets());
    a
}

/// A whole frame: Ethernet + IPv4 (`ip`) + `l4`.
pub fn ipv4_frame(dst_mac: Mac, src_mac: Mac, ip: &Ipv4, l4: &[u8]) -> Vec<u8> {
    ethernet(dst_mac, src_mac, ETHERTYPE_IPV4, &ip.build(l4))
}

/// A parsed view of a received IPv4/TCP frame, enough for the raw client.
#[derive(Clone, Debug)]
pub struct TcpSeen {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: Vec<u8>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The IPv4 packet in an Ethernet frame: (header length, protocol, src, dst, the packet up to its total length).
fn ipv4_of(frame: &[u8]) -> Option<(usize, u8, Ipv4Addr, Ipv4Addr, &[u8])> {
    if ethertype(frame)? != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get(ETHERNET_HEADER..)?;
    let ihl = usize::from(*ip.first()? & 0x0F) * 4;
    let total = usize::from(be16(ip, IPV4_TOTAL_LENGTH_OFFSET)?);
    if ihl < IPV4_HEADER || total < ihl || total > ip.len() {
        return None;
    }
    let addr = |at: usize| ip.get(at..at + 4).map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]));
    Some((ihl, ip[9], addr(12)?, addr(16)?, &ip[..total]))
}

/// Parses a received Ethernet/IPv4/TCP frame.
pub fn parse_tcp(frame: &[u8]) -> Option<TcpSeen> {
    let (ihl, proto, src, dst, ip) = ipv4_of(frame)?;
    if proto != PROTO_TCP {
        return None;
    }
    let t = ip.get(ihl..)?;
    let offset = usize::from(*t.get(TCP_DATA_OFFSET)? >> 4) * 4;
    Some(TcpSeen {
        src,
        dst,
        src_port: be16(t, 0)?,
        dst_port: be16(t, 2)?,
        seq: be32(t, 4)?,
        ack: be32(t, 8)?,
        flags: *t.get(13)?,
        payload: t.get(offset..)?.to_vec(),
    })
}

/// Parses a received ICMP echo reply: (source, identifier, sequence).
pub fn parse_echo_reply(frame: &[u8]) -> Option<(Ipv4Addr, u16, u16)> {
    let (ihl, proto, src, _, ip) = ipv4_of(frame)?;
    let m = ip.get(ihl..)?;
    (proto == PROTO_ICMP && *m.first()? == ICMP_ECHO_REPLY).then_some((src, be16(m, 4)?, be16(m, 6)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    #[test]
    fn macs_are_written_and_read_back() {
        let mac = [0x52, 0x54, 0x00, 0x12, 0xab, 0xFF];
        assert_eq!(mac_text(mac), "52:54:00:12:ab:ff");
        assert_eq!(parse_mac("52:54:00:12:ab:ff\n"), Some(mac));
        assert_eq!(parse_mac("52:54:00:12:AB:FF"), Some(mac));
        for bad in
            ["", "52:54:00:12:ab", "52:54:00:12:ab:ff:00", "52:54:00:12:ab:f", "52:54:00:12:ab:gg", "525:4:00:12:ab:ff"]
        {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn checksum_matches_rfc_1071_example() {
        // RFC 1071 section 3: the folded sum is 0xddf2, so the checksum is its complement.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0), !0xddf2);
    }

    #[test]
    fn a_built_ipv4_header_sums_to_zero_and_carries_its_lengths() {
        let mut ip = Ipv4::new(A, B, PROTO_UDP);
        ip.options = vec![1, 1, 1, 1];
        let p = ip.build(&[9; 10]);
        assert_eq!(p[0], 0x46);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 34);
        assert_eq!(checksum(&p[..24], 0), 0, "a header with its checksum sums to all ones");
    }

    #[test]
    fn tcp_and_udp_checksums_verify_with_the_pseudo_header() {
        let seg = Tcp { src_port: 1, dst_port: 80, seq: 7, ack: 0, flags: SYN, window: 100 }.build(A, B, b"hi");
        assert_eq!(checksum(&seg, pseudo_sum(A, B, PROTO_TCP, seg.len())), 0);
        let d = udp(A, B, 5, 7, b"abc");
        assert_eq!(checksum(&d, pseudo_sum(A, B, PROTO_UDP, d.len())), 0);
    }

    #[test]
    fn built_frames_parse_back() {
        let tcp = Tcp { src_port: 1234, dst_port: 80, seq: 1, ack: 2, flags: SYN | ACK, window: 512 };
        let f = ipv4_frame([1; 6], [2; 6], &Ipv4::new(A, B, PROTO_TCP), &tcp.build(A, B, b"xyz"));
        let seen = parse_tcp(&f).unwrap();
        assert_eq!((seen.src, seen.dst_port, seen.seq, seen.ack, seen.flags), (A, 80, 1, 2, SYN | ACK));
        assert_eq!(seen.payload, b"xyz");
        let f = ipv4_frame([1; 6], [2; 6], &Ipv4::new(B, A, PROTO_ICMP), &icmp_echo(ICMP_ECHO_REPLY, 9, 3, b"p"));
        assert_eq!(parse_echo_reply(&f), Some((B, 9, 3)));
        assert!(parse_tcp(&f[..20]).is_none());
    }
}
