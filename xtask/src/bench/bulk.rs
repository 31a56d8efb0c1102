//! The bulk loads: one-way transfers over one connection, timed from the
//! connect to the last byte. From the guest, `GET /bytes/N`, every byte of
//! the body checked against the pattern (net/src/apps/http/bulk.rs); to the
//! guest, `POST /sink` with N bytes, the answer's count checked.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use skiff_net::apps::http::bulk::{PATTERN_PERIOD, pattern_byte};

use super::load::{IO_TIMEOUT, connect};

/// Bytes per read and per write.
const CHUNK: usize = 256 * 1024;

/// The directions measured: name, and whether the guest sends.
pub const BULK_LOADS: &[(&str, Direction)] = &[("from_guest", Direction::FromGuest), ("to_guest", Direction::ToGuest)];

/// Which way the bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `GET /bytes/N`.
    FromGuest,
    /// `POST /sink`.
    ToGuest,
}

impl Direction {
    /// The request, for the table.
    pub fn request(self) -> &'static str {
        match self {
            Direction::FromGuest => "GET /bytes/N",
            Direction::ToGuest => "POST /sink",
        }
    }
}

/// What one transfer found.
#[derive(Clone, Debug)]
pub struct BulkRun {
    /// Bytes moved and checked (0 if it failed).
    pub bytes: u64,
    pub seconds: f64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl BulkRun {
    pub fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / f64::from(1 << 20) / self.seconds
    }
}

/// One transfer of `bytes` in `direction`.
pub fn run(addr: SocketAddr, direction: Direction, bytes: u64) -> BulkRun {
    let start = Instant::now();
    let result = match direction {
        Direction::FromGuest => download(addr, bytes),
        Direction::ToGuest => upload(addr, bytes),
    };
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(()) => BulkRun { bytes, seconds, error: None },
        Err(e) => BulkRun { bytes: 0, seconds, error: Some(e) },
    }
}

/// `CHUNK` bytes and one period more of the pattern, from byte 0: any
/// stretch of up to `CHUNK` bytes at offset `i` is `table[i % 251..]`.
fn pattern_table() -> Vec<u8> {
    (0..(CHUNK as u64 + PATTERN_PERIOD)).map(pattern_byte).collect()
}

/// Reads a response's head from `stream`: its status line and fields, and
/// whatever body bytes came with it.
fn read_head(stream: &mut impl Read) -> Result<(String, Vec<u8>), String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end + 4]).into_owned();
            return Ok((head, got[end + 4..].to_vec()));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err(format!("the connection closed after {} bytes of head", got.len())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the head: {e}")),
        }
    }
}

fn content_length(head: &str) -> Option<u64> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
    })
}

fn download(addr: SocketAddr, bytes: u64) -> Result<(), String> {
    let mut stream = connect(addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let request = format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("sending the request: {e}"))?;
    let (head, first) = read_head(&mut stream)?;
    if !head.starts_with("HTTP/1.1 200 ") || content_length(&head) != Some(bytes) {
        return Err(format!("the answer's head: {:?}", head.lines().next().unwrap_or_default()));
    }
    let table = pattern_table();
    let mut offset = 0u64;
    let check = |got: &[u8], offset: &mut u64| -> Result<(), String> {
        for piece in got.chunks(CHUNK) {
            let at = (*offset % PATTERN_PERIOD) as usize;
            if piece != &table[at..at + piece.len()] {
                return Err(format!("the body differs from the pattern within bytes {offset}..", offset = *offset));
            }
            *offset += piece.len() as u64;
        }
        Ok(())
    };
    check(&first, &mut offset)?;
    let mut buf = vec![0u8; CHUNK];
    while offset < bytes {
        match stream.read(&mut buf) {
            Ok(0) => return Err(format!("the connection closed after {offset} of {bytes} bytes")),
            Ok(n) => check(&buf[..n], &mut offset)?,
            Err(e) => return Err(format!("after {offset} of {bytes} bytes: {e}")),
        }
    }
    if offset != bytes {
        return Err(format!("{offset} bytes came for {bytes}"));
    }
    Ok(())
}

fn upload(addr: SocketAddr, bytes: u64) -> Result<(), String> {
    let mut stream = connect(addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let request = format!("POST /sink HTTP/1.1\r\nHost: bench\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("sending the head: {e}"))?;
    let data = pattern_table();
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        stream.write_all(&data[..n]).map_err(|e| format!("after {sent} of {bytes} bytes: {e}"))?;
        sent += n as u64;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let (head, mut body) = read_head(&mut stream)?;
    let length = content_length(&head).unwrap_or(0) as usize;
    let mut buf = [0u8; 256];
    while body.len() < length {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    let want = format!("{{\"received\":{bytes}}}\n");
    if !head.starts_with("HTTP/1.1 200 ") || body != want.as_bytes() {
        return Err(format!(
            "the answer: {:?} {:?}",
            head.lines().next().unwrap_or_default(),
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_every_stretch_of_the_pattern() {
        let table = pattern_table();
        for offset in [0u64, 250, 251, 1 << 20, (1 << 32) + 7] {
            let at = (offset % PATTERN_PERIOD) as usize;
            let want: Vec<u8> = (offset..offset + CHUNK as u64).map(pattern_byte).collect();
            assert!(table[at..at + CHUNK] == want[..], "offset {offset}");
        }
    }

    #[test]
    fn content_length_is_found_in_any_case() {
        assert_eq!(content_length("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"), Some(12));
        assert_eq!(content_length("HTTP/1.1 200 OK\r\n\r\n"), None);
    }
}
