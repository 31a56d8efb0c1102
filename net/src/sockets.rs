//! Skiff's TCP server sockets: how they are set up, how each poll step
//! looks after them (following connections, timing them out, listening
//! again), and their states as `/stats` counts them.
//!
//! The apps (`crate::apps`) move data; the stack (`crate::stack`) and the
//! connection record (`crate::recent`) only need the states, so all of it
//! lives here rather than in an app.

use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{Socket, tcp};
use smoltcp::time::{Duration, Instant};

use crate::recent::{Ending, Follow, RecentConnections};

/// A connection whose sent data (or FIN) goes unacknowledged this long is
/// aborted (smoltcp's socket timeout): a peer that vanished frees its socket.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(60);
/// Keep-alive probes on idle connections, so that the timeout above also
/// catches peers that vanished while nothing was being sent.
pub const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// A connection still half-open (SYN-RECEIVED) this long after its SYN is
/// aborted and its socket listens again. smoltcp has no listen backlog and
/// no SYN cookies: each SYN takes one of the 40 listening sockets, and one
/// whose handshake never completes (a spoofed SYN flood) would otherwise hold
/// it until the 60 s `TCP_TIMEOUT`, refusing everyone else. Eight seconds
/// cover a client's SYNs at 0, 1, 3 and 7 s (a 1 s initial retransmission
/// timeout, RFC 6298 2.1, doubling), each answered with a SYN-ACK: at 10 %
/// loss, 3 s (two SYN-ACKs) refused real clients (issue 14, net/src/loss.rs).
pub const SYN_RECEIVED_TIMEOUT: Duration = Duration::from_secs(8);

/// smoltcp's delayed ACK (its default, set explicitly so that it can be
/// restored): while data flows, one ACK covers several segments.
pub const ACK_DELAY: Duration = Duration::from_millis(10);

/// How long a socket stays in TIME-WAIT at least before it listens again.
/// Sockets that Skiff closes acknowledge at once (`close`), so the ACK of the
/// peer's FIN leaves in the same poll step that saw TIME-WAIT begin; this only
/// has to reach a later step.
pub const TIME_WAIT_LINGER: Duration = Duration::from_millis(1);

/// A server socket with Skiff's timeouts.
pub fn server_socket(rx: usize, tx: usize) -> tcp::Socket<'static> {
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
    socket
}

/// Whether `socket` has been half-open for longer than `SYN_RECEIVED_TIMEOUT`;
/// `since_listen` is when it was last seen listening.
pub fn half_open_too_long(socket: &tcp::Socket, now: Instant, since_listen: Instant) -> bool {
    socket.state() == tcp::State::SynReceived && now - since_listen > SYN_RECEIVED_TIMEOUT
}

/// Closes `socket` from our side (sends FIN) and makes it acknowledge
/// without delay from now on, so that the ACK it owes the peer's FIN in
/// TIME-WAIT goes out at once and the socket can listen again right after.
pub fn close(socket: &mut tcp::Socket) {
    socket.set_ack_delay(None);
    socket.close();
}

/// Puts a finished socket back to listening on `port`.
///
/// A socket that closed first sits in TIME-WAIT, owing the peer the ACK of
/// its FIN. Listening again before that ACK has gone out would drop it: the
/// peer would retransmit its FIN and get a reset. Holding the socket for
/// TIME-WAIT's full 10 s would leave a busy server without listening sockets
/// (with 40 of them, a single client opening one connection after another
/// was refused within a second), so it lingers `TIME_WAIT_LINGER` and into a
/// later poll step. `since` records when the socket was first seen in
/// TIME-WAIT.
pub fn reopen(socket: &mut tcp::Socket, port: u16, now: Instant, since: &mut Option<Instant>) {
    if socket.state() == tcp::State::TimeWait {
        let first_seen = *since.get_or_insert(now);
        if now - first_seen < TIME_WAIT_LINGER {
            return;
        }
    }
    socket.set_ack_delay(Some(ACK_DELAY));
    *since = None;
    if socket.listen(port).is_err() {
        log::warn!("cannot listen on port {port}");
    }
}

/// One of an app's listening sockets, with what every app keeps for it.
#[derive(Debug)]
pub struct ServerSocket {
    handle: SocketHandle,
    port: u16,
    /// When the socket was first seen in TIME-WAIT (see [`reopen`]).
    time_wait_since: Option<Instant>,
    /// When data last moved, or when the connection began (the poll step
    /// that saw its SYN); `None` while listening.
    last_activity: Option<Instant>,
    /// Its connections, for `/stats` and the packet trace.
    follow: Follow,
    /// The send queue when last looked at (see [`ServerSocket::note_progress`]).
    send_queue_seen: usize,
}

/// Where a socket stands at the start of its app's turn (see [`ServerSocket::begin`]).
pub enum Turn<'s> {
    /// The connection had ended: the socket listens again (or lingers in
    /// TIME-WAIT first). Whatever the app kept for it can go.
    Ended,
    /// Listening, or given up on while half-open: nothing for the app to do.
    Idle,
    /// A connection, for the app to serve.
    Connected(&'s mut tcp::Socket<'static>),
}

impl ServerSocket {
    /// Adds a socket with `rx` and `tx` bytes of buffers to `sockets`, for
    /// connection `index` of `app` on `port` (it listens from the app's first poll).
    pub fn new(
        sockets: &mut SocketSet<'static>,
        app: &'static str,
        port: u16,
        index: usize,
        rx: usize,
        tx: usize,
    ) -> Self {
        ServerSocket {
            handle: sockets.add(server_socket(rx, tx)),
            port,
            time_wait_since: None,
            last_activity: None,
            follow: Follow::new(app, index),
            send_queue_seen: 0,
        }
    }

    /// The socket's connections, as followed for `/stats` and the trace.
    pub fn follow(&self) -> &Follow {
        &self.follow
    }

    /// The start of every app's turn with this socket: follows its
    /// connection into `recent`, puts it back to listening once the
    /// connection has ended, starts the idle clock in the step that took in
    /// a SYN (polls may be seconds apart while nothing is connected), and
    /// aborts a connection half-open too long.
    pub fn begin<'s>(
        &mut self,
        sockets: &'s mut SocketSet<'static>,
        recent: &mut RecentConnections,
        now: Instant,
    ) -> Turn<'s> {
        let now_ms = millis(now);
        let socket = sockets.get_mut::<tcp::Socket>(self.handle);
        self.follow.observe(recent, socket.state(), socket.remote_endpoint(), now_ms);
        if !socket.is_open() {
            reopen(socket, self.port, now, &mut self.time_wait_since);
            self.send_queue_seen = 0;
            // Seen now, so that a SYN before the next poll is a new connection.
            self.follow.observe(recent, socket.state(), None, now_ms);
            return Turn::Ended;
        }
        if !socket.is_active() {
            self.last_activity = None; // listening: the idle clock starts at connect
            return Turn::Idle;
        }
        let began = *self.last_activity.get_or_insert(now);
        if half_open_too_long(socket, now, began) {
            socket.abort();
            return Turn::Idle;
        }
        Turn::Connected(socket)
    }

    /// The socket, again (after [`begin`](Self::begin) said it is connected).
    pub fn socket<'s>(&self, sockets: &'s mut SocketSet<'static>) -> &'s mut tcp::Socket<'static> {
        sockets.get_mut::<tcp::Socket>(self.handle)
    }

    /// Records that data moved through the connection now.
    pub fn touch(&mut self, now: Instant) {
        self.last_activity = Some(now);
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
        if now - self.last_activity.unwrap_or(now) <= timeout {
            return false;
        }
        self.follow.end(recent, Ending::TimedOut, millis(now));
        socket.abort();
        true
    }
}

/// Milliseconds since boot, as `recent` records them.
fn millis(now: Instant) -> u64 {
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
        assert!(!super::server_socket(1024, 1024).nagle_enabled());
    }
}
