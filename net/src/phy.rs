//! smoltcp's `phy::Device` over a [`NetDevice`]: the place where the stack
//! meets the driver.
//!
//! Frames are lent, not copied: a receive token hands smoltcp the bytes the
//! device wrote, in place, and a transmit token hands it the buffer the device
//! will read. smoltcp answers a packet while it still holds it (an ICMP echo
//! reply, a TCP ACK), so the two tokens borrow the driver's two halves, which
//! are independent.
//!
//! Checksums: with offload, smoltcp neither computes TCP/UDP checksums on
//! transmit (the device does) nor verifies them on receive; frames the device
//! did not vouch for are verified here instead, and dropped if wrong.

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::device::{NetDevice, RxHalf, TxHalf};
use crate::{checksum, trace};

/// Ethernet's header, which smoltcp counts in the "MTU" of an Ethernet device.
const ETHERNET_HEADER: usize = 14;

/// Frames dropped by the adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdapterStats {
    /// Received TCP/UDP frames with a wrong checksum, or (with receive
    /// offload) one that could not be checked, verified in software here.
    pub rx_drop_bad_checksum: u64,
    /// Frames smoltcp wanted to send when no transmit buffer was free.
    pub tx_drop_no_buffer: u64,
}

/// A [`NetDevice`] as smoltcp sees it.
pub struct Adapter<D: NetDevice> {
    device: D,
    caps: DeviceCapabilities,
    verify_rx: bool,
    stats: AdapterStats,
}

impl<D: NetDevice> Adapter<D> {
    /// Wraps `device`, taking its MTU, burst size and checksum offloads.
    pub fn new(device: D) -> Self {
        let info = device.info();
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = info.mtu + ETHERNET_HEADER;
        caps.max_burst_size = Some(info.max_burst);
        caps.checksum = checksum_caps(info.tx_checksum_offload, info.rx_checksum_offload);
        Adapter { device, caps, verify_rx: info.rx_checksum_offload, stats: AdapterStats::default() }
    }

    /// The wrapped device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The wrapped device, mutably (to flush it, say).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Frames dropped here.
    pub fn stats(&self) -> AdapterStats {
        self.stats
    }
}

/// What smoltcp must compute and check itself, given the device's offloads.
pub fn checksum_caps(tx_offload: bool, rx_offload: bool) -> ChecksumCapabilities {
    let l4 = match (tx_offload, rx_offload) {
        (false, false) => Checksum::Both,
        (true, false) => Checksum::Rx,
        (false, true) => Checksum::Tx,
        (true, true) => Checksum::None,
    };
    let mut caps = ChecksumCapabilities::default();
    caps.tcp = l4;
    caps.udp = l4;
    caps
}

/// Lends smoltcp one received frame.
pub struct RxToken<'a, R: RxHalf> {
    rx: &'a mut R,
    frame: R::Frame,
    verify: bool,
    dropped: &'a mut u64,
}

/// Lends smoltcp one transmit buffer.
pub struct TxToken<'a, T: TxHalf> {
    tx: &'a mut T,
    dropped: &'a mut u64,
}

impl<R: RxHalf> phy::RxToken for RxToken<'_, R> {
    fn consume<Ret, F: FnOnce(&[u8]) -> Ret>(self, f: F) -> Ret {
        let bytes = self.rx.bytes(&self.frame);
        // smoltcp skips empty frames: that is how a bad one is dropped. A
        // frame whose TCP/UDP checksum cannot be checked here is bad too:
        // with offload on, smoltcp does not check it either.
        let bad = self.verify
            && !self.rx.checksum_verified(&self.frame)
            && match checksum::verify(bytes) {
                Some(valid) => !valid,
                None => checksum::unverifiable_transport(bytes),
            };
        if trace::enabled() {
            trace::log_frame(trace::Direction::Rx, bytes);
        }
        let result = if bad {
            *self.dropped += 1;
            log::trace!(target: trace::TARGET, "rx drop   bad TCP/UDP checksum");
            f(&[])
        } else {
            f(bytes)
        };
        self.rx.recycle(self.frame);
        result
    }
}

impl<T: TxHalf> phy::TxToken for TxToken<'_, T> {
    fn consume<Ret, F: FnOnce(&mut [u8]) -> Ret>(self, len: usize, f: F) -> Ret {
        match self.tx.reserve(len) {
            Some(mut frame) => {
                let result = f(self.tx.bytes_mut(&mut frame));
                if trace::enabled() {
                    trace::log_frame(trace::Direction::Tx, self.tx.bytes_mut(&mut frame));
                }
                self.tx.send(frame);
                result
            }
            // Only if smoltcp asks for more than the MTU, or ignores has_room:
            // build the frame somewhere and drop it, counted.
            None => {
                *self.dropped += 1;
                let mut scratch = alloc::vec![0u8; len];
                f(&mut scratch)
            }
        }
    }
}

impl<D: NetDevice> phy::Device for Adapter<D> {
    type RxToken<'a>
        = RxToken<'a, D::Rx>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, D::Tx>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.device.split();
        // A received packet may need an answer: take it only if one could go out.
        if !tx.has_room() {
            return None;
        }
        let frame = rx.receive()?;
        let AdapterStats { rx_drop_bad_checksum, tx_drop_no_buffer } = &mut self.stats;
        Some((
            RxToken { rx, frame, verify: self.verify_rx, dropped: rx_drop_bad_checksum },
            TxToken { tx, dropped: tx_drop_no_buffer },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let (_, tx) = self.device.split();
        if !tx.has_room() {
            return None;
        }
        Some(TxToken { tx, dropped: &mut self.stats.tx_drop_no_buffer })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}
