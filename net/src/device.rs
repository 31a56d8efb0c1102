//! What the stack needs from a network card: the trait a driver implements.
//!
//! A card is two independent halves, so that the stack can hold a received
//! frame and fill a frame to send at the same time (smoltcp answers a packet
//! while it still reads it) without copying either and without locks: the
//! receive half lends out frames the device wrote, the transmit half lends out
//! buffers the device will read. [`NetDevice::flush`] hands everything back
//! to the device at the end of a burst, with one notification per queue.

use alloc::string::String;
use alloc::vec::Vec;

/// A card's fixed properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The MAC address.
    pub mac: [u8; 6],
    /// The largest IP packet the card carries (the Ethernet MTU).
    pub mtu: usize,
    /// Frames the card can take or give in one burst (its queue size).
    pub max_burst: usize,
    /// The card computes TCP/UDP checksums of sent frames: the stack must leave them zero.
    pub tx_checksum_offload: bool,
    /// The card validates (or completes) TCP/UDP checksums of received
    /// frames and says so per frame ([`RxHalf::checksum_verified`]).
    pub rx_checksum_offload: bool,
}

/// The receive half: frames the device has written.
pub trait RxHalf {
    /// A received frame, lent to the stack until [`recycle`](Self::recycle).
    type Frame;
    /// The next received frame, if any.
    fn receive(&mut self) -> Option<Self::Frame>;
    /// A received frame's bytes, from the Ethernet header on (they may live
    /// in the half's buffers or in the frame itself).
    fn bytes<'a>(&'a self, frame: &'a Self::Frame) -> &'a [u8];
    /// Whether the device vouched for (or the driver completed) the frame's
    /// TCP/UDP checksum.
    fn checksum_verified(&self, frame: &Self::Frame) -> bool;
    /// Gives the frame's buffer back; the device sees it at the next flush.
    fn recycle(&mut self, frame: Self::Frame);
}

/// The transmit half: buffers the device will read.
pub trait TxHalf {
    /// A buffer being filled.
    type Frame;
    /// Whether a buffer is free now (reclaiming sent ones if needed).
    fn has_room(&mut self) -> bool;
    /// A free buffer for a frame of `len` bytes, or `None` if there is none
    /// or the frame is too large.
    fn reserve(&mut self, len: usize) -> Option<Self::Frame>;
    /// The frame's bytes, to fill in.
    fn bytes_mut<'a>(&'a mut self, frame: &'a mut Self::Frame) -> &'a mut [u8];
    /// Queues the filled frame; it goes out at the next flush.
    fn send(&mut self, frame: Self::Frame);
}

/// A network card.
pub trait NetDevice {
    /// The receive half.
    type Rx: RxHalf;
    /// The transmit half.
    type Tx: TxHalf;
    /// The card's fixed properties.
    fn info(&self) -> DeviceInfo;
    /// Both halves at once.
    fn split(&mut self) -> (&mut Self::Rx, &mut Self::Tx);
    /// Hands recycled and sent buffers to the device and notifies it once.
    fn flush(&mut self);
    /// Whether the device has frames for us or sent buffers to give back.
    fn has_work(&self) -> bool;
    /// The card's counters, by name, for `/stats`.
    fn counters(&self) -> Vec<(&'static str, u64)>;
    /// The features the card negotiated, by name, for `/stats`.
    fn features(&self) -> String;
    /// Whether the link is up (cards that cannot tell say it always is).
    fn link_up(&self) -> bool {
        true
    }
}
