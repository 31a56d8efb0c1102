//! The relay process (`cargo xtask impair-relay`, hidden): QEMU's
//! `-netdev dgram` on one side (UDP datagrams on the namespace's loopback,
//! one Ethernet frame each), the namespace's TAP device on the other, and a
//! [`Direction`] in each way. Runs inside the boot's namespace, started and
//! killed by the harness (`qemu::run_captured`); it also stops by itself
//! after its lifetime. Reads only from QEMU's address and the TAP device.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::flows::Flows;
use super::{Direction, Impairment, Pcap};

/// Where QEMU's end and the relay's end of the datagram link sit: the
/// namespace's own loopback, so nothing else can reach either, and fixed
/// ports are safe (every boot has its own namespace).
const LOOPBACK: &str = "127.0.0.1";
const QEMU_PORT: u16 = 10001;
const RELAY_PORT: u16 = 10002;
/// The relay stops by itself after this, whatever happens to its parent.
pub const LIFETIME: Duration = Duration::from_secs(1800);
/// Frames read from each side per wake-up, so neither side starves the other.
const BURST: usize = 64;
/// The longest poll sleep: the lifetime and the report file are checked this often.
const TICK: Duration = Duration::from_millis(100);
/// How often the counts are written to the report file.
const REPORT_EVERY: Duration = Duration::from_millis(200);
/// The relay socket's receive buffer (SO_RCVBUFFORCE, as root).
const RECEIVE_BUFFER: libc::c_int = 8 << 20;
/// The most entries of the report's QEMU drop timeline.
const TIMELINE_LEN: usize = 64;
/// Larger than any frame QEMU or the TAP device hands over (64 KiB datagrams).
const FRAME_BUFFER: usize = 65_536;

/// `ifreq` for TUNSETIFF: the name, then the flags (linux/if.h, if_tun.h).
const IFNAMSIZ: usize = 16;
const IFREQ_SIZE: usize = 40;
/// TUNSETOFFLOAD's argument for none of TUN_F_CSUM, TUN_F_TSO4, ... (linux/if_tun.h).
const NO_OFFLOADS: libc::c_ulong = 0;

/// QEMU's `-netdev` for the card `id`: datagrams between its end and the relay's.
pub fn netdev(id: &str) -> String {
    format!(
        "dgram,id={id},local.type=inet,local.host={LOOPBACK},local.port={QEMU_PORT},\
         remote.type=inet,remote.host={LOOPBACK},remote.port={RELAY_PORT}"
    )
}

/// Where a boot's relay writes its counts and its capture. The capture is
/// the guest's view of the link, as a capture on its card would be: the
/// frames it sent before any damage, the frames it received after.
/// The datagram that tells the relay the loads begin (`mark`): connections
/// are numbered from the next SYN (see `flows.rs`).
const MARK: &[u8] = b"skiff impair-relay: the loads begin";

/// Tells the relay in this namespace, if any, that the loads begin: the
/// connections opened from now on are numbered from 0, so that each guest's
/// k-th connection meets the same damage (`flows.rs`). Without a relay the
/// datagram goes nowhere.
pub fn mark() {
    if let Ok(socket) = UdpSocket::bind((LOOPBACK, 0)) {
        let _ = socket.send_to(MARK, (LOOPBACK, RELAY_PORT));
    }
}

pub fn report_path(workdir: &Path) -> PathBuf {
    workdir.join("relay-report.txt")
}
pub fn pcap_path(workdir: &Path) -> PathBuf {
    workdir.join("relay.pcap")
}

/// Starts the relay for `imp` inside the namespace `netns` (as
/// `cargo xtask impair-relay`), or in this process's own namespace if none
/// is named (the bench, already inside its namespace), writing its report
/// and capture to `workdir`.
pub fn spawn(netns: Option<&str>, imp: &Impairment, workdir: &Path) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask's own binary: {e}"))?;
    let mut command = match netns {
        Some(netns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", netns]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    command
        .args(["impair-relay", "--tap", crate::netns::TAP])
        .args(["--to-guest", &imp.to_guest.to_string(), "--from-guest", &imp.from_guest.to_string()])
        .args(["--seed", &imp.seed.to_string(), "--seconds", &LIFETIME.as_secs().to_string()])
        .arg("--report")
        .arg(report_path(workdir))
        .arg("--pcap")
        .arg(pcap_path(workdir))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the impairment relay: {e}"))
}

/// The relay's arguments.
pub struct Args {
    pub tap: String,
    pub impairment: Impairment,
    pub pcap: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub lifetime: Duration,
}

/// Opens the existing TAP device `name`, without packet information or
/// vnet headers: plain Ethernet frames, as `-netdev dgram` carries them.
fn open_tap(name: &str) -> Result<OwnedFd, String> {
    let path = c"/dev/net/tun";
    // SAFETY: `path` is a valid NUL-terminated string.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(format!("open /dev/net/tun: {}", io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if name.len() >= IFNAMSIZ {
        return Err(format!("TAP name {name:?} is too long"));
    }
    let mut ifreq = [0u8; IFREQ_SIZE];
    ifreq[..name.len()].copy_from_slice(name.as_bytes());
    let flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    ifreq[IFNAMSIZ..IFNAMSIZ + 2].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes an `ifreq`, which `ifreq` is as
    // large as and laid out like (name, then the flags as a short).
    let done = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, ifreq.as_mut_ptr()) };
    if done < 0 {
        return Err(format!("TUNSETIFF {name}: {}", io::Error::last_os_error()));
    }
    // No offloads: a QEMU that had the device before (the bench's earlier
    // boots, with vnet_hdr) turned checksum offload on, and the host then
    // hands over frames with their TCP checksums left partial, which this
    // relay (no vnet header to say so) would deliver as corrupt: the guest
    // dropped every SYN.
    // SAFETY: TUNSETOFFLOAD takes its flags by value; 0 turns every offload off.
    let done = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD as _, NO_OFFLOADS) };
    if done < 0 {
        return Err(format!("TUNSETOFFLOAD {name}: {}", io::Error::last_os_error()));
    }
    Ok(fd)
}

fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).ok()
}

fn write_fd(fd: &OwnedFd, frame: &[u8]) -> bool {
    // SAFETY: `frame` is valid for reads of its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
    n >= 0
}

/// Waits until either descriptor is readable or `timeout` passes.
fn poll(fds: [&dyn AsRawFd; 2], timeout: Duration) {
    let mut pollfds = fds.map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pollfds` is an array of two valid pollfd structs.
    unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
}

/// Runs the relay until its lifetime ends (or it is killed).
pub fn run(args: &Args) -> Result<(), String> {
    let tap = open_tap(&args.tap)?;
    let socket = UdpSocket::bind((LOOPBACK, RELAY_PORT)).map_err(|e| format!("bind {LOOPBACK}:{RELAY_PORT}: {e}"))?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    // The relay's own socket must never be where frames are lost: a big
    // buffer for QEMU's bursts while the relay waits for a core.
    let size: libc::c_int = RECEIVE_BUFFER;
    // SAFETY: the option value points at a c_int of the stated size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let qemu: SocketAddr = format!("{LOOPBACK}:{QEMU_PORT}").parse().map_err(|e| format!("QEMU's end: {e}"))?;
    let imp = args.impairment;
    let mut to_guest = Direction::new(imp.to_guest, imp.seed, 0);
    let mut from_guest = Direction::new(imp.from_guest, imp.seed, 1);
    let mut pcap = match &args.pcap {
        Some(path) => Some(
            std::fs::File::create(path)
                .and_then(|f| Pcap::new(io::BufWriter::new(f)))
                .map_err(|e| format!("pcap {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let started = Instant::now();
    let now = || u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut last_report = Instant::now();
    let mut buf = vec![0u8; FRAME_BUFFER];
    let mut unknown_senders = 0u64;
    let mut flows = Flows::default();
    let mut marks = 0u64;
    let mut failed_writes = 0u64;
    // When QEMU's socket dropped frames (towards the guest: it stops reading
    // while the guest has no receive buffers), to tell which load it was.
    let mut timeline: Vec<(Duration, u64)> = Vec::new();
    println!("impair-relay: {imp}");
    while started.elapsed() < args.lifetime {
        let wake = [to_guest.next_wake(), from_guest.next_wake()].into_iter().flatten().min();
        let sleep = wake.map_or(TICK, |at| Duration::from_micros(at.saturating_sub(now())).min(TICK));
        if !sleep.is_zero() {
            poll([&socket, &tap], sleep);
        }
        for _ in 0..BURST {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) if from == qemu => {
                    let t = now();
                    // The capture is the guest's view: what it sent, as it sent it.
                    if let Some(p) = pcap.as_mut() {
                        let _ = p.write(t, &buf[..n]);
                    }
                    let place = flows.place(&buf[..n], false);
                    from_guest.push(t, buf[..n].to_vec(), place);
                }
                Ok((n, _)) if &buf[..n] == MARK => {
                    flows.mark();
                    marks += 1;
                }
                Ok(_) => unknown_senders += 1,
                Err(_) => break,
            }
        }
        for _ in 0..BURST {
            match read_fd(&tap, &mut buf) {
                Some(n) if n > 0 => {
                    let place = flows.place(&buf[..n], true);
                    to_guest.push(now(), buf[..n].to_vec(), place);
                }
                _ => break,
            }
        }
        let t = now();
        while let Some(frame) = from_guest.pop_due(t) {
            // A full TAP queue drops the frame: one more loss, as on a wire, counted.
            if !write_fd(&tap, &frame) {
                failed_writes += 1;
            }
        }
        while let Some(frame) = to_guest.pop_due(t) {
            if socket.send_to(&frame, qemu).is_err() {
                failed_writes += 1;
            }
            // ... and what it received, damage included.
            if let Some(p) = pcap.as_mut() {
                let _ = p.write(t, &frame);
            }
        }
        // The relay ends by being killed: what is captured must be on disk by then.
        if let Some(p) = pcap.as_mut() {
            let _ = p.flush();
        }
        if last_report.elapsed() >= REPORT_EVERY {
            last_report = Instant::now();
            note_qemu_drops(&mut timeline, started.elapsed());
            write_report(
                args,
                &to_guest,
                &from_guest,
                unknown_senders,
                failed_writes,
                &timeline,
                (marks, flows.count()),
            );
        }
    }
    write_report(args, &to_guest, &from_guest, unknown_senders, failed_writes, &timeline, (marks, flows.count()));
    Ok(())
}

/// Drops of the UDP socket bound to `port` on this namespace's loopback,
/// from /proc/net/udp (its last column): frames lost by the machinery, not
/// by the impairment, which a report must own up to.
fn udp_drops(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str())).then(|| fields.last()?.parse().ok())?
    })
}

/// Adds QEMU's socket's drop count to `timeline` if it moved (at most
/// [`TIMELINE_LEN`] entries: a report stays readable).
fn note_qemu_drops(timeline: &mut Vec<(Duration, u64)>, at: Duration) {
    let Some(drops) = udp_drops(QEMU_PORT) else { return };
    if drops != timeline.last().map_or(0, |(_, n)| *n) && timeline.len() < TIMELINE_LEN {
        timeline.push((at, drops));
    }
}

/// A counter of the TAP device (`/sys/class/net/TAP/statistics/NAME`).
fn tap_counter(tap: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{tap}/statistics/{name}"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// The counts so far, in the report file (rewritten whole each time).
fn write_report(
    args: &Args,
    to_guest: &Direction,
    from_guest: &Direction,
    unknown: u64,
    failed_writes: u64,
    timeline: &[(Duration, u64)],
    (marks, connections): (u64, u32),
) {
    if let Some(path) = &args.report {
        let machinery = format!(
            "frames lost outside the impairment: QEMU's socket {}, the relay's socket {}, the TAP device {} \
             (tx) {} (rx), the relay's writes {failed_writes}",
            udp_drops(QEMU_PORT).map_or("?".into(), |n| n.to_string()),
            udp_drops(RELAY_PORT).map_or("?".into(), |n| n.to_string()),
            tap_counter(&args.tap, "tx_dropped"),
            tap_counter(&args.tap, "rx_dropped"),
        );
        let when: Vec<String> = timeline.iter().map(|(t, n)| format!("{:.1} s: {n}", t.as_secs_f64())).collect();
        let text = format!(
            "impairment: {}\nto guest: {}\nfrom guest: {}\n{machinery}\ndatagrams from unknown senders: {unknown}\n\
             QEMU's socket's drops so far, by the relay's clock: {}\n\
             damage drawn per connection for {connections} connections since the last of {marks} marks\n",
            args.impairment,
            to_guest.counts(),
            from_guest.counts(),
            if when.is_empty() { "none".into() } else { when.join(", ") }
        );
        // Whole or not at all: the harness reads it while the relay runs (a
        // plain rewrite was once read empty, between truncation and write).
        let partial = path.with_extension("partial");
        if std::fs::write(&partial, text).is_ok() {
            let _ = std::fs::rename(&partial, path);
        }
    }
}
