//! HTTP/1.1 on port 80: `/` (what Skiff is), `/stats` (JSON) and
//! `/stats.html` (the same, as a page that refreshes itself).
//!
//! Each connection has a bounded input buffer and a bounded output buffer.
//! Requests are answered in order (pipelining), one at a time, and only while
//! the output has room: a client that does not read stops being read, so no
//! buffer grows without bound. Keep-alive is the default; `Connection: close`,
//! a framing error, or an idle timeout ends the connection.

pub mod request;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use request::{MAX_BODY, MAX_HEAD, Method, Parsed, Status};

/// The HTTP port.
pub const PORT: u16 = 80;
/// Listening sockets: this many connections at once; more are refused (RST).
pub const CONNECTIONS: usize = 40;
/// Per-socket TCP buffers.
const RX_BUFFER: usize = 8 * 1024;
const TX_BUFFER: usize = 16 * 1024;
/// A request and its body must fit here.
const INPUT_LIMIT: usize = MAX_HEAD + MAX_BODY;
/// Stop answering pipelined requests while this much output waits.
const OUTPUT_HIGH_WATER: usize = 32 * 1024;

/// The page at `/`.
const INDEX_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Skiff</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em">
<h1>Skiff</h1>
<p>A small Rust unikernel that boots straight into a TCP/IP stack: a virtio-net
driver, smoltcp, and this server, with nothing in between.</p>
<p>See what it is doing: <a href="/stats.html">live counters</a>, or the raw
<a href="/stats">/stats</a> JSON.</p>
</body></html>
"#;

struct Connection {
    handle: SocketHandle,
    input: Vec<u8>,
    output: Vec<u8>,
    /// When data last moved, or when the connection began (the poll step
    /// that saw its SYN); `None` while listening.
    last_activity: Option<Instant>,
    /// Close once the output is sent.
    closing: bool,
    /// When the first byte of the request now in `input` arrived.
    request_started: Option<Instant>,
    /// When the socket was first seen in TIME-WAIT (see `super::reopen`).
    time_wait_since: Option<Instant>,
}

/// The HTTP server's sockets and connection state.
pub struct HttpServer {
    connections: Vec<Connection>,
    idle_timeout: Duration,
    requests: u64,
}

impl HttpServer {
    /// Creates `CONNECTIONS` listening sockets in `sockets`.
    pub fn new(sockets: &mut SocketSet<'static>, idle_timeout: Duration) -> Self {
        let connections = (0..CONNECTIONS)
            .map(|_| {
                let socket = super::server_socket(RX_BUFFER, TX_BUFFER);
                Connection {
                    handle: sockets.add(socket),
                    input: Vec::new(),
                    output: Vec::new(),
                    last_activity: None,
                    closing: false,
                    request_started: None,
                    time_wait_since: None,
                }
            })
            .collect();
        HttpServer { connections, idle_timeout, requests: 0 }
    }

    /// Moves every connection forward: read, answer, write, time out.
    /// `stats_json` renders `/stats` from the sockets and the request count.
    pub fn poll(&mut self, now: Instant, sockets: &mut SocketSet<'static>, stats_json: &StatsRenderer) {
        let HttpServer { connections, idle_timeout, requests } = self;
        let idle_timeout = smoltcp::time::Duration::from_micros(idle_timeout.as_micros() as u64);
        for conn in connections.iter_mut() {
            let socket = sockets.get_mut::<tcp::Socket>(conn.handle);
            if !socket.is_open() {
                // Give the buffers back, not just empty them: a connection
                // that once held a large request or a backlog of answers
                // would otherwise pin that much heap while its socket listens.
                conn.input = Vec::new();
                conn.output = Vec::new();
                conn.closing = false;
                conn.request_started = None;
                super::reopen(socket, PORT, now, &mut conn.time_wait_since);
                continue;
            }
            if !socket.is_active() {
                conn.last_activity = None; // listening: the idle clock starts at connect
                continue;
            }
            // Polls may be seconds apart while nothing is connected, so the
            // clock starts here, in the step that took in the SYN.
            let began = *conn.last_activity.get_or_insert(now);
            if super::half_open_too_long(socket, now, began) {
                socket.abort();
                continue;
            }

            // Read, while there is room for the request and for its answer.
            if socket.can_recv() && !conn.closing && conn.output.len() < OUTPUT_HIGH_WATER {
                let room = INPUT_LIMIT + 1 - conn.input.len().min(INPUT_LIMIT);
                let input = &mut conn.input;
                let _ = socket.recv(|data| {
                    let n = data.len().min(room);
                    input.extend_from_slice(&data[..n]);
                    (n, ())
                });
                conn.last_activity = Some(now);
            }

            // Answer every complete request, in order.
            while !conn.closing && conn.output.len() < OUTPUT_HIGH_WATER {
                match request::parse(&conn.input) {
                    Parsed::Partial => break,
                    Parsed::Request(req, used) => {
                        let keep_alive = req.keep_alive;
                        *requests += 1;
                        let render = || stats_json(sockets, *requests);
                        respond(&mut conn.output, req.method, req.path, keep_alive, &render);
                        conn.input.drain(..used);
                        conn.closing = !keep_alive;
                        conn.request_started = None;
                    }
                    Parsed::Error(status) => {
                        *requests += 1;
                        error_response(&mut conn.output, status);
                        conn.input.clear();
                        conn.closing = true;
                    }
                }
            }

            // A request must arrive whole within the idle timeout of its
            // first byte: a client trickling a header a byte at a time is
            // never idle, and would otherwise hold the socket for ever.
            if conn.input.is_empty() {
                conn.request_started = None;
            } else if !conn.closing {
                let started = *conn.request_started.get_or_insert(now);
                if now - started > idle_timeout {
                    *requests += 1;
                    error_response(&mut conn.output, Status::RequestTimeout);
                    conn.input.clear();
                    conn.closing = true;
                }
            }

            // Write what fits.
            let socket = sockets.get_mut::<tcp::Socket>(conn.handle);
            if !conn.output.is_empty()
                && socket.can_send()
                && let Ok(n) = socket.send_slice(&conn.output)
            {
                conn.output.drain(..n);
                conn.last_activity = Some(now);
            }

            // The client closed its side: every whole request it sent is
            // answered, and what is left can never become one.
            let peer_done = socket.state() == tcp::State::CloseWait && !socket.can_recv();
            // The idle clock runs whatever the state: a peer that never
            // sends its FIN (FIN-WAIT-2 has no timer in smoltcp) or never
            // acknowledges ours must not keep the socket.
            if now - conn.last_activity.unwrap_or(now) > idle_timeout {
                socket.abort();
            } else if conn.output.is_empty() && (conn.closing || peer_done) {
                super::close(socket);
            }
        }
    }
}

impl HttpServer {
    /// Heap held by the connections' input and output buffers.
    pub fn buffered(&self) -> usize {
        self.connections.iter().map(|c| c.input.capacity() + c.output.capacity()).sum()
    }
}

/// Renders `/stats` from the sockets and the number of HTTP requests so far.
pub type StatsRenderer<'a> = dyn Fn(&SocketSet<'static>, u64) -> String + 'a;

/// TCP sockets by state name, for `/stats`.
pub fn socket_states(sockets: &SocketSet<'static>) -> Vec<(&'static str, usize)> {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for (_, socket) in sockets.iter() {
        if let smoltcp::socket::Socket::Tcp(tcp) = socket {
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

fn respond(out: &mut Vec<u8>, method: Method, path: &str, keep_alive: bool, stats_json: &dyn Fn() -> String) {
    let (status, content_type, body): (Status, &str, String) = match (path, method) {
        ("/" | "/index.html", Method::Get | Method::Head) => {
            (Status::Ok, "text/html; charset=utf-8", INDEX_HTML.into())
        }
        ("/stats", Method::Get | Method::Head) => (Status::Ok, "application/json", stats_json()),
        ("/stats.html", Method::Get | Method::Head) => {
            (Status::Ok, "text/html; charset=utf-8", stats_page(&stats_json()))
        }
        ("/" | "/index.html" | "/stats" | "/stats.html", Method::Unsupported) => {
            write_response(out, Status::MethodNotAllowed, "text/plain", b"405 Method Not Allowed\n", true, keep_alive);
            return;
        }
        _ => (Status::NotFound, "text/plain", "404 Not Found\n".into()),
    };
    write_response(out, status, content_type, body.as_bytes(), method != Method::Head, keep_alive);
}

fn error_response(out: &mut Vec<u8>, status: Status) {
    let body = format!("{} {}\n", status.code(), status.reason());
    write_response(out, status, "text/plain", body.as_bytes(), true, false);
}

fn write_response(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    body: &[u8],
    with_body: bool,
    keep_alive: bool,
) {
    let allow = if status == Status::MethodNotAllowed { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {} {}\r\nServer: Skiff\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{allow}Connection: {}\r\n\r\n",
        status.code(),
        status.reason(),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    out.extend_from_slice(head.as_bytes());
    if with_body {
        out.extend_from_slice(body);
    }
}

/// `/stats.html`: the JSON, shown as a page that reloads every two seconds.
fn stats_page(json: &str) -> String {
    let escaped = json.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Skiff: stats</title></head>\n\
<body style=\"font-family: sans-serif; margin: 1em\"><h1>Skiff</h1><p><a href=\"/\">home</a> · refreshes every 2 s · \
<a href=\"/stats\">JSON</a></p>\n<pre id=\"stats\">{escaped}</pre></body></html>\n"
    )
}
