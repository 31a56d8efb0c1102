//! TCP echo on port 7 (RFC 862): whatever arrives goes back, in order.
//!
//! Data moves from a socket's receive buffer to its send buffer only as far
//! as the send buffer has room. When the client reads slowly the send buffer
//! fills, the receive buffer stops draining, and TCP's window closes on the
//! client: back-pressure, with nothing dropped.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use crate::recent::{Ending, Follow, RecentConnections};
use crate::trace;

/// The echo port.
pub const PORT: u16 = 7;
/// Listening sockets: this many connections at once; more are refused (RST).
pub const CONNECTIONS: usize = 40;
/// Per-socket TCP buffers; large enough for a window that keeps a stream moving.
const BUFFER: usize = 64 * 1024;
/// A connection through which nothing moved this long is closed.
pub const IDLE_TIMEOUT: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(120);
/// Bytes moved per copy step.
const CHUNK: usize = 4096;

/// The echo server's sockets.
pub struct EchoServer {
    handles: Vec<SocketHandle>,
    /// Per socket: when it was first seen in TIME-WAIT (see `super::reopen`).
    time_wait_since: Vec<Option<Instant>>,
    /// Per socket: when data last moved, or when the connection began (the
    /// poll step that saw its SYN); `None` while listening.
    last_activity: Vec<Option<Instant>>,
    /// Per socket: its connections, for `/stats` and the packet trace.
    follow: Vec<Follow>,
    bytes: u64,
}

impl EchoServer {
    /// Creates `CONNECTIONS` listening sockets in `sockets`.
    pub fn new(sockets: &mut SocketSet<'static>) -> Self {
        let handles = (0..CONNECTIONS).map(|_| sockets.add(super::server_socket(BUFFER, BUFFER))).collect();
        EchoServer {
            handles,
            time_wait_since: vec![None; CONNECTIONS],
            last_activity: vec![None; CONNECTIONS],
            follow: (0..CONNECTIONS).map(|index| Follow::new("echo", index)).collect(),
            bytes: 0,
        }
    }

    /// Bytes echoed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The sockets, for counting states.
    pub fn handles(&self) -> &[SocketHandle] {
        &self.handles
    }

    /// Echoes what can be echoed; reopens closed sockets. Connections are
    /// recorded in `recent`.
    pub fn poll(&mut self, now: Instant, sockets: &mut SocketSet<'static>, recent: &mut RecentConnections) {
        let mut chunk = [0u8; CHUNK];
        let now_ms = now.total_millis().max(0) as u64;
        for (((&handle, since), last_activity), follow) in
            self.handles.iter().zip(&mut self.time_wait_since).zip(&mut self.last_activity).zip(&mut self.follow)
        {
            let socket = sockets.get_mut::<tcp::Socket>(handle);
            follow.observe(recent, socket.state(), socket.remote_endpoint(), now_ms);
            if !socket.is_open() {
                super::reopen(socket, PORT, now, since);
                // Seen now, so that a SYN before the next poll is a new connection.
                follow.observe(recent, socket.state(), None, now_ms);
                continue;
            }
            if !socket.is_active() {
                *last_activity = None; // listening: the idle clock starts at connect
                continue;
            }
            // Polls may be seconds apart while nothing is connected, so the
            // clock starts here, in the step that took in the SYN.
            let began = *last_activity.get_or_insert(now);
            if super::half_open_too_long(socket, now, began) {
                socket.abort();
                continue;
            }
            loop {
                let room = socket.send_capacity() - socket.send_queue();
                let want = room.min(CHUNK);
                if want == 0 || !socket.can_recv() || !socket.may_send() {
                    break;
                }
                match socket.recv_slice(&mut chunk[..want]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        // Cannot fall short: `n` is at most the free room.
                        let sent = socket.send_slice(&chunk[..n]).unwrap_or(0);
                        debug_assert_eq!(sent, n);
                        self.bytes += sent as u64;
                        *last_activity = Some(now);
                        if let Some(record) = follow.record(recent) {
                            record.bytes_in += n as u64;
                            record.bytes_out += sent as u64;
                        }
                        log::trace!(target: trace::TARGET, "rx socket {} read {n} bytes", follow.name());
                        log::trace!(target: trace::TARGET, "tx app    {} echoes {sent} bytes", follow.name());
                        log::trace!(target: trace::TARGET, "tx socket {} wrote {sent} bytes", follow.name());
                    }
                }
            }
            // The client finished sending and everything went back: finish too.
            if socket.state() == tcp::State::CloseWait && !socket.can_recv() && socket.send_queue() == 0 {
                socket.close();
            } else if now - last_activity.unwrap_or(now) > IDLE_TIMEOUT {
                // Nothing moved for this long: an idle client, or one that
                // stopped reading for good (back-pressure has its limit).
                follow.end(recent, Ending::TimedOut, now_ms);
                socket.abort();
            }
        }
    }
}
