//! The transmit half: the transmit queue, its buffers, and its counters.
//!
//! The stack writes a frame straight into a free buffer; sending posts it,
//! and the device gives it back through the used ring once it has read it.
//!
//! With TSO (HOST_TSO4/6) the last descriptors of the queue point at large
//! buffers (`LARGE_SLOT` each) for the stack's frames of up to 64 KiB; the
//! others at MTU-sized ones. The stack is offered a buffer only when one of
//! each kind is free, so a big segment never finds none (it would be lost):
//! with every large buffer in flight, the stack waits for the device.
//!
//! Ref: virtio spec 5.1.6.2 (packet transmission), 5.1.6.2.1 (the device
//! returns sent buffers in the used ring).

use alloc::vec::Vec;

use skiff_net::checksum;
use skiff_net::device::{TRACE_TARGET, TxHalf};
use virtio_drivers::Hal;

use super::buffers::Buffers;
use super::gso::{self, Tso};
use super::header::{FLAG_NEEDS_CSUM, GSO_NONE, NetHeader};
use super::offload;
use super::stats::{NetStats, count_bad_used};
use crate::virtio::queue::{BadUsed, SplitQueue};

/// A transmit buffer being filled.
#[derive(Debug, PartialEq, Eq)]
pub struct TxFrame {
    id: u16,
    len: usize,
}

/// A large transmit buffer: the virtio header and a frame whose IP packet
/// stays within IPv4's 16-bit total length (RFC 791), 16 pages.
pub(super) const LARGE_SLOT: usize = 64 * 1024;

/// The transmit queue with its buffers.
pub struct TxRing<H: Hal> {
    pub(super) queue: SplitQueue<H>,
    /// MTU-sized buffers, for descriptors `0..large_first`.
    pub(super) buffers: Buffers<H>,
    /// `LARGE_SLOT` buffers for TSO frames, for descriptors `large_first..`.
    pub(super) large: Option<Buffers<H>>,
    pub(super) large_first: u16,
    pub(super) header_len: usize,
    /// CSUM was negotiated: leave TCP/UDP checksums to the device.
    pub(super) offload: bool,
    /// HOST_TSO4/6 negotiated, and large buffers to use them with.
    pub(super) tso: Tso,
    /// MTU-sized buffers neither the device nor the caller holds.
    pub(super) free: Vec<u16>,
    /// Large buffers neither the device nor the caller holds.
    pub(super) free_large: Vec<u16>,
    pub(super) stats: NetStats,
}

impl<H: Hal> TxRing<H> {
    /// This half's counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Transmit buffers the device holds (sent, not yet reclaimed).
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// Transmit buffers free to fill now (both kinds).
    pub fn free(&self) -> usize {
        self.free.len() + self.free_large.len()
    }

    /// Large (TSO) transmit buffers free to fill now.
    pub fn free_large(&self) -> usize {
        self.free_large.len()
    }

    /// The largest frame the large buffers take (0 without them).
    pub fn max_tso_frame(&self) -> usize {
        self.large.as_ref().map_or(0, |l| l.slot_len() - self.header_len)
    }

    /// Whether the stack may be offered a buffer: one of each kind is free.
    pub(super) fn has_free(&self) -> bool {
        !self.free.is_empty() && (self.large.is_none() || !self.free_large.is_empty())
    }

    /// Takes back transmit buffers the device has finished with; returns how many.
    pub fn reclaim(&mut self) -> usize {
        let mut reclaimed = 0;
        while let Some(used) = self.queue.pop_used() {
            match used {
                Ok(used) => {
                    self.give_back(used.id);
                    reclaimed += 1;
                }
                // A transmit descriptor is device-readable: the device writes
                // no bytes into it, so any length will do; the buffer is free.
                Err(BadUsed::LenTooLong { id, .. }) => {
                    self.give_back(id);
                    reclaimed += 1;
                }
                Err(bad) => count_bad_used(&mut self.stats, bad, "transmit"),
            }
        }
        reclaimed
    }

    /// Puts a buffer the device gave back on its kind's free list.
    fn give_back(&mut self, id: u16) {
        if id >= self.large_first { self.free_large.push(id) } else { self.free.push(id) }
    }

    /// The buffer behind descriptor `id` (ids come from the free lists).
    fn slot_mut(&mut self, id: u16) -> &mut [u8] {
        match &mut self.large {
            Some(large) if id >= self.large_first => large.slot_mut(id - self.large_first),
            _ => self.buffers.slot_mut(id),
        }
    }

    /// The device's address of descriptor `id`'s buffer.
    fn paddr(&self, id: u16) -> virtio_drivers::PhysAddr {
        match &self.large {
            Some(large) if id >= self.large_first => large.paddr(id - self.large_first),
            _ => self.buffers.paddr(id),
        }
    }

    /// Fills in the virtio header of buffer `id` for a frame of `len` bytes:
    /// the TCP/UDP checksum is left to the device where it offers CSUM (the
    /// stack left it zero), or computed here where the device cannot
    /// describe the frame. With `segment_size`, the device is asked to cut
    /// the frame into segments (TSO). Returns the header written.
    fn write_header(&mut self, id: u16, len: usize, segment_size: Option<u16>) -> NetHeader {
        let (header_len, offload, tso, stats) = (self.header_len, self.offload, self.tso, &mut self.stats);
        // The fields apart (not `slot_mut`), so that `stats` stays usable.
        let slot = match &mut self.large {
            Some(large) if id >= self.large_first => large.slot_mut(id - self.large_first),
            _ => self.buffers.slot_mut(id),
        };
        let (header, data) = slot.split_at_mut(header_len);
        let data = &mut data[..len];
        let mut net_header = NetHeader::default();
        if let Some(h) = segment_size.and_then(|size| gso::tso_header(data, size, tso)) {
            net_header = h;
            stats.tx_tso_frames += 1;
            stats.tx_tso_bytes += len as u64;
        } else if offload {
            match offload::prepare(data) {
                Some((start, offset)) => {
                    net_header = NetHeader::needs_csum(start, offset);
                    stats.tx_csum_offloaded += 1;
                }
                None if checksum::fill_in_software(data) => stats.tx_csum_software += 1,
                None => {}
            }
        }
        net_header.emit(header, header_len);
        net_header
    }

    /// Queues a filled buffer, segmented by the device if `segment_size`.
    fn post(&mut self, frame: TxFrame, segment_size: Option<u16>) {
        let header = self.write_header(frame.id, frame.len, segment_size);
        let len = (self.header_len + frame.len) as u32;
        let paddr = self.paddr(frame.id);
        match self.queue.set_buffer(frame.id, paddr, len, false).and_then(|()| self.queue.push(frame.id)) {
            Ok(()) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += frame.len as u64;
                if !header.is_plain() {
                    log::trace!(target: TRACE_TARGET, "tx vnet   {header}");
                }
                log::trace!(
                    target: TRACE_TARGET,
                    "tx virtq  desc {} len {len} = header {} + frame {}, checksum {}{}",
                    frame.id,
                    self.header_len,
                    frame.len,
                    if header.flags & FLAG_NEEDS_CSUM != 0 { "left to the device" } else { "complete" },
                    Segments { header: &header, frame_len: frame.len }
                );
            }
            // Ids in TxFrame come from the free lists, so they are valid and not in flight.
            Err(e) => unreachable!("transmit buffer {}: {e}", frame.id),
        }
    }
}

/// For the trace: what the device makes of a TSO frame (`, TSO: 2
/// segments of up to 1460 bytes`); nothing for any other.
struct Segments<'a> {
    header: &'a NetHeader,
    frame_len: usize,
}

impl core::fmt::Display for Segments<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        let (size, headers) = (usize::from(self.header.gso_size), usize::from(self.header.hdr_len));
        if self.header.gso_type == GSO_NONE || size == 0 {
            return Ok(());
        }
        let segments = self.frame_len.saturating_sub(headers).div_ceil(size);
        write!(f, ", TSO: the device cuts it into {segments} segments of up to {size} bytes")
    }
}

impl<H: Hal> TxHalf for TxRing<H> {
    type Frame = TxFrame;

    fn has_room(&mut self) -> bool {
        if !self.has_free() {
            self.reclaim();
        }
        self.has_free()
    }

    /// A free buffer for a frame of up to `len` bytes (a large one past the
    /// MTU), reclaiming sent ones first if none is free. `None` if the frame
    /// is too large or the buffers are still with the device (counted).
    fn reserve(&mut self, len: usize) -> Option<TxFrame> {
        let small = self.buffers.slot_len() - self.header_len;
        if len > small.max(self.max_tso_frame()) {
            return None;
        }
        if !self.has_room() {
            self.stats.tx_queue_full += 1;
            return None;
        }
        let free = if len <= small { &mut self.free } else { &mut self.free_large };
        free.pop().map(|id| TxFrame { id, len })
    }

    fn bytes_mut<'a>(&'a mut self, frame: &'a mut TxFrame) -> &'a mut [u8] {
        let header_len = self.header_len;
        &mut self.slot_mut(frame.id)[header_len..header_len + frame.len]
    }

    /// Queues a filled buffer; it goes out at the next flush.
    fn send(&mut self, frame: TxFrame) {
        self.post(frame, None);
    }

    /// Queues a filled buffer for the device to segment (TSO, spec 5.1.6.2).
    fn send_segmented(&mut self, frame: TxFrame, segment_size: u16) {
        self.post(frame, Some(segment_size));
    }
}
