//! `/stats` is rendered on every request for it: it should cost one buffer,
//! not an allocation per address and per recent connection. An integration
//! test because counting allocations needs a global allocator, which is
//! `unsafe`, and the library forbids `unsafe` code.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;

use skiff_net::phy::AdapterStats;
use skiff_net::pool::PoolStats;
use skiff_net::recent::RecentConnections;
use skiff_net::stack::{AddressSource, Ipv4Config};
use skiff_net::stats::{DeviceStats, HostStats, Stats, render};
use smoltcp::socket::tcp::RecoveryCounters;
use smoltcp::wire::{IpEndpoint, Ipv4Cidr};

/// Counts this thread's allocations (tests run on threads of their own).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call goes to the system allocator unchanged; the count is a
// thread-local cell, initialised without allocating.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Found by the bench: `GET /stats` answered at 0.64-0.78x of its earlier
/// rate once the document had grown to about 2.3 KB. Rendering it was most
/// of the cost: a `format!` for every address and every recent connection's
/// peer, `core::fmt` for each of its ~100 numbers, and a buffer grown by
/// doubling. The allocations are the countable part of that; the document
/// is now written into one buffer of its size.
#[test]
fn rendering_stats_allocates_only_its_buffers() {
    let host = HostStats::default();
    let ipv4 = Ipv4Config {
        address: Some(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24)),
        gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
        dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
        source: AddressSource::Dhcp,
    };
    let device = DeviceStats {
        mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        mtu: 1500,
        link_up: true,
        features: "MAC CSUM".into(),
        counters: vec![("rx_frames", 100), ("tx_frames", 200)],
        adapter: AdapterStats::default(),
    };
    let mut recent = RecentConnections::new();
    for i in 0..12u16 {
        recent.open("http", Some(IpEndpoint::new(Ipv4Addr::new(10, 0, 2, 2).into(), 40000 + i)), u64::from(i));
    }
    let (pool, tcp) = (PoolStats::default(), RecoveryCounters::default());
    let stats = Stats {
        host: &host,
        ipv4: &ipv4,
        device: &device,
        http_requests: 3,
        echo_bytes: 4,
        sockets: &[("listen", 7), ("established", 1)],
        pool: &pool,
        tcp: &tcp,
        recent: &recent,
    };
    let before = ALLOCATIONS.with(Cell::get);
    let json = render(&stats);
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    assert!(json.contains(r#""address":"10.0.2.15/24""#) && json.contains(r#""peer":"10.0.2.2:40011""#), "{json}");
    // The document, and the stack of open objects.
    assert!(allocations <= 2, "{allocations} allocations to render /stats");
}
