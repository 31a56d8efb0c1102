//! `/init` of the Linux guest that `cargo xtask bench` measures Skiff against.
//!
//! It does what Skiff does after boot, and nothing else: loads the virtio
//! modules the initramfs holds (in the order xtask wrote them), gives the
//! card Skiff's static address, and serves TCP echo on port 7 and HTTP/1.1 on
//! port 80 with the same responses as Skiff (`/`, and a `/stats` of the size
//! the bench asks for) from one epoll loop — one thread, as Skiff has one CPU
//! and one loop. Built static (`crt-static`), so the initramfs needs no libc.
//!
//! Any failure is printed and the process exits, which panics the kernel; with
//! `panic=-1` on the command line it reboots at once, and QEMU (`-no-reboot`)
//! ends, so the bench sees a failed boot instead of waiting.

mod http;
mod modules;
mod netif;
mod serve;

use std::time::Instant;

/// The initramfs directory with the modules, named `NN-name.ko` in load order.
const MODULES_DIR: &str = "/modules";
/// Skiff's static address and prefix (net/src/config.rs).
const ADDRESS: [u8; 4] = [10, 0, 2, 15];
const PREFIX_LEN: u32 = 24;
/// The kernel passes unknown `key=value` words of its command line to init
/// as environment variables: this one sets the `/stats` body size.
const STATS_BYTES_VAR: &str = "skiff_stats_bytes";

fn main() {
    let started = Instant::now();
    if let Err(e) = run(started) {
        println!("linux-guest: {e}");
        std::process::exit(1);
    }
}

fn run(started: Instant) -> Result<(), String> {
    let loaded = modules::load_all(MODULES_DIR)?;
    let name = netif::configure(ADDRESS, PREFIX_LEN)?;
    let stats_bytes = std::env::var(STATS_BYTES_VAR).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let server = serve::Server::bind(stats_bytes, started)?;
    println!(
        "linux-guest: {loaded} modules loaded, {name} at {}.{}.{}.{}/{PREFIX_LEN}; serving echo on 7 and HTTP on 80 ({:.0} ms after init started)",
        ADDRESS[0],
        ADDRESS[1],
        ADDRESS[2],
        ADDRESS[3],
        started.elapsed().as_secs_f64() * 1000.0
    );
    server.run()
}
