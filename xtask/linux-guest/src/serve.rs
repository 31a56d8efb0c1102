//! One epoll loop serving TCP echo (port 7) and HTTP/1.1 (port 80).
//!
//! Level-triggered. A connection waits either for input or, while some of
//! its output did not fit in the socket, for room to write, never both:
//! like Skiff, a client that does not read stops being read, so no buffer
//! grows without bound.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use skiff_net::apps::http::bulk::{Generated, PATTERN_PERIOD, Sink, pattern_byte};
use skiff_net::apps::http::request::Status;

use crate::http::{self, Counters, Pending};

const ECHO_PORT: u16 = 7;
const HTTP_PORT: u16 = 80;
/// The listeners' epoll tokens; connections use their slot index + `FIRST_CONNECTION`.
const ECHO_LISTENER: u64 = 0;
const HTTP_LISTENER: u64 = 1;
const FIRST_CONNECTION: u64 = 2;
/// Bytes read at once (echo buffer, HTTP read chunk).
const CHUNK: usize = 64 * 1024;
/// An HTTP client may send this much unanswered input before it is closed:
/// Skiff's limit (a head and a body, net/src/apps/http/request.rs).
const HTTP_INPUT_LIMIT: usize = skiff_net::apps::http::request::MAX_HEAD + skiff_net::apps::http::request::MAX_BODY;
/// Events taken per epoll_wait.
const EVENTS: usize = 64;

enum Kind {
    Echo,
    Http(HttpState),
}

/// An HTTP connection's requests: as Skiff's (net/src/apps/http), a
/// generated body is written a chunk at a time as the socket takes it, and
/// an upload's body is read and dropped as it comes, never buffered.
#[derive(Default)]
struct HttpState {
    input: Vec<u8>,
    closing: bool,
    generated: Option<Generated>,
    sink: Option<Sink>,
}

struct Connection {
    stream: TcpStream,
    /// Whether epoll watches for room to write (else for input).
    watching_output: bool,
    kind: Kind,
    /// Output not yet taken by the socket.
    output: Vec<u8>,
    sent: usize,
    /// The peer closed its side.
    eof: bool,
}

/// What a connection waits for next.
enum Next {
    Read,
    Write,
    Close,
}

pub struct Server {
    epoll: libc::c_int,
    echo: TcpListener,
    http: TcpListener,
    connections: Vec<Option<Connection>>,
    counters: Counters,
    stats_bytes: usize,
    started: Instant,
    buffer: Vec<u8>,
    /// `CHUNK` bytes and one period more of `/bytes/N`'s pattern: a body is
    /// written from here, at its offset's place in the period, with no copy
    /// in user space (Skiff's copies the period into its socket buffer).
    pattern: Vec<u8>,
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

impl Server {
    pub fn bind(stats_bytes: usize, started: Instant) -> Result<Server, String> {
        let listen = |port: u16| -> Result<TcpListener, String> {
            let l = TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("bind port {port}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(l)
        };
        // SAFETY: epoll_create1 with a constant flag; the result is checked.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(os_error("epoll_create1"));
        }
        let server = Server {
            epoll,
            echo: listen(ECHO_PORT)?,
            http: listen(HTTP_PORT)?,
            connections: Vec::new(),
            counters: Counters::default(),
            stats_bytes,
            started,
            buffer: vec![0; CHUNK],
            pattern: (0..CHUNK as u64 + PATTERN_PERIOD).map(pattern_byte).collect(),
        };
        server.control(libc::EPOLL_CTL_ADD, server.echo.as_raw_fd(), ECHO_LISTENER, libc::EPOLLIN)?;
        server.control(libc::EPOLL_CTL_ADD, server.http.as_raw_fd(), HTTP_LISTENER, libc::EPOLLIN)?;
        Ok(server)
    }

    fn control(&self, op: libc::c_int, fd: libc::c_int, token: u64, events: libc::c_int) -> Result<(), String> {
        let mut event = libc::epoll_event { events: events as u32, u64: token };
        // SAFETY: `event` lives across the call; `fd` is an open socket of ours.
        let rc = unsafe { libc::epoll_ctl(self.epoll, op, fd, &mut event) };
        if rc < 0 { Err(os_error("epoll_ctl")) } else { Ok(()) }
    }

    /// Serves until a fatal error.
    pub fn run(mut self) -> Result<(), String> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            // SAFETY: the kernel writes at most EVENTS entries into `events`.
            let n = unsafe { libc::epoll_wait(self.epoll, events.as_mut_ptr(), EVENTS as libc::c_int, -1) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(os_error("epoll_wait"));
            }
            for event in &events[..n as usize] {
                match event.u64 {
                    ECHO_LISTENER => self.accept(false)?,
                    HTTP_LISTENER => self.accept(true)?,
                    token => self.service((token - FIRST_CONNECTION) as usize)?,
                }
            }
        }
    }

    fn accept(&mut self, http: bool) -> Result<(), String> {
        loop {
            let listener = if http { &self.http } else { &self.echo };
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                // A connection reset before it was accepted, and the like.
                Err(_) => return Ok(()),
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let kind = if http { Kind::Http(HttpState::default()) } else { Kind::Echo };
            let slot = match self.connections.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.connections.push(None);
                    self.connections.len() - 1
                }
            };
            let fd = stream.as_raw_fd();
            self.connections[slot] =
                Some(Connection { stream, watching_output: false, kind, output: Vec::new(), sent: 0, eof: false });
            self.counters.connections += 1;
            self.control(libc::EPOLL_CTL_ADD, fd, slot as u64 + FIRST_CONNECTION, libc::EPOLLIN)?;
        }
    }

    /// Moves connection `slot` forward after epoll said it is ready.
    fn service(&mut self, slot: usize) -> Result<(), String> {
        let Some(mut conn) = self.connections.get_mut(slot).and_then(Option::take) else { return Ok(()) };
        let next = self.step(&mut conn);
        let fd = conn.stream.as_raw_fd();
        let token = slot as u64 + FIRST_CONNECTION;
        let output = match next {
            // Dropping the stream closes it, which also takes it out of the epoll set.
            Next::Close => return Ok(()),
            Next::Read => false,
            Next::Write => true,
        };
        // Only a change costs a system call.
        if output != conn.watching_output {
            let events = if output { libc::EPOLLOUT } else { libc::EPOLLIN };
            self.control(libc::EPOLL_CTL_MOD, fd, token, events)?;
            conn.watching_output = output;
        }
        self.connections[slot] = Some(conn);
        Ok(())
    }

    fn step(&mut self, conn: &mut Connection) -> Next {
        // Pending output first (answers, a generated body, the answers
        // behind it): nothing is read until it is gone.
        match self.drain(conn) {
            Ok(true) => {}
            Ok(false) => return Next::Write,
            Err(()) => return Next::Close,
        }
        match conn.stream.read(&mut self.buffer) {
            Ok(0) => {
                conn.eof = true;
                // An upload cut short (RFC 9112 8): 400, as Skiff says it.
                if let Kind::Http(state) = &mut conn.kind
                    && state.sink.take().is_some()
                {
                    conn.output.clear();
                    conn.sent = 0;
                    http::answer_error(&mut conn.output, Status::BadRequest);
                    state.closing = true;
                }
            }
            Ok(n) => self.consume(conn, n),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
        match self.drain(conn) {
            Ok(true) => {}
            Ok(false) => return Next::Write,
            Err(()) => return Next::Close,
        }
        let closing = matches!(&conn.kind, Kind::Http(HttpState { closing: true, .. }));
        if conn.eof || closing { Next::Close } else { Next::Read }
    }

    /// Writes the output, then a generated body a chunk at a time, then
    /// answers what waited behind it: `Ok(true)` when all is written,
    /// `Ok(false)` when the socket is full.
    fn drain(&mut self, conn: &mut Connection) -> Result<bool, ()> {
        loop {
            if !flush(conn)? {
                return Ok(false);
            }
            let Kind::Http(state) = &mut conn.kind else { return Ok(true) };
            let Some(body) = &mut state.generated else { return Ok(true) };
            while !body.done() {
                let at = (body.offset() % PATTERN_PERIOD) as usize;
                let n = body.left().min(CHUNK as u64) as usize;
                match conn.stream.write(&self.pattern[at..at + n]) {
                    Ok(0) => return Err(()),
                    Ok(written) => body.advance(written),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Err(()),
                }
            }
            state.generated = None;
            if state.closing {
                return Ok(true);
            }
            self.answer(state, &mut conn.output);
        }
    }

    /// Handles `n` fresh bytes in `self.buffer`.
    fn consume(&mut self, conn: &mut Connection, n: usize) {
        conn.output.clear();
        conn.sent = 0;
        match &mut conn.kind {
            Kind::Echo => {
                self.counters.echo_bytes += n as u64;
                conn.output.extend_from_slice(&self.buffer[..n]);
            }
            Kind::Http(state) => {
                let mut fresh = &self.buffer[..n];
                // An upload's body is counted and dropped; the rest is the next request.
                if let Some(sink) = &mut state.sink {
                    fresh = &fresh[sink.take(fresh.len())..];
                    if sink.done() {
                        http::answer_sink(&mut conn.output, sink);
                        state.closing = !sink.keep_alive;
                        state.sink = None;
                    }
                }
                state.input.extend_from_slice(fresh);
                self.answer(state, &mut conn.output);
            }
        }
    }

    /// Answers the whole requests in `state.input`, up to one that leaves a body pending.
    fn answer(&mut self, state: &mut HttpState, output: &mut Vec<u8>) {
        if state.closing || state.sink.is_some() || state.generated.is_some() {
            return;
        }
        let (size, started) = (self.stats_bytes, self.started);
        let stats = |c: &Counters| http::stats_json(c, started.elapsed().as_millis(), size);
        let (used, close, pending) = http::answer(&state.input, output, &mut self.counters, &stats);
        state.input.drain(..used);
        // A request that can never fit is answered by closing.
        state.closing = close || state.input.len() > HTTP_INPUT_LIMIT;
        match pending {
            Pending::None => {}
            Pending::Bytes(body) => state.generated = Some(body),
            Pending::Sink(sink) => state.sink = Some(sink),
        }
    }
}

/// Writes pending output: `Ok(true)` when all is gone, `Ok(false)` when the
/// socket is full, `Err` when the connection failed.
fn flush(conn: &mut Connection) -> Result<bool, ()> {
    while conn.sent < conn.output.len() {
        match conn.stream.write(&conn.output[conn.sent..]) {
            Ok(0) => return Err(()),
            Ok(n) => conn.sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
    conn.output.clear();
    conn.sent = 0;
    Ok(true)
}
