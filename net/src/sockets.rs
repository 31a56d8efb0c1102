//! Skiff's TCP server sockets: how they are set up, the connections the
//! apps own (following them, timing them out, saying when they have ended),
//! and their states as `/stats` counts them. The pool they come from and go
//! back to is `crate::pool`.
//!
//! The apps (`crate::apps`) move data; the stack (`crate::stack`) and the
//! connection record (`crate::recent`) only need the states, so all of it
//! lives here rather than in an app.

use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{Socket, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;

use crate::recent::{Ending, Follow, RecentConnections};

/// A connection whose sent data (or FIN) goes unacknowledged this long is
/// aborted (smoltcp's socket timeout): a peer that vanished frees its socket.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(60);
/// Keep-alive probes on idle connections, so that the timeout above also
/// catches peers that vanished while nothing was being sent.
pub const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// A connection still half-open (SYN-RECEIVED) this long after its SYN is
/// dropped and its socket goes back to the pool (`crate::pool`). smoltcp has
/// no SYN cookies: each SYN takes a socket, and one whose handshake never
/// completes (a spoofed SYN flood) would otherwise hold it until the 60 s
/// `TCP_TIMEOUT`. Eight seconds
/// cover a client's SYNs at 0, 1, 3 and 7 s (a 1 s initial retransmission
/// timeout, RFC 6298 2.1, doubling), each answered with a SYN-ACK: at 10 %
/// loss, 3 s (two SYN-ACKs) refused real clients (issue 14, net/src/loss.rs).
pub const SYN_RECEIVED_TIMEOUT: Duration = Duration::from_secs(8);

/// smoltcp's delayed ACK (its default, set explicitly so that it can be
/// restored): while data flows, one ACK covers several segments.
pub const ACK_DELAY: Duration = Duration::from_millis(10);

/// A server socket with Skiff's timeouts, listening on `port`.
pub fn server_socket(rx: usize, tx: usize, port: u16) -> tcp::Socket<'static> {
    let mut socket =
        tcp::Socket::new(tcp::SocketBuffer::new(alloc::vec![0; rx]), tcp::SocketBuffer::new(alloc::vec![0; tx]));
    socket.set_timeout(Some(TCP_TIMEOUT));
    socket.set_keep_alive(Some(KEEP_ALIVE));
    socket.set_ack_delay(Some(ACK_DELAY));
    // The apps queue whole answers at once. With Nagle on, the last, short
    // segment of a multi-segment answer waits for the ACK of the ones before,
    // which a client delays (up to 40 ms on Linux): a keep-alive client then
    // gets a few dozen answers a second instead of thousands.
    socket.set_nagle_enabled(false);
    // TCP Timestamps (RFC 7323) from the interface's clock, when the peer offers
    // them: their echo measures the round trip even after a retransmission,
    // where Karn's rule leaves none (a connection whose SYN-ACK was lost then
    // had no loss probe and a 2 s timeout: issue 14, smoltcp patch 16).
    socket.set_timestamps_from_clock(true);
    if socket.listen(port).is_err() {
        log::warn!("cannot listen on port {port}");
    }
    socket
}

/// Closes `socket` from our side (sends FIN) and makes it acknowledge
/// without delay from now on, so that the ACK it owes the peer's FIN in
/// TIME-WAIT goes out at once and the socket can go back to the pool right after.
pub fn close(socket: &mut tcp::Socket) {
    socket.set_ack_delay(None);
    socket.close();
}

/// A connection an app owns: a socket that left LISTEN, taken from the
/// pool (`crate::pool`) and given back to it when [`ServerSocket::begin`]
/// says it has ended.
#[derive(Debug)]
pub struct ServerSocket {
    handle: SocketHandle,
    /// The peer's address, as counted against its per-peer limit.
    peer: Option<IpAddress>,
    /// The pool's poll step that first saw the socket in TIME-WAIT.
    time_wait_step: Option<u64>,
    /// When data last moved, or when the connection began (the poll step
    /// that saw its SYN).
    last_activity: Instant,
    /// Its connection, for `/stats` and the packet trace.
    follow: Follow,
    /// The send queue when last looked at (see [`ServerSocket::note_progress`]).
    send_queue_seen: usize,
}

/// Where a connection stands at the start of its app's turn (see [`ServerSocket::begin`]).
pub enum Turn<'s> {
    /// The connection has ended: the app gives it back to the pool
    /// (`crate::pool::Pool::release`), with whatever it kept for it.
    Ended,
    /// Lingering in TIME-WAIT until the next step: nothing for the app to
    /// do but tell the pool (`crate::pool::Pool::note_lingering`).
    Idle,
    /// A connection, for the app to serve.
    Connected(&'s mut tcp::Socket<'static>),
}

impl ServerSocket {
    /// The connection on `handle` from `peer`, which began (its SYN) at `began`.
    pub fn new(handle: SocketHandle, peer: Option<IpAddress>, began: Instant, follow: Follow) -> Self {
        ServerSocket { handle, peer, time_wait_step: None, last_activity: began, follow, send_queue_seen: 0 }
    }

    /// The socket's handle in the set.
    pub fn handle(&self) -> SocketHandle {
        self.handle
    }

    /// The peer's address.
    pub fn peer(&self) -> Option<IpAddress> {
        self.peer
    }

    /// The connection, as followed for `/stats` and the trace.
    pub fn follow(&self) -> &Follow {
        &self.follow
    }

    /// The follower, to record or trace something about the connection.
    pub fn follow_mut(&mut self) -> &mut Follow {
        &mut self.follow
    }

    /// The start of every app's turn with this connection in poll step
    /// `step` (`crate::pool::Pool::step_number`): follows it into `recent`,
    /// and says whether it has ended (closed, or in TIME-WAIT since an
    /// earlier step).
    pub fn begin<'s>(
        &mut self,
        sockets: &'s mut SocketSet<'static>,
        recent: &mut RecentConnections,
        now: Instant,
        step: u64,
    ) -> Turn<'s> {
        let now_ms = millis(now);
        let socket = sockets.get_mut::<tcp::Socket>(self.handle);
        self.follow.observe(recent, socket.state(), socket.remote_endpoint(), now_ms);
        if socket.state() == tcp::State::TimeWait {
            // Going back to the pool before the ACK of the peer's FIN has
            // gone out would drop it: the peer would retransmit its FIN and
            // get a reset. Sockets Skiff closes acknowledge at once
            // (`close`), so that ACK leaves in the egress of the step that
            // saw TIME-WAIT begin; holding the socket for TIME-WAIT's full
            // 10 s would hold a slot for nothing. So it lingers into the next
            // step, which the stack runs at once (`Pool::lingering`).
            if *self.time_wait_step.get_or_insert(step) == step {
                return Turn::Idle;
            }
            self.follow.observe(recent, tcp::State::Closed, None, now_ms);
            return Turn::Ended;
        }
        if !socket.is_open() || socket.is_listening() {
            return Turn::Ended;
        }
        Turn::Connected(socket)
    }

    /// The socket, again (after [`begin`](Self::begin) said it is connected).
    pub fn socket<'s>(&self, sockets: &'s mut SocketSet<'static>) -> &'s mut tcp::Socket<'static> {
        sockets.get_mut::<tcp::Socket>(self.handle)
    }

    /// Records that data moved through the connection now.
    pub fn touch(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// Whether nothing moved through the connection for longer than
    /// `timeout`: the one place where a connection is judged idle.
    pub fn is_idle(&self, now: Instant, timeout: Duration) -> bool {
        now - self.last_activity > timeout
    }

    /// Counts TCP's own progress as activity: the send queue shorter than
    /// when last looked at means the peer acknowledged data since. A slow
    /// reader draining a whole answer, queued at once, makes no app reads
    /// or writes, but is not idle (issue 14).
    pub fn note_progress(&mut self, socket: &tcp::Socket, now: Instant) {
        let queued = socket.send_queue();
        if queued < self.send_queue_seen {
            self.touch(now);
        }
        self.send_queue_seen = queued;
    }

    /// Aborts the connection if nothing moved through it (the app's reads
    /// and writes, or acknowledged data: [`note_progress`](Self::note_progress))
    /// for longer than `timeout`, recording it as timed out. Returns whether it did.
    pub fn abort_if_idle(
        &mut self,
        socket: &mut tcp::Socket,
        recent: &mut RecentConnections,
        now: Instant,
        timeout: Duration,
    ) -> bool {
        self.note_progress(socket, now);
        if !self.is_idle(now, timeout) {
            return false;
        }
        self.follow.end(recent, Ending::TimedOut, millis(now));
        socket.abort();
        true
    }
}

/// Milliseconds since boot, as `recent` records them.
pub fn millis(now: Instant) -> u64 {
    now.total_millis().max(0) as u64
}

/// TCP sockets by state name, for `/stats`, in the order the states are first met.
pub fn socket_states(sockets: &SocketSet<'static>) -> Vec<(&'static str, usize)> {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for (_, socket) in sockets.iter() {
        if let Socket::Tcp(tcp) = socket {
            let state = state_name(tcp.state());
            match counts.iter_mut().find(|(name, _)| *name == state) {
                Some((_, n)) => *n += 1,
                None => counts.push((state, 1)),
            }
        }
    }
    counts
}

/// A TCP state's name.
pub fn state_name(state: tcp::State) -> &'static str {
    match state {
        tcp::State::Closed => "closed",
        tcp::State::Listen => "listen",
        tcp::State::SynSent => "syn_sent",
        tcp::State::SynReceived => "syn_received",
        tcp::State::Established => "established",
        tcp::State::FinWait1 => "fin_wait_1",
        tcp::State::FinWait2 => "fin_wait_2",
        tcp::State::CloseWait => "close_wait",
        tcp::State::Closing => "closing",
        tcp::State::LastAck => "last_ack",
        tcp::State::TimeWait => "time_wait",
    }
}

#[cfg(test)]
mod test {
    /// Nagle's algorithm held the last, short segment of a multi-segment page
    /// until the client's delayed ACK: `cargo xtask bench --quick` measured
    /// 35 keep-alive req/s with it on, 8,250 with it off (same run set-up).
    /// The in-memory link's smoltcp client ACKs too eagerly to show the stall,
    /// so this checks the setting itself.
    #[test]
    fn server_sockets_send_without_nagle() {
        assert!(!super::server_socket(1024, 1024, 80).nagle_enabled());
    }
}
