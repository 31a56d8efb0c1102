//! Giving the network card an IPv4 address and bringing it up, with the
//! classic `ioctl`s (no netlink library needed for this much).

use std::ffi::CStr;

/// An `AF_INET` datagram socket, only for its ioctls; closed on drop.
struct ControlSocket(libc::c_int);

impl ControlSocket {
    fn open() -> Result<ControlSocket, String> {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        Ok(ControlSocket(fd))
    }

    /// Runs `request` on `req`, naming the request in the error.
    fn ioctl(&self, request: libc::c_ulong, req: &mut libc::ifreq, what: &str) -> Result<(), String> {
        // SAFETY: every request used here reads or writes one `ifreq`, which
        // `req` points to for the duration of the call.
        let rc = unsafe { libc::ioctl(self.0, request as _, req as *mut libc::ifreq) };
        if rc < 0 { Err(format!("{what}: {}", std::io::Error::last_os_error())) } else { Ok(()) }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// An `ifreq` naming `name`.
fn request(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data (a name and a union of plain fields): all
    // zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes().take(libc::IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    req
}

fn sockaddr_in(addr: [u8; 4]) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr) },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes), and
    // the kernel reads this sockaddr as a sockaddr_in (its family says so).
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// The first interface that is not the loopback, by the kernel's index.
fn first_card() -> Result<String, String> {
    // SAFETY: if_nameindex returns a list ending in a zero entry, or null;
    // it is read and then freed once.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return Err(format!("if_nameindex: {}", std::io::Error::last_os_error()));
        }
        let mut found = None;
        let mut entry = list;
        while (*entry).if_index != 0 && !(*entry).if_name.is_null() {
            let name = CStr::from_ptr((*entry).if_name).to_string_lossy().into_owned();
            if name != "lo" && found.is_none() {
                found = Some(name);
            }
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
        found.ok_or_else(|| "no network interface besides lo (did virtio_net load?)".to_string())
    }
}

fn set_up(socket: &ControlSocket, name: &str) -> Result<(), String> {
    let mut req = request(name);
    socket.ioctl(libc::SIOCGIFFLAGS, &mut req, "SIOCGIFFLAGS")?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    socket.ioctl(libc::SIOCSIFFLAGS, &mut req, "SIOCSIFFLAGS")
}

/// Brings up `lo` and the card, the card with `addr`/`prefix_len`; returns the card's name.
pub fn configure(addr: [u8; 4], prefix_len: u32) -> Result<String, String> {
    let socket = ControlSocket::open()?;
    set_up(&socket, "lo")?;
    let name = first_card()?;
    let mut req = request(&name);
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    socket.ioctl(libc::SIOCSIFADDR, &mut req, "SIOCSIFADDR")?;
    let mask = u32::MAX.checked_shl(32 - prefix_len).unwrap_or(0).to_be_bytes();
    let mut req = request(&name);
    req.ifr_ifru.ifru_netmask = sockaddr_in(mask);
    socket.ioctl(libc::SIOCSIFNETMASK, &mut req, "SIOCSIFNETMASK")?;
    set_up(&socket, &name)?;
    Ok(name)
}
