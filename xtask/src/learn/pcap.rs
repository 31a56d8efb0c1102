//! Checking a capture's checksums with `tshark`, with and without offload.
//!
//! What QEMU 7.2's `filter-dump` records: every frame that crosses the
//! netdev, both ways, as the netdev carries it. On the user network (slirp)
//! that is a plain Ethernet frame with complete checksums. On a TAP netdev
//! with `vnet_hdr=on` each frame still starts with the `virtio_net_hdr`
//! (10 bytes, 12 once the driver negotiated VERSION_1): this `filter-dump`
//! has no option to strip it (`vnet_hdr_support` belongs to the mirror and
//! redirector filters), so Wireshark would read the header as MAC addresses.
//! And under checksum offload a frame whose header has NEEDS_CSUM carries a
//! *partial* TCP/UDP checksum — the pseudo-header sum, left for the device
//! (guest to host) or the driver (host to guest) to complete — which tshark
//! rightly calls wrong.
//!
//! So the check is, per capture:
//! 1. strip the header when there is one, keeping its flags;
//! 2. every NEEDS_CSUM frame's checksum field must hold exactly the
//!    pseudo-header sum (RFC 1071 folding), which is what completes to a
//!    correct checksum; complete it as the device would;
//! 3. tshark, with IP/TCP/UDP checksum validation on, must call every
//!    checksum in the result good, with TCP and UDP seen both ways.
//!
//! With segmentation offload a frame may be a 64 KiB TCP segment whose
//! header names a GSO type: one the guest asks the device to cut (TSO), or
//! one the host coalesced for the guest. Its checksum covers all of it, so
//! tshark judges it whole; its GSO fields must name TCP of its IP version
//! and a segment size, and it is counted. A coalesced frame the host marked
//! DATA_VALID keeps the first segment's checksum (the host vouches for each
//! segment, which the capture does not hold): it is recomputed, and counted.
//!
//! The capture a learner opens in Wireshark (`run --pcap`) is the raw one.

use std::path::Path;
use std::process::Command;

use crate::Result;
use crate::frames::{
    ETHERNET_HEADER, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPV6_HEADER, Mac, PROTO_TCP, PROTO_UDP,
    TCP_CHECKSUM_OFFSET, UDP_CHECKSUM_OFFSET, ethertype, mac_text, ones_sum, source_mac,
};

/// pcap's global header (libpcap format, microsecond timestamps).
const PCAP_HEADER: usize = 24;
const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
const PCAP_RECORD_HEADER: usize = 16;
/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;
/// `virtio_net_hdr` sizes (virtio spec 5.1.6): without and with `num_buffers`.
const VNET_HDR_LEGACY: usize = 10;
const VNET_HDR_MODERN: usize = 12;
/// `virtio_net_hdr.flags` (spec 5.1.6): the checksum is partial / was validated.
pub const VNET_NEEDS_CSUM: u8 = 1;
pub const VNET_DATA_VALID: u8 = 2;

/// A `virtio_net_hdr`'s checksum fields: flags, csum_start, csum_offset.
pub type VnetChecksum = (u8, u16, u16);
/// Its segmentation fields, for a GSO frame: gso_type, gso_size, hdr_len.
pub type VnetGso = (u8, u16, u16);
/// `gso_type` (spec 5.1.6): none, TCP/IPv4, TCP/IPv6; the ECN bit.
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_ECN: u8 = 0x80;

/// One captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The record's timestamp (seconds, microseconds).
    pub time: (u32, u32),
    /// The `virtio_net_hdr` the netdev carried, if it had one: flags,
    /// csum_start, csum_offset.
    pub vnet: Option<VnetChecksum>,
    /// Its GSO fields, if it is a segmentation-offload frame.
    pub gso: Option<VnetGso>,
    /// The Ethernet frame.
    pub data: Vec<u8>,
}

/// Reads a pcap file's frames. `vnet_header`: the netdev put a
/// `virtio_net_hdr` in front of each frame (a TAP with `vnet_hdr=on`).
pub fn read(bytes: &[u8], vnet_header: bool) -> Result<Vec<Frame>> {
    let word = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if word(0) != Some(PCAP_MAGIC) {
        return Err("not a little-endian microsecond pcap file".into());
    }
    if word(20) != Some(LINKTYPE_ETHERNET) {
        return Err(format!("pcap link type {:?}, expected Ethernet", word(20)));
    }
    let mut frames = Vec::new();
    let mut at = PCAP_HEADER;
    while at < bytes.len() {
        let (Some(sec), Some(usec), Some(caplen)) = (word(at), word(at + 4), word(at + 8)) else {
            return Err(format!("pcap record header cut at byte {at}"));
        };
        let start = at + PCAP_RECORD_HEADER;
        let data = bytes.get(start..start + caplen as usize).ok_or(format!("pcap record cut at byte {at}"))?;
        at = start + caplen as usize;
        let (vnet, data) = if vnet_header { split_vnet(data)? } else { (None, data) };
        let gso = vnet_header.then(|| bytes[start + 1]).filter(|&t| t != GSO_NONE).map(|kind| {
            let u16_at = |i: usize| u16::from_le_bytes([bytes[start + i], bytes[start + i + 1]]);
            (kind, u16_at(4), u16_at(2))
        });
        frames.push(Frame { time: (sec, usec), vnet, gso, data: data.to_vec() });
    }
    Ok(frames)
}

/// Splits a `virtio_net_hdr` off a frame. Its length changes when the driver
/// negotiates VERSION_1, so it is the one after which an EtherType Skiff
/// speaks sits at offset 12.
fn split_vnet(data: &[u8]) -> Result<(Option<VnetChecksum>, &[u8])> {
    let known = |hdr: usize| {
        matches!(data.get(hdr..).and_then(ethertype), Some(ETHERTYPE_IPV4 | ETHERTYPE_IPV6 | ETHERTYPE_ARP))
    };
    let len = [VNET_HDR_MODERN, VNET_HDR_LEGACY]
        .into_iter()
        .find(|&l| known(l))
        .ok_or_else(|| format!("a {}-byte record with no Ethernet frame after a virtio_net_hdr", data.len()))?;
    let u16_at = |at: usize| u16::from_le_bytes([data[at], data[at + 1]]);
    Ok((Some((data[0], u16_at(6), u16_at(8))), &data[len..]))
}

/// Writes frames as a pcap file (Ethernet, no `virtio_net_hdr`).
pub fn write(frames: &[Frame]) -> Vec<u8> {
    /// Longest frame a record may hold (snaplen): what QEMU recorded.
    const SNAPLEN: u32 = crate::qemu::PCAP_MAXLEN;
    let mut out = Vec::new();
    // Magic; version 2.4 (two little-endian u16s in one word); time zone;
    // timestamp accuracy; snaplen; link type.
    for word in [PCAP_MAGIC, 0x0004_0002, 0, 0, SNAPLEN, LINKTYPE_ETHERNET] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    for f in frames {
        let len = f.data.len() as u32;
        for word in [f.time.0, f.time.1, len, len] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&f.data);
    }
    out
}

/// For an IPv4 or IPv6 TCP/UDP frame: where its transport header starts, and
/// the folded pseudo-header sum (RFC 9293 3.1, RFC 768, RFC 8200 8.1).
fn pseudo_header(frame: &[u8]) -> Option<(usize, u8, u16)> {
    let ip = frame.get(ETHERNET_HEADER..)?;
    let (start, proto, addresses, len) = match ethertype(frame)? {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            (ETHERNET_HEADER + ihl, *ip.get(9)?, ip.get(12..20)?, total.checked_sub(ihl)?)
        }
        // Only IPv6 without extension headers.
        ETHERTYPE_IPV6 => {
            let payload = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            (ETHERNET_HEADER + IPV6_HEADER, *ip.get(6)?, ip.get(8..IPV6_HEADER)?, payload)
        }
        _ => return None,
    };
    if !matches!(proto, PROTO_TCP | PROTO_UDP) {
        return None;
    }
    Some((start, proto, ones_sum(addresses, u32::from(proto) + len as u32)))
}

/// How one NEEDS_CSUM frame was judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partial {
    /// The field held the pseudo-header sum; the frame now has the full checksum.
    Completed,
    /// Something else: what.
    Wrong(String),
}

/// Checks a NEEDS_CSUM frame's partial checksum and completes it as the
/// device would (virtio spec 5.1.6.2: sum from `csum_start` to the end, put
/// the complement at `csum_start + csum_offset`).
pub fn complete(frame: &mut [u8], csum_start: u16, csum_offset: u16) -> Partial {
    let Some((start, proto, pseudo)) = pseudo_header(frame) else {
        return Partial::Wrong("NEEDS_CSUM on a frame that is not TCP/UDP over IP".into());
    };
    let field = usize::from(csum_start) + usize::from(csum_offset);
    let expected_offset = if proto == PROTO_TCP { TCP_CHECKSUM_OFFSET } else { UDP_CHECKSUM_OFFSET };
    if usize::from(csum_start) != start || usize::from(csum_offset) != expected_offset || field + 2 > frame.len() {
        return Partial::Wrong(format!("csum_start {csum_start} / csum_offset {csum_offset} do not name the checksum"));
    }
    let partial = u16::from_be_bytes([frame[field], frame[field + 1]]);
    // 0 and 0xffff are the same number in one's complement.
    if partial != pseudo && !(partial == 0xffff && pseudo == 0 || partial == 0 && pseudo == 0xffff) {
        return Partial::Wrong(format!("partial checksum {partial:#06x}, pseudo-header sum {pseudo:#06x}"));
    }
    let mut checksum = !ones_sum(&frame[start..], 0);
    // UDP sends a computed zero as all ones (RFC 768).
    if proto == PROTO_UDP && checksum == 0 {
        checksum = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&checksum.to_be_bytes());
    Partial::Completed
}

/// What a capture held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames in the capture.
    pub frames: usize,
    /// Frames with a partial checksum, checked and completed.
    pub partial: usize,
    /// Of those, the ones the guest sent.
    pub partial_tx: usize,
    /// Frames the host marked DATA_VALID.
    pub data_valid: usize,
    /// Good TCP checksums sent by the guest / received by it.
    pub tcp_tx: usize,
    pub tcp_rx: usize,
    /// Good UDP checksums sent / received.
    pub udp_tx: usize,
    pub udp_rx: usize,
    /// GSO frames the guest sent (TSO) and received (coalesced).
    pub gso_tx: usize,
    pub gso_rx: usize,
    /// Coalesced frames marked DATA_VALID, whose checksum was recomputed.
    pub gso_valid: usize,
    /// The largest GSO frame each way (Ethernet bytes): the capture keeps
    /// them whole (`qemu::PCAP_MAXLEN`), and tshark judges them so.
    pub gso_tx_largest: usize,
    pub gso_rx_largest: usize,
}

/// Checks the capture at `path` (see the module comment); `guest_mac` tells
/// the directions apart. The completed capture is written next to it.
pub fn check(path: &Path, vnet_header: bool, guest_mac: Mac) -> Result<Tally> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut frames = read(&bytes, vnet_header)?;
    let mut tally = complete_frames(&mut frames, guest_mac)?;
    let completed = path.with_extension("completed.pcap");
    std::fs::write(&completed, write(&frames)).map_err(|e| format!("{}: {e}", completed.display()))?;
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&completed)
        .args(["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"])
        // First occurrences: an ICMP error quotes the IP and UDP headers it is about.
        .args(["-T", "fields", "-E", "separator=,", "-E", "occurrence=f", "-e", "frame.number", "-e", "eth.src"])
        .args(["-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "udp.checksum.status", "-e", "icmp.type"])
        .output()
        .map_err(|e| format!("cannot run tshark (scripts/setup.sh installs it): {e}"))?;
    if !out.status.success() {
        return Err(format!("tshark failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    judge(&String::from_utf8_lossy(&out.stdout), &mac_text(guest_mac), &mut tally)?;
    Ok(tally)
}

/// Strips the virtio headers' work from `frames`: every partial checksum
/// checked and completed, every coalesced DATA_VALID frame's checksum
/// recomputed, so that tshark can judge them all. Counts what it found.
fn complete_frames(frames: &mut [Frame], guest_mac: Mac) -> Result<Tally> {
    let mut tally = Tally { frames: frames.len(), ..Tally::default() };
    for (i, frame) in frames.iter_mut().enumerate() {
        let Some((flags, start, offset)) = frame.vnet else { continue };
        if let Some(gso) = frame.gso {
            check_gso(&frame.data, gso).map_err(|why| format!("frame {}: {why}", i + 1))?;
            let tx = source_mac(&frame.data) == Some(guest_mac);
            if tx {
                tally.gso_tx += 1;
                tally.gso_tx_largest = tally.gso_tx_largest.max(frame.data.len());
            } else {
                tally.gso_rx += 1;
                tally.gso_rx_largest = tally.gso_rx_largest.max(frame.data.len());
            }
            if !tx && flags & VNET_DATA_VALID != 0 && flags & VNET_NEEDS_CSUM == 0 {
                refill(&mut frame.data).map_err(|why| format!("frame {}: {why}", i + 1))?;
                tally.gso_valid += 1;
            }
        }
        if flags & VNET_DATA_VALID != 0 {
            tally.data_valid += 1;
        }
        if flags & VNET_NEEDS_CSUM != 0 {
            match complete(&mut frame.data, start, offset) {
                Partial::Completed => {
                    tally.partial += 1;
                    if source_mac(&frame.data) == Some(guest_mac) {
                        tally.partial_tx += 1;
                    }
                }
                Partial::Wrong(why) => return Err(format!("frame {}: {why}", i + 1)),
            }
        }
    }
    Ok(tally)
}

/// For `cargo xtask run --tap --pcap FILE`: QEMU's capture keeps the
/// `virtio_net_hdr` in front of each frame, which Wireshark reads as MAC
/// addresses. Writes `FILE.completed.pcap` next to it, as the suite's
/// checks do (Ethernet frames, checksums completed, big frames whole), and
/// says what the capture held.
pub fn readable(path: &Path, guest_mac: Mac) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut frames = read(&bytes, true)?;
    let tally = complete_frames(&mut frames, guest_mac)?;
    let completed = path.with_extension("completed.pcap");
    std::fs::write(&completed, write(&frames)).map_err(|e| format!("{}: {e}", completed.display()))?;
    Ok(format!(
        "{}: {} frames with the virtio header stripped and {} partial checksums completed; {} TSO frames out (up \
         to {} bytes), {} coalesced frames in (up to {} bytes)",
        completed.display(),
        tally.frames,
        tally.partial,
        tally.gso_tx,
        tally.gso_tx_largest,
        tally.gso_rx,
        tally.gso_rx_largest
    ))
}

/// A GSO frame's fields must describe it: TCP of the type's IP version, a
/// segment size, headers within the frame (spec 5.1.6.2).
fn check_gso(frame: &[u8], (kind, size, hdr_len): VnetGso) -> std::result::Result<(), String> {
    let want = match ethertype(frame) {
        Some(ETHERTYPE_IPV4) => GSO_TCPV4,
        Some(ETHERTYPE_IPV6) => GSO_TCPV6,
        _ => return Err(format!("gso_type {kind:#x} on a frame that is not IP")),
    };
    let tcp = pseudo_header(frame).is_some_and(|(_, proto, _)| proto == PROTO_TCP);
    if kind & !GSO_ECN != want || !tcp || size == 0 || usize::from(hdr_len) > frame.len() {
        return Err(format!("gso_type {kind:#x}, gso_size {size}, hdr_len {hdr_len} do not describe the frame"));
    }
    Ok(())
}

/// Writes a coalesced frame's full TCP checksum (see the module comment).
fn refill(frame: &mut [u8]) -> std::result::Result<(), String> {
    let (start, _, pseudo) = pseudo_header(frame).ok_or("not TCP over IP")?;
    let field = start + TCP_CHECKSUM_OFFSET;
    if field + 2 > frame.len() {
        return Err("TCP header cut short".into());
    }
    frame[field..field + 2].copy_from_slice(&pseudo.to_be_bytes());
    match complete(frame, start as u16, TCP_CHECKSUM_OFFSET as u16) {
        Partial::Completed => Ok(()),
        Partial::Wrong(why) => Err(why),
    }
}

/// Reads tshark's per-frame checksum statuses (1 good, 0 bad, 2
/// unverified). The TCP/UDP of an ICMP error is the quoted packet's: judged
/// (when tshark can), not counted.
fn judge(fields: &str, guest_mac: &str, tally: &mut Tally) -> Result<()> {
    const GOOD: &str = "1";
    for line in fields.lines() {
        let cols: Vec<&str> = line.split(',').collect();
        let [number, src, ip, tcp, udp, icmp] = cols[..] else {
            return Err(format!("unexpected tshark line {line:?}"));
        };
        let tx = src == guest_mac;
        let quoted = !icmp.is_empty();
        for (what, status) in [("IPv4", ip), ("TCP", tcp), ("UDP", udp)] {
            if !status.is_empty() && status != GOOD && !(quoted && what != "IPv4") {
                let dir = if tx { "sent by the guest" } else { "sent to the guest" };
                return Err(format!("frame {number} ({dir}): tshark says its {what} checksum is not good ({status})"));
            }
        }
        if quoted {
            continue;
        }
        match (tcp == GOOD, udp == GOOD, tx) {
            (true, _, true) => tally.tcp_tx += 1,
            (true, _, false) => tally.tcp_rx += 1,
            (_, true, true) => tally.udp_tx += 1,
            (_, true, false) => tally.udp_rx += 1,
            _ => {}
        }
    }
    if tally.tcp_tx == 0 || tally.tcp_rx == 0 || tally.udp_tx == 0 || tally.udp_rx == 0 {
        return Err(format!("the capture lacks TCP or UDP in one direction: {tally:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP segment 10.0.2.15:80 > 10.0.2.2:40000 with payload "hi", its
    /// checksum field set to `field`.
    fn segment(field: u16) -> Vec<u8> {
        let mut f = vec![0x52, 0x55, 0x0a, 0, 2, 2, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 42, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2]);
        f.extend_from_slice(&[0, 80, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x20, 0]);
        f.extend_from_slice(&field.to_be_bytes());
        f.extend_from_slice(&[0, 0, b'h', b'i']);
        f
    }

    /// Its pseudo-header sum: addresses, protocol 6, TCP length 22.
    const PSEUDO: u16 = (0x0a00 + 0x020f + 0x0a00 + 0x0202 + 6 + 22) as u16;

    #[test]
    fn a_partial_checksum_is_completed_to_the_full_one() {
        let mut frame = segment(PSEUDO);
        assert_eq!(complete(&mut frame, 34, 16), Partial::Completed);
        // The full checksum, computed from scratch, sums to all ones.
        let (start, _, pseudo) = pseudo_header(&frame).unwrap();
        assert_eq!(ones_sum(&frame[start..], u32::from(pseudo)), 0xffff);
    }

    #[test]
    fn anything_but_the_pseudo_header_sum_is_wrong() {
        let mut frame = segment(PSEUDO + 1);
        assert!(matches!(complete(&mut frame, 34, 16), Partial::Wrong(_)));
        let mut frame = segment(PSEUDO);
        assert!(matches!(complete(&mut frame, 34, 6), Partial::Wrong(_)), "UDP's offset on a TCP segment");
        assert!(matches!(complete(&mut frame[..30], 34, 16), Partial::Wrong(_)));
    }

    #[test]
    fn vnet_headers_are_split_off_by_either_length() {
        let frame = segment(0);
        for (len, flags) in [(VNET_HDR_MODERN, VNET_NEEDS_CSUM), (VNET_HDR_LEGACY, 0)] {
            let mut record = vec![0u8; len];
            record[0] = flags;
            record[6..8].copy_from_slice(&34u16.to_le_bytes());
            record[8..10].copy_from_slice(&16u16.to_le_bytes());
            record.extend_from_slice(&frame);
            let (vnet, data) = split_vnet(&record).unwrap();
            assert_eq!((vnet, data), (Some((flags, 34, 16)), &frame[..]));
        }
        assert!(split_vnet(&[0u8; 40]).is_err());
    }

    #[test]
    fn gso_fields_must_describe_the_frame() {
        let frame = segment(0);
        assert_eq!(check_gso(&frame, (GSO_TCPV4, 1448, 54)), Ok(()));
        assert!(check_gso(&frame, (GSO_TCPV6, 1448, 54)).is_err(), "IPv6's type on IPv4");
        assert!(check_gso(&frame, (GSO_TCPV4, 0, 54)).is_err(), "no segment size");
        assert!(check_gso(&frame, (GSO_TCPV4, 1448, 999)).is_err(), "headers past the frame");
        assert!(check_gso(&frame, (3, 1448, 54)).is_err(), "UDP");
    }

    #[test]
    fn a_gso_record_keeps_its_fields_and_a_data_valid_one_is_refilled() {
        let mut record = vec![VNET_DATA_VALID, GSO_TCPV4, 54, 0, 0xa8, 0x05, 0, 0, 0, 0, 1, 0];
        record.extend_from_slice(&segment(0x1234));
        let mut file = write(&[]);
        for word in [0u32, 0, record.len() as u32, record.len() as u32] {
            file.extend_from_slice(&word.to_le_bytes());
        }
        file.extend_from_slice(&record);
        let frames = read(&file, true).unwrap();
        assert_eq!(frames[0].gso, Some((GSO_TCPV4, 1448, 54)));
        let mut data = frames[0].data.clone();
        refill(&mut data).unwrap();
        let (start, _, pseudo) = pseudo_header(&data).unwrap();
        assert_eq!(ones_sum(&data[start..], u32::from(pseudo)), 0xffff);
    }

    #[test]
    fn a_tap_capture_gets_a_readable_copy_with_checksums_completed() {
        let mut record = vec![VNET_NEEDS_CSUM, 0, 0, 0, 0, 0, 34, 0, 16, 0, 0, 0];
        record.extend_from_slice(&segment(PSEUDO));
        let mut file = write(&[]);
        for word in [0u32, 0, record.len() as u32, record.len() as u32] {
            file.extend_from_slice(&word.to_le_bytes());
        }
        file.extend_from_slice(&record);
        let dir = std::env::temp_dir().join(format!("skiff-readable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.pcap");
        std::fs::write(&path, &file).unwrap();
        let said = readable(&path, [0x52, 0x54, 0, 0x12, 0x34, 0x56]).unwrap();
        assert!(said.contains("1 frames with the virtio header stripped and 1 partial checksums completed"), "{said}");
        let copy = read(&std::fs::read(dir.join("run.completed.pcap")).unwrap(), false).unwrap();
        let (start, _, pseudo) = pseudo_header(&copy[0].data).unwrap();
        assert_eq!(ones_sum(&copy[0].data[start..], u32::from(pseudo)), 0xffff, "the checksum is whole");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pcap_files_round_trip() {
        let frames = vec![Frame { time: (1, 2), vnet: None, gso: None, data: segment(7) }];
        assert_eq!(read(&write(&frames), false).unwrap(), frames);
        assert!(read(b"not a pcap", false).is_err());
        let mut cut = write(&frames);
        cut.truncate(cut.len() - 1);
        assert!(read(&cut, false).is_err());
    }

    #[test]
    fn tshark_statuses_are_judged_per_direction() {
        let mac = "52:54:00:12:34:56";
        let good = "1,52:54:00:12:34:56,1,1,,\n2,52:55:0a:00:02:02,1,1,,\n3,52:54:00:12:34:56,1,,1,\n4,52:55:0a:00:02:02,1,,1,\n5,52:55:0a:00:02:02,,,,\n6,52:54:00:12:34:56,1,,2,3\n";
        let mut tally = Tally::default();
        judge(good, mac, &mut tally).unwrap();
        assert_eq!((tally.tcp_tx, tally.tcp_rx, tally.udp_tx, tally.udp_rx), (1, 1, 1, 1));
        let bad = good.replace("2,52:55:0a:00:02:02,1,1,,", "2,52:55:0a:00:02:02,1,0,,");
        assert!(judge(&bad, mac, &mut Tally::default()).unwrap_err().contains("frame 2 (sent to the guest)"));
        let one_way = "1,52:54:00:12:34:56,1,1,,\n3,52:54:00:12:34:56,1,,1,\n";
        assert!(judge(one_way, mac, &mut Tally::default()).is_err());
    }
}
