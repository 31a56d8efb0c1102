//! HTTP/1.1 on port 80: `/` (what Skiff is, and a live view of its
//! counters), `/stats` (JSON),
//! `/stats.html` (the same, as a page that refreshes itself), and for
//! throughput, `GET /bytes/N` and `POST /sink` (see [`bulk`]).
//!
//! Each connection has a bounded input buffer and a bounded output buffer.
//! Requests are answered in order (pipelining), one at a time, and only while
//! the output has room: a client that does not read stops being read, so no
//! buffer grows without bound. Keep-alive is the default; `Connection: close`,
//! a framing error, or an idle timeout ends the connection.

mod answer;
pub mod bulk;
pub mod date;
pub mod request;
pub mod target;

use alloc::vec::Vec;
use core::time::Duration;

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use crate::device::NetDevice;
use crate::pool::{Pool, PortSpec};
use crate::recent::{Follow, RecentConnections};
use crate::sockets::{self, ServerSocket as Socket, Turn};
use crate::{stats, trace};
pub use answer::{ALLOW, Origin, SINK_ALLOW, respond, write_response, write_sink_answer};
use answer::{error_response, route};
use bulk::{Generated, Grown, Sink};
use date::HttpDate;
use request::{MAX_BODY, MAX_HEAD, Parsed, Request, Status};

/// The HTTP port.
pub const PORT: u16 = 80;
/// Per-socket TCP buffers (receive, send), sized for a small server: a
/// request, and the largest page (`/`, under 8 KiB with its head) at once.
/// Connections are limited by how many of these the heap holds
/// (`crate::pool::conns_for_heap`).
pub const BUFFERS: (usize, usize) = (4 * 1024, 8 * 1024);
/// A request and its body must fit here.
const INPUT_LIMIT: usize = MAX_HEAD + MAX_BODY;
/// Stop answering pipelined requests while this much output waits.
const OUTPUT_HIGH_WATER: usize = 32 * 1024;

/// The `Server` header Skiff sends.
const SERVER: &str = "Skiff";
/// The interim answer to `Expect: 100-continue` (RFC 9110 10.1.1, 15.2.1).
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

struct Connection {
    socket: Socket,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Close once the output is sent.
    closing: bool,
    /// Since when the request at the head of `input` has been waiting to
    /// arrive whole; `None` while there is none, or while it waits for the
    /// output to drain rather than for the client.
    request_started: Option<Instant>,
    /// A `100 Continue` was sent for the request at the head of `input`.
    continued: bool,
    /// A `/bytes/N` body still to write, after `output`; nothing more is
    /// answered or read until it is all written.
    generated: Option<Generated>,
    /// A `POST /sink` body still to read and discard; nothing more is
    /// parsed until it is all read.
    sink: Option<Sink>,
    /// A buffer of the socket grown for a transfer (one of the `BULK_SLOTS`).
    grown: Option<Grown>,
}

/// The HTTP server's sockets and connection state.
pub struct HttpServer {
    connections: Vec<Connection>,
    idle_timeout: Duration,
    requests: u64,
    /// Connections with a grown buffer (`bulk::BULK_SLOTS` at most).
    grown: usize,
}

impl HttpServer {
    /// Serves the HTTP port from `pool`.
    pub fn new(sockets: &mut SocketSet<'static>, pool: &mut Pool, idle_timeout: Duration) -> Self {
        let (rx, tx) = BUFFERS;
        pool.add_port(
            sockets,
            PortSpec { port: PORT, app: "http", rx, tx, rx_may_grow_to: bulk::BULK_RX, max: usize::MAX },
        );
        HttpServer { connections: Vec::new(), idle_timeout, requests: 0, grown: 0 }
    }

    /// Takes the new connections from `pool`, moves every connection
    /// forward (read, answer, write, time out) and gives ended ones back,
    /// their buffers with them. `/stats` is rendered from `stats` and the
    /// server's own numbers; connections are recorded in `recent`. `date` is
    /// the `Date` header to send, if the kernel knows the time of day.
    pub fn poll<D: NetDevice>(
        &mut self,
        now: Instant,
        sockets: &mut SocketSet<'static>,
        pool: &mut Pool,
        recent: &mut RecentConnections,
        stats: &stats::Sources<'_, D>,
        date: Option<HttpDate>,
    ) {
        let origin = Origin { server: SERVER, date };
        let HttpServer { connections, idle_timeout, requests, grown } = self;
        let idle_timeout = smoltcp::time::Duration::from_micros(idle_timeout.as_micros() as u64);
        connections.extend(pool.accept(PORT).map(|socket| Connection {
            socket,
            input: Vec::new(),
            output: Vec::new(),
            closing: false,
            request_started: None,
            continued: false,
            generated: None,
            sink: None,
            grown: None,
        }));
        let pool_stats = pool.stats();
        let mut i = 0;
        while i < connections.len() {
            let conn = &mut connections[i];
            let socket = match conn.socket.begin(sockets, recent, now, pool.step_number()) {
                Turn::Connected(socket) => socket,
                Turn::Ended => {
                    let conn = connections.swap_remove(i);
                    *grown -= usize::from(conn.grown.is_some());
                    pool.release(sockets, PORT, conn.socket);
                    continue;
                }
                Turn::Idle => {
                    pool.note_lingering();
                    i += 1;
                    continue;
                }
            };
            i += 1;

            // Read, while there is room for the request and for its answer;
            // an upload's body straight from the socket, to nowhere.
            let reading = !conn.closing && conn.output.len() < OUTPUT_HIGH_WATER && conn.generated.is_none();
            if reading && let Some(sink) = &mut conn.sink {
                let mut read = 0;
                // Twice at most: the socket's ring may wrap.
                while socket.can_recv() && !sink.done() {
                    let n = socket
                        .recv(|data| {
                            let n = sink.take(data.len());
                            (n, n)
                        })
                        .unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    read += n;
                }
                // Only bytes that came count as activity (the idle clock).
                if read > 0 {
                    conn.socket.touch(now);
                    note_read(conn.socket.follow(), recent, read);
                }
                finish_sink(conn, &origin);
            }
            // What follows an upload's body is read now too: no later event may come for it.
            if reading && !conn.closing && conn.sink.is_none() && socket.can_recv() {
                let room = INPUT_LIMIT + 1 - conn.input.len().min(INPUT_LIMIT);
                let input = &mut conn.input;
                let read = socket
                    .recv(|data| {
                        let n = data.len().min(room);
                        input.extend_from_slice(&data[..n]);
                        (n, n)
                    })
                    .unwrap_or(0);
                conn.socket.touch(now);
                note_read(conn.socket.follow(), recent, read);
            }

            // Answer every complete request, in order.
            let mut incomplete = false;
            while !conn.closing
                && conn.output.len() < OUTPUT_HIGH_WATER
                && conn.generated.is_none()
                && conn.sink.is_none()
            {
                let before = conn.output.len();
                let status = match request::parse(&conn.input) {
                    Parsed::Partial => {
                        incomplete = !conn.input.is_empty();
                        break;
                    }
                    Parsed::AwaitingBody(req) if conn.continued || route(&req) == Status::Ok => {
                        // The client may wait for a 100 before it sends the
                        // body (RFC 9110 10.1.1); say it once.
                        if !conn.continued {
                            conn.output.extend_from_slice(CONTINUE);
                            conn.continued = true;
                        }
                        incomplete = true;
                        break;
                    }
                    Parsed::AwaitingBody(req) => {
                        // It will be refused: the final answer at once, not a
                        // 100 (RFC 9110 10.1.1), and the connection closes
                        // rather than read a body it does not want.
                        let req = Request { keep_alive: false, ..req };
                        *requests += 1;
                        note_request(conn.socket.follow(), recent, &req);
                        let count = *requests;
                        let (status, _) = respond(&mut conn.output, &origin, &req, || {
                            stats.render(count, sockets, recent, &pool_stats)
                        });
                        conn.input.clear();
                        conn.closing = true;
                        status
                    }
                    Parsed::Request(req, used) => {
                        *requests += 1;
                        note_request(conn.socket.follow(), recent, &req);
                        let count = *requests;
                        let (status, generated) = respond(&mut conn.output, &origin, &req, || {
                            stats.render(count, sockets, recent, &pool_stats)
                        });
                        conn.generated = generated;
                        let keep_alive = req.keep_alive;
                        conn.input.drain(..used);
                        if generated.is_some() {
                            grow(conn, sockets, grown, Grown::Tx);
                        }
                        conn.closing = !keep_alive;
                        conn.request_started = None;
                        conn.continued = false;
                        status
                    }
                    Parsed::Streamed(req, head, length) => {
                        // Only `POST /sink` is streamed: its body is read
                        // from here on, and counted, not kept.
                        *requests += 1;
                        note_request(conn.socket.follow(), recent, &req);
                        let (keep_alive, expect_continue) = (req.keep_alive, req.expect_continue);
                        conn.input.drain(..head);
                        let mut sink = Sink::new(length, keep_alive);
                        let buffered = sink.take(conn.input.len());
                        conn.input.drain(..buffered);
                        if expect_continue && !sink.done() {
                            conn.output.extend_from_slice(CONTINUE);
                        }
                        conn.sink = Some(sink);
                        conn.request_started = None;
                        conn.continued = false;
                        if !sink.done() {
                            grow(conn, sockets, grown, Grown::Rx);
                        }
                        finish_sink(conn, &origin);
                        continue;
                    }
                    Parsed::Error(status) => {
                        *requests += 1;
                        error_response(&mut conn.output, &origin, status);
                        conn.input.clear();
                        conn.closing = true;
                        status
                    }
                };
                trace_response(conn.socket.follow(), status, conn.output.len() - before);
            }

            // A request must arrive whole within the idle timeout of its
            // first byte: a client trickling a header a byte at a time is
            // never idle, and would otherwise hold the socket for ever. The
            // clock runs only while the client owes bytes: not for whole
            // requests waiting behind answers the client is slow to read.
            if !incomplete {
                conn.request_started = None;
            } else {
                let started = *conn.request_started.get_or_insert(now);
                if now - started > idle_timeout {
                    *requests += 1;
                    error_response(&mut conn.output, &origin, Status::RequestTimeout);
                    conn.input.clear();
                    conn.closing = true;
                }
            }

            // The client closed its side before its upload's end (RFC 9112
            // 8: an incomplete message): say so, and close.
            let socket = conn.socket.socket(sockets);
            if conn.sink.is_some() && socket.state() == tcp::State::CloseWait && !socket.can_recv() {
                conn.sink = None;
                *requests += 1;
                error_response(&mut conn.output, &origin, Status::BadRequest);
                conn.closing = true;
            }

            // Write what fits.
            if !conn.output.is_empty()
                && socket.can_send()
                && let Ok(n) = socket.send_slice(&conn.output)
            {
                conn.output.drain(..n);
                conn.socket.touch(now);
                let follow = conn.socket.follow();
                if let Some(record) = follow.record(recent) {
                    record.bytes_out += n as u64;
                }
                trace_socket(trace::Direction::Tx, follow, "wrote", n);
            }
            // Then a generated body, straight into the socket's buffer.
            if conn.output.is_empty()
                && let Some(body) = &mut conn.generated
            {
                let mut wrote = 0;
                // Twice at most: the socket's ring may wrap.
                while socket.can_send() && !body.done() {
                    let n = socket
                        .send(|buf| {
                            let n = body.fill(buf);
                            (n, n)
                        })
                        .unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    wrote += n;
                }
                if body.done() {
                    conn.generated = None;
                }
                if wrote > 0 {
                    conn.socket.touch(now);
                    let follow = conn.socket.follow();
                    if let Some(record) = follow.record(recent) {
                        record.bytes_out += wrote as u64;
                    }
                    trace_socket(trace::Direction::Tx, follow, "wrote", wrote);
                }
            }
            // The body is out: the send buffer back to its size, once what
            // waits for acknowledgement fits.
            if conn.grown == Some(Grown::Tx)
                && conn.generated.is_none()
                && socket.send_queue() <= BUFFERS.1
                && bulk::resize_buffer(socket, Grown::Tx, BUFFERS.1)
            {
                conn.grown = None;
                *grown -= 1;
            }

            // The client closed its side: every whole request it sent is
            // answered, and what is left can never become one.
            let peer_done = socket.state() == tcp::State::CloseWait && !socket.can_recv();
            // The idle clock runs whatever the state: a peer that never
            // sends its FIN (FIN-WAIT-2 has no timer in smoltcp) or never
            // acknowledges ours must not keep the socket.
            if !conn.socket.abort_if_idle(socket, recent, now, idle_timeout)
                && conn.output.is_empty()
                && conn.generated.is_none()
                && (conn.closing || peer_done)
            {
                sockets::close(socket);
            }
        }
        crate::room::shrink_when_sparse(connections);
    }

    /// Entries the connection list has room for (for tests).
    #[cfg(test)]
    pub(crate) fn room(&self) -> usize {
        self.connections.capacity()
    }

    /// Connections holding a grown buffer (for tests).
    #[cfg(test)]
    pub(crate) fn grown(&self) -> usize {
        self.grown
    }

    /// Heap held by the connections' input and output buffers.
    pub fn buffered(&self) -> usize {
        self.connections.iter().map(|c| c.input.capacity() + c.output.capacity()).sum()
    }
}

/// A packet-trace line for data the app moved through a socket.
fn trace_socket(direction: trace::Direction, follow: &Follow, what: &str, bytes: usize) {
    if bytes == 0 || !trace::enabled() {
        return;
    }
    match follow.peer() {
        Some(peer) => {
            log::trace!(target: trace::TARGET, "{direction} socket {} {peer} {what} {bytes} bytes", follow.name())
        }
        None => log::trace!(target: trace::TARGET, "{direction} socket {} {what} {bytes} bytes", follow.name()),
    }
}

/// Counts `bytes` read from a connection, and traces them.
fn note_read(follow: &Follow, recent: &mut RecentConnections, bytes: usize) {
    if let Some(record) = follow.record(recent) {
        record.bytes_in += bytes as u64;
    }
    trace_socket(trace::Direction::Rx, follow, "read", bytes);
}

/// Grows the connection's buffer `which` for a transfer, if a slot is free
/// and the heap has room (see `bulk`).
fn grow(conn: &mut Connection, sockets: &mut SocketSet<'static>, grown: &mut usize, which: Grown) {
    if conn.grown.is_none()
        && *grown < bulk::BULK_SLOTS
        && bulk::resize_buffer(
            conn.socket.socket(sockets),
            which,
            if which == Grown::Rx { bulk::BULK_RX } else { bulk::BULK_TX },
        )
    {
        conn.grown = Some(which);
        *grown += 1;
    }
}

/// Answers the connection's upload once its whole body has been read.
fn finish_sink(conn: &mut Connection, origin: &Origin) {
    let Some(sink) = conn.sink.filter(Sink::done) else { return };
    let before = conn.output.len();
    write_sink_answer(&mut conn.output, origin, &sink);
    conn.sink = None;
    conn.closing = !sink.keep_alive;
    trace_response(conn.socket.follow(), Status::Ok, conn.output.len() - before);
}

/// A packet-trace line for an answer the app queued.
fn trace_response(follow: &Follow, status: Status, bytes: usize) {
    log::trace!(
        target: trace::TARGET,
        "tx app    {} {} {}, {bytes} bytes queued",
        follow.name(),
        status.code(),
        status.reason()
    );
}

/// Records one request against its connection, and traces it.
fn note_request(follow: &Follow, recent: &mut RecentConnections, req: &Request) {
    if let Some(record) = follow.record(recent) {
        record.requests += 1;
    }
    log::trace!(target: trace::TARGET, "rx app    {} {} {}", follow.name(), req.method.name(), req.path);
}
