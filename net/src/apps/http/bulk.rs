//! The bulk-transfer routes, for measuring and checking throughput:
//!
//! - `GET /bytes/N` (and HEAD): a body of N bytes, `Content-Type:
//!   application/octet-stream`, written straight into the socket's send
//!   buffer as it has room, never held in memory. Byte `i` of the body is
//!   [`pattern_byte`]`(i)`, `i % 251`, so a client can check every byte: a
//!   segment lost, repeated or misplaced shifts the pattern (251 is prime,
//!   so no segment or buffer size is a multiple of it). N is decimal digits,
//!   at most [`MAX_GENERATED`]; beyond, 400 and why.
//! - `POST /sink` (`request::SINK`): the body is read as it arrives and
//!   discarded; Content-Length is required (411 without), chunked bodies
//!   are not taken (501). The answer is `{"received":N}`, the bytes read.
//!
//! Both keep the connection open after them as any request does.
//!
//! An HTTP socket's buffers are small (`super::BUFFERS`: a request and a
//! page), which would hold one transfer to a few KiB per round trip. So the
//! direction a large transfer uses is swapped for a larger one ([`BULK_RX`],
//! [`BULK_TX`]) while it runs (smoltcp's `replace_*_buffer`,
//! third_party/smoltcp/SKIFF.md patch 14), for at most [`BULK_SLOTS`]
//! connections at once and only if the heap has room; the others go on at
//! the small buffers' pace. A send buffer goes back to its small size once
//! the body is out; a receive buffer cannot shrink under the window it
//! advertised, and stays until the connection ends. Every HTTP socket offers
//! at its handshake the window scale [`BULK_RX`] needs (patch 15), since the
//! scale cannot change later.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::socket::tcp;

/// An upload's receive buffer: the window it offers. With 64 KiB (the echo
/// app's) a coalesced 64 KB segment filled the window, and the sender
/// waited a round trip for each (docs/performance.md, bulk rows).
pub const BULK_RX: usize = 256 * 1024;
/// A generated body's send buffer: what may be in flight at once.
pub const BULK_TX: usize = 256 * 1024;
/// Connections with a grown buffer at once: at most this many times
/// 256 KiB of heap more than the HTTP sockets' own.
pub const BULK_SLOTS: usize = 2;

/// Which of a socket's buffers a transfer grew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grown {
    /// The receive buffer, for an upload: kept until the connection ends.
    Rx,
    /// The send buffer, for a generated body: shrunk back once it is out.
    Tx,
}

/// Gives `socket`'s buffer `which` a new size, keeping its data, if the heap
/// has room and the data fits (a receive buffer only grows); whether it did.
pub fn resize_buffer(socket: &mut tcp::Socket<'static>, which: Grown, size: usize) -> bool {
    let mut storage = Vec::new();
    if storage.try_reserve_exact(size).is_err() {
        return false;
    }
    storage.resize(size, 0);
    let buffer = tcp::SocketBuffer::new(storage);
    match which {
        Grown::Rx => socket.replace_recv_buffer(buffer).is_ok(),
        Grown::Tx => socket.replace_send_buffer(buffer).is_ok(),
    }
}

/// The generated bodies' media type: bytes, not text (RFC 2046 4.5.1).
pub const CONTENT_TYPE: &str = "application/octet-stream";
/// The path prefix of the generated bodies.
pub const BYTES_PREFIX: &str = "/bytes/";
/// The largest body `GET /bytes/N` generates: 4 GiB, enough for any
/// benchmark and still a bound on how long one request holds a connection.
pub const MAX_GENERATED: u64 = 4 << 30;
/// The pattern's period: a prime, so that no power-of-two-sized segment,
/// buffer or page lines up with it.
pub const PATTERN_PERIOD: u64 = 251;

/// One period of the pattern: bytes 0 to 250.
const PERIOD: [u8; PATTERN_PERIOD as usize] = {
    let mut period = [0; PATTERN_PERIOD as usize];
    let mut i = 0;
    while i < period.len() {
        period[i] = i as u8;
        i += 1;
    }
    period
};

/// Byte `i` of every `/bytes/N` body.
pub fn pattern_byte(i: u64) -> u8 {
    // The remainder is below 251, so it fits a byte.
    (i % PATTERN_PERIOD) as u8
}

/// What a `/bytes/...` path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BytesPath {
    /// Not a `/bytes/` path at all.
    Other,
    /// `/bytes/N` with N no more than [`MAX_GENERATED`].
    Size(u64),
    /// `/bytes/N` with N above [`MAX_GENERATED`] (or beyond `u64`): 400.
    TooLarge,
    /// `/bytes/` followed by anything but digits: no such resource, 404.
    NotFound,
}

/// Reads `path` as a `/bytes/N` request.
pub fn bytes_path(path: &str) -> BytesPath {
    let Some(digits) = path.strip_prefix(BYTES_PREFIX) else { return BytesPath::Other };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return BytesPath::NotFound;
    }
    match digits.parse::<u64>() {
        Ok(n) if n <= MAX_GENERATED => BytesPath::Size(n),
        _ => BytesPath::TooLarge,
    }
}

/// The body of the 400 for a `/bytes/N` above the limit: says why.
pub fn too_large_body() -> String {
    format!("400 Bad Request: /bytes/N takes N up to {MAX_GENERATED}\n")
}

/// A `/bytes/N` body being written: the offset of the next byte, and the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generated {
    next: u64,
    end: u64,
}

impl Generated {
    /// A body of `length` bytes, none written yet.
    pub fn new(length: u64) -> Generated {
        Generated { next: 0, end: length }
    }

    /// Fills as much of `buf` as the body has left; returns how much.
    pub fn fill(&mut self, buf: &mut [u8]) -> usize {
        let left = self.end - self.next;
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        // Copies of one period, not a 64-bit division per byte (slow, and
        // slower still under QEMU's TCG, which the bench may run on).
        let mut at = (self.next % PATTERN_PERIOD) as usize;
        let mut rest = &mut buf[..n];
        while !rest.is_empty() {
            let take = rest.len().min(PERIOD.len() - at);
            let (head, tail) = rest.split_at_mut(take);
            head.copy_from_slice(&PERIOD[at..at + take]);
            rest = tail;
            at = 0;
        }
        self.next += n as u64;
        n
    }

    /// Whether every byte has been written.
    pub fn done(&self) -> bool {
        self.next == self.end
    }

    /// The offset of the next byte to write.
    pub fn offset(&self) -> u64 {
        self.next
    }

    /// Bytes still to write.
    pub fn left(&self) -> u64 {
        self.end - self.next
    }

    /// Counts `n` more bytes written (at most those left), for a writer
    /// that takes the pattern from elsewhere (the bench's Linux guest
    /// writes from a table of it).
    pub fn advance(&mut self, n: usize) {
        self.next += (n as u64).min(self.left());
    }
}

/// A `POST /sink` body being read and discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sink {
    received: u64,
    length: u64,
    /// Keep the connection open after the answer.
    pub keep_alive: bool,
}

impl Sink {
    /// A body of `length` bytes (its Content-Length), none read yet.
    pub fn new(length: u64, keep_alive: bool) -> Sink {
        Sink { received: 0, length, keep_alive }
    }

    /// How many of `available` bytes belong to the body; counts them read.
    /// The rest is the next request's (RFC 9112 6.3).
    pub fn take(&mut self, available: usize) -> usize {
        let left = self.length - self.received;
        let n = available.min(usize::try_from(left).unwrap_or(usize::MAX));
        self.received += n as u64;
        n
    }

    /// Whether the whole body has been read.
    pub fn done(&self) -> bool {
        self.received == self.length
    }

    /// The answer's body once done: how many bytes were read.
    pub fn answer(&self) -> String {
        format!("{{\"received\":{}}}\n", self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn bytes_paths() {
        assert_eq!(bytes_path("/bytes/0"), BytesPath::Size(0));
        assert_eq!(bytes_path("/bytes/1048576"), BytesPath::Size(1 << 20));
        assert_eq!(bytes_path("/bytes/007"), BytesPath::Size(7));
        assert_eq!(bytes_path(&format!("/bytes/{MAX_GENERATED}")), BytesPath::Size(MAX_GENERATED));
        assert_eq!(bytes_path(&format!("/bytes/{}", MAX_GENERATED + 1)), BytesPath::TooLarge);
        assert_eq!(bytes_path("/bytes/99999999999999999999999"), BytesPath::TooLarge);
        for bad in ["/bytes/", "/bytes/+5", "/bytes/-1", "/bytes/1k", "/bytes/1/2", "/bytes/ 1"] {
            assert_eq!(bytes_path(bad), BytesPath::NotFound, "{bad}");
        }
        assert_eq!(bytes_path("/bytes"), BytesPath::Other);
        assert_eq!(bytes_path("/stats"), BytesPath::Other);
    }

    #[test]
    fn a_generated_body_is_the_pattern_however_it_is_cut() {
        let mut body = Generated::new(1000);
        let mut out = Vec::new();
        for size in [1, 7, 250, 251, 252, 4096] {
            let mut buf = vec![0xAA; size];
            let n = body.fill(&mut buf);
            out.extend_from_slice(&buf[..n]);
        }
        assert!(body.done());
        assert_eq!(body.fill(&mut [0; 8]), 0, "nothing past the end");
        let want: Vec<u8> = (0..1000).map(pattern_byte).collect();
        assert_eq!(out, want);
        assert_eq!(&out[249..253], &[249, 250, 0, 1]);
    }

    #[test]
    fn a_body_written_from_elsewhere_is_counted_to_its_end() {
        let mut body = Generated::new(10);
        body.advance(4);
        assert_eq!((body.offset(), body.left()), (4, 6));
        let mut buf = [0; 3];
        assert_eq!(body.fill(&mut buf), 3);
        assert_eq!(buf, [4, 5, 6]);
        body.advance(100);
        assert!(body.done() && body.left() == 0, "never past the end");
    }

    #[test]
    fn a_sink_takes_its_length_and_no_more() {
        let mut sink = Sink::new(10, true);
        assert_eq!(sink.take(4), 4);
        assert!(!sink.done());
        assert_eq!(sink.take(100), 6, "the rest is the next request's");
        assert!(sink.done());
        assert_eq!(sink.take(5), 0);
        assert_eq!(sink.answer(), "{\"received\":10}\n");
        let mut huge = Sink::new(u64::MAX, false);
        assert_eq!(huge.take(usize::MAX), usize::MAX);
    }
}
