//! Load and exhaustion: many connections at once, slow clients, clients
//! that never read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::checks::{Ctx, connect, number};
use super::{ECHO, GUEST_IP, HEAP_SLACK, HTTP, HTTP_IDLE, IO_TIMEOUT, Result, say};
use crate::clients::read_response;

/// Heap the never-reading clients may pin while connected: per connection
/// the HTTP input and output limits (net/src/apps/http), generously.
const HEAP_PER_STUCK_CONNECTION: u64 = 96 * 1024;
/// What a client that never reads writes at most, and how long a write may
/// stall before the client counts its windows as closed.
const NEVER_READ_BYTES: usize = 1 << 20;
const NEVER_READ_STALL: Duration = Duration::from_millis(200);

/// Opens `count` connections at once (non-blocking), waiting at most
/// `within`: (connected streams, refused, unresolved).
fn connect_many(port: u16, count: usize, within: Duration) -> Result<(Vec<TcpStream>, usize, usize)> {
    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n";
    use std::os::fd::FromRawFd;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(GUEST_IP.octets()) },
        sin_zero: [0; 8],
    };
    let mut pending: Vec<libc::pollfd> = Vec::new();
    let mut connected = Vec::new();
    let mut refused = 0;
    for _ in 0..count {
        // SAFETY: plain system call.
        let fd =
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `addr` is a valid sockaddr_in of the stated length.
        let r = unsafe {
            libc::connect(
                fd,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        let err = std::io::Error::last_os_error().raw_os_error();
        if r == 0 || err == Some(libc::EINPROGRESS) {
            pending.push(libc::pollfd { fd, events: libc::POLLOUT, revents: 0 });
        } else {
            // SAFETY: `fd` is ours and not used again.
            unsafe { libc::close(fd) };
            refused += 1;
        }
    }
    let deadline = Instant::now() + within;
    while !pending.is_empty() && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now()).as_millis().min(1000) as i32;
        // SAFETY: `pending` is a valid array of pollfds of the stated length.
        unsafe { libc::poll(pending.as_mut_ptr(), pending.len() as libc::nfds_t, left) };
        let mut still = Vec::new();
        for p in pending.drain(..) {
            if p.revents == 0 {
                still.push(libc::pollfd { revents: 0, ..p });
                continue;
            }
            let mut error: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `error` is a c_int of the stated length.
            unsafe {
                libc::getsockopt(
                    p.fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut error as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            if error == 0 {
                // SAFETY: `p.fd` is a connected socket nothing else owns.
                let mut s = unsafe { TcpStream::from_raw_fd(p.fd) };
                // Ask at once, as a real client would: a connection left
                // idle would meet the guest's idle timeout instead.
                s.set_nonblocking(false).map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
                s.write_all(REQUEST).map_err(|e| format!("request on a fresh connection: {e}"))?;
                connected.push(s);
            } else {
                // SAFETY: `p.fd` is ours and not used again.
                unsafe { libc::close(p.fd) };
                refused += 1;
            }
        }
        pending = still;
    }
    let unresolved = pending.len();
    for p in pending {
        // SAFETY: `p.fd` is ours and not used again.
        unsafe { libc::close(p.fd) };
    }
    Ok((connected, refused, unresolved))
}

/// Load and exhaustion: many connections at once, slow clients, clients
/// that never read.
pub(super) fn run(ctx: &mut Ctx, baseline: u64) -> Result<()> {
    // 1. Connections at once. The guest listens on 40 sockets per port and
    //    has no backlog: beyond those, a SYN is refused with RST. A user
    //    sees each connection either served or refused at once; none hangs.
    let count = ctx.sizes.connections;
    let start = Instant::now();
    let (connected, refused, unresolved) = connect_many(HTTP, count, Duration::from_secs(30))?;
    if unresolved > 0 {
        return Err(format!("{count} connections at once: {unresolved} neither connected nor refused within 30 s"));
    }
    let mut served = 0;
    for mut s in connected {
        s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
        match read_response(&mut s, &mut Vec::new(), false) {
            Ok(r) if r.status == 200 => served += 1,
            Ok(r) => return Err(format!("a connection of the {count} got {}", r.status)),
            Err(e) => return Err(format!("a connection of the {count} that was accepted failed: {e}")),
        }
    }
    let heap = ctx.settled_heap()?;
    let recovered = ctx.health()?;
    say(format!(
        "connections-at-once    {count} attempted: {served} connected and served, {refused} refused, 0 hung, in {:.2} s; \
         heap {heap} (baseline {baseline}); answering again after {:.2} s",
        start.elapsed().as_secs_f64(),
        recovered.as_secs_f64()
    ));
    if served == 0 {
        return Err("no connection of the burst was served".into());
    }

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
