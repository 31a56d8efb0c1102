//! TCP echo on port 7 (RFC 862): whatever arrives goes back, in order.
//!
//! Data moves from a socket's receive buffer to its send buffer only as far
//! as the send buffer has room. When the client reads slowly the send buffer
//! fills, the receive buffer stops draining, and TCP's window closes on the
//! client: back-pressure, with nothing dropped.

use alloc::vec::Vec;

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use crate::pool::{Pool, PortSpec};
use crate::recent::RecentConnections;
use crate::room::shrink_when_sparse;
use crate::sockets::{ServerSocket, Turn};
use crate::trace;

/// The echo port.
pub const PORT: u16 = 7;
/// Echo connections at once (their buffers are large); more SYNs wait
/// (dropped without a reply, the client retries: `crate::pool`).
pub const CONNECTIONS: usize = 40;
/// Per-socket TCP buffers (each way) with memory to spare: large enough for
/// a window that keeps a stream moving.
pub const MAX_BUFFER: usize = 64 * 1024;
/// The smallest per-socket buffers: a few segments' worth, still a working
/// (if slower) stream.
pub const MIN_BUFFER: usize = 4 * 1024;
/// The echo sockets may take this share (1/N) of the heap that is free when
/// the stack starts; the rest is for HTTP, smoltcp and the frames in flight.
const HEAP_SHARE_DIVISOR: usize = 2;
/// A connection through which nothing moved this long is closed.
pub const IDLE_TIMEOUT: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(120);
/// Bytes moved per copy step.
const CHUNK: usize = 4096;

/// The echo server's connections.
pub struct EchoServer {
    connections: Vec<ServerSocket>,
    bytes: u64,
}

impl EchoServer {
    /// Serves the echo port from `pool`, each connection with `buffer`
    /// bytes of receive and of send buffer.
    pub fn new(sockets: &mut SocketSet<'static>, pool: &mut Pool, buffer: usize) -> Self {
        pool.add_port(
            sockets,
            PortSpec { port: PORT, app: "echo", rx: buffer, tx: buffer, rx_may_grow_to: 0, max: CONNECTIONS },
        );
        EchoServer { connections: Vec::new(), bytes: 0 }
    }

    /// The per-socket buffer size for a heap with `free` bytes free: the
    /// largest power of two from `MIN_BUFFER` to `MAX_BUFFER` with which all
    /// `CONNECTIONS` sockets' buffers (both ways) take at most half of it.
    /// A small machine (QEMU's `-m 8M`) so still has room for HTTP and the
    /// frames in flight; a large one gets `MAX_BUFFER`.
    pub fn buffer_for_heap(free: usize) -> usize {
        let per_buffer = free / HEAP_SHARE_DIVISOR / (2 * CONNECTIONS);
        let mut buffer = MAX_BUFFER;
        while buffer > MIN_BUFFER && buffer > per_buffer {
            buffer /= 2;
        }
        buffer
    }

    /// Entries the connection list has room for (for tests).
    #[cfg(test)]
    pub(crate) fn room(&self) -> usize {
        self.connections.capacity()
    }

    /// Bytes echoed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Takes the new connections from `pool`, echoes what can be echoed,
    /// and gives ended connections back. Connections are recorded in `recent`.
    pub fn poll(
        &mut self,
        now: Instant,
        sockets: &mut SocketSet<'static>,
        pool: &mut Pool,
        recent: &mut RecentConnections,
    ) {
        self.connections.extend(pool.accept(PORT));
        let mut chunk = [0u8; CHUNK];
        let mut i = 0;
        while i < self.connections.len() {
            let server = &mut self.connections[i];
            let socket = match server.begin(sockets, recent, now, pool.step_number()) {
                Turn::Connected(socket) => socket,
                Turn::Idle => {
                    pool.note_lingering();
                    i += 1;
                    continue;
                }
                Turn::Ended => {
                    pool.release(sockets, PORT, self.connections.swap_remove(i));
                    continue;
                }
            };
            i += 1;
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
                        server.touch(now);
                        let follow = server.follow();
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
            } else {
                // Nothing moved for this long: an idle client, or one that
                // stopped reading for good (back-pressure has its limit).
                server.abort_if_idle(socket, recent, now, IDLE_TIMEOUT);
            }
        }
        shrink_when_sparse(&mut self.connections);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_buffers_fit_half_the_free_heap_within_their_bounds() {
        // A 128 MiB guest: the full size.
        assert_eq!(EchoServer::buffer_for_heap(62 << 20), MAX_BUFFER);
        // An 8 MiB guest has about 4 MiB free when the stack starts.
        let free = 4 << 20;
        let buffer = EchoServer::buffer_for_heap(free);
        assert_eq!(buffer, 16 * 1024);
        assert!(2 * CONNECTIONS * buffer <= free / HEAP_SHARE_DIVISOR);
        // Nothing free: the smallest that still works (the allocator then says no).
        assert_eq!(EchoServer::buffer_for_heap(0), MIN_BUFFER);
        let mut last = 0;
        for mib in 0..256 {
            let b = EchoServer::buffer_for_heap(mib << 20);
            assert!(b.is_power_of_two() && (MIN_BUFFER..=MAX_BUFFER).contains(&b), "{b} for {mib} MiB");
            assert!(b >= last, "less memory for more heap at {mib} MiB");
            if b > MIN_BUFFER {
                assert!(2 * CONNECTIONS * b <= (mib << 20) / HEAP_SHARE_DIVISOR, "{b} for {mib} MiB");
            }
            last = b;
        }
    }
}
