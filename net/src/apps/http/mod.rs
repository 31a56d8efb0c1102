//! HTTP/1.1 on port 80: `/` (what Skiff is, and a live view of its
//! counters), `/stats` (JSON) and
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

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;

use crate::device::NetDevice;
use crate::recent::{Follow, RecentConnections};
use crate::sockets::{self, ServerSocket, Turn};
use crate::{stats, trace};
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

/// The page at `/`: a live view of `/stats` (link, address, counters,
/// interrupt rate, recent connections), refreshed in place every second by a
/// few lines of script; no external resources.
/// The `Server` header Skiff sends.
const SERVER: &str = "Skiff";
const INDEX_HTML: &str = include_str!("index.html");

struct Connection {
    socket: ServerSocket,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Close once the output is sent.
    closing: bool,
    /// Since when the request at the head of `input` has been waiting to
    /// arrive whole; `None` while there is none, or while it waits for the
    /// output to drain rather than for the client.
    request_started: Option<Instant>,
}

impl Connection {
    /// Gives the buffers back, not just empties them: a connection that
    /// once held a large request or a backlog of answers would otherwise
    /// pin that much heap while its socket listens.
    fn forget(&mut self) {
        self.input = Vec::new();
        self.output = Vec::new();
        self.closing = false;
        self.request_started = None;
    }
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
            .map(|index| Connection {
                socket: ServerSocket::new(sockets, "http", PORT, index, RX_BUFFER, TX_BUFFER),
                input: Vec::new(),
                output: Vec::new(),
                closing: false,
                request_started: None,
            })
            .collect();
        HttpServer { connections, idle_timeout, requests: 0 }
    }

    /// Moves every connection forward: read, answer, write, time out.
    /// `/stats` is rendered from `stats` and the server's own numbers;
    /// connections are recorded in `recent`.
    pub fn poll<D: NetDevice>(
        &mut self,
        now: Instant,
        sockets: &mut SocketSet<'static>,
        recent: &mut RecentConnections,
        stats: &stats::Sources<'_, D>,
    ) {
        let HttpServer { connections, idle_timeout, requests } = self;
        let idle_timeout = smoltcp::time::Duration::from_micros(idle_timeout.as_micros() as u64);
        for conn in connections.iter_mut() {
            let socket = match conn.socket.begin(sockets, recent, now) {
                Turn::Connected(socket) => socket,
                Turn::Ended => {
                    conn.forget();
                    continue;
                }
                Turn::Idle => continue,
            };

            // Read, while there is room for the request and for its answer.
            if socket.can_recv() && !conn.closing && conn.output.len() < OUTPUT_HIGH_WATER {
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
                let follow = conn.socket.follow();
                if let Some(record) = follow.record(recent) {
                    record.bytes_in += read as u64;
                }
                trace_socket(trace::Direction::Rx, follow, "read", read);
            }

            // Answer every complete request, in order.
            let mut incomplete = false;
            while !conn.closing && conn.output.len() < OUTPUT_HIGH_WATER {
                let before = conn.output.len();
                let status = match request::parse(&conn.input) {
                    Parsed::Partial => {
                        incomplete = !conn.input.is_empty();
                        break;
                    }
                    Parsed::Request(req, used) => {
                        let keep_alive = req.keep_alive;
                        *requests += 1;
                        let follow = conn.socket.follow();
                        if let Some(record) = follow.record(recent) {
                            record.requests += 1;
                        }
                        log::trace!(target: trace::TARGET, "rx app    {} {} {}", follow.name(), req.method.name(), req.path);
                        let render = || stats.render(*requests, sockets, recent);
                        let status = respond(&mut conn.output, req.method, req.path, keep_alive, render);
                        conn.input.drain(..used);
                        conn.closing = !keep_alive;
                        conn.request_started = None;
                        status
                    }
                    Parsed::Error(status) => {
                        *requests += 1;
                        error_response(&mut conn.output, status);
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
                    error_response(&mut conn.output, Status::RequestTimeout);
                    conn.input.clear();
                    conn.closing = true;
                }
            }

            // Write what fits.
            let socket = conn.socket.socket(sockets);
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

            // The client closed its side: every whole request it sent is
            // answered, and what is left can never become one.
            let peer_done = socket.state() == tcp::State::CloseWait && !socket.can_recv();
            // The idle clock runs whatever the state: a peer that never
            // sends its FIN (FIN-WAIT-2 has no timer in smoltcp) or never
            // acknowledges ours must not keep the socket.
            if !conn.socket.abort_if_idle(socket, recent, now, idle_timeout)
                && conn.output.is_empty()
                && (conn.closing || peer_done)
            {
                sockets::close(socket);
            }
        }
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

/// Appends the answer to one request to `out`; `stats_json` renders
/// `/stats`, for the routes that show it.
fn respond(
    out: &mut Vec<u8>,
    method: Method,
    path: &str,
    keep_alive: bool,
    stats_json: impl FnOnce() -> String,
) -> Status {
    let (status, content_type, body): (Status, &str, String) = match (path, method) {
        ("/" | "/index.html", Method::Get | Method::Head) => {
            (Status::Ok, "text/html; charset=utf-8", INDEX_HTML.into())
        }
        ("/stats", Method::Get | Method::Head) => (Status::Ok, "application/json", stats_json()),
        ("/stats.html", Method::Get | Method::Head) => {
            (Status::Ok, "text/html; charset=utf-8", stats_page(&stats_json()))
        }
        ("/" | "/index.html" | "/stats" | "/stats.html", Method::Unsupported) => {
            write_response(
                out,
                SERVER,
                Status::MethodNotAllowed,
                "text/plain",
                b"405 Method Not Allowed\n",
                true,
                keep_alive,
            );
            return Status::MethodNotAllowed;
        }
        _ => (Status::NotFound, "text/plain", "404 Not Found\n".into()),
    };
    write_response(out, SERVER, status, content_type, body.as_bytes(), method != Method::Head, keep_alive);
    status
}

fn error_response(out: &mut Vec<u8>, status: Status) {
    let body = format!("{} {}\n", status.code(), status.reason());
    write_response(out, SERVER, status, "text/plain", body.as_bytes(), true, false);
}

/// Appends one response to `out`: the status line, Skiff's headers (with
/// `server` as the `Server` header, so the bench's Linux guest can send the
/// same bytes under its own name), and the body unless `with_body` is false
/// (HEAD). RFC 9112 4 (status line), RFC 9110 8.6 (Content-Length).
pub fn write_response(
    out: &mut Vec<u8>,
    server: &str,
    status: Status,
    content_type: &str,
    body: &[u8],
    with_body: bool,
    keep_alive: bool,
) {
    let allow = if status == Status::MethodNotAllowed { "Allow: GET, HEAD\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {} {}\r\nServer: {server}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{allow}Connection: {}\r\n\r\n",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_page_is_self_contained_and_fits_a_phone() {
        let page = INDEX_HTML;
        assert!(page.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#));
        // Nothing from elsewhere: no scripts, styles, fonts or images to fetch.
        for external in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!page.contains(external), "the page refers to something outside: {external}");
        }
        assert!(page.contains("fetch('/stats'"), "the page does not poll /stats");
        assert!(page.len() < 8 * 1024, "the page grew to {} bytes", page.len());
    }

    #[test]
    fn every_element_the_script_fills_exists() {
        let page = INDEX_HTML;
        let mut rest = page;
        let mut ids = 0;
        while let Some(at) = rest.find("$('") {
            let name = &rest[at + 3..];
            let name = &name[..name.find('\'').unwrap()];
            assert!(page.contains(&format!("id=\"{name}\"")), "the script fills #{name}, which the page lacks");
            ids += 1;
            rest = &rest[at + 3..];
        }
        assert!(ids >= 10, "only {ids} elements filled");
    }

    #[test]
    fn the_root_answers_with_the_live_page() {
        let mut out = Vec::new();
        let status = respond(&mut out, Method::Get, "/", true, || String::from("{}"));
        assert_eq!(status, Status::Ok);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(text.ends_with(INDEX_HTML));
    }
}
