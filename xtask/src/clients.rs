//! Host-side clients for a serving guest: what `cargo xtask qemu` checks
//! over QEMU's user network (`hostfwd` on 127.0.0.1) — curl for pages and
//! JSON, raw sockets for keep-alive, pipelining, bad requests, many clients
//! at once, an idle timeout, and a large echo stream compared byte for byte.
//!
//! Every loop is bounded in count and time.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Result, testnet};

/// The guest's forwarded ports on 127.0.0.1.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub http: u16,
    pub echo: u16,
}

/// How long a single exchange may take under TCG.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn connect(port: u16) -> Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect to port {port}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

/// One HTTP response read from a stream: status, headers, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one response (Content-Length framed) from `stream`, after the
/// bytes already in `buffer`. `head_only` for responses to HEAD.
pub fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>, head_only: bool) -> Result<Response> {
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).map_err(|e| format!("reading a response: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed before a response ({} bytes)", buffer.len()));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))).collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .ok_or("response without Content-Length")?;
    let length = if head_only { 0 } else { length };
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).map_err(|e| format!("reading a body: {e}"))?;
        if n == 0 {
            return Err("connection closed in the middle of a body".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Ok(Response { status, headers, body })
}

/// Sends `request` on a fresh connection and reads one response.
fn exchange(port: u16, request: &[u8]) -> Result<Response> {
    let mut s = connect(port)?;
    s.write_all(request).map_err(|e| e.to_string())?;
    read_response(&mut s, &mut Vec::new(), request.starts_with(b"HEAD"))
}

/// Waits until GET / answers 200; returns how long that took.
pub fn wait_until_serving(port: u16, within: Duration) -> Result<Duration> {
    // Short attempts: QEMU's user network accepts a forwarded connection
    // before the guest does, and retries its SYN to the guest only after
    // seconds; a fresh connection is quicker than waiting on a stale one.
    const ATTEMPT: Duration = Duration::from_millis(500);
    let start = Instant::now();
    while start.elapsed() < within {
        let attempt = connect(port).and_then(|mut s| {
            s.set_read_timeout(Some(ATTEMPT)).map_err(|e| e.to_string())?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
            read_response(&mut s, &mut Vec::new(), false)
        });
        if attempt.is_ok_and(|r| r.status == 200) {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("GET / did not answer 200 within {within:?}"))
}

pub fn curl(url: &str) -> Result<String> {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "30", url])
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl {url}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("curl {url}: not UTF-8: {e}"))
}

/// `/` and `/stats` with curl; the JSON parsed and checked.
pub fn pages(ports: Ports) -> Result<serde_json::Value> {
    let base = format!("http://127.0.0.1:{}", ports.http);
    let index = curl(&format!("{base}/"))?;
    if !index.contains("Skiff") || !index.contains("href=\"/stats") {
        return Err(format!("GET / does not say what Skiff is or link to /stats: {index:.200}"));
    }
    let page = curl(&format!("{base}/stats.html"))?;
    if !page.contains("http-equiv=\"refresh\"") || !page.contains("uptime_ms") {
        return Err("GET /stats.html is not a refreshing view of the stats".into());
    }
    stats(ports)
}

/// `/stats`, parsed, with the fields every later check relies on.
pub fn stats(ports: Ports) -> Result<serde_json::Value> {
    let mac = testnet::guest_mac_text();
    let text = curl(&format!("http://127.0.0.1:{}/stats", ports.http))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("/stats is not JSON: {e}: {text:.200}"))?;
    let field = |path: &str| json.pointer(path).ok_or_else(|| format!("/stats has no {path}"));
    if field("/mac")? != mac.as_str() {
        return Err(format!("/stats mac {} != {mac}", field("/mac")?));
    }
    if field("/ipv4/address")? != testnet::guest_cidr().as_str() {
        return Err(format!("/stats ipv4 address {}", field("/ipv4/address")?));
    }
    if !field("/features")?.as_str().is_some_and(|f| f.contains("VERSION_1")) {
        return Err("/stats features lack VERSION_1".into());
    }
    for path in
        ["/uptime_ms", "/device/rx_frames", "/device/tx_frames", "/heap/in_use", "/heap/peak", "/interrupts/total"]
    {
        if !field(path)?.is_u64() {
            return Err(format!("/stats {path} is not a number"));
        }
    }
    if field("/sockets/listen")?.as_u64().unwrap_or(0) == 0 {
        return Err("/stats shows no listening sockets".into());
    }
    Ok(json)
}

/// Whether `/stats` shows the guest's connection pool settled: nothing
/// half-open or waiting, and no connection but the one that asked
/// (net/src/pool.rs).
pub fn pool_settled(stats: &serde_json::Value) -> bool {
    let n = |path: &str| stats.pointer(path).and_then(|v| v.as_u64());
    n("/pool/half_open") == Some(0) && n("/pool/queued") == Some(0) && n("/pool/established").is_some_and(|e| e <= 1)
}

/// Waits until the guest's connections are all gone (from `/stats`): after
/// a burst of connections that the server closed, their sockets must go
/// back to the pool within seconds.
pub fn settle(ports: Ports) -> Result<()> {
    let start = Instant::now();
    let mut last = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(10) {
        last = stats(ports)?;
        if pool_settled(&last) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("connections still open 10 s after the load: sockets leaked: {}", last["pool"]))
}

/// One field of `/stats`, as text.
pub fn stats_field(port: u16, pointer: &str) -> Result<String> {
    let text = curl(&format!("http://127.0.0.1:{port}/stats"))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("/stats is not JSON: {e}"))?;
    let value = json.pointer(pointer).ok_or_else(|| format!("/stats has no {pointer}"))?;
    Ok(value.as_str().map_or_else(|| value.to_string(), str::to_string))
}

/// One counter of `/stats` (0 if it is not a number).
pub fn stats_number(port: u16, pointer: &str) -> Result<u64> {
    stats_field(port, pointer).map(|v| v.parse().unwrap_or(0))
}

/// The share of one host core the process `pid` used over `period`, from
/// `/proc/PID/stat` (user and system time, in clock ticks).
pub fn cpu_share(pid: u32, period: Duration) -> Result<f64> {
    let ticks = || -> Result<u64> {
        let stat =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("odd /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line: 11 and 12 after ")".
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or("odd /proc stat fields");
        Ok(field(11)? + field(12)?)
    };
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    let (before, start) = (ticks()?, Instant::now());
    std::thread::sleep(period);
    let (after, elapsed) = (ticks()?, start.elapsed());
    Ok((after - before) as f64 / hz / elapsed.as_secs_f64())
}

/// Many requests over one connection; returns requests per second.
pub fn keep_alive(port: u16, requests: usize) -> Result<f64> {
    let mut s = connect(port)?;
    let mut buffer = Vec::new();
    let start = Instant::now();
    for i in 0..requests {
        let head = i % 10 == 9;
        let request: &[u8] = if head {
            b"HEAD /stats HTTP/1.1\r\nHost: skiff\r\n\r\n"
        } else {
            b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n"
        };
        s.write_all(request).map_err(|e| format!("request {i} on a kept-alive connection: {e}"))?;
        let r = read_response(&mut s, &mut buffer, head)?;
        if r.status != 200 || r.header("connection") != Some("keep-alive") {
            return Err(format!("request {i}: status {} connection {:?}", r.status, r.header("connection")));
        }
        if head != r.body.is_empty() {
            return Err(format!("request {i}: a {} body for {}", r.body.len(), if head { "HEAD" } else { "GET" }));
        }
    }
    Ok(requests as f64 / start.elapsed().as_secs_f64())
}

/// Three requests in one write come back in order; the last closes.
pub fn pipelining(port: u16) -> Result<()> {
    let mut s = connect(port)?;
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\nGET /missing HTTP/1.1\r\nHost: skiff\r\n\r\nHEAD /stats HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n",
    )
    .map_err(|e| e.to_string())?;
    let mut buffer = Vec::new();
    let statuses = [
        read_response(&mut s, &mut buffer, false)?.status,
        read_response(&mut s, &mut buffer, false)?.status,
        read_response(&mut s, &mut buffer, true)?.status,
    ];
    if statuses != [200, 404, 200] {
        return Err(format!("pipelined statuses {statuses:?}, want [200, 404, 200]"));
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).map_err(|e| format!("after Connection: close: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last response", rest.len()));
    }
    Ok(())
}

/// Each bad request gets its status, and the server answers the next one.
pub fn bad_requests(port: u16) -> Result<usize> {
    let big_header = format!("GET / HTTP/1.1\r\nHost: skiff\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("malformed request line", b"GARBAGE\r\n\r\n".to_vec(), 400),
        ("malformed header", b"GET / HTTP/1.1\r\nHost: skiff\r\nNo colon here\r\n\r\n".to_vec(), 400),
        ("unknown route", b"GET /nowhere HTTP/1.1\r\nHost: skiff\r\n\r\n".to_vec(), 404),
        ("unsupported method", b"POST / HTTP/1.1\r\nHost: skiff\r\nContent-Length: 2\r\n\r\nhi".to_vec(), 405),
        ("unknown method", b"BREW / HTTP/1.1\r\nHost: skiff\r\n\r\n".to_vec(), 501),
        ("headers over 8 KiB", big_header.into_bytes(), 431),
        ("body over the limit", b"GET / HTTP/1.1\r\nHost: skiff\r\nContent-Length: 100000\r\n\r\n".to_vec(), 413),
        ("chunked request", b"GET / HTTP/1.1\r\nHost: skiff\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), 501),
    ];
    for (what, request, want) in &cases {
        let response = exchange(port, request).map_err(|e| format!("{what}: {e}"))?;
        if response.status != *want || !response.body.starts_with(want.to_string().as_bytes()) {
            return Err(format!("{what}: status {}, want {want}", response.status));
        }
        let after = exchange(port, b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n")
            .map_err(|e| format!("after {what}: {e}"))?;
        if after.status != 200 {
            return Err(format!("after {what}: GET / answered {}", after.status));
        }
    }
    // Byte soup, then a good request on a new connection.
    for seed in 0..20u32 {
        let mut s = connect(port)?;
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        let soup: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = s.write_all(&soup);
        let _ = s.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    let after = exchange(port, b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n")?;
    if after.status != 200 {
        return Err(format!("after byte soup: GET / answered {}", after.status));
    }
    Ok(cases.len())
}

/// Opens `count` connections one after another. QEMU's user network listens
/// for forwarded connections with a backlog of one: connections attempted all
/// at once overflow it, and the host resets some of them before the guest
/// ever sees them. Opened in turn, they are all real, and all open at once.
fn connect_all(port: u16, count: usize) -> Result<Vec<TcpStream>> {
    (0..count).map(|_| connect(port)).collect()
}

/// `clients` connections at once, each doing `requests` keep-alive requests.
pub fn parallel(port: u16, clients: usize, requests: usize) -> Result<f64> {
    let streams = connect_all(port, clients)?;
    let start = Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = streams
            .into_iter()
            .map(|mut s| {
                scope.spawn(move || {
                    let mut buffer = Vec::new();
                    for i in 0..requests {
                        s.write_all(b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n")
                            .map_err(|e| format!("request {i}: {e}"))?;
                        let r = read_response(&mut s, &mut buffer, false)?;
                        if r.status != 200 {
                            return Err(format!("request {i}: status {}", r.status));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("client thread panicked".into()))).collect()
    });
    let failed: Vec<_> = results.into_iter().filter_map(|r| r.err()).collect();
    if !failed.is_empty() {
        return Err(format!("{} of {clients} clients failed, first: {}", failed.len(), failed[0]));
    }
    Ok((clients * requests) as f64 / start.elapsed().as_secs_f64())
}

/// More connections than listening sockets: the extra ones are refused or
/// closed, none hangs, and the server answers afterwards.
pub fn overload(port: u16, connections: usize) -> Result<usize> {
    // Each request goes out as its connection opens; no answer is read
    // until all are open.
    let mut streams = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..connections {
        let mut s = connect(port)?;
        sent.push(s.write_all(b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n").is_ok());
        streams.push(s);
    }
    let mut answered = 0;
    for (s, sent) in streams.iter_mut().zip(sent) {
        s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        if sent && read_response(s, &mut Vec::new(), false).is_ok_and(|r| r.status == 200) {
            answered += 1;
        }
    }
    drop(streams);
    // The guest sees the 48 connections close over a few round trips; it
    // must be serving again within seconds.
    wait_until_serving(port, Duration::from_secs(30)).map_err(|e| format!("after {connections} connections: {e}"))?;
    Ok(answered)
}

/// An idle connection is closed by the server within `expect` (plus slack).
pub fn idle_timeout(port: u16, expect: Duration) -> Result<Duration> {
    let mut s = connect(port)?;
    s.set_read_timeout(Some(expect * 5)).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) | Err(_) if start.elapsed() >= expect / 2 => Ok(start.elapsed()),
        Ok(0) | Err(_) => Err(format!("closed after {:?}, before the idle timeout", start.elapsed())),
        Ok(_) => Err("the server sent data to an idle connection".into()),
    }
}

/// Deterministic test bytes (xorshift), so both sides can produce them.
pub(crate) struct Pattern(pub(crate) u64);

impl Pattern {
    /// Fills `buf` with the next bytes of the stream.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// Streams `total` bytes through the echo port, full duplex, comparing what
/// comes back byte for byte; returns MiB/s.
pub fn echo_stream(port: u16, total: usize) -> Result<f64> {
    let s = connect(port)?;
    let mut reader = s.try_clone().map_err(|e| e.to_string())?;
    let mut writer = s;
    let start = Instant::now();
    let sender = std::thread::spawn(move || -> Result<()> {
        let mut pattern = Pattern(0x5EED_F00D);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            pattern.fill(&mut chunk[..n]);
            writer.write_all(&chunk[..n]).map_err(|e| format!("echo send at {sent}: {e}"))?;
            sent += n;
        }
        writer.shutdown(Shutdown::Write).map_err(|e| e.to_string())
    });
    let mut expected = Pattern(0x5EED_F00D);
    let mut got = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut received = 0;
    loop {
        let n = reader.read(&mut got).map_err(|e| format!("echo receive at {received}: {e}"))?;
        if n == 0 {
            break;
        }
        expected.fill(&mut want[..n]);
        if let Some(i) = (0..n).find(|&i| got[i] != want[i]) {
            return Err(format!("echo differs at byte {}", received + i));
        }
        received += n;
        if received > total {
            return Err(format!("echo returned {received} bytes of {total}"));
        }
    }
    sender.join().map_err(|_| "echo sender panicked".to_string())??;
    if received != total {
        return Err(format!("echo returned {received} of {total} bytes"));
    }
    Ok(total as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64())
}

/// Many echo connections at once, each a small exchange.
pub fn echo_parallel(port: u16, clients: usize) -> Result<()> {
    let streams = connect_all(port, clients)?;
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                scope.spawn(move || {
                    let msg = format!("client {i} says hello\n").repeat(100);
                    s.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
                    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
                    let mut back = Vec::new();
                    s.read_to_end(&mut back).map_err(|e| e.to_string())?;
                    if back != msg.as_bytes() { Err(format!("client {i}: echo differs")) } else { Ok(()) }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("client thread panicked".into()))).collect()
    });
    results.into_iter().collect()
}
