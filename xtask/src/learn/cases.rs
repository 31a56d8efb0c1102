//! The suite's boots for the learner's guide: the packet trace of one
//! request, the checksums of captured traffic with and without offload, and
//! the live page in headless Chromium.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{page, pcap, trace};
use crate::clients;
use crate::qemu::{self, Backend, Boot, Forward, Nic};
use crate::suite::{Case, Expect, free_port};
use crate::testnet::{DISCARD_PORT as UDP_DISCARD_PORT, ECHO_PORT, GUEST_IP, GUEST_MAC};

/// How long the TAP boots wait for DHCP before the static address: there is
/// no DHCP server there, but the guest's DISCOVERs are the UDP it sends.
const TAP_CMDLINE: &str = "net.dhcp_wait_ms=300";
/// Bytes sent through the echo port, so that the capture holds some data.
const ECHO_PROBE: &[u8] = b"a few bytes for the capture\n";

fn serving(
    name: &'static str,
    nic: Nic,
    cmdline: &str,
    expect: Expect,
    timeout: Duration,
    client: Box<crate::suite::ClientFn>,
) -> Case {
    Case {
        name,
        boot: Boot { cmdline: cmdline.into(), nic: Some(nic), ..Boot::default() },
        expect,
        timeout,
        client: Some(client),
    }
}

/// The learner's boots.
pub fn cases(timeout: Duration) -> Vec<Case> {
    let trace_port = free_port();
    let (pcap_http, pcap_echo) = (free_port(), free_port());
    let page_port = free_port();
    let user_pcap = capture_path("serve-pcap-user");
    let user_nic = Nic {
        forwards: vec![Forward::http(pcap_http), Forward::echo(pcap_echo)],
        pcap: Some(user_pcap.clone()),
        ..Nic::default()
    };
    // With offloads on, the packet trace is on too: the same big frames
    // seen from inside (`trace::check_offloads`) and in the capture.
    let tap = |offload: bool, name: &'static str| {
        let path = capture_path(name);
        let nic = Nic { backend: Backend::Tap, offload, pcap: Some(path.clone()), ..Nic::default() };
        let (cmdline, expect) = match offload {
            true => (super::with_trace(TAP_CMDLINE), Expect::ServesPrinting(trace::check_offloads)),
            false => (TAP_CMDLINE.to_string(), Expect::Serves),
        };
        serving(name, nic, &cmdline, expect, timeout, Box::new(move |_| tap_capture(name, &path, offload)))
    };
    vec![
        serving(
            "serve-trace",
            Nic { forwards: vec![Forward::http(trace_port)], ..Nic::default() },
            "log=info,packet=trace",
            Expect::ServesPrinting(trace::check_journey),
            timeout,
            Box::new(move |_| {
                clients::wait_until_serving(trace_port, Duration::from_secs(60))?;
                let status = get_status(trace_port, trace::PATH)?;
                if status != 404 {
                    return Err(format!("GET {} answered {status}, expected 404", trace::PATH));
                }
                let docs = stats_samples_match(trace_port)?;
                Ok(format!("GET {} answered {status}; {docs}", trace::PATH))
            }),
        ),
        serving(
            "serve-pcap-user",
            user_nic,
            "",
            Expect::Serves,
            timeout,
            Box::new(move |_| user_capture(pcap_http, pcap_echo, &user_pcap)),
        ),
        tap(true, "serve-pcap-tap-offload"),
        tap(false, "serve-pcap-tap-no-offload"),
        serving(
            "serve-live-page",
            Nic { forwards: vec![Forward::http(page_port)], ..Nic::default() },
            "",
            Expect::Serves,
            timeout,
            Box::new(move |_| page::check(page_port)),
        ),
    ]
}

/// The `/stats` samples in README.md and docs/ have the keys a live
/// `/stats` has (xtask/src/doccheck/stats.rs).
fn stats_samples_match(port: u16) -> Result<String, String> {
    let live = clients::curl(&format!("http://127.0.0.1:{port}/stats"))?;
    let root = crate::root();
    let docs = crate::doccheck::load_docs(&root)?;
    let problems = crate::doccheck::stats::check(&docs, &live);
    if !problems.is_empty() {
        return Err(crate::doccheck::report(&problems));
    }
    Ok("the docs' /stats samples have the live keys".into())
}

/// Where a boot's capture goes. QEMU's `filter-dump` truncates the file when
/// it opens it, so a capture never holds an earlier boot's frames.
fn capture_path(name: &str) -> PathBuf {
    qemu::workdir(name).join("capture.pcap")
}

/// GET `path` on a fresh connection; the response's status code.
fn get_status(port: u16, path: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    s.read_to_end(&mut response).map_err(|e| format!("reading the response: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|code| code.parse().ok()).ok_or_else(|| format!("bad response {text:.80}"))
}

/// Waits until `path` has stopped growing: QEMU writes each frame as it
/// passes, and the last ones of an exchange may still be on their way.
fn settled(path: &Path) {
    let size = || std::fs::metadata(path).map_or(0, |m| m.len());
    let mut last = size();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = size();
        if now == last && now > 0 {
            return;
        }
        last = now;
    }
}

/// User network, no offload: DHCP at boot is UDP both ways; HTTP and echo are TCP.
fn user_capture(http: u16, echo: u16, path: &Path) -> Result<String, String> {
    clients::wait_until_serving(http, Duration::from_secs(60))?;
    for page in ["/", "/stats"] {
        let status = get_status(http, page)?;
        if status != 200 {
            return Err(format!("GET {page} answered {status}"));
        }
    }
    let mut s = TcpStream::connect(("127.0.0.1", echo)).map_err(|e| format!("echo: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    s.write_all(ECHO_PROBE).map_err(|e| e.to_string())?;
    let mut back = vec![0u8; ECHO_PROBE.len()];
    s.read_exact(&mut back).map_err(|e| format!("echo: {e}"))?;
    drop(s);
    settled(path);
    let tally = pcap::check(path, false, GUEST_MAC)?;
    if tally.partial != 0 {
        return Err(format!("{} partial checksums on a network without offload", tally.partial));
    }
    Ok(format!(
        "tshark: all checksums good in {} frames (TCP {} out {} in, UDP {} out {} in), no offload",
        tally.frames, tally.tcp_tx, tally.tcp_rx, tally.udp_tx, tally.udp_rx
    ))
}

/// Runs a command inside the boot's network namespace.
fn in_namespace(case: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &crate::netns::namespace_name(case)])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A `/proc/net/snmp` counter of the namespace's own stack (`Tcp`, `InCsumErrors`).
fn snmp(case: &str, protocol: &str, counter: &str) -> Result<u64, String> {
    let text = in_namespace(case, &["cat", "/proc/net/snmp"])?;
    let mut rows = text.lines().filter(|l| l.starts_with(&format!("{protocol}:")));
    let (names, values) = (rows.next().unwrap_or_default(), rows.next().unwrap_or_default());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == counter)
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| format!("no {protocol} {counter} in /proc/net/snmp"))
}

/// Bytes the TAP capture's echo sends: several 64 KiB segments' worth.
const ECHO_BYTES: usize = 256 * 1024;

/// TAP network: curl from the namespace (TCP both ways), a datagram to a
/// closed port (UDP in), DHCP DISCOVERs (UDP out), an echo large enough for
/// segmentation offload (GSO frames both ways when offload is on). The host's own stack must
/// count no checksum errors, and the capture must check out.
fn tap_capture(case: &'static str, path: &Path, offload: bool) -> Result<String, String> {
    let url = format!("http://{GUEST_IP}/");
    let start = Instant::now();
    let body = loop {
        match in_namespace(case, &["curl", "--silent", "--show-error", "--fail", "--max-time", "5", &url]) {
            Ok(body) => break body,
            Err(e) if start.elapsed() > Duration::from_secs(60) => {
                return Err(format!("the guest never answered: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    if !body.contains("Skiff") {
        return Err(format!("GET / from the namespace: {body:.100}"));
    }
    let script = format!("echo datagram > /dev/udp/{GUEST_IP}/{UDP_DISCARD_PORT}");
    in_namespace(case, &["bash", "-c", &script])?;
    // 256 KiB through the echo, both ways at once: with segmentation
    // offload the host hands the guest coalesced segments and the guest
    // the host TSO ones, so the capture holds GSO frames both ways.
    let echo = format!(
        "exec 3<>/dev/tcp/{GUEST_IP}/{ECHO_PORT}; head -c {ECHO_BYTES} /dev/zero >&3 & timeout 10 head -c {ECHO_BYTES} <&3 | wc -c"
    );
    let echoed = in_namespace(case, &["bash", "-c", &echo])?;
    if echoed.trim() != ECHO_BYTES.to_string() {
        return Err(format!("the echo returned {} of {ECHO_BYTES} bytes", echoed.trim()));
    }
    settled(path);
    let segments = snmp(case, "Tcp", "InSegs")?;
    let errors = snmp(case, "Tcp", "InCsumErrors")? + snmp(case, "Udp", "InCsumErrors")?;
    if segments == 0 || errors != 0 {
        return Err(format!("the host's stack took {segments} TCP segments with {errors} checksum errors"));
    }
    let tally = pcap::check(path, true, GUEST_MAC)?;
    match (offload, tally.partial) {
        (true, 0) => return Err("checksum offload on, yet no frame carried a partial checksum".into()),
        (false, n) if n > 0 => return Err(format!("{n} partial checksums with offload off")),
        _ => {}
    }
    let partial = match tally.partial {
        0 => "no partial checksums".to_string(),
        n => format!(
            "{n} partial checksums ({} from the guest, {} to it), each exactly the pseudo-header sum, completed",
            tally.partial_tx,
            n - tally.partial_tx
        ),
    };
    match (offload, tally.gso_tx, tally.gso_rx) {
        (true, 0, _) | (true, _, 0) => {
            return Err(format!("offload on, yet GSO frames {} out {} in", tally.gso_tx, tally.gso_rx));
        }
        (false, tx, rx) if tx + rx > 0 => return Err(format!("{} GSO frames with offload off", tx + rx)),
        _ => {}
    }
    Ok(format!(
        "tshark: all checksums good in {} frames (TCP {} out {} in, UDP {} out {} in); {partial}; {} marked \
         DATA_VALID; GSO frames {} out (TSO, up to {} bytes) {} in (coalesced, up to {} bytes, {} DATA_VALID); \
         the host's stack took {segments} TCP segments, 0 checksum errors",
        tally.frames,
        tally.tcp_tx,
        tally.tcp_rx,
        tally.udp_tx,
        tally.udp_rx,
        tally.data_valid,
        tally.gso_tx,
        tally.gso_tx_largest,
        tally.gso_rx,
        tally.gso_rx_largest,
        tally.gso_valid
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::{Outcome, Report};
    use crate::suite::check;

    fn served(lines: Vec<String>) -> Report {
        Report {
            outcome: Outcome::Stopped,
            lines,
            command_line: String::new(),
            elapsed: Duration::ZERO,
            client: Some(Ok("GET answered 404".into())),
        }
    }

    #[test]
    fn the_trace_boot_is_judged_on_its_output_too() {
        let cases = cases(Duration::from_secs(1));
        let trace = cases.iter().find(|c| c.name == "serve-trace").unwrap();
        assert!(trace.boot.cmdline.contains("packet=trace"));
        let good = served(trace::tests_journey().lines().map(str::to_string).collect());
        assert!(check(&good, &trace.expect).unwrap().contains("traced through 12 layers"));
        // The client passed, but the output does not show the journey.
        assert!(check(&served(vec!["Skiff is up.".into()]), &trace.expect).is_err());
    }

    #[test]
    fn captures_are_taken_with_and_without_offload() {
        let cases = cases(Duration::from_secs(1));
        let nic = |name: &str| cases.iter().find(|c| c.name == name).unwrap().boot.nic.clone().unwrap();
        let (user, offload, plain) =
            (nic("serve-pcap-user"), nic("serve-pcap-tap-offload"), nic("serve-pcap-tap-no-offload"));
        assert!(user.pcap.is_some() && offload.pcap.is_some() && plain.pcap.is_some());
        assert_eq!((offload.backend, offload.offload), (Backend::Tap, true));
        assert_eq!((plain.backend, plain.offload), (Backend::Tap, false));
    }

    #[test]
    fn the_offload_capture_boot_traces_its_big_frames() {
        let cases = cases(Duration::from_secs(1));
        let offload = cases.iter().find(|c| c.name == "serve-pcap-tap-offload").unwrap();
        assert!(offload.boot.cmdline.contains("packet=trace"));
        let good = served(trace::tests_offloads().lines().map(str::to_string).collect());
        assert!(check(&good, &offload.expect).unwrap().contains("a TSO frame of 14654 bytes"));
        let user = served(trace::tests_journey().lines().map(str::to_string).collect());
        assert!(check(&user, &offload.expect).is_err(), "no big frames on the user network");
    }
}
