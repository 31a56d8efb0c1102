//! What every class is judged by: the guest's `/stats` before and after,
//! and the health checks (QEMU runs, ping, HTTP, TCP echo) once it is done.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ECHO, FAKE_IP, FAKE_MAC, GUEST_IP, GUEST_MAC, HTTP, IO_TIMEOUT, RECOVERY, Result, Rng, Sizes, say};
use crate::clients::read_response;
use crate::frames::{self, Ipv4, Mac};
use crate::rawlink::{FRAME_BUFFER, RawLink};
use crate::testnet::GATEWAY_IP;

/// What every class works with: the raw link to the guest, and the QEMU
/// process to watch.
pub(super) struct Ctx {
    pub(super) link: RawLink,
    pub(super) host_mac: Mac,
    pub(super) pid: u32,
    pub(super) rng: Rng,
    pub(super) sizes: Sizes,
}

/// A connection to the guest's `port` from the namespace's own stack.
pub(super) fn connect(port: u16) -> Result<TcpStream> {
    connect_within(port, IO_TIMEOUT)
}

/// As [`connect`], each step waiting at most `timeout`.
fn connect_within(port: u16, timeout: Duration) -> Result<TcpStream> {
    let addr = SocketAddr::from((GUEST_IP, port));
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

/// GET `path` on a fresh connection: (status, body).
fn get(path: &str) -> Result<(u16, Vec<u8>)> {
    get_within(path, IO_TIMEOUT)
}

/// As [`get`], each step (connect, write, read) waiting at most `timeout`.
fn get_within(path: &str, timeout: Duration) -> Result<(u16, Vec<u8>)> {
    let mut s = connect_within(HTTP, timeout)?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let r = read_response(&mut s, &mut Vec::new(), false)?;
    Ok((r.status, r.body))
}

/// A number in `/stats` (0 when it is missing).
pub(super) fn number(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or(0)
}

/// Frames that reached the driver and went nowhere: every drop counter the
/// guest publishes, by name.
fn drop_counters(v: &Value) -> Vec<(String, u64)> {
    v.pointer("/device")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter().filter(|(k, _)| k.contains("drop")).map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()
        })
        .unwrap_or_default()
}

/// The drop counters that moved between two `/stats`.
fn deltas(before: &Value, after: &Value) -> String {
    let b = drop_counters(before);
    let moved: Vec<String> = drop_counters(after)
        .into_iter()
        .filter_map(|(k, v)| {
            let old = b.iter().find(|(n, _)| *n == k).map_or(0, |(_, v)| *v);
            (v != old).then(|| format!("{k} +{}", v - old))
        })
        .collect();
    if moved.is_empty() { "no drop counter moved".into() } else { moved.join(", ") }
}

impl Ctx {
    pub(super) fn alive(&self) -> Result<()> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map_err(|_| "QEMU is gone: the guest stopped (see its serial log)".to_string())?;
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        if matches!(state, Some(Some('Z' | 'X'))) {
            return Err("QEMU exited: the guest stopped (see its serial log)".into());
        }
        Ok(())
    }

    pub(super) fn wait_serving(&self) -> Result<()> {
        self.serving_within(RECOVERY).map(|_| ())
    }

    /// Waits (at most `window`) until `GET /` answers 200; returns how long
    /// that took. Each try's connect waits at most what is left of `window`.
    pub(super) fn serving_within(&self, window: Duration) -> Result<Duration> {
        let start = Instant::now();
        while start.elapsed() < window {
            let left = window.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
            if get_within("/", left).is_ok_and(|(status, _)| status == 200) {
                return Ok(start.elapsed());
            }
            self.alive()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("GET / did not answer within {window:?}"))
    }

    pub(super) fn stats(&self) -> Result<Value> {
        let start = Instant::now();
        loop {
            match get("/stats") {
                Ok((200, body)) => {
                    return serde_json::from_slice(&body).map_err(|e| format!("/stats is not JSON: {e}"));
                }
                Ok((status, _)) => return Err(format!("/stats answered {status}")),
                Err(e) if start.elapsed() > RECOVERY => return Err(format!("/stats: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Tells the guest where `FAKE_IP` is: smoltcp fills its neighbour cache
    /// from ARP requests for its own address.
    pub(super) fn announce(&self) -> Result<()> {
        let a = frames::arp(1, FAKE_MAC, FAKE_IP, [0; 6], GUEST_IP);
        self.link.send(&frames::ethernet([0xFF; 6], FAKE_MAC, frames::ETHERTYPE_ARP, &a))?;
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }

    /// An ICMP echo request from the namespace's own address, and its reply.
    fn ping(&mut self) -> Result<Duration> {
        let start = Instant::now();
        let ident = self.rng.next() as u16;
        let mut buf = [0u8; FRAME_BUFFER];
        for seq in 0..40u16 {
            let icmp = frames::icmp_echo(frames::ICMP_ECHO_REQUEST, ident, seq, b"skiff hostile ping");
            let ip = Ipv4::new(GATEWAY_IP, GUEST_IP, frames::PROTO_ICMP);
            self.link.send(&frames::ipv4_frame(GUEST_MAC, self.host_mac, &ip, &icmp))?;
            let deadline = Instant::now() + Duration::from_millis(250);
            while let Some(n) = self.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) {
                if frames::parse_echo_reply(&buf[..n]) == Some((GUEST_IP, ident, seq)) {
                    return Ok(start.elapsed());
                }
            }
        }
        Err("no ICMP echo reply in 10 s".into())
    }

    fn echo_ok(&mut self) -> Result<()> {
        let mut data = vec![0u8; 16 * 1024];
        self.rng.fill(&mut data);
        // Right after a flood the echo sockets may still be taken: retry a refused connect.
        let start = Instant::now();
        let mut s = loop {
            match connect(ECHO) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > RECOVERY => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        s.write_all(&data).map_err(|e| format!("echo write: {e}"))?;
        let mut back = vec![0u8; data.len()];
        s.read_exact(&mut back).map_err(|e| format!("echo read: {e}"))?;
        if back != data {
            return Err("echo returned different bytes".into());
        }
        Ok(())
    }

    /// The checks after every class: QEMU runs, ping, HTTP, echo. Returns
    /// how long until the guest answered HTTP again.
    pub(super) fn health(&mut self) -> Result<Duration> {
        self.alive()?;
        let start = Instant::now();
        self.wait_serving()?;
        let recovered = start.elapsed();
        let (status, body) = get("/")?;
        if status != 200 || !String::from_utf8_lossy(&body).contains("Skiff") {
            return Err(format!("GET / answered {status}"));
        }
        self.ping()?;
        self.echo_ok()?;
        self.alive()?;
        Ok(recovered)
    }

    /// Waits until every connection is back in the pool; returns heap in use then.
    /// As [`settled_heap`](Self::settled_heap), but also waits (within
    /// `RECOVERY`) for the heap to come back within `HEAP_SLACK` of
    /// `baseline`: memory a flood's connections held is freed as the guest
    /// works through them, after the pool's counts already read settled. A
    /// heap still above it then is what the caller reports; the guest's
    /// sockets and pool are printed with it, for the log.
    pub(super) fn heap_back_to(&self, baseline: u64) -> Result<u64> {
        let start = Instant::now();
        loop {
            let heap = self.settled_heap()?;
            if heap <= baseline + super::HEAP_SLACK || start.elapsed() >= RECOVERY {
                if heap > baseline + super::HEAP_SLACK {
                    let last = self.stats()?;
                    say(format!(
                        "heap {heap} above baseline {baseline}: sockets {}, pool {}",
                        last["sockets"], last["pool"]
                    ));
                }
                return Ok(heap);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub(super) fn settled_heap(&self) -> Result<u64> {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < RECOVERY {
            last = self.stats()?;
            // One connection is busy answering whoever asks for `/stats`.
            if crate::clients::pool_settled(&last) {
                return Ok(number(&last, "/heap/in_use"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("connections did not go back to the pool within {RECOVERY:?}: {}", last["pool"]))
    }

    /// Runs one class: `send` returns the frames it sent and the counters
    /// that must rise by exactly how much; then the health checks.
    pub(super) fn class(
        &mut self,
        name: &str,
        send: impl FnOnce(&mut Ctx) -> Result<(usize, Vec<(&'static str, u64)>)>,
    ) -> Result<()> {
        let before = self.stats()?;
        let start = Instant::now();
        let (sent, expect) = send(self).map_err(|e| format!("{name}: {e}"))?;
        let sending = start.elapsed();
        let sent_at = Instant::now();
        // Counters move as the guest works through its queue: wait for them.
        let mut after = self.stats()?;
        let answered = sent_at.elapsed();
        let wait = Instant::now();
        let reached = |after: &Value| expect.iter().all(|(path, n)| number(after, path) >= number(&before, path) + n);
        while !reached(&after) && wait.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            after = self.stats()?;
        }
        for (path, n) in &expect {
            let moved = number(&after, path) - number(&before, path);
            if moved != *n {
                return Err(format!("{name}: {path} rose by {moved}, expected {n} ({sent} frames sent)"));
            }
        }
        self.health().map_err(|e| format!("after {name}: {e}"))?;
        say(format!(
            "{name:22} {sent:>6} frames in {:.2} s; {}; HTTP answered {:.2} s after the last frame, \
             ping, HTTP and echo all {:.2} s after",
            sending.as_secs_f64(),
            deltas(&before, &after),
            answered.as_secs_f64(),
            sent_at.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}
