//! The connection pool under load (issue 16, net/src/pool.rs): many
//! keep-alive clients at once, and a real client's connections during a
//! spoofed SYN flood. Over TAP only: QEMU's user network accepts one pending
//! connection at a time on the host side, so it cannot show either.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::checks::{Ctx, number};
use super::{GUEST_IP, HEAP_SLACK, HTTP, Result, say};
use crate::clients::read_response;
use crate::rawlink::RawLink;

/// How long one client of the crowd may wait for its connection: Linux
/// retries a dropped SYN at 1, 3, 7, 15, 31 and 63 s (`tcp_syn_retries` 6).
const CROWD_CONNECT: Duration = Duration::from_secs(130);
/// How long the whole crowd may take.
const CROWD_LIMIT: Duration = Duration::from_secs(180);
/// Each crowd client's thread stack: it only connects, writes and reads.
const CLIENT_STACK: usize = 128 * 1024;
/// How long the real client may wait for one connection during the flood.
const FLOOD_CONNECT: Duration = Duration::from_secs(5);
/// The real client goes on this long after the flood's last SYN: the
/// flood's half-open connections linger in the pool until evicted or timed
/// out (8 s, `SYN_RECEIVED_TIMEOUT`).
const AFTER_FLOOD: Duration = Duration::from_secs(2);
/// Real connections at least, and at most, during the flood.
const FLOOD_ATTEMPTS: (usize, usize) = (20, 2_000);
/// The real client's share of connections that must succeed during a flood.
const FLOOD_SUCCESS_PERCENT: usize = 90;

/// `clients` connect at once, each makes `requests` keep-alive requests
/// and closes: every one must be served, with no reset and no failed
/// request (clients past the guest's limit wait, their SYNs dropped and
/// retried). Then the pool and the heap must come back to their baseline.
pub(super) fn crowd(ctx: &mut Ctx, baseline: u64, clients: usize, requests: usize) -> Result<()> {
    let before = ctx.stats()?;
    let start = Instant::now();
    let barrier = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .stack_size(CLIENT_STACK)
                .spawn(move || {
                    barrier.wait();
                    keep_alive_client(requests)
                })
                .map_err(|e| format!("cannot start a client thread: {e}"))
        })
        .collect::<Result<_>>()?;
    let mut served = 0;
    let mut errors: Vec<String> = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => served += 1,
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a client thread panicked".into()),
        }
    }
    let took = start.elapsed();
    let after = ctx.stats()?;
    let heap = ctx.heap_back_to(baseline)?;
    let moved = |path: &str| number(&after, path).saturating_sub(number(&before, path));
    say(format!(
        "crowd                  {clients} keep-alive clients at once, {requests} requests each: {served} served, {} failed, \
         in {:.2} s; limit {}, syn_dropped_full +{}, per_peer_refused +{}, half_open_evicted +{}; heap {heap} (baseline {baseline})",
        errors.len(),
        took.as_secs_f64(),
        number(&after, "/pool/limit"),
        moved("/pool/syn_dropped_full"),
        moved("/pool/per_peer_refused"),
        moved("/pool/half_open_evicted"),
    ));
    if let Some(first) = errors.first() {
        return Err(format!("{} of {clients} clients failed; the first: {first}", errors.len()));
    }
    if took > CROWD_LIMIT {
        return Err(format!("the crowd took {took:?}, more than {CROWD_LIMIT:?}"));
    }
    if heap > baseline + HEAP_SLACK {
        return Err(format!("heap {heap} after the crowd, baseline {baseline}"));
    }
    ctx.health()?;
    Ok(())
}

/// One client of the crowd: connect, `requests` keep-alive requests, the
/// last asking to close.
fn keep_alive_client(requests: usize) -> Result<()> {
    let addr = SocketAddr::from((GUEST_IP, HTTP));
    let mut s = TcpStream::connect_timeout(&addr, CROWD_CONNECT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(super::IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(super::IO_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut buffer = Vec::new();
    for i in 0..requests {
        let close = if i + 1 == requests { "Connection: close\r\n" } else { "" };
        write!(s, "GET / HTTP/1.1\r\nHost: skiff\r\n{close}\r\n").map_err(|e| format!("request {i}: {e}"))?;
        let r = read_response(&mut s, &mut buffer, false).map_err(|e| format!("request {i}: {e}"))?;
        if r.status != 200 {
            return Err(format!("request {i}: status {}", r.status));
        }
    }
    Ok(())
}

/// A spoofed SYN flood of `syns` SYNs at full rate from a second raw
/// socket, while a real client opens one connection after another (each
/// with a request): at least `FLOOD_SUCCESS_PERCENT` % must succeed. Reports
/// the real client's connect times.
pub(super) fn flood_with_client(ctx: &mut Ctx, ifname: &str, baseline: u64) -> Result<()> {
    let syns = ctx.sizes.syn_flood;
    let link = RawLink::open(ifname)?;
    let frames: Vec<Vec<u8>> = super::floods::spoofed_syns(syns, Some(HTTP)).collect();
    let before = ctx.stats()?;
    let done = Arc::new(AtomicBool::new(false));
    let flood_done = Arc::clone(&done);
    let flood = std::thread::spawn(move || -> Result<(usize, Duration)> {
        let start = Instant::now();
        let mut sent = 0;
        for f in &frames {
            sent += usize::from(link.send(f)?);
        }
        flood_done.store(true, Ordering::Relaxed);
        Ok((sent, start.elapsed()))
    });
    let mut connects: Vec<Duration> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut flood_ended: Option<Instant> = None;
    while connects.len() + failures.len() < FLOOD_ATTEMPTS.1 {
        if flood_ended.is_none() && done.load(Ordering::Relaxed) {
            flood_ended = Some(Instant::now());
        }
        let enough = connects.len() + failures.len() >= FLOOD_ATTEMPTS.0;
        if enough && flood_ended.is_some_and(|t| t.elapsed() > AFTER_FLOOD) {
            break;
        }
        match real_connection() {
            Ok(took) => connects.push(took),
            Err(e) => failures.push(e),
        }
    }
    let (sent, flood_took) = flood.join().map_err(|_| "the flood thread panicked".to_string())??;
    let after = ctx.stats()?;
    let attempts = connects.len() + failures.len();
    connects.sort();
    let percentile = |p: usize| connects.get((connects.len() * p / 100).min(connects.len().saturating_sub(1))).copied();
    let ms = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0));
    let moved = |path: &str| number(&after, path).saturating_sub(number(&before, path));
    let heap = ctx.heap_back_to(baseline)?;
    say(format!(
        "flood-and-client       {sent} spoofed SYNs in {:.2} s; a real client: {} of {attempts} connections served, \
         connect p50 {}, p99 {}, max {}; half_open_evicted +{}, syn_dropped_full +{}; heap {heap} (baseline {baseline})",
        flood_took.as_secs_f64(),
        connects.len(),
        ms(percentile(50)),
        ms(percentile(99)),
        ms(connects.last().copied()),
        moved("/pool/half_open_evicted"),
        moved("/pool/syn_dropped_full"),
    ));
    if connects.len() * 100 < attempts * FLOOD_SUCCESS_PERCENT {
        return Err(format!(
            "during the flood only {} of {attempts} real connections succeeded; the first failure: {}",
            connects.len(),
            failures.first().map_or("", String::as_str)
        ));
    }
    if heap > baseline + HEAP_SLACK {
        return Err(format!("heap {heap} after the flood, baseline {baseline}"));
    }
    ctx.health()?;
    Ok(())
}

/// One real connection with one request: how long the connect took.
fn real_connection() -> Result<Duration> {
    let addr = SocketAddr::from((GUEST_IP, HTTP));
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, FLOOD_CONNECT).map_err(|e| format!("connect: {e}"))?;
    let took = start.elapsed();
    s.set_read_timeout(Some(super::IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n").map_err(|e| format!("request: {e}"))?;
    let r = read_response(&mut s, &mut Vec::new(), false).map_err(|e| format!("response: {e}"))?;
    if r.status != 200 {
        return Err(format!("status {}", r.status));
    }
    Ok(took)
}
