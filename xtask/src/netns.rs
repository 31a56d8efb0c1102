//! The test network for TAP-backed boots: a network namespace made for one
//! boot, holding a TAP device for QEMU with the gateway's address
//! (10.0.2.2/24, as on QEMU's user network) and a UDP echo server on port 7.
//! Nothing is routed out of it; it is deleted when the boot ends.

use std::process::{Child, Command, Stdio};

use crate::Result;
use crate::testnet::{ECHO_PORT, GATEWAY_IP, PREFIX_LEN};

/// The TAP device's name inside the namespace.
pub const TAP: &str = "skiff0";
/// The TAP device's transmit queue toward QEMU, in frames: the `qlen` that
/// `ip tuntap add` gives it (Linux's default; `ip link show` says so).
pub const TAP_QUEUE_FRAMES: usize = 1000;
/// The echo server stops by itself after this, whatever happens to its parent.
pub const ECHO_LIFETIME_SECS: u64 = 600;

/// A namespace with a TAP device and an echo server; removed on drop.
pub struct TestNetwork {
    name: String,
    echo: Option<Child>,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {} (TAP tests need root)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl TestNetwork {
    /// Makes the namespace [`namespace_name`]`(tag)` and everything in it.
    pub fn create(tag: &str) -> Result<TestNetwork> {
        let name = namespace_name(tag);
        ip(&["netns", "add", &name])?;
        // From here on, dropping `net` removes the namespace.
        let mut net = TestNetwork { name, echo: None };
        let n = net.name.clone();
        ip(&["-n", &n, "link", "set", "lo", "up"])?;
        ip(&["-n", &n, "tuntap", "add", "dev", TAP, "mode", "tap", "vnet_hdr"])?;
        // The host side's address is the guest's gateway.
        ip(&["-n", &n, "addr", "add", &format!("{GATEWAY_IP}/{PREFIX_LEN}"), "dev", TAP])?;
        ip(&["-n", &n, "link", "set", TAP, "up"])?;
        let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask's own binary: {e}"))?;
        let echo = Command::new("ip")
            .args(["netns", "exec", &n])
            .arg(exe)
            .args(["udp-echo", &format!("{GATEWAY_IP}:{ECHO_PORT}"), "--seconds", &ECHO_LIFETIME_SECS.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the echo server: {e}"))?;
        net.echo = Some(echo);
        Ok(net)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The namespace a boot tagged `tag` runs in: `skiff-PID-TAG`.
pub fn namespace_name(tag: &str) -> String {
    format!("skiff-{}-{tag}", std::process::id())
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        if let Some(mut echo) = self.echo.take() {
            let _ = echo.kill();
            let _ = echo.wait();
        }
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Echoes UDP datagrams on `addr` until `seconds` pass (`cargo xtask udp-echo`,
/// run by `TestNetwork` inside its namespace).
pub fn udp_echo(addr: &str, seconds: u64) -> Result<()> {
    use std::time::{Duration, Instant};
    let socket = std::net::UdpSocket::bind(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?;
    socket.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
    Ok(())
}
