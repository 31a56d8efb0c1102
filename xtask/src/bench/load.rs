//! The load generator: HTTP over keep-alive connections or a new connection
//! per request, with each request's latency, and TCP echo streams. It runs
//! inside the bench's network namespace, next to QEMU's TAP device, so no
//! user-network proxy sits between it and the guest.
//!
//! Every loop ends at its deadline; every socket operation has a timeout.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::summary::percentile;

/// How long one socket operation may take before the request counts as failed.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// A client's pause after a failed request.
const ERROR_PAUSE: Duration = Duration::from_millis(1);
/// Bytes per echo write.
const ECHO_CHUNK: usize = 64 * 1024;

/// What one HTTP load run found.
#[derive(Clone, Debug)]
pub struct HttpRun {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Per-request latency percentiles, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
}

impl HttpRun {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// How each client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connections {
    /// One connection per client, kept alive for every request.
    KeepAlive,
    /// A new connection for every request (`Connection: close`).
    PerRequest,
}

pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// A response's status and the bytes it took, if `buffer[..]` holds a whole
/// one (Content-Length framed; `head_only` for HEAD).
fn complete_response(buffer: &[u8]) -> Option<(u16, usize)> {
    let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .split("\r\n")
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok())?;
    (buffer.len() >= head_end + length).then_some((status, head_end + length))
}

/// Reads one response from `stream` into `buffer` (which may hold the
/// start of it); returns its status and removes it from `buffer`.
pub fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<u16> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some((status, used)) = complete_response(buffer) {
            buffer.drain(..used);
            return Ok(status);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a whole response"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// One GET on a fresh connection, which the server closes; returns the status and body.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = connect(addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let (status, used) = complete_response(&all)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no whole response"))?;
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |i| i + 4);
    Ok((status, all[head_end..used].to_vec()))
}

/// `clients` clients each asking for `path` until `duration` has passed.
pub fn http(addr: SocketAddr, path: &str, clients: usize, mode: Connections, duration: Duration) -> HttpRun {
    let keep_alive = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes();
    let close = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").into_bytes();
    let start = Instant::now();
    let deadline = start + duration;
    let per_client: Vec<(Vec<f64>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (keep_alive, close) = (&keep_alive, &close);
                scope.spawn(move || match mode {
                    Connections::KeepAlive => keep_alive_client(addr, keep_alive, deadline),
                    Connections::PerRequest => per_request_client(addr, close, deadline),
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| (Vec::new(), 1))).collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let errors = per_client.iter().map(|(_, e)| e).sum();
    let mut latencies: Vec<f64> = per_client.into_iter().flat_map(|(l, _)| l).collect();
    latencies.sort_by(f64::total_cmp);
    HttpRun {
        requests: latencies.len() as u64,
        errors,
        seconds,
        p50_us: percentile(&latencies, 50.0).unwrap_or(f64::NAN),
        p99_us: percentile(&latencies, 99.0).unwrap_or(f64::NAN),
    }
}

/// Latencies in microseconds of the requests that got a 200, and how many failed.
fn keep_alive_client(addr: SocketAddr, request: &[u8], deadline: Instant) -> (Vec<f64>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut stream: Option<TcpStream> = None;
    let mut buffer = Vec::new();
    while Instant::now() < deadline {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match connect(addr, IO_TIMEOUT) {
                Ok(s) => {
                    buffer.clear();
                    stream.insert(s)
                }
                Err(_) => {
                    errors += 1;
                    std::thread::sleep(ERROR_PAUSE);
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match s.write_all(request).and_then(|()| read_response(s, &mut buffer)) {
            Ok(200) => latencies.push(sent.elapsed().as_secs_f64() * 1e6),
            _ => {
                errors += 1;
                stream = None;
            }
        }
    }
    (latencies, errors)
}

fn per_request_client(addr: SocketAddr, request: &[u8], deadline: Instant) -> (Vec<f64>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut buffer = Vec::new();
    while Instant::now() < deadline {
        let sent = Instant::now();
        buffer.clear();
        let result = connect(addr, IO_TIMEOUT).and_then(|mut s| {
            s.write_all(request)?;
            let status = read_response(&mut s, &mut buffer)?;
            // Wait for the server's FIN, as a client that reads to the end does.
            let mut rest = [0u8; 64];
            while s.read(&mut rest)? > 0 {}
            Ok(status)
        });
        match result {
            Ok(200) => latencies.push(sent.elapsed().as_secs_f64() * 1e6),
            _ => {
                // Refused (no socket listening) or failed: count it, and do
                // not spin on a host core the guest's QEMU needs.
                errors += 1;
                std::thread::sleep(ERROR_PAUSE);
            }
        }
    }
    (latencies, errors)
}

/// What an echo run found.
#[derive(Clone, Debug)]
pub struct EchoRun {
    pub bytes: u64,
    pub seconds: f64,
    /// Streams that failed or came back short or different.
    pub errors: u64,
}

impl EchoRun {
    pub fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / f64::from(1 << 20) / self.seconds
    }
}

/// `streams` connections to the echo port, each sending for `duration` while
/// reading back; returns the bytes that came back, checked against what was sent.
pub fn echo(addr: SocketAddr, streams: usize, duration: Duration) -> EchoRun {
    let start = Instant::now();
    let deadline = start + duration;
    let results: Vec<Option<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams).map(|i| scope.spawn(move || echo_stream(addr, i as u8, deadline))).collect();
        handles.into_iter().map(|h| h.join().ok().flatten()).collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    EchoRun {
        bytes: results.iter().flatten().sum(),
        seconds,
        errors: results.iter().filter(|r| r.is_none()).count() as u64,
    }
}

/// Stream `seed`'s data: this block, over and over. Each stream's differs,
/// so bytes from another connection would not compare equal.
fn block(seed: u8) -> Vec<u8> {
    (0..ECHO_CHUNK).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).wrapping_add((i >> 8) as u8)).collect()
}

/// Whether `got`, found at `offset` of the stream, matches the repeated `block`
/// (slice comparisons: the check must not be what limits the stream).
fn matches(block: &[u8], offset: u64, got: &[u8]) -> bool {
    let mut at = (offset % block.len() as u64) as usize;
    let mut rest = got;
    while !rest.is_empty() {
        let take = rest.len().min(block.len() - at);
        if rest[..take] != block[at..at + take] {
            return false;
        }
        rest = &rest[take..];
        at = 0;
    }
    true
}

/// One stream: a writer thread sends until the deadline then shuts its side;
/// this thread reads everything back. `None` if anything went wrong.
fn echo_stream(addr: SocketAddr, seed: u8, deadline: Instant) -> Option<u64> {
    let stream = connect(addr, IO_TIMEOUT).ok()?;
    let mut writer = stream.try_clone().ok()?;
    let data = block(seed);
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| -> Option<u64> {
            let mut sent = 0u64;
            while Instant::now() < deadline {
                writer.write_all(&data).ok()?;
                sent += data.len() as u64;
            }
            writer.shutdown(Shutdown::Write).ok()?;
            Some(sent)
        });
        let mut reader = &stream;
        let mut got = vec![0u8; ECHO_CHUNK];
        let mut received = 0u64;
        let mut intact = true;
        loop {
            match reader.read(&mut got) {
                Ok(0) => break,
                Ok(n) => {
                    intact &= matches(&data, received, &got[..n]);
                    received += n as u64;
                }
                Err(_) => {
                    intact = false;
                    break;
                }
            }
        }
        let sent = sender.join().ok().flatten()?;
        (intact && sent == received).then_some(received)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_data_is_checked_across_block_boundaries() {
        let b = block(3);
        assert!(matches(&b, 0, &b));
        let wrapped: Vec<u8> = b[ECHO_CHUNK - 10..].iter().chain(&b[..20]).copied().collect();
        assert!(matches(&b, (ECHO_CHUNK - 10) as u64, &wrapped));
        assert!(!matches(&b, (ECHO_CHUNK - 9) as u64, &wrapped), "one byte off");
        assert!(!matches(&block(4), 0, &b[..100]), "another stream's bytes");
    }

    #[test]
    fn responses_are_framed_by_content_length() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1";
        assert_eq!(complete_response(r), Some((200, 41)));
        assert_eq!(complete_response(&r[..40]), None);
        assert_eq!(complete_response(b"HTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n"), Some((404, 44)));
        assert_eq!(complete_response(b"HTTP/1.1 200 OK\r\n\r\n"), None, "no length: never complete");
    }

    /// A tiny server on loopback: the generator's requests, latencies and
    /// echo checks work end to end.
    #[test]
    fn load_runs_against_a_loopback_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = stream;
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let close = String::from_utf8_lossy(&buf[..end]).contains("close");
                            buf.drain(..end + 4);
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                            if close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let run = http(addr, "/", 2, Connections::KeepAlive, Duration::from_millis(200));
        assert!(run.requests > 10 && run.errors == 0, "{run:?}");
        assert!(run.p50_us > 0.0 && run.p99_us >= run.p50_us, "{run:?}");
        let run = http(addr, "/", 1, Connections::PerRequest, Duration::from_millis(200));
        assert!(run.requests > 5 && run.errors == 0, "{run:?}");
        assert_eq!(get(addr, "/", IO_TIMEOUT).unwrap(), (200, b"ok".to_vec()));
    }

    #[test]
    fn echo_streams_are_checked_byte_for_byte() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().flatten().enumerate() {
                std::thread::spawn(move || {
                    let mut s = stream;
                    let mut chunk = [0u8; 4096];
                    let mut total = 0usize;
                    while let Ok(n @ 1..) = s.read(&mut chunk) {
                        // The second connection corrupts one byte.
                        if i == 1 && total == 0 {
                            chunk[0] ^= 1;
                        }
                        total += n;
                        if s.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let good = echo(addr, 1, Duration::from_millis(100));
        assert!(good.bytes > 0 && good.errors == 0, "{good:?}");
        let bad = echo(addr, 1, Duration::from_millis(100));
        assert_eq!(bad.errors, 1, "a corrupted stream is an error: {bad:?}");
    }
}
