//! Raw frames from the made-up neighbour (`FAKE_IP`), and TCP connections
//! driven by hand from there, for the classes that break what a socket would
//! never send.

use std::time::{Duration, Instant};

use super::checks::Ctx;
use super::{ECHO, FAKE_IP, FAKE_MAC, GUEST_IP, GUEST_MAC, HTTP, Result};
use crate::frames::{self, ACK, FIN, Ipv4, RST, SYN, Tcp};
use crate::netns::TAP_QUEUE_FRAMES;
use crate::rawlink::FRAME_BUFFER;

/// Frames sent back to back before `send_all` pauses: well inside the TAP
/// device's transmit queue.
const BURST: usize = 64;
const _: () = assert!(BURST < TAP_QUEUE_FRAMES / 8);
/// The pause after a burst.
const BURST_PAUSE: Duration = Duration::from_millis(2);
/// The receive window the raw connections advertise, and the SYNs'.
pub(super) const OPEN_WINDOW: u16 = 65535;
pub(super) const SYN_WINDOW: u16 = 8192;

impl Ctx {
    /// Sends every frame, a short pause after each burst so that the TAP
    /// queue never overflows; returns how many the kernel took.
    pub(super) fn send_all(&self, frames: &[Vec<u8>]) -> Result<usize> {
        let mut sent = 0;
        for (i, f) in frames.iter().enumerate() {
            sent += usize::from(self.link.send(f)?);
            if i % BURST == BURST - 1 {
                std::thread::sleep(BURST_PAUSE);
            }
        }
        Ok(sent)
    }

    /// As `send_all` with no pauses: a flood.
    pub(super) fn flood(&self, frames: impl Iterator<Item = Vec<u8>>) -> Result<usize> {
        let mut sent = 0;
        for f in frames {
            sent += usize::from(self.link.send(&f)?);
        }
        Ok(sent)
    }

    /// A TCP segment from `FAKE_IP` to the guest, in a frame.
    pub(super) fn tcp_frame(&self, tcp: &Tcp, payload: &[u8]) -> Vec<u8> {
        let ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_TCP);
        frames::ipv4_frame(GUEST_MAC, FAKE_MAC, &ip, &tcp.build(FAKE_IP, GUEST_IP, payload))
    }

    /// A SYN to `port` from a random port of `FAKE_IP`, in a frame.
    pub(super) fn syn(&mut self, port: u16) -> Vec<u8> {
        let tcp = self.stray(port, SYN, 0, SYN_WINDOW);
        self.tcp_frame(&tcp, &[])
    }

    /// A segment to `port` from a random port and sequence number: for no
    /// connection the guest knows.
    pub(super) fn stray(&mut self, port: u16, flags: u8, ack: u32, window: u16) -> Tcp {
        Tcp { src_port: self.rng.port(), dst_port: port, seq: self.rng.next() as u32, ack, flags, window }
    }

    /// [`Ctx::stray`] at HTTP when `i` is a multiple of 4, else at echo (the
    /// storms ask for every other `i`, so the two ports alternate).
    pub(super) fn stray_at_either(&mut self, i: usize, flags: u8, ack: u32, window: u16) -> Tcp {
        self.stray(if i.is_multiple_of(4) { HTTP } else { ECHO }, flags, ack, window)
    }

    /// A UDP datagram of `len` random bytes to `port` from `FAKE_IP`, in a frame.
    pub(super) fn udp_frame(&mut self, port: u16, len: usize) -> Vec<u8> {
        let mut payload = vec![0u8; len];
        self.rng.fill(&mut payload);
        let ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_UDP);
        frames::ipv4_frame(GUEST_MAC, FAKE_MAC, &ip, &frames::udp(FAKE_IP, GUEST_IP, self.rng.port(), port, &payload))
    }

    /// Opens a TCP connection from `FAKE_IP` by hand.
    pub(super) fn raw_connect(&mut self, port: u16) -> Result<RawConn> {
        self.announce()?;
        self.link.drain();
        let mut conn = RawConn { port, local: self.rng.port(), snd_nxt: self.rng.next() as u32, rcv_nxt: 0 };
        let mut buf = [0u8; FRAME_BUFFER];
        for _ in 0..5 {
            self.send_seg(&conn, SYN, conn.snd_nxt, 0, SYN_WINDOW, &[])?;
            let deadline = Instant::now() + Duration::from_secs(1);
            while let Some(n) = self.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) {
                if let Some(seg) = conn.ours(&buf[..n])
                    && seg.flags & (SYN | ACK) == SYN | ACK
                    && seg.ack == conn.snd_nxt.wrapping_add(1)
                {
                    conn.snd_nxt = seg.ack;
                    conn.rcv_nxt = seg.seq.wrapping_add(1);
                    self.send_seg(&conn, ACK, conn.snd_nxt, conn.rcv_nxt, OPEN_WINDOW, &[])?;
                    return Ok(conn);
                }
            }
        }
        Err(format!("no SYN-ACK from port {port} for a raw connection"))
    }

    /// Sends a segment on `c`.
    pub(super) fn send_seg(
        &self,
        c: &RawConn,
        flags: u8,
        seq: u32,
        ack: u32,
        window: u16,
        payload: &[u8],
    ) -> Result<()> {
        self.link.send(&self.tcp_frame(&c.segment(flags, seq, ack, window), payload)).map(|_| ())
    }

    /// Reads the guest's in-order data on `c` (acknowledging it) until
    /// `done`, or `within` passes. Also returns whether a FIN or RST came.
    pub(super) fn raw_read(
        &self,
        c: &mut RawConn,
        within: Duration,
        done: impl Fn(&[u8], u8) -> bool,
    ) -> Result<(Vec<u8>, u8)> {
        let mut data = Vec::new();
        let mut flags = 0;
        let mut buf = [0u8; FRAME_BUFFER];
        let deadline = Instant::now() + within;
        while !done(&data, flags) {
            let Some(n) = self.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) else { break };
            let Some(seg) = c.ours(&buf[..n]) else { continue };
            flags |= seg.flags & (FIN | RST);
            if seg.seq == c.rcv_nxt && !seg.payload.is_empty() {
                data.extend_from_slice(&seg.payload);
                c.rcv_nxt = c.rcv_nxt.wrapping_add(seg.payload.len() as u32);
            }
            if seg.flags & FIN != 0 && seg.seq.wrapping_add(seg.payload.len() as u32) == c.rcv_nxt {
                c.rcv_nxt = c.rcv_nxt.wrapping_add(1);
            }
            if seg.flags & RST == 0 {
                self.send_seg(c, ACK, c.snd_nxt, c.rcv_nxt, OPEN_WINDOW, &[])?;
            }
        }
        Ok((data, flags))
    }
}

/// A TCP connection from `FAKE_IP`, driven by hand.
pub(super) struct RawConn {
    /// The guest's port, and ours.
    pub(super) port: u16,
    pub(super) local: u16,
    /// The next sequence number to send, and the next expected (RFC 9293 3.3.1).
    pub(super) snd_nxt: u32,
    pub(super) rcv_nxt: u32,
}

impl RawConn {
    /// A segment on this connection.
    pub(super) fn segment(&self, flags: u8, seq: u32, ack: u32, window: u16) -> Tcp {
        Tcp { src_port: self.local, dst_port: self.port, seq, ack, flags, window }
    }

    /// The segment in `frame`, if the guest sent it on this connection.
    pub(super) fn ours(&self, frame: &[u8]) -> Option<frames::TcpSeen> {
        let seg = frames::parse_tcp(frame)?;
        (seg.src == GUEST_IP && seg.dst == FAKE_IP && seg.src_port == self.port && seg.dst_port == self.local)
            .then_some(seg)
    }
}
