//! The soak: mixed HTTP and echo traffic in parallel, every response checked.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::checks::{Ctx, connect, number};
use super::{ECHO, HEAP_SLACK, HTTP, Result, Rng, say};
use crate::clients::{Response, read_response};

/// Mixed HTTP and echo traffic in parallel: keep-alive, a connection per
/// request, pipelined batches, echo streams. Every response is checked.
pub(super) fn run(ctx: &mut Ctx, baseline: u64) -> Result<()> {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Pattern {
        KeepAlive,
        /// A connection per request, closed by the server (`Connection: close`).
        ServerCloses,
        /// A connection per request, closed by the client after the answer.
        ClientCloses,
        Pipelined,
    }
    /// The HTTP clients, one pattern each.
    const KINDS: [Pattern; 8] = [
        Pattern::KeepAlive,
        Pattern::Pipelined,
        Pattern::ServerCloses,
        Pattern::KeepAlive,
        Pattern::Pipelined,
        Pattern::ClientCloses,
        Pattern::KeepAlive,
        Pattern::Pipelined,
    ];
    /// Requests on one keep-alive connection before it is replaced.
    const RENEW_AFTER: usize = 1000;
    const ECHO_WORKERS: usize = 4;
    const PIPELINE_DEPTH: usize = 16;
    const ECHO_CHUNK: usize = 64 * 1024;
    let total = ctx.sizes.soak_requests;
    let echo_total = ctx.sizes.soak_echo_bytes;
    let workers = KINDS.len();
    let per_worker = total.div_ceil(workers);
    let requests = AtomicU64::new(0);
    let echoed = AtomicU64::new(0);
    let start = Instant::now();
    let before = ctx.stats()?;
    let result: Result<()> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for w in 0..workers {
            let requests = &requests;
            handles.push(scope.spawn(move || -> Result<()> {
                let kind = KINDS[w % KINDS.len()];
                let label = |e: String| format!("soak HTTP client {w} ({kind:?}): {e}");
                let check = |r: &Response| -> Result<()> {
                    if r.status != 200 || !String::from_utf8_lossy(&r.body).contains("Skiff") {
                        return Err(format!("a response was {} with {} bytes", r.status, r.body.len()));
                    }
                    Ok(())
                };
                let mut done = 0;
                let mut stream: Option<(TcpStream, Vec<u8>)> = None;
                let mut on_connection = 0;
                while done < per_worker {
                    let depth = match kind {
                        Pattern::ServerCloses => {
                            let mut s = connect(HTTP).map_err(label)?;
                            s.write_all(b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n")
                                .map_err(|e| label(e.to_string()))?;
                            check(&read_response(&mut s, &mut Vec::new(), false).map_err(label)?).map_err(label)?;
                            1
                        }
                        Pattern::ClientCloses => {
                            let mut s = connect(HTTP).map_err(label)?;
                            s.write_all(b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n").map_err(|e| label(e.to_string()))?;
                            check(&read_response(&mut s, &mut Vec::new(), false).map_err(label)?).map_err(label)?;
                            1
                        }
                        Pattern::KeepAlive | Pattern::Pipelined => {
                            // Keep-alive connections are renewed now and then, as browsers do.
                            if stream.is_none() || on_connection >= RENEW_AFTER {
                                stream = Some((connect(HTTP).map_err(label)?, Vec::new()));
                                on_connection = 0;
                            }
                            let Some((s, buf)) = stream.as_mut() else { return Err(label("no connection".into())) };
                            let depth =
                                if kind == Pattern::Pipelined { PIPELINE_DEPTH.min(per_worker - done) } else { 1 };
                            let batch = b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n".repeat(depth);
                            s.write_all(&batch).map_err(|e| label(e.to_string()))?;
                            for _ in 0..depth {
                                check(&read_response(s, buf, false).map_err(label)?).map_err(label)?;
                            }
                            depth
                        }
                    };
                    done += depth;
                    on_connection += depth;
                    requests.fetch_add(depth as u64, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        for w in 0..ECHO_WORKERS {
            let echoed = &echoed;
            let share = echo_total / ECHO_WORKERS;
            handles.push(scope.spawn(move || -> Result<()> {
                let s = connect(ECHO)?;
                let mut reader = s.try_clone().map_err(|e| e.to_string())?;
                let mut seed = Rng::from_os();
                let seed = seed.next();
                let writer = std::thread::spawn(move || -> Result<()> {
                    let mut s = s;
                    let mut rng = Rng(seed | 1);
                    let mut chunk = vec![0u8; ECHO_CHUNK];
                    let mut left = share;
                    while left > 0 {
                        let n = left.min(ECHO_CHUNK);
                        rng.fill(&mut chunk[..n]);
                        s.write_all(&chunk[..n]).map_err(|e| format!("echo {w} write: {e}"))?;
                        left -= n;
                    }
                    let _ = s.shutdown(Shutdown::Write);
                    Ok(())
                });
                let mut rng = Rng(seed | 1);
                let mut want = vec![0u8; ECHO_CHUNK];
                let mut got = vec![0u8; ECHO_CHUNK];
                let mut left = share;
                while left > 0 {
                    let n = left.min(ECHO_CHUNK);
                    rng.fill(&mut want[..n]);
                    reader.read_exact(&mut got[..n]).map_err(|e| format!("echo {w} read: {e}"))?;
                    if got[..n] != want[..n] {
                        return Err(format!("echo {w}: bytes differ after {} bytes", share - left));
                    }
                    left -= n;
                    echoed.fetch_add(n as u64, Ordering::Relaxed);
                }
                writer.join().map_err(|_| "echo writer panicked".to_string())??;
                Ok(())
            }));
        }
        for h in handles {
            h.join().map_err(|_| "a soak client panicked".to_string())??;
        }
        Ok(())
    });
    result?;
    let elapsed = start.elapsed();
    let heap_after = ctx.settled_heap()?;
    let after = ctx.stats()?;
    let peak = number(&after, "/heap/peak");
    let served = number(&after, "/apps/http_requests") - number(&before, "/apps/http_requests");
    let recovered = ctx.health()?;
    say(format!(
        "soak                   {} HTTP requests ({served} counted by the guest) and {} MiB echoed in {:.1} s ({:.0} req/s, \
         {:.1} MiB/s echo), no client error; heap {baseline} before, {heap_after} after (peak {peak}); {} sockets listening; \
         answering again after {:.2} s",
        requests.load(Ordering::Relaxed),
        echoed.load(Ordering::Relaxed) >> 20,
        elapsed.as_secs_f64(),
        requests.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        (echoed.load(Ordering::Relaxed) >> 20) as f64 / elapsed.as_secs_f64(),
        number(&after, "/sockets/listen"),
        recovered.as_secs_f64()
    ));
    if (served as usize) < total {
        return Err(format!("the guest counted {served} requests, {total} were sent"));
    }
    if heap_after > baseline + HEAP_SLACK {
        return Err(format!("heap {heap_after} after the soak, baseline {baseline}: it grew"));
    }
    Ok(())
}
