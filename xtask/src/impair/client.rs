//! The damaged-link case's client (`cargo xtask lossy-client`, hidden), run
//! inside the boot's namespace by `ip netns exec`, so that it reaches the
//! guest only through the relay: sequential `GET /`s with a connection
//! each, parallel echo streams compared byte for byte, a final echo that
//! must complete, and `/stats` back to its baseline afterwards. It measures
//! the longest stall (time without progress) of every exchange.
//!
//! Every loop is bounded in count and time.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::clients::Pattern;
use crate::clients::read_response;

const GUEST_IP: Ipv4Addr = crate::testnet::GUEST_IP;
const HTTP: u16 = 80;
const ECHO: u16 = 7;
/// A stream that goes this long without a byte of progress has stalled
/// (issue 14's bar on its damaged link; at 10 % loss the bar is only that
/// everything completes intact).
pub const MAX_STALL: Duration = Duration::from_secs(2);
/// Connect and exchange limits: far above any recovery a working TCP needs
/// at these loss rates, so that a failure is a stall, not a slow link.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a whole echo stream may take before it counts as hung.
const STREAM_DEADLINE: Duration = Duration::from_secs(120);
/// How long the guest may take to serve at all, and to settle afterwards.
const RECOVERY: Duration = Duration::from_secs(60);
/// Heap the guest may hold above its baseline once everything is closed.
const HEAP_SLACK: u64 = 64 * 1024;
/// How often a blocked read wakes to measure the stall it is in.
const READ_TICK: Duration = Duration::from_millis(50);
const CHUNK: usize = 16 * 1024;

/// How much to send.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub name: &'static str,
    pub gets: usize,
    pub streams: usize,
    pub stream_bytes: usize,
    pub final_bytes: usize,
}

/// For `cargo xtask qemu`: well under a minute of a healthy guest's time.
pub const QUICK: Sizes = Sizes { name: "quick", gets: 50, streams: 4, stream_bytes: 256 << 10, final_bytes: 1 << 20 };
/// Issue 14's loads (less h2load).
pub const LONG: Sizes = Sizes { name: "long", gets: 300, streams: 4, stream_bytes: 4 << 20, final_bytes: 1 << 20 };

pub fn sizes(name: &str) -> Result<Sizes, String> {
    [QUICK, LONG].into_iter().find(|s| s.name == name).ok_or_else(|| format!("unknown size {name:?} (quick, long)"))
}

fn say(line: String) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let addr = SocketAddr::from((GUEST_IP, port));
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

/// A GET on a connection of its own, timed in two parts.
struct Got {
    status: u16,
    body: Vec<u8>,
    /// The three-way handshake: a lost SYN or SYN-ACK costs the initial
    /// retransmission timeout, 1 s on any stack (RFC 6298 2.1), 3 s if lost twice.
    handshake: Duration,
    /// From the request's write to the whole answer.
    exchange: Duration,
}

fn get_timed(path: &str) -> Result<Got, String> {
    let start = Instant::now();
    let mut s = connect(HTTP)?;
    let handshake = start.elapsed();
    // One write, so the request leaves as one segment, as curl's does.
    let request = format!("GET {path} HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let r = read_response(&mut s, &mut Vec::new(), false)?;
    Ok(Got { status: r.status, body: r.body, handshake, exchange: start.elapsed() - handshake })
}

fn get(path: &str) -> Result<(u16, Vec<u8>), String> {
    get_timed(path).map(|g| (g.status, g.body))
}

fn stats() -> Result<Value, String> {
    let start = Instant::now();
    loop {
        match get("/stats") {
            Ok((200, body)) => return serde_json::from_slice(&body).map_err(|e| format!("/stats is not JSON: {e}")),
            Ok((status, _)) => return Err(format!("/stats answered {status}")),
            Err(e) if start.elapsed() > RECOVERY => return Err(format!("/stats: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn number(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or(0)
}

/// Waits until every socket listens again; returns `/stats` then.
fn settled() -> Result<Value, String> {
    let start = Instant::now();
    loop {
        let s = stats()?;
        if crate::clients::pool_settled(&s) {
            return Ok(s);
        }
        if start.elapsed() > RECOVERY {
            return Err(format!(
                "connections still open {RECOVERY:?} after the load: {}",
                s.pointer("/pool").map_or(String::new(), Value::to_string)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What one echo stream did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stream {
    pub bytes: usize,
    pub elapsed: Duration,
    /// The longest time without a byte coming back.
    pub stall: Duration,
    /// Where in the stream that stall ended.
    pub stall_at: usize,
}

/// Sends `total` bytes through the echo port, full duplex, checking every
/// byte that comes back and timing the gaps between them.
pub fn echo(total: usize, seed: u64) -> Result<Stream, String> {
    let s = connect(ECHO)?;
    s.set_read_timeout(Some(READ_TICK)).map_err(|e| e.to_string())?;
    let mut reader = s.try_clone().map_err(|e| e.to_string())?;
    let mut writer = s;
    let start = Instant::now();
    let sender = std::thread::spawn(move || -> Result<(), String> {
        let mut pattern = Pattern(seed | 1);
        let mut chunk = vec![0u8; CHUNK];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            pattern.fill(&mut chunk[..n]);
            writer.write_all(&chunk[..n]).map_err(|e| format!("send at byte {sent}: {e}"))?;
            sent += n;
        }
        writer.shutdown(Shutdown::Write).map_err(|e| e.to_string())
    });
    let mut expected = Pattern(seed | 1);
    let (mut got, mut want) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut stream = Stream::default();
    let mut progress = Instant::now();
    let result = loop {
        if start.elapsed() > STREAM_DEADLINE {
            break Err(format!("not done after {STREAM_DEADLINE:?}"));
        }
        if progress.elapsed() > IO_TIMEOUT {
            break Err(format!("stalled: nothing for {IO_TIMEOUT:?}"));
        }
        let n = match reader.read(&mut got) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => break Err(format!("receive: {e}")),
        };
        let gap = progress.elapsed();
        if gap > stream.stall {
            (stream.stall, stream.stall_at) = (gap, stream.bytes);
        }
        progress = Instant::now();
        expected.fill(&mut want[..n]);
        if let Some(i) = (0..n).find(|&i| got[i] != want[i]) {
            break Err(format!("byte {} differs", stream.bytes + i));
        }
        stream.bytes += n;
        if stream.bytes > total {
            break Err("more bytes came back than were sent".into());
        }
    };
    stream.elapsed = start.elapsed();
    let what = |e: String| {
        format!(
            "echo of {total} bytes: {e} ({} bytes back, longest stall {:.2} s at byte {})",
            stream.bytes,
            stream.stall.as_secs_f64(),
            stream.stall_at
        )
    };
    result.map_err(what)?;
    // The sender ends once everything is written; a stalled one is caught above.
    sender.join().map_err(|_| "echo sender panicked".to_string())?.map_err(what)?;
    if stream.bytes != total {
        return Err(what("short".into()));
    }
    Ok(stream)
}

/// The damaged-link loads; prints a line per step, the summary last.
/// `max_stall`: the longest stall allowed, if any bar applies. `linux`: the
/// guest is the bench's Linux guest (no Skiff `/stats`), for comparison.
pub fn run_in_namespace(sizes: Sizes, max_stall: Option<Duration>, linux: bool) -> Result<(), String> {
    measure(sizes, max_stall, linux).map(|_| ())
}

/// Upper bounds of the GET latency histogram's buckets, in ms: a clean
/// exchange, one fast recovery, a retransmission timeout at the 200 ms
/// floor, the initial 1 s RTO, two of them. The last bucket is the rest.
/// How long the relay gets to take the mark in before the loads' first SYN
/// (it polls its socket at least every 100 ms, and at once when woken).
const MARK_PAUSE: Duration = Duration::from_millis(50);

pub const LATENCY_BUCKETS_MS: [u64; 5] = [20, 100, 400, 1_200, 3_500];

/// What the loads measured: the bench's rows behind the damaged link.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// The sequential GETs, a connection each: all of them.
    pub gets: Duration,
    /// How many GETs took how long, by [`LATENCY_BUCKETS_MS`] (one more
    /// bucket than bounds, for the rest).
    pub get_histogram: Vec<usize>,
    /// The handshakes' share of the GETs' time, summed.
    pub get_handshakes: Duration,
    /// The parallel echo streams, together.
    pub parallel: Duration,
    /// The final echo.
    pub final_echo: Duration,
    /// The longest stall of any exchange, and which.
    pub stall: Duration,
    pub stall_what: String,
}

fn histogram(latencies: &[Duration]) -> Vec<usize> {
    let mut counts = vec![0; LATENCY_BUCKETS_MS.len() + 1];
    for l in latencies {
        let ms = u64::try_from(l.as_millis()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_MS.iter().position(|&b| ms < b).unwrap_or(LATENCY_BUCKETS_MS.len());
        counts[i] += 1;
    }
    counts
}

fn histogram_text(counts: &[usize]) -> String {
    let mut low = 0;
    let mut parts = Vec::new();
    for (i, n) in counts.iter().enumerate() {
        parts.push(match LATENCY_BUCKETS_MS.get(i) {
            Some(&high) => {
                let part = format!("{low}-{high} ms: {n}");
                low = high;
                part
            }
            None => format!("over {low} ms: {n}"),
        });
    }
    parts.join(", ")
}

/// The loads, measured; see [`run_in_namespace`].
pub fn measure(sizes: Sizes, max_stall: Option<Duration>, linux: bool) -> Result<Figures, String> {
    let started = Instant::now();
    let wait = Instant::now();
    while get("/").map(|(status, _)| status) != Ok(200) {
        if wait.elapsed() > RECOVERY {
            return Err(format!("GET / did not answer 200 within {RECOVERY:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A Linux guest (the comparison, `--linux`) has no Skiff `/stats` to settle on.
    let before = if linux { Value::Null } else { settled()? };
    let baseline = number(&before, "/heap/in_use");
    if !linux {
        say(format!(
            "baseline: heap in use {baseline} bytes, {} sockets listening",
            number(&before, "/sockets/listen")
        ));
    }
    let mut stalls: Vec<(String, Duration)> = Vec::new();
    // The loads begin: the relay numbers connections from here, so that the
    // k-th connection of every guest meets the same damage (flows.rs). The
    // pause lets the mark reach it before the first SYN.
    super::relay::mark();
    std::thread::sleep(MARK_PAUSE);

    // Sequential GET /, a connection each.
    let t = Instant::now();
    let (mut handshake, mut exchange) = (Duration::ZERO, Duration::ZERO);
    let mut figures = Figures::default();
    let mut latencies = Vec::with_capacity(sizes.gets);
    // The slow ones, each with what took the time (SKIFF_LOSSY_SLOW=1 prints them).
    let mut slow = Vec::new();
    for i in 0..sizes.gets {
        let one = Instant::now();
        let got = get_timed("/").map_err(|e| format!("GET / number {i}: {e} after {:?}", one.elapsed()))?;
        if got.status != 200 || !String::from_utf8_lossy(&got.body).contains("Skiff") {
            return Err(format!("GET / number {i} answered {}", got.status));
        }
        handshake = handshake.max(got.handshake);
        exchange = exchange.max(got.exchange);
        figures.get_handshakes += got.handshake;
        let total = one.elapsed();
        latencies.push(total);
        if total.as_millis() >= u128::from(LATENCY_BUCKETS_MS[1]) {
            slow.push(format!(
                "#{i} at {:.3} s: handshake {:.3} s, exchange {:.3} s, closed after {:.3} s",
                t.elapsed().as_secs_f64() - total.as_secs_f64(),
                got.handshake.as_secs_f64(),
                got.exchange.as_secs_f64(),
                total.as_secs_f64()
            ));
        }
    }
    let gets = t.elapsed();
    figures.gets = gets;
    figures.get_histogram = histogram(&latencies);
    say(format!(
        "{} sequential GET /, a connection each: {:.1} s, {:.1} req/s; the slowest handshake {:.2} s, the slowest \
         request and answer {:.2} s; handshakes {:.1} s in all; by latency: {}",
        sizes.gets,
        gets.as_secs_f64(),
        sizes.gets as f64 / gets.as_secs_f64(),
        handshake.as_secs_f64(),
        exchange.as_secs_f64(),
        figures.get_handshakes.as_secs_f64(),
        histogram_text(&figures.get_histogram)
    ));
    if std::env::var_os("SKIFF_LOSSY_SLOW").is_some() {
        for line in slow {
            say(format!("  slow GET {line}"));
        }
    }
    // A handshake's wait is the initial RTO's, the same on every stack; the
    // bar is for what follows.
    stalls.push(("the slowest GET answer".into(), exchange));

    // Parallel echo streams.
    let t = Instant::now();
    let results: Vec<Result<Stream, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..sizes.streams).map(|i| scope.spawn(move || echo(sizes.stream_bytes, 0x5EED_0000 + i as u64))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("echo thread panicked".into()))).collect()
    });
    let parallel = t.elapsed();
    figures.parallel = parallel;
    let mut worst = Stream::default();
    for (i, r) in results.into_iter().enumerate() {
        let s = r.map_err(|e| format!("parallel echo stream {i}: {e}"))?;
        if s.stall >= worst.stall {
            worst = s;
        }
    }
    say(format!(
        "{} parallel echo streams of {} KiB, byte-checked: {:.1} s, {:.2} MiB/s together, longest stall {:.2} s \
         (at byte {})",
        sizes.streams,
        sizes.stream_bytes >> 10,
        parallel.as_secs_f64(),
        (sizes.streams * sizes.stream_bytes) as f64 / f64::from(1 << 20) / parallel.as_secs_f64(),
        worst.stall.as_secs_f64(),
        worst.stall_at
    ));
    stalls.push(("a parallel echo stream".into(), worst.stall));

    // A final echo that must complete.
    let last = echo(sizes.final_bytes, 0xF1A1).map_err(|e| format!("final {e}"))?;
    say(format!(
        "final echo of {} KiB: {:.1} s, longest stall {:.2} s (at byte {})",
        sizes.final_bytes >> 10,
        last.elapsed.as_secs_f64(),
        last.stall.as_secs_f64(),
        last.stall_at
    ));
    stalls.push(("the final echo".into(), last.stall));
    figures.final_echo = last.elapsed;
    let (what, stall) = stalls.iter().max_by_key(|(_, d)| *d).cloned().unwrap_or_default();
    (figures.stall, figures.stall_what) = (stall, what);

    // Back to baseline.
    if linux {
        return finish(&sizes, started, &stalls, max_stall).map(|()| figures);
    }
    let after = settled()?;
    let heap = number(&after, "/heap/in_use");
    let tcp: Vec<(String, u64)> = [
        "retransmit_timeouts",
        "fast_retransmits",
        "loss_probes",
        "out_of_order_kept",
        "out_of_order_dropped",
        "time_wait_fins_answered",
    ]
    .iter()
    .map(|k| {
        let path = format!("/tcp/{k}");
        (k.to_string(), number(&after, &path).saturating_sub(number(&before, &path)))
    })
    .collect();
    say(format!(
        "afterwards: {} sockets listening, heap in use {heap} bytes (baseline {baseline}); TCP loss recovery: {}; \
         device drops: {}",
        number(&after, "/sockets/listen"),
        tcp.iter().map(|(k, v)| format!("{k} +{v}")).collect::<Vec<_>>().join(", "),
        drop_deltas(&before, &after)
    ));
    if heap > baseline + HEAP_SLACK {
        return Err(format!("heap {heap} after the load, baseline {baseline}: it grew"));
    }
    // Frames were lost both ways: the guest must have recovered some itself.
    if tcp.iter().take(3).all(|(_, v)| *v == 0) {
        return Err("/stats counted no retransmission on a lossy link".into());
    }
    finish(&sizes, started, &stalls, max_stall).map(|()| figures)
}

/// The summary line, and the stall bar.
fn finish(
    sizes: &Sizes,
    started: Instant,
    stalls: &[(String, Duration)],
    max_stall: Option<Duration>,
) -> Result<(), String> {
    let (what, stall) = stalls.iter().max_by_key(|(_, d)| *d).cloned().unwrap_or_default();
    let summary = format!(
        "lossy {}: every byte intact in {:.1} s; longest stall {:.2} s ({what})",
        sizes.name,
        started.elapsed().as_secs_f64(),
        stall.as_secs_f64()
    );
    if let Some(bar) = max_stall
        && stall > bar
    {
        return Err(format!("{summary}: over the {bar:?} allowed"));
    }
    say(summary);
    Ok(())
}

/// Drop counters of the device that moved, by name.
fn drop_deltas(before: &Value, after: &Value) -> String {
    let Some(now) = after.pointer("/device").and_then(Value::as_object) else { return "(none)".into() };
    let moved: Vec<String> = now
        .iter()
        .filter(|(k, _)| k.contains("drop") || k.contains("csum") || k.contains("checksum"))
        .filter_map(|(k, v)| {
            let (v, old) = (v.as_u64()?, number(before, &format!("/device/{k}")));
            (v != old).then(|| format!("{k} +{}", v - old))
        })
        .collect();
    if moved.is_empty() { "none moved".into() } else { moved.join(", ") }
}

/// Runs the client inside `netns` (from the host side, in `cargo xtask
/// qemu`): its report lines, or why it failed (with the lines so far).
pub fn client(netns: &str, sizes: Sizes, max_stall: Option<Duration>) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask's own binary: {e}"))?;
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(exe)
        .args(["lossy-client", "--size", sizes.name])
        .args(["--max-stall-ms", &max_stall.map_or(0, |d| d.as_millis()).to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot start the damaged-link client: {e}"))?;
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    if out.status.success() {
        Ok(lines)
    } else {
        Err(format!("{}\n    after:\n      {}", String::from_utf8_lossy(&out.stderr).trim(), lines.join("\n      ")))
    }
}
