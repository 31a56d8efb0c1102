//! Load and exhaustion: slow clients, clients that never read. (Many
//! connections at once: `crowd.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::checks::{Ctx, connect, number};
use super::{ECHO, HEAP_SLACK, HTTP, HTTP_IDLE, Result, say};

/// Heap the never-reading clients may pin while connected: per connection
/// the HTTP input and output limits (net/src/apps/http), generously.
const HEAP_PER_STUCK_CONNECTION: u64 = 96 * 1024;
/// What a client that never reads writes at most, and how long a write may
/// stall before the client counts its windows as closed.
const NEVER_READ_BYTES: usize = 1 << 20;
const NEVER_READ_STALL: Duration = Duration::from_millis(200);

/// Load and exhaustion: many connections at once, slow clients, clients
/// that never read.
pub(super) fn run(ctx: &mut Ctx, baseline: u64) -> Result<()> {
    // 1. Connections at once: `crowd.rs`, a part of its own.

    // 2. Slow clients trickle a header that never ends; each must be closed
    //    within the idle timeout of its first byte, not kept by the trickle.
    let n = ctx.sizes.slow_clients;
    let start = Instant::now();
    let mut slow: Vec<(TcpStream, Option<Duration>)> =
        (0..n).map(|_| connect(HTTP).map(|s| (s, None))).collect::<Result<_>>()?;
    for (s, _) in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(1))).map_err(|e| e.to_string())?;
        s.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").map_err(|e| e.to_string())?;
    }
    let limit = HTTP_IDLE * 3;
    while start.elapsed() < limit && slow.iter().any(|(_, closed)| closed.is_none()) {
        for (s, closed) in &mut slow {
            if closed.is_some() {
                continue;
            }
            let mut buf = [0u8; 1024];
            let gone = match s.read(&mut buf) {
                Ok(_) => true, // EOF, or an error response before the close
                Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            };
            if gone || s.write_all(b"x").is_err() {
                *closed = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let open = slow.iter().filter(|(_, c)| c.is_none()).count();
    if open > 0 {
        return Err(format!(
            "{open} of {n} slow clients trickling a header were still connected after {limit:?} (http.idle_ms {:?})",
            HTTP_IDLE
        ));
    }
    let longest = slow.iter().filter_map(|(_, c)| *c).max().unwrap_or_default();
    drop(slow);
    let recovered = ctx.health()?;
    say(format!(
        "slow-clients           {n} trickling headers: all closed, the last after {:.2} s (idle timeout {:.0} s); answering again after {:.2} s",
        longest.as_secs_f64(),
        HTTP_IDLE.as_secs_f64(),
        recovered.as_secs_f64()
    ));

    // 3. Clients that never read: pipelined requests and echo data pile up
    //    only as far as the guest's bounded buffers and TCP windows allow.
    let n = ctx.sizes.never_read;
    let start = Instant::now();
    let mut stuck = Vec::new();
    let mut pushed = 0usize;
    let request = b"GET /stats HTTP/1.1\r\nHost: skiff\r\n\r\n".repeat(64);
    for i in 0..n {
        let mut s = connect(if i % 2 == 0 { HTTP } else { ECHO })?;
        s.set_write_timeout(Some(NEVER_READ_STALL)).map_err(|e| e.to_string())?;
        // Write until the windows close (a write stalls), or enough to fill
        // the guest's buffers and the host's socket buffers several times.
        for _ in 0..NEVER_READ_BYTES / request.len() {
            match s.write(&request) {
                Ok(k) => pushed += k,
                Err(_) => break,
            }
        }
        stuck.push(s);
    }
    let stats = ctx.stats()?;
    let heap_stuck = number(&stats, "/heap/in_use");
    let bound = baseline + n as u64 * HEAP_PER_STUCK_CONNECTION;
    if heap_stuck > bound {
        return Err(format!("{n} clients that never read pinned heap {heap_stuck} > {bound}"));
    }
    drop(stuck);
    let heap_after = ctx.settled_heap()?;
    let recovered = ctx.health()?;
    say(format!(
        "never-read             {n} clients pushed {} KiB without reading: heap {heap_stuck} while stuck (bound {bound}), \
         {heap_after} after (baseline {baseline}), in {:.2} s; answering again after {:.2} s",
        pushed / 1024,
        start.elapsed().as_secs_f64(),
        recovered.as_secs_f64()
    ));
    if heap_after > baseline + HEAP_SLACK {
        return Err(format!("heap {heap_after} after the stuck clients left, baseline {baseline}"));
    }
    Ok(())
}
