//! An in-memory link for whole-stack tests: two devices joined back to
//! back, frames carried between them by whoever drives the test.
//!
//! The device ([`MemDevice`], [`link`]) is public with the `testing`
//! feature, for the fuzz targets in `fuzz/`, and so is the trace collector
//! ([`capture`]), for the drivers' tests. The host tests that use it are
//! in `harness` (Skiff's stack and a client interface on a wire that can
//! lose and reorder frames) and `tests`.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::device::{DeviceInfo, NetDevice, RxHalf, TxHalf};

/// Frames in flight on one direction of the link, oldest first.
pub type Queue = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// One end of the link: frames in, frames out. It never runs out of
/// buffers and checks no checksums (no offloads), MTU 1500.
pub struct MemDevice {
    rx: MemRx,
    tx: MemTx,
    mac: [u8; 6],
}

/// The receive half: takes frames from its queue.
pub struct MemRx(Queue);
/// The transmit half: appends frames to its queue.
pub struct MemTx(Queue);

impl RxHalf for MemRx {
    type Frame = Vec<u8>;
    fn receive(&mut self) -> Option<Vec<u8>> {
        self.0.borrow_mut().pop_front()
    }
    fn bytes<'a>(&self, frame: &'a Vec<u8>) -> &'a [u8] {
        frame
    }
    fn checksum_verified(&self, _frame: &Vec<u8>) -> bool {
        false
    }
    fn recycle(&mut self, _frame: Vec<u8>) {}
}

impl TxHalf for MemTx {
    type Frame = Vec<u8>;
    fn has_room(&mut self) -> bool {
        true
    }
    fn reserve(&mut self, len: usize) -> Option<Vec<u8>> {
        Some(vec![0; len])
    }
    fn bytes_mut<'a>(&mut self, frame: &'a mut Vec<u8>) -> &'a mut [u8] {
        frame
    }
    fn send(&mut self, frame: Vec<u8>) {
        self.0.borrow_mut().push_back(frame);
    }
    /// Never called: the device offers no TSO.
    fn send_segmented(&mut self, frame: Vec<u8>, _segment_size: u16) {
        self.send(frame);
    }
}

impl NetDevice for MemDevice {
    type Rx = MemRx;
    type Tx = MemTx;
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            mac: self.mac,
            mtu: 1500,
            max_burst: 64,
            tx_checksum_offload: false,
            rx_checksum_offload: false,
            tso4_max_frame: None,
            tso6_max_frame: None,
        }
    }
    fn split(&mut self) -> (&mut MemRx, &mut MemTx) {
        (&mut self.rx, &mut self.tx)
    }
    fn flush(&mut self) {}
    fn has_work(&self) -> bool {
        !self.rx.0.borrow().is_empty()
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("frames_waiting", self.rx.0.borrow().len() as u64)]
    }
    fn features(&self) -> String {
        "MEMORY".into()
    }
}

/// Two devices joined back to back, and their queues: A's input and output, B's input and output.
#[allow(clippy::type_complexity)]
pub fn link(mac_a: [u8; 6], mac_b: [u8; 6]) -> (MemDevice, MemDevice, Queue, Queue, Queue, Queue) {
    let (a_in, a_out, b_in, b_out): (Queue, Queue, Queue, Queue) = Default::default();
    let a = MemDevice { rx: MemRx(a_in.clone()), tx: MemTx(a_out.clone()), mac: mac_a };
    let b = MemDevice { rx: MemRx(b_in.clone()), tx: MemTx(b_out.clone()), mac: mac_b };
    (a, b, a_in, a_out, b_in, b_out)
}

#[cfg(test)]
mod bulk;
pub mod capture;
#[cfg(test)]
mod exercises;
#[cfg(test)]
mod handshake;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod neighbours;
#[cfg(test)]
mod pool;
#[cfg(test)]
mod rfc;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod time_wait;
