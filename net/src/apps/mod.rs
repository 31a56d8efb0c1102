//! The applications Skiff serves: TCP echo and HTTP.

pub mod echo;
pub mod http;

use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

/// A connection whose sent data (or FIN) goes unacknowledged this long is
/// aborted (smoltcp's socket timeout): a peer that vanished frees its socket.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(60);
/// Keep-alive probes on idle connections, so that the timeout above also
/// catches peers that vanished while nothing was being sent.
pub const KEEP_ALIVE: Duration = Duration::from_secs(20);

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

/// A connection still half-open (SYN-RECEIVED) this long after its SYN is
/// aborted and its socket listens again. smoltcp has no listen backlog and
/// no SYN cookies: each SYN takes one of the 40 listening sockets, and one
/// whose handshake never completes (a spoofed SYN flood) would otherwise hold
/// it until the 60 s `TCP_TIMEOUT`, refusing everyone else. Eight seconds
/// cover a client's SYNs at 0, 1, 3 and 7 s (a 1 s initial retransmission
/// timeout, RFC 6298 2.1, doubling), each answered with a SYN-ACK: at 10 %
/// loss, 3 s (two SYN-ACKs) refused real clients (issue 14, net/src/loss.rs).
pub const SYN_RECEIVED_TIMEOUT: Duration = Duration::from_secs(8);

/// Whether `socket` has been half-open for longer than `SYN_RECEIVED_TIMEOUT`;
/// `since_listen` is when it was last seen listening.
pub fn half_open_too_long(socket: &tcp::Socket, now: Instant, since_listen: Instant) -> bool {
    socket.state() == tcp::State::SynReceived && now - since_listen > SYN_RECEIVED_TIMEOUT
}

/// smoltcp's delayed ACK (its default, set explicitly so that it can be
/// restored): while data flows, one ACK covers several segments.
pub const ACK_DELAY: Duration = Duration::from_millis(10);

/// How long a socket stays in TIME-WAIT at least before it listens again.
/// Sockets that Skiff closes acknowledge at once (`close`), so the ACK of the
/// peer's FIN leaves in the same poll step that saw TIME-WAIT begin; this only
/// has to reach a later step.
pub const TIME_WAIT_LINGER: Duration = Duration::from_millis(1);

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
