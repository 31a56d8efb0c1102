//! `cargo xtask run --tap`'s port forwards: the guest lives in a network
//! namespace (netns.rs) that the host cannot route to, so xtask listens on
//! 127.0.0.1 in the host's namespace and, for each connection, opens one to
//! the guest from a thread that has joined the boot's namespace (`setns` is
//! per thread on Linux), then copies bytes both ways. What QEMU's `hostfwd`
//! does on the user network.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::Result;

/// How long a forwarded connection may take to reach the guest.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Copy buffer per direction.
const COPY_BUFFER: usize = 64 * 1024;

/// `ip netns add NAME` makes this file; opening it names the namespace.
fn namespace_file(netns: &str) -> String {
    format!("/run/netns/{netns}")
}

/// Moves the calling thread into network namespace `netns`.
fn enter(netns: &str) -> Result<()> {
    let path = namespace_file(netns);
    let file = File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
    // SAFETY: a valid descriptor of a namespace file; setns only changes this
    // thread's namespace (sockets it opens from now on live there).
    let done = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if done != 0 {
        return Err(format!("setns into {netns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Listens on 127.0.0.1:`host_port` (host namespace) and forwards each
/// connection to `guest` inside `netns`; runs in background threads for the
/// life of the process. Errors if the port cannot be bound.
pub fn spawn(host_port: u16, netns: &str, guest: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", host_port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{host_port} (--http-port/--echo-port pick another): {e}"))?;
    let netns = netns.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let netns = netns.clone();
            std::thread::spawn(move || {
                if let Err(e) = forward(client, &netns, guest) {
                    eprintln!("\r==> forward to {guest}: {e}\r");
                }
            });
        }
    });
    Ok(())
}

/// One connection: joins the namespace, connects, copies until both sides close.
fn forward(client: TcpStream, netns: &str, guest: SocketAddr) -> Result<()> {
    enter(netns)?;
    let server = TcpStream::connect_timeout(&guest, CONNECT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let (client2, server2) =
        (client.try_clone().map_err(|e| e.to_string())?, server.try_clone().map_err(|e| e.to_string())?);
    let up = std::thread::spawn(move || copy(client2, server2));
    copy(server, client);
    let _ = up.join();
    Ok(())
}

/// Copies `from` to `to` until `from` ends, then half-closes `to`.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Whether this process runs as root (TAP devices and namespaces need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A signal handler that does nothing: installed for SIGINT, SIGTERM and
/// SIGHUP while QEMU runs in a namespace, so that a terminal's or `timeout`'s
/// signal ends QEMU (its handlers go back to the default at exec) but not
/// xtask, which then removes the namespace as QEMU's wait returns.
extern "C" fn ignore(_signal: libc::c_int) {}

/// Keeps xtask alive through SIGINT, SIGTERM and SIGHUP (see [`ignore`]).
pub fn survive_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `ignore` is async-signal-safe (it does nothing); unlike
        // SIG_IGN, a handler is not inherited across QEMU's exec.
        unsafe { libc::signal(signal, ignore as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    }
}
