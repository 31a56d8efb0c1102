//! A raw `AF_PACKET` socket bound to the test network's TAP device: frames
//! written here go, unchanged, to QEMU and the guest; frames the guest sends
//! are read back, whatever their destination MAC.
//!
//! Only used from inside the test network's namespace (see `hostile/`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `sll_pkttype` of a frame this host sent (linux/if_packet.h).
const PACKET_OUTGOING: u8 = 4;
/// Receive buffer asked for: floods make the guest answer in bursts.
const RECEIVE_BUFFER: libc::c_int = 8 << 20;
/// A buffer for one received frame: room for the largest the guest sends
/// (an Ethernet header and a 1500-byte packet), rounded up.
pub const FRAME_BUFFER: usize = 2048;
/// How long a send waits for room in the device's queue before giving up.
const SEND_PATIENCE: Duration = Duration::from_secs(2);

pub struct RawLink {
    fd: OwnedFd,
}

impl RawLink {
    /// Opens a packet socket on `ifname` for every protocol.
    pub fn open(ifname: &str) -> Result<RawLink, String> {
        let name = std::ffi::CString::new(ifname).map_err(|e| e.to_string())?;
        // SAFETY: `name` is a valid NUL-terminated string for the call's duration.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(format!("no interface {ifname}: {}", io::Error::last_os_error()));
        }
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain system call with constant arguments.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(protocol)) };
        if raw < 0 {
            return Err(format!("AF_PACKET socket (needs root): {}", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = index as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length matches it.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound < 0 {
            return Err(format!("bind to {ifname}: {}", io::Error::last_os_error()));
        }
        // SAFETY: the option value points at a c_int of the stated size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&RECEIVE_BUFFER as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(RawLink { fd })
    }

    /// Sends one frame. `Ok(false)` if the kernel refused it as invalid (a
    /// frame shorter than an Ethernet header, or longer than the device's
    /// MTU); waits while the device's queue is full.
    pub fn send(&self, frame: &[u8]) -> Result<bool, String> {
        let start = Instant::now();
        loop {
            // SAFETY: the pointer and length describe `frame`, which outlives the call.
            let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n >= 0 {
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINVAL | libc::EMSGSIZE) => return Ok(false),
                Some(libc::ENOBUFS | libc::EAGAIN) if start.elapsed() < SEND_PATIENCE => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                _ => return Err(format!("sending a {}-byte frame: {e}", frame.len())),
            }
        }
    }

    /// The next frame that arrived from the guest (not one this host sent),
    /// waiting at most `timeout`.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if ready <= 0 {
                return None;
            }
            // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` and `from` are valid for writes of the given lengths.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n > 0 && from.sll_pkttype != PACKET_OUTGOING {
                return Some(n as usize);
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// Throws away every frame waiting to be read.
    pub fn drain(&self) {
        let mut buf = [0u8; FRAME_BUFFER];
        while self.recv(&mut buf, Duration::ZERO).is_some() {}
    }
}
