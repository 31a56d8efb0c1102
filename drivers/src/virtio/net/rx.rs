//! The receive half: the receive queue, its buffers, and its counters.
//!
//! The queue is kept full: every buffer the stack gives back is posted again
//! at the next flush. A received frame is lent to the stack as a slice of
//! its buffer, in place, until the stack recycles it.
//!
//! With MRG_RXBUF a frame may span several buffers (`num_buffers` in the
//! first one's header), which is how the device hands up the 64 KiB frames
//! it coalesced (GUEST_TSO4/6). Only those are joined, copied into one
//! frame-sized buffer, their own buffers going straight back to the device;
//! a frame in one buffer is lent in place as before. All of it is device
//! input and checked: a bad `num_buffers`, a chain whose lengths do not add
//! up, or a GSO header that was not negotiated or does not match the frame
//! drops the frame, counted, with each of its buffers reposted once.
//!
//! Ref: virtio spec 5.1.6.3 (setting up receive buffers), 5.1.6.4
//! (processing of incoming packets).

use alloc::vec::Vec;

use skiff_net::device::{RxHalf, TRACE_TARGET};
use virtio_drivers::Hal;

use skiff_net::rx_check::{Headers, Network};

use super::buffers::Buffers;
use super::gso::{self, BadGso, Tso};
use super::header::{FLAG_DATA_VALID, FLAG_NEEDS_CSUM, GSO_NONE, MODERN_LEN, NetHeader};
use super::offload;
use super::stats::{NetStats, count_bad_used};
use crate::virtio::queue::{BadUsed, SplitQueue, Used};

/// Ethernet's header: a frame shorter than the virtio header and this is dropped.
const ETHERNET_HEADER: usize = 14;
/// An 802.1Q tag a device may leave in place.
const VLAN_TAG: usize = 4;
/// IPv6's fixed header, which its 16-bit payload length does not count (RFC 8200 3).
const IPV6_HEADER: usize = 40;
/// The largest value of a 16-bit IP length field (RFC 791 3.1, RFC 8200 3).
const MAX_IP_LENGTH: usize = 65535;
/// The largest frame joined from several buffers: an IP packet of 64 KiB
/// behind an Ethernet header, a tag, and IPv6's fixed header.
pub const MAX_JOINED: usize = ETHERNET_HEADER + VLAN_TAG + IPV6_HEADER + MAX_IP_LENGTH;
/// Join buffers kept for reuse: one per frame the stack may hold at once
/// (smoltcp holds one); more are allocated, and freed, as needed.
const SPARE_JOIN_BUFFERS: usize = 2;

/// What the driver knows about a received frame's TCP/UDP checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxChecksum {
    /// The device validated it (DATA_VALID), or sent a partial one that the
    /// driver completed (NEEDS_CSUM): the stack need not check it.
    Valid,
    /// Nothing is known: the stack must check it.
    Unknown,
}

/// A received frame, lent to the caller until [`RxHalf::recycle`].
#[derive(Debug, PartialEq, Eq)]
pub struct RxFrame {
    id: u16,
    len: usize,
    /// The frame joined from several buffers (MRG_RXBUF); `None` if it
    /// lies in buffer `id`.
    joined: Option<Vec<u8>>,
    /// The virtio header it came with (`num_buffers` 1 unless joined).
    header: NetHeader,
    /// The checksum's state.
    pub checksum: RxChecksum,
}

impl RxFrame {
    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty (never: frames hold at least an Ethernet header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the frame was joined from several buffers.
    pub fn is_joined(&self) -> bool {
        self.joined.is_some()
    }
}

/// The receive queue with its buffers.
pub struct RxRing<H: Hal> {
    pub(super) queue: SplitQueue<H>,
    pub(super) buffers: Buffers<H>,
    pub(super) header_len: usize,
    /// GUEST_CSUM was negotiated: honour the header's checksum flags.
    pub(super) guest_csum: bool,
    /// MRG_RXBUF was negotiated: a frame may span `num_buffers` buffers.
    pub(super) mergeable: bool,
    /// GUEST_TSO4/6 negotiated: which coalesced frames the device may give.
    pub(super) gso: Tso,
    /// Join buffers to reuse.
    pub(super) spare: Vec<Vec<u8>>,
    /// Buffers the caller gave back, reposted at the next flush. Holding them
    /// until then means an id the device returns twice within a burst is
    /// still not in flight, so the queue catches it.
    pub(super) returned: Vec<u16>,
    pub(super) stats: NetStats,
}

impl<H: Hal> RxRing<H> {
    /// This half's counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Receive buffers the device holds. With every frame recycled and
    /// flushed this is the queue size, whatever the device did (except skip
    /// its used index past buffers, which stay the device's).
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// Takes the frame whose first buffer is `head` (validated by the
    /// queue), joining the rest if it spans several; `None` (counted, every
    /// buffer returned) if it must be dropped. The header's checksum flags
    /// are honoured as spec 5.1.6.4.1 says: NEEDS_CSUM completed here,
    /// DATA_VALID trusted, both only with GUEST_CSUM.
    fn take(&mut self, head: Used) -> Option<RxFrame> {
        let (id, len, header_len) = (head.id, head.len as usize, self.header_len);
        if len < header_len + ETHERNET_HEADER {
            self.stats.rx_drop_short += 1;
            self.returned.push(id);
            return None;
        }
        let Ok(header) = NetHeader::parse(self.buffers.slot(id), header_len) else {
            self.stats.rx_drop_short += 1;
            self.returned.push(id);
            return None;
        };
        let buffers = if self.mergeable { header.num_buffers } else { 1 };
        // Spec 5.1.6.4: num_buffers is at least 1, and names buffers the
        // device was given and has used: no more than are in flight now.
        let impossible = usize::from(buffers) > self.queue.in_flight() + 1 || buffers == 0;
        let unmerged_claim = !self.mergeable && header_len == MODERN_LEN && header.num_buffers > 1;
        if impossible || unmerged_claim {
            self.stats.rx_drop_bad_num_buffers += 1;
            self.returned.push(id);
            return None;
        }
        let mut joined = match buffers {
            1 => None,
            _ => Some(self.join(id, len, buffers)?),
        };
        let (guest_csum, gso, stats) = (self.guest_csum, self.gso, &mut self.stats);
        let data = match &mut joined {
            Some(joined) => &mut joined[..],
            None => &mut self.buffers.slot_mut(id)[header_len..len],
        };
        let checksum = inspect(data, &header, joined_or_gso(buffers, &header), guest_csum, gso, stats);
        let len = data.len();
        match checksum {
            Some(checksum) => {
                Some(RxFrame { id, len, joined, header: NetHeader { num_buffers: buffers, ..header }, checksum })
            }
            None => {
                match joined {
                    Some(buffer) => self.keep_spare(buffer),
                    None => self.returned.push(id),
                }
                None
            }
        }
    }

    /// Joins the `count` buffers of one frame (the first, `head`, holding
    /// `head_len` bytes with the header) into a join buffer; every buffer
    /// goes back to the device. `None` (counted) if the chain is broken: the
    /// device used fewer buffers than it claimed, a bad used entry, an
    /// empty buffer, or more than [`MAX_JOINED`] bytes. Buffers the device
    /// does use in the chain are all taken, so the next frame starts after it.
    fn join(&mut self, head: u16, head_len: usize, count: u16) -> Option<Vec<u8>> {
        let mut out = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(MAX_JOINED));
        out.clear();
        out.extend_from_slice(&self.buffers.slot(head)[self.header_len..head_len]);
        self.returned.push(head);
        let mut broken = false;
        for _ in 1..count {
            let used = match self.queue.pop_used() {
                Some(Ok(used)) => used,
                Some(Err(bad)) => {
                    count_bad_used(&mut self.stats, bad, "receive");
                    if let BadUsed::LenTooLong { id, .. } = bad {
                        self.stats.rx_drop_bad_len += 1;
                        self.returned.push(id);
                    }
                    self.stats.rx_drop_bad_chain += 1;
                    self.keep_spare(out);
                    return None;
                }
                // Devices publish a frame's buffers with one index update.
                None => {
                    self.stats.rx_drop_bad_num_buffers += 1;
                    self.keep_spare(out);
                    return None;
                }
            };
            self.returned.push(used.id);
            let len = used.len as usize;
            if len == 0 || out.len() + len > MAX_JOINED {
                broken = true;
            }
            if !broken {
                out.extend_from_slice(&self.buffers.slot(used.id)[..len]);
            }
        }
        if broken {
            self.stats.rx_drop_bad_chain += 1;
            self.keep_spare(out);
            return None;
        }
        self.stats.rx_merged_frames += 1;
        Some(out)
    }

    /// Keeps a join buffer for the next joined frame, up to a few.
    fn keep_spare(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < SPARE_JOIN_BUFFERS {
            self.spare.push(buffer);
        }
    }

    /// Reposts returned buffers and publishes them; true if the device wants a kick.
    pub(super) fn flush(&mut self) -> bool {
        while let Some(id) = self.returned.pop() {
            // Ids come from this queue's used ring, checked to be ours and no longer in flight.
            if let Err(e) = self.queue.push(id) {
                unreachable!("receive buffer {id}: {e}");
            }
        }
        self.queue.publish()
    }
}

impl<H: Hal> RxHalf for RxRing<H> {
    type Frame = RxFrame;

    /// Takes the next received frame, skipping (and counting) anything the
    /// device got wrong. The frame's buffer stays the caller's until recycled.
    fn receive(&mut self) -> Option<RxFrame> {
        loop {
            let used = match self.queue.pop_used()? {
                Ok(used) => used,
                Err(bad) => {
                    count_bad_used(&mut self.stats, bad, "receive");
                    if let BadUsed::LenTooLong { id, .. } = bad {
                        self.stats.rx_drop_bad_len += 1;
                        self.returned.push(id);
                    }
                    continue;
                }
            };
            if let Some(frame) = self.take(used) {
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += frame.len as u64;
                let (buffers, header_len) = (frame.header.num_buffers, self.header_len);
                // A joined frame's buffers hold the header once and the frame.
                let used_len = if frame.is_joined() { header_len + frame.len } else { used.len as usize };
                log::trace!(
                    target: TRACE_TARGET,
                    "rx virtq  desc {} used len {used_len}{} = header {header_len} + frame {}{}, checksum {}",
                    frame.id,
                    BufferCount(buffers),
                    frame.len,
                    if frame.is_joined() { " (joined: MRG_RXBUF)" } else { "" },
                    match frame.checksum {
                        RxChecksum::Valid => "valid",
                        RxChecksum::Unknown => "unchecked",
                    }
                );
                if !frame.header.is_plain() {
                    log::trace!(target: TRACE_TARGET, "rx vnet   {}", frame.header);
                }
                return Some(frame);
            }
        }
    }

    fn bytes<'a>(&'a self, frame: &'a RxFrame) -> &'a [u8] {
        match &frame.joined {
            Some(joined) => joined,
            None => &self.buffers.slot(frame.id)[self.header_len..self.header_len + frame.len],
        }
    }

    fn checksum_verified(&self, frame: &RxFrame) -> bool {
        frame.checksum == RxChecksum::Valid
    }

    /// A joined frame's buffers went back when it was joined: only its
    /// join buffer is kept; a frame in place gives its buffer back.
    fn recycle(&mut self, frame: RxFrame) {
        match frame.joined {
            Some(buffer) => self.keep_spare(buffer),
            None => self.returned.push(frame.id),
        }
    }
}

/// Whether a frame's length must be exactly its IP packet's: a joined or
/// coalesced frame has no Ethernet padding to excuse a difference.
fn joined_or_gso(buffers: u16, header: &NetHeader) -> bool {
    buffers > 1 || header.gso_type != GSO_NONE
}

/// Checks a received frame (in place or joined) against its header, and
/// completes a partial checksum: `None` (counted) to drop it.
fn inspect(
    data: &mut [u8],
    header: &NetHeader,
    exact_length: bool,
    guest_csum: bool,
    gso: Tso,
    stats: &mut NetStats,
) -> Option<RxChecksum> {
    if exact_length && ip_frame_len(data) != Some(data.len()) {
        stats.rx_drop_bad_chain += 1;
        return None;
    }
    if header.gso_type != GSO_NONE {
        match gso::check_received(header, data, gso) {
            Ok(()) => stats.rx_gso_frames += 1,
            Err(BadGso::NotNegotiated) => {
                stats.rx_drop_gso_not_negotiated += 1;
                return None;
            }
            Err(BadGso::Mismatch) => {
                stats.rx_drop_gso_mismatch += 1;
                return None;
            }
        }
    }
    let mut checksum = RxChecksum::Unknown;
    if header.flags & FLAG_NEEDS_CSUM != 0 {
        let (start, offset) = (usize::from(header.csum_start), usize::from(header.csum_offset));
        if !guest_csum || !offload::complete_received(data, start, offset) {
            stats.rx_drop_bad_header += 1;
            return None;
        }
        stats.rx_csum_completed += 1;
        checksum = RxChecksum::Valid;
    } else if header.flags & FLAG_DATA_VALID != 0 && guest_csum {
        stats.rx_csum_valid += 1;
        checksum = RxChecksum::Valid;
    }
    Some(checksum)
}

/// The frame length its IP header gives (Ethernet header, tag, and IP
/// packet); `None` if it is not IP or its header is cut short.
pub fn ip_frame_len(frame: &[u8]) -> Option<usize> {
    match Headers::parse(frame).network {
        Network::Ipv4(ip) | Network::Ipv6(ip) => ip.fields.map(|f| ip.at + f.total_len),
        _ => None,
    }
}

/// For the trace: ` in 44 buffers` for a frame over several; nothing for one.
struct BufferCount(u16);

impl core::fmt::Display for BufferCount {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        if self.0 > 1 { write!(f, " in {} buffers", self.0) } else { Ok(()) }
    }
}
