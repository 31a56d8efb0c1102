//! The receive half: the receive queue, its buffers, and its counters.
//!
//! The queue is kept full: every buffer the stack gives back is posted again
//! at the next flush. A received frame is lent to the stack as a slice of
//! its buffer, in place, until the stack recycles it.
//!
//! Ref: virtio spec 5.1.6.3 (setting up receive buffers), 5.1.6.4
//! (processing of incoming packets).

use alloc::vec::Vec;

use skiff_net::device::{RxHalf, TRACE_TARGET};
use virtio_drivers::Hal;

use super::buffers::Buffers;
use super::header::{FLAG_DATA_VALID, FLAG_NEEDS_CSUM, GSO_NONE, MODERN_LEN, NetHeader};
use super::offload;
use super::stats::{NetStats, count_bad_used};
use crate::virtio::queue::{BadUsed, SplitQueue};

/// Ethernet's header: a frame shorter than the virtio header and this is dropped.
const ETHERNET_HEADER: usize = 14;

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
}

/// The receive queue with its buffers.
pub struct RxRing<H: Hal> {
    pub(super) queue: SplitQueue<H>,
    pub(super) buffers: Buffers<H>,
    pub(super) header_len: usize,
    /// GUEST_CSUM was negotiated: honour the header's checksum flags.
    pub(super) guest_csum: bool,
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

    /// Validates a used receive buffer; `None` (counted) if it must be dropped.
    /// The header's flags are honoured as spec 5.1.6.4.1 says: NEEDS_CSUM
    /// completed here, DATA_VALID trusted, both only with GUEST_CSUM.
    fn check(&mut self, id: u16, len: usize) -> Option<RxFrame> {
        let header_len = self.header_len;
        if len < header_len + ETHERNET_HEADER {
            self.stats.rx_drop_short += 1;
            return None;
        }
        let slot = self.buffers.slot_mut(id);
        let Ok(header) = NetHeader::parse(slot, header_len) else {
            self.stats.rx_drop_short += 1;
            return None;
        };
        // We negotiated no receive segmentation offload, and one buffer per packet.
        if header.gso_type != GSO_NONE || (header_len == MODERN_LEN && header.num_buffers > 1) {
            self.stats.rx_drop_bad_header += 1;
            return None;
        }
        let mut checksum = RxChecksum::Unknown;
        if header.flags & FLAG_NEEDS_CSUM != 0 {
            let data = &mut slot[header_len..len];
            let (start, offset) = (usize::from(header.csum_start), usize::from(header.csum_offset));
            if !self.guest_csum || !offload::complete_received(data, start, offset) {
                self.stats.rx_drop_bad_header += 1;
                return None;
            }
            self.stats.rx_csum_completed += 1;
            checksum = RxChecksum::Valid;
        } else if header.flags & FLAG_DATA_VALID != 0 && self.guest_csum {
            self.stats.rx_csum_valid += 1;
            checksum = RxChecksum::Valid;
        }
        Some(RxFrame { id, len: len - header_len, checksum })
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
            match self.check(used.id, used.len as usize) {
                Some(frame) => {
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += frame.len as u64;
                    log::trace!(
                        target: TRACE_TARGET,
                        "rx virtq  desc {} used len {} = header {} + frame {}, checksum {}",
                        frame.id,
                        used.len,
                        self.header_len,
                        frame.len,
                        match frame.checksum {
                            RxChecksum::Valid => "valid",
                            RxChecksum::Unknown => "unchecked",
                        }
                    );
                    return Some(frame);
                }
                None => self.returned.push(used.id),
            }
        }
    }

    fn bytes<'a>(&'a self, frame: &'a RxFrame) -> &'a [u8] {
        &self.buffers.slot(frame.id)[self.header_len..self.header_len + frame.len]
    }

    fn checksum_verified(&self, frame: &RxFrame) -> bool {
        frame.checksum == RxChecksum::Valid
    }

    fn recycle(&mut self, frame: RxFrame) {
        self.returned.push(frame.id);
    }
}
