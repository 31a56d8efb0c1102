//! What the stack needs from a network card: the trait a driver implements.
//!
//! A card is two independent halves, so that the stack can hold a received
//! frame and fill a frame to send at the same time (smoltcp answers a packet
//! while it still reads it) without copying either and without locks: the
//! receive half lends out frames the device wrote, the transmit half lends out
//! buffers the device will read. [`NetDevice::flush`] hands everything back
//! to the device at the end of a burst, with one notification per queue.
//!
//! The trait also carries what the kernel's main loop needs to drive any card
//! the same way: queue interrupts on and off, acknowledging an interrupt,
//! configuration changes (the link), whether work is pending, and whether the
//! device has failed. The main loop names no card type; a new transport or
//! card implements this trait and nothing else changes.
//!
//! The trait lives here, with the stack that uses it, as Linux's
//! `net_device_ops` lives in its networking core: drivers depend on this
//! contract, never the stack on a driver.

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
    /// The card splits TCP/IPv4 frames up to this many bytes (Ethernet
    /// header included) into MTU-sized segments (TSO); `None` if it cannot.
    /// Only with `tx_checksum_offload`.
    pub tso4_max_frame: Option<usize>,
    /// The same for TCP/IPv6.
    pub tso6_max_frame: Option<usize>,
}

/// The log target of per-frame trace lines (`log=packet=trace`); drivers
/// that log their descriptors use it too, so one switch shows every layer.
pub const TRACE_TARGET: &str = "packet";

/// What reading (and so clearing) a card's interrupt status said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterruptCause {
    /// The card used buffers on a queue.
    pub queues: bool,
    /// The card's configuration changed (link state, or a failure).
    pub config: bool,
}

impl InterruptCause {
    /// Whether the card interrupted at all. On a shared line, `false` means
    /// the interrupt was another device's.
    pub fn any(self) -> bool {
        self.queues || self.config
    }
}

/// Why a card can no longer be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceFailure {
    /// The device says it hit an error it cannot recover from without a
    /// reset (virtio: DEVICE_NEEDS_RESET, spec 2.1.1).
    NeedsReset,
}

impl core::fmt::Display for DeviceFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            DeviceFailure::NeedsReset => write!(f, "the device needs a reset (DEVICE_NEEDS_RESET)"),
        }
    }
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
    /// Queues a filled TCP frame larger than the MTU for the card to cut
    /// into segments of `segment_size` payload bytes (TSO). Only called
    /// when [`DeviceInfo`] offers TSO for the frame's IP version.
    fn send_segmented(&mut self, frame: Self::Frame, segment_size: u16);
}

/// A network card as the stack and the main loop drive it: two halves that
/// can be borrowed at once (a received frame may be answered while it is
/// still held), one flush per poll step, and a question before the loop
/// sleeps. Virtio-net implements it in drivers, the host tests' in-memory
/// link in `testlink`.
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
    /// Whether a poll would make progress now: sent buffers to take back, or
    /// received frames while a transmit buffer is free to answer them (the
    /// adapter takes none in otherwise). A card whose transmit queue is full
    /// and stays full must answer `false`, or the main loop would spin.
    fn has_work(&self) -> bool;
    /// Asks the card to interrupt (or not) when it uses buffers: off while a
    /// burst is processed, on before sleeping. A hint: after turning them on,
    /// look at [`has_work`](Self::has_work) again, since a buffer may have
    /// been used just before. Cards without interrupts ignore it.
    fn set_interrupts(&mut self, _enabled: bool) {}
    /// Reads and clears the card's interrupt status (what a shared,
    /// level-triggered line needs before it is unmasked).
    fn acknowledge_interrupt(&mut self) -> InterruptCause {
        InterruptCause::default()
    }
    /// Takes in a configuration change: re-reads the link state and notices
    /// a failure. Called on configuration interrupts and on the main loop's
    /// heartbeat, for cards that change without telling.
    fn config_changed(&mut self) {}
    /// Why the card cannot be used any more, if it cannot.
    fn failure(&self) -> Option<DeviceFailure> {
        None
    }
    /// The card's counters, by name, for `/stats`.
    fn counters(&self) -> Vec<(&'static str, u64)>;
    /// The features the card negotiated, by name, for `/stats`.
    fn features(&self) -> String;
    /// Whether the link is up (cards that cannot tell say it always is).
    fn link_up(&self) -> bool {
        true
    }
}
