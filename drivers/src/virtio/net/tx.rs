//! The transmit half: the transmit queue, its buffers, and its counters.
//!
//! The stack writes a frame straight into a free buffer; sending posts it,
//! and the device gives it back through the used ring once it has read it.
//!
//! Ref: virtio spec 5.1.6.2 (packet transmission), 5.1.6.2.1 (the device
//! returns sent buffers in the used ring).

use alloc::vec::Vec;

use skiff_net::checksum;
use skiff_net::device::{TRACE_TARGET, TxHalf};
use virtio_drivers::Hal;

use super::buffers::Buffers;
use super::header::{FLAG_NEEDS_CSUM, NetHeader};
use super::offload;
use super::stats::{NetStats, count_bad_used};
use crate::virtio::queue::{BadUsed, SplitQueue};

/// A transmit buffer being filled.
#[derive(Debug, PartialEq, Eq)]
pub struct TxFrame {
    id: u16,
    len: usize,
}

/// The transmit queue with its buffers.
pub struct TxRing<H: Hal> {
    pub(super) queue: SplitQueue<H>,
    pub(super) buffers: Buffers<H>,
    pub(super) header_len: usize,
    /// CSUM was negotiated: leave TCP/UDP checksums to the device.
    pub(super) offload: bool,
    /// Buffers neither the device nor the caller holds.
    pub(super) free: Vec<u16>,
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

    /// Transmit buffers free to fill now.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Takes back transmit buffers the device has finished with; returns how many.
    pub fn reclaim(&mut self) -> usize {
        let mut reclaimed = 0;
        while let Some(used) = self.queue.pop_used() {
            match used {
                Ok(used) => {
                    self.free.push(used.id);
                    reclaimed += 1;
                }
                // A transmit descriptor is device-readable: the device writes
                // no bytes into it, so any length will do; the buffer is free.
                Err(BadUsed::LenTooLong { id, .. }) => {
                    self.free.push(id);
                    reclaimed += 1;
                }
                Err(bad) => count_bad_used(&mut self.stats, bad, "transmit"),
            }
        }
        reclaimed
    }

    /// Fills in the virtio header of buffer `id` for a frame of `len` bytes:
    /// the TCP/UDP checksum is left to the device where it offers CSUM (the
    /// stack left it zero), or computed here where the device cannot
    /// describe the frame. Returns whether the device will finish it.
    fn write_header(&mut self, id: u16, len: usize) -> bool {
        let (header_len, offload) = (self.header_len, self.offload);
        let slot = self.buffers.slot_mut(id);
        let (header, data) = slot.split_at_mut(header_len);
        let data = &mut data[..len];
        let mut net_header = NetHeader::default();
        if offload {
            match offload::prepare(data) {
                Some((start, offset)) => {
                    net_header = NetHeader::needs_csum(start, offset);
                    self.stats.tx_csum_offloaded += 1;
                }
                None if checksum::fill_in_software(data) => self.stats.tx_csum_software += 1,
                None => {}
            }
        }
        net_header.emit(header, header_len);
        net_header.flags & FLAG_NEEDS_CSUM != 0
    }
}

impl<H: Hal> TxHalf for TxRing<H> {
    type Frame = TxFrame;

    fn has_room(&mut self) -> bool {
        if self.free.is_empty() {
            self.reclaim();
        }
        !self.free.is_empty()
    }

    /// A free buffer for a frame of up to `len` bytes, reclaiming sent ones
    /// first if none is free. `None` if the frame is too large or every
    /// buffer is still with the device (counted).
    fn reserve(&mut self, len: usize) -> Option<TxFrame> {
        if len > self.buffers.slot_len() - self.header_len {
            return None;
        }
        if !self.has_room() {
            self.stats.tx_queue_full += 1;
            return None;
        }
        self.free.pop().map(|id| TxFrame { id, len })
    }

    fn bytes_mut<'a>(&'a mut self, frame: &'a mut TxFrame) -> &'a mut [u8] {
        let header_len = self.header_len;
        &mut self.buffers.slot_mut(frame.id)[header_len..header_len + frame.len]
    }

    /// Queues a filled buffer; it goes out at the next flush.
    fn send(&mut self, frame: TxFrame) {
        let left_to_device = self.write_header(frame.id, frame.len);
        let len = (self.header_len + frame.len) as u32;
        let paddr = self.buffers.paddr(frame.id);
        match self.queue.set_buffer(frame.id, paddr, len, false).and_then(|()| self.queue.push(frame.id)) {
            Ok(()) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += frame.len as u64;
                log::trace!(
                    target: TRACE_TARGET,
                    "tx virtq  desc {} len {len} = header {} + frame {}, checksum {}",
                    frame.id,
                    self.header_len,
                    frame.len,
                    if left_to_device { "left to the device" } else { "complete" }
                );
            }
            // Ids in TxFrame come from `free`, so they are valid and not in flight.
            Err(e) => unreachable!("transmit buffer {}: {e}", frame.id),
        }
    }
}
