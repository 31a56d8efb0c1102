//! `virtio_net_hdr`: the header in front of every frame on both queues.
//!
//! ```text
//! offset  size  field
//!      0     1  flags        NEEDS_CSUM | DATA_VALID | RSC_INFO
//!      1     1  gso_type     NONE, TCPV4, UDP, TCPV6, UDP_L4 (| ECN)
//!      2     2  hdr_len      (little-endian, as all fields)
//!      4     2  gso_size
//!      6     2  csum_start   where checksumming starts
//!      8     2  csum_offset  where, from csum_start, the sum goes
//!     10     2  num_buffers  only with VERSION_1 or MRG_RXBUF
//! ```
//! Legacy devices without MRG_RXBUF use the 10-byte form. Fields are
//! little-endian for modern devices and native-endian for legacy ones; Skiff
//! runs on x86, where those agree.
//!
//! Ref: virtio spec 5.1.6 (device operation), 5.1.6.2 (packet transmission),
//! 5.1.6.4 (processing of incoming packets).

use core::fmt;

/// `flags`: the checksum from `csum_start` to the end is not yet computed;
/// the partial sum (pseudo-header) sits at `csum_start + csum_offset`.
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// `flags` (receive only): the device has validated the checksum.
pub const FLAG_DATA_VALID: u8 = 2;
/// `gso_type`: not a segmentation-offload packet.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4, to be (or having been) cut at `gso_size` (HOST_TSO4 / GUEST_TSO4).
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: TCP over IPv6 (HOST_TSO6 / GUEST_TSO6).
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` bit: the segments carry ECN's CWR (HOST_ECN / GUEST_ECN).
pub const GSO_ECN: u8 = 0x80;

/// Header length for modern devices (and legacy ones with MRG_RXBUF).
pub const MODERN_LEN: usize = 12;
/// Header length for legacy devices without MRG_RXBUF.
pub const LEGACY_LEN: usize = 10;

/// A decoded `virtio_net_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetHeader {
    /// `FLAG_*` bits.
    pub flags: u8,
    /// `GSO_*` value.
    pub gso_type: u8,
    /// Length of the headers to replicate per segment (GSO only).
    pub hdr_len: u16,
    /// Segment size (GSO only).
    pub gso_size: u16,
    /// Offset in the frame where checksumming starts (with NEEDS_CSUM).
    pub csum_start: u16,
    /// Offset from `csum_start` where the 16-bit checksum goes (with NEEDS_CSUM).
    pub csum_offset: u16,
    /// Buffers this packet spans (MRG_RXBUF); 1 otherwise.
    pub num_buffers: u16,
}

/// A header that cannot be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than the header's length.
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            HeaderError::Truncated { len, need } => write!(f, "virtio-net header truncated: {len} of {need} bytes"),
        }
    }
}

impl NetHeader {
    /// Decodes a header of `header_len` bytes (`MODERN_LEN` or `LEGACY_LEN`) from the start of `bytes`.
    pub fn parse(bytes: &[u8], header_len: usize) -> Result<NetHeader, HeaderError> {
        let b = bytes.get(..header_len).ok_or(HeaderError::Truncated { len: bytes.len(), need: header_len })?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Ok(NetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
            num_buffers: if header_len >= MODERN_LEN { le(10) } else { 1 },
        })
    }

    /// Encodes into the first `header_len` bytes of `out`; `out` must be at least that long.
    pub fn emit(&self, out: &mut [u8], header_len: usize) {
        let out = &mut out[..header_len];
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        if header_len >= MODERN_LEN {
            // Transmit: the driver leaves num_buffers zero (5.1.6.2).
            out[10..12].copy_from_slice(&0u16.to_le_bytes());
        }
    }

    /// A header asking the device to complete a partial checksum.
    pub fn needs_csum(csum_start: u16, csum_offset: u16) -> NetHeader {
        NetHeader { flags: FLAG_NEEDS_CSUM, csum_start, csum_offset, ..NetHeader::default() }
    }

    /// Whether the header says nothing: no flag, no GSO type, one buffer
    /// (always so without offloads, as on QEMU's user network). The packet
    /// trace shows only headers that say something.
    pub fn is_plain(&self) -> bool {
        self.flags == 0 && self.gso_type == GSO_NONE && self.num_buffers <= 1
    }
}

/// A `gso_type`'s name as the spec writes it (5.1.6: `VIRTIO_NET_HDR_GSO_*`).
fn gso_name(kind: u8) -> Option<&'static str> {
    /// `gso_type` values the driver never negotiates, named for the trace.
    const GSO_UDP: u8 = 3;
    const GSO_UDP_L4: u8 = 5;
    match kind {
        GSO_TCPV4 => Some("TCPV4"),
        GSO_TCPV6 => Some("TCPV6"),
        GSO_UDP => Some("UDP"),
        GSO_UDP_L4 => Some("UDP_L4"),
        _ => None,
    }
}

/// The fields that say something, as the packet trace shows them:
/// `flags NEEDS_CSUM, gso TCPV4 gso_size 1448 hdr_len 54, csum_start 34 csum_offset 16`.
impl fmt::Display for NetHeader {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("flags ")?;
        let names = [(FLAG_NEEDS_CSUM, "NEEDS_CSUM"), (FLAG_DATA_VALID, "DATA_VALID")];
        let mut first = true;
        for (_, name) in names.into_iter().filter(|&(flag, _)| self.flags & flag != 0) {
            write!(f, "{}{name}", if first { "" } else { "|" })?;
            first = false;
        }
        let unknown = self.flags & !(FLAG_NEEDS_CSUM | FLAG_DATA_VALID);
        if unknown != 0 {
            write!(f, "{}{unknown:#04x}", if first { "" } else { "|" })?;
        } else if first {
            f.write_str("none")?;
        }
        if self.gso_type != GSO_NONE {
            let kind = self.gso_type & !GSO_ECN;
            match gso_name(kind) {
                Some(name) => write!(f, ", gso {name}")?,
                None => write!(f, ", gso {kind:#04x}")?,
            }
            if self.gso_type & GSO_ECN != 0 {
                f.write_str("|ECN")?;
            }
            write!(f, " gso_size {} hdr_len {}", self.gso_size, self.hdr_len)?;
        }
        if self.flags & FLAG_NEEDS_CSUM != 0 {
            write!(f, ", csum_start {} csum_offset {}", self.csum_start, self.csum_offset)?;
        }
        if self.num_buffers > 1 {
            write!(f, ", num_buffers {}", self.num_buffers)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn modern_header_round_trips_with_little_endian_fields() {
        let h = NetHeader {
            flags: FLAG_NEEDS_CSUM,
            gso_type: 0,
            hdr_len: 0x0102,
            gso_size: 0x0304,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0,
        };
        let mut buf = [0xAA; 14];
        h.emit(&mut buf, MODERN_LEN);
        assert_eq!(&buf[..12], &[1, 0, 0x02, 0x01, 0x04, 0x03, 34, 0, 16, 0, 0, 0]);
        assert_eq!(buf[12], 0xAA, "wrote past the header");
        assert_eq!(NetHeader::parse(&buf, MODERN_LEN), Ok(h));
    }

    #[test]
    fn legacy_header_is_ten_bytes_and_has_one_buffer() {
        let h = NetHeader::needs_csum(14 + 20, 6);
        let mut buf = [0xAA; 12];
        h.emit(&mut buf, LEGACY_LEN);
        assert_eq!(&buf[10..], &[0xAA, 0xAA], "legacy header is 10 bytes");
        let back = NetHeader::parse(&buf, LEGACY_LEN).unwrap();
        assert_eq!((back.flags, back.csum_start, back.csum_offset, back.num_buffers), (FLAG_NEEDS_CSUM, 34, 6, 1));
    }

    #[test]
    fn short_input_is_an_error() {
        assert_eq!(NetHeader::parse(&[0; 11], MODERN_LEN), Err(HeaderError::Truncated { len: 11, need: 12 }));
        assert_eq!(NetHeader::parse(&[], LEGACY_LEN), Err(HeaderError::Truncated { len: 0, need: 10 }));
    }

    #[test]
    fn the_trace_shows_the_fields_that_say_something() {
        let tso = NetHeader {
            flags: FLAG_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1460,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0,
        };
        assert_eq!(
            tso.to_string(),
            "flags NEEDS_CSUM, gso TCPV4 gso_size 1460 hdr_len 54, csum_start 34 csum_offset 16"
        );
        let coalesced = NetHeader { flags: FLAG_DATA_VALID, gso_type: GSO_TCPV6 | GSO_ECN, num_buffers: 44, ..tso };
        assert_eq!(coalesced.to_string(), "flags DATA_VALID, gso TCPV6|ECN gso_size 1460 hdr_len 54, num_buffers 44");
        let odd = NetHeader { flags: 0x84 | FLAG_DATA_VALID, gso_type: 0x09, ..NetHeader::default() };
        assert_eq!(odd.to_string(), "flags DATA_VALID|0x84, gso 0x09 gso_size 0 hdr_len 0");
        assert!(NetHeader { num_buffers: 1, ..NetHeader::default() }.is_plain());
        assert!(!tso.is_plain() && !coalesced.is_plain());
        assert_eq!(NetHeader::default().to_string(), "flags none");
    }
}
