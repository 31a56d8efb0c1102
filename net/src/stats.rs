//! `/stats`: the whole JSON document, rendered in one place from plain data.
//!
//! The kernel fills a [`HostStats`] (uptime, heap, interrupts, main loop)
//! and hands it to [`crate::stack::Stack::poll`]; the stack adds its own
//! numbers (address, device and adapter counters, apps, sockets, recent
//! connections) and [`render`] writes them all. Nothing here calls back
//! into the kernel or an app.
//!
//! The keys are an interface: `xtask` and the live page (`apps/http/index.html`)
//! read them by path (`/heap/in_use`, `/main_loop/mode`, ...).

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp::RecoveryCounters;

use crate::device::NetDevice;
use crate::json::JsonWriter;
use crate::phy::{Adapter, AdapterStats};
use crate::pool::PoolStats;
use crate::recent::RecentConnections;
use crate::sockets::socket_states;
use crate::stack::Ipv4Config;

/// What the kernel reports in `/stats`, as plain numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Time since boot.
    pub uptime_ms: u64,
    /// The kernel heap.
    pub heap: HeapStats,
    /// Interrupts taken since boot.
    pub interrupts: InterruptStats,
    /// How the main loop has been waiting.
    pub main_loop: MainLoopStats,
}

/// The kernel heap, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Allocated now.
    pub in_use: u64,
    /// The most ever allocated at once.
    pub peak: u64,
    /// The heap's size.
    pub size: u64,
}

/// Interrupts taken since boot, by source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterruptStats {
    /// The local APIC timer.
    pub timer: u64,
    /// The card's configuration-change vector.
    pub nic_config: u64,
    /// The card's receive-queue vector.
    pub nic_rx: u64,
    /// The card's transmit-queue vector.
    pub nic_tx: u64,
    /// Every vector, these and any other.
    pub total: u64,
}

/// How the main loop waits and wakes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MainLoopStats {
    /// How it waits: `interrupts`, `timer-poll`, `busy`, or `starting`
    /// before the loop runs.
    pub mode: &'static str,
    /// Wake-ups because the card had work.
    pub wakeups_device: u64,
    /// Wake-ups because the timer the stack asked for expired.
    pub wakeups_timer: u64,
    /// Wake-ups for anything else.
    pub wakeups_other: u64,
    /// Sleeps skipped because work arrived while interrupts were re-enabled.
    pub sleeps_raced: u64,
    /// TSC cycles spent halted since the loop started.
    pub halted_cycles: u64,
    /// TSC cycles since the loop started; 0 until it has.
    pub loop_cycles: u64,
}

/// Thousandths of `total` cycles spent in `halted` ones; 0 while `total`
/// is 0. In u128: `halted * 1000` overflows u64 once `halted` passes
/// 1.8e16 cycles, about nine weeks of halting at 3 GHz.
pub fn halted_permille(halted: u64, total: u64) -> u64 {
    match total {
        0 => 0,
        total => u64::try_from(u128::from(halted) * 1000 / u128::from(total)).unwrap_or(u64::MAX),
    }
}

/// The card and the adapter in front of it, as `/stats` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// The MAC address.
    pub mac: [u8; 6],
    /// The MTU.
    pub mtu: usize,
    /// Whether the link is up.
    pub link_up: bool,
    /// The features the card negotiated.
    pub features: String,
    /// The card's own counters, by name.
    pub counters: Vec<(&'static str, u64)>,
    /// What the adapter dropped.
    pub adapter: AdapterStats,
}

impl DeviceStats {
    /// The numbers of `adapter` and its card now.
    pub fn of<D: NetDevice>(adapter: &Adapter<D>) -> Self {
        let device = adapter.device();
        let info = device.info();
        DeviceStats {
            mac: info.mac,
            mtu: info.mtu,
            link_up: device.link_up(),
            features: device.features(),
            counters: device.counters(),
            adapter: adapter.stats(),
        }
    }
}

/// What `/stats` takes from outside the HTTP app, lent to it for a poll
/// step and read only when a request asks for `/stats`.
pub struct Sources<'a, D: NetDevice> {
    /// The kernel's numbers.
    pub host: &'a HostStats,
    /// The IPv4 configuration in force.
    pub ipv4: &'a Ipv4Config,
    /// Bytes echoed.
    pub echo_bytes: u64,
    /// The card, behind its adapter.
    pub adapter: &'a Adapter<D>,
}

impl<D: NetDevice> Sources<'_, D> {
    /// `/stats` now, with the HTTP app's own numbers: requests answered
    /// (the one asking included), the sockets, the pool and the recent connections.
    pub fn render(
        &self,
        http_requests: u64,
        sockets: &SocketSet<'static>,
        recent: &RecentConnections,
        pool: &PoolStats,
    ) -> String {
        render(&Stats {
            host: self.host,
            ipv4: self.ipv4,
            device: &DeviceStats::of(self.adapter),
            http_requests,
            echo_bytes: self.echo_bytes,
            sockets: &socket_states(sockets),
            pool,
            tcp: &crate::loss::totals(sockets, &pool.retired_tcp),
            recent,
        })
    }
}

/// Everything `/stats` shows.
pub struct Stats<'a> {
    /// The kernel's numbers.
    pub host: &'a HostStats,
    /// The IPv4 configuration in force.
    pub ipv4: &'a Ipv4Config,
    /// The card and adapter.
    pub device: &'a DeviceStats,
    /// HTTP requests answered (this one included).
    pub http_requests: u64,
    /// Bytes echoed.
    pub echo_bytes: u64,
    /// TCP sockets by state name.
    pub sockets: &'a [(&'static str, usize)],
    /// The connection pool.
    pub pool: &'a PoolStats,
    /// Loss recovery, summed over every TCP socket since boot.
    pub tcp: &'a RecoveryCounters,
    /// The most recent connections.
    pub recent: &'a RecentConnections,
}

/// Room reserved for the document: `/stats` is about 2.5 KB with eight
/// recent connections, so it is written without growing its buffer.
const RENDER_CAPACITY: usize = 4096;

/// `/stats` as JSON.
pub fn render(stats: &Stats) -> String {
    let Stats { host, ipv4, device, http_requests, echo_bytes, sockets, pool, tcp, recent } = *stats;
    let mut json = JsonWriter::with_capacity(RENDER_CAPACITY);
    json.number("uptime_ms", host.uptime_ms);
    json.begin_object("ipv4");
    json.ipv4("address", ipv4.address.map(|a| a.address()), ipv4.address.map(|a| a.prefix_len()));
    json.ipv4("gateway", ipv4.gateway, None);
    json.begin_array("dns");
    for &server in &ipv4.dns {
        json.array_ipv4(server);
    }
    json.end_array();
    json.string("source", ipv4.source.name());
    json.end_object();
    json.mac("mac", device.mac);
    json.number("mtu", device.mtu as u64);
    json.string("link", if device.link_up { "up" } else { "down" });
    json.string("features", &device.features);
    json.begin_object("device");
    for &(name, value) in &device.counters {
        json.number(name, value);
    }
    for (name, value) in device.adapter.rx.fields() {
        json.number(name, value);
    }
    json.number("tx_drop_no_buffer", device.adapter.tx_drop_no_buffer);
    json.end_object();
    json.begin_object("apps");
    json.number("http_requests", http_requests);
    json.number("echo_bytes", echo_bytes);
    json.end_object();
    json.begin_object("sockets");
    for &(state, count) in sockets {
        json.number(state, count as u64);
    }
    json.end_object();
    pool.write_json(&mut json);
    crate::loss::write_stats(&mut json, tcp, device.adapter.time_wait_fins_answered);
    recent.write_json(&mut json);
    write_host(&mut json, host);
    json.finish()
}

/// The kernel's part: heap, interrupts, main loop.
fn write_host(json: &mut JsonWriter, host: &HostStats) {
    let HostStats { heap, interrupts, main_loop, .. } = host;
    json.begin_object("heap");
    json.number("in_use", heap.in_use);
    json.number("peak", heap.peak);
    json.number("size", heap.size);
    json.end_object();
    json.begin_object("interrupts");
    json.number("timer", interrupts.timer);
    json.number("nic_config", interrupts.nic_config);
    json.number("nic_rx", interrupts.nic_rx);
    json.number("nic_tx", interrupts.nic_tx);
    json.number("total", interrupts.total);
    json.end_object();
    json.begin_object("main_loop");
    json.string("mode", main_loop.mode);
    json.number("wakeups_device", main_loop.wakeups_device);
    json.number("wakeups_timer", main_loop.wakeups_timer);
    json.number("wakeups_other", main_loop.wakeups_other);
    json.number("sleeps_raced", main_loop.sleeps_raced);
    json.number("halted_permille", halted_permille(main_loop.halted_cycles, main_loop.loop_cycles));
    json.end_object();
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::phy::RxDrops;
    use crate::stack::AddressSource;
    use core::net::Ipv4Addr;
    use smoltcp::wire::Ipv4Cidr;

    /// Found in review: the kernel computed `halted * 1000 / total` in u64,
    /// which overflows once `halted` passes u64::MAX / 1000 cycles (about
    /// nine weeks of halting at 3 GHz): `/stats` then panicked (debug) or
    /// showed nonsense.
    #[test]
    fn halted_permille_survives_months_of_halting() {
        const GHZ3_PER_WEEK: u64 = 3_000_000_000 * 3600 * 24 * 7;
        for weeks in [1, 9, 10, 52, 100] {
            let total = GHZ3_PER_WEEK * weeks;
            assert_eq!(halted_permille(total / 4 * 3, total), 750, "{weeks} weeks");
        }
        assert_eq!(halted_permille(u64::MAX, u64::MAX), 1000);
        assert_eq!(halted_permille(u64::MAX - 1, u64::MAX), 999);
    }

    #[test]
    fn halted_permille_of_nothing_is_zero() {
        assert_eq!(halted_permille(0, 0), 0);
        assert_eq!(halted_permille(5, 0), 0, "the loop has not started");
        assert_eq!(halted_permille(0, 1000), 0);
        assert_eq!(halted_permille(1, 3), 333);
    }

    /// The numbers of a sample `/stats`.
    fn sample() -> (HostStats, Ipv4Config, DeviceStats) {
        let host = HostStats {
            uptime_ms: 1234,
            heap: HeapStats { in_use: 10, peak: 20, size: 30 },
            interrupts: InterruptStats { timer: 1, nic_config: 2, nic_rx: 3, nic_tx: 4, total: 11 },
            main_loop: MainLoopStats {
                mode: "interrupts",
                wakeups_device: 5,
                wakeups_timer: 6,
                wakeups_other: 7,
                sleeps_raced: 8,
                halted_cycles: 900,
                loop_cycles: 1000,
            },
        };
        let ipv4 = Ipv4Config {
            address: Some(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24)),
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            dns: alloc::vec![Ipv4Addr::new(10, 0, 2, 3)],
            source: AddressSource::Dhcp,
        };
        let device = DeviceStats {
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            mtu: 1500,
            link_up: true,
            features: "MAC | CSUM".into(),
            counters: alloc::vec![("rx_frames", 100), ("tx_frames", 200)],
            adapter: AdapterStats {
                rx: RxDrops { bad_checksum: 1, ..RxDrops::default() },
                tx_drop_no_buffer: 2,
                time_wait_fins_answered: 9,
            },
        };
        (host, ipv4, device)
    }

    /// The keys, their nesting and order, as `xtask` and the live page read
    /// them: the same document the kernel's own writer produced before
    /// `/stats` was rendered here.
    #[test]
    fn the_document_keeps_its_keys_and_order() {
        let (host, ipv4, device) = sample();
        let recent = RecentConnections::new();
        let json = render(&Stats {
            host: &host,
            ipv4: &ipv4,
            device: &device,
            http_requests: 3,
            echo_bytes: 4,
            sockets: &[("listen", 7), ("established", 1)],
            pool: &PoolStats {
                listening: 8,
                half_open: 2,
                established: 1,
                limit: 100,
                queued: 6,
                syn_dropped_full: 3,
                half_open_evicted: 4,
                per_peer_refused: 5,
                retired_tcp: RecoveryCounters::default(),
            },
            tcp: &RecoveryCounters {
                timeouts: 5,
                fast_retransmits: 6,
                out_of_order_kept: 7,
                out_of_order_dropped: 8,
                loss_probes: 10,
            },
            recent: &recent,
        });
        assert_eq!(
            json,
            concat!(
                r#"{"uptime_ms":1234,"#,
                r#""ipv4":{"address":"10.0.2.15/24","gateway":"10.0.2.2","dns":["10.0.2.3"],"source":"dhcp"},"#,
                r#""mac":"52:54:00:12:34:56","mtu":1500,"link":"up","features":"MAC | CSUM","#,
                r#""device":{"rx_frames":100,"tx_frames":200,"rx_drop_bad_checksum":1,"rx_drop_malformed_ethernet":0,"#,
                r#""rx_drop_malformed_arp":0,"rx_drop_malformed_ipv4":0,"rx_drop_bad_ipv4_checksum":0,"#,
                r#""rx_drop_ipv4_fragment":0,"rx_drop_malformed_tcp":0,"rx_drop_malformed_udp":0,"tx_drop_no_buffer":2},"#,
                r#""apps":{"http_requests":3,"echo_bytes":4},"sockets":{"listen":7,"established":1},"#,
                r#""pool":{"listening":8,"half_open":2,"established":1,"limit":100,"queued":6,"#,
                r#""syn_dropped_full":3,"#,
                r#""half_open_evicted":4,"per_peer_refused":5},"#,
                r#""tcp":{"retransmit_timeouts":5,"fast_retransmits":6,"out_of_order_kept":7,"out_of_order_dropped":8,"loss_probes":10,"time_wait_fins_answered":9},"#,
                r#""connections_total":0,"recent":[],"#,
                r#""heap":{"in_use":10,"peak":20,"size":30},"#,
                r#""interrupts":{"timer":1,"nic_config":2,"nic_rx":3,"nic_tx":4,"total":11},"#,
                r#""main_loop":{"mode":"interrupts","wakeups_device":5,"wakeups_timer":6,"wakeups_other":7,"#,
                r#""sleeps_raced":8,"halted_permille":900}}"#,
            )
        );
    }
}
