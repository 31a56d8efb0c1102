//! The interface and its sockets: address set-up (DHCP, static fallback),
//! the apps, and one bounded poll step for the kernel's main loop.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr, Ipv6Address};

use crate::apps::echo::EchoServer;
use crate::apps::http::HttpServer;
use crate::apps::http::date::HttpDate;
use crate::config::NetConfig;
use crate::device::NetDevice;
use crate::phy::Adapter;
use crate::pool::Pool;
use crate::recent::RecentConnections;
use crate::sockets::socket_states;
use crate::stats::{self, HostStats};

/// Frames taken in per poll step before sockets and timers get their turn,
/// so that a flood cannot starve transmission or TCP's timers (the default
/// of `net.ingress_budget`, [`NetConfig::ingress_budget`]).
pub const INGRESS_BUDGET: usize = 64;
/// While connections are open, the apps are polled at least this often, so
/// their idle timeouts are kept to within this.
pub const APP_TICK: core::time::Duration = core::time::Duration::from_millis(100);
/// The apps' ports, each with its listeners in the pool: echo and HTTP.
const APP_PORTS: usize = 2;
/// Egress rounds per poll step (each bounded by smoltcp).
const EGRESS_ROUNDS: usize = 16;

/// Where the IPv4 address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSource {
    /// Waiting for a DHCP lease.
    Waiting,
    /// A DHCP lease.
    Dhcp,
    /// The static configuration (DHCP off, or no lease in time).
    Static,
}

impl AddressSource {
    /// The name `/stats` reports: a literal, not the lowercased `Debug`
    /// output, whose `str::to_lowercase` pulled core's Unicode case tables
    /// (about 15 KB) into the kernel for three ASCII words.
    pub fn name(self) -> &'static str {
        match self {
            AddressSource::Waiting => "waiting",
            AddressSource::Dhcp => "dhcp",
            AddressSource::Static => "static",
        }
    }
}

/// The IPv4 configuration in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Config {
    /// Address and prefix.
    pub address: Option<Ipv4Cidr>,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers (from DHCP).
    pub dns: Vec<Ipv4Addr>,
    /// Where it came from.
    pub source: AddressSource,
}

/// Skiff's network stack: smoltcp's interface and sockets, the connection
/// pool, the apps (HTTP and echo) and the address (DHCP or static), driven
/// by the main loop through [`Stack::poll`] and [`Stack::poll_delay`].
pub struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    config: NetConfig,
    ipv4: Ipv4Config,
    started: Instant,
    echo: EchoServer,
    http: HttpServer,
    pool: Pool,
    recent: RecentConnections,
}

impl Stack {
    /// Sets up the interface on `adapter`'s device: its MAC, an IPv6
    /// link-local address, DHCP (or the static address), and the apps.
    /// `seed` randomises TCP initial sequence numbers and ports.
    /// `now` is the time since boot, from the kernel's clock.
    pub fn new<D: NetDevice>(
        adapter: &mut Adapter<D>,
        config: NetConfig,
        seed: u64,
        now: core::time::Duration,
    ) -> Stack {
        let now = instant(now);
        let mac = adapter.device().info().mac;
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        iface_config.random_seed = seed;
        let mut iface = Interface::new(iface_config, adapter, now);
        let link_local = ipv6_link_local(mac);
        iface.update_ip_addrs(|addrs| {
            if addrs.push(IpCidr::new(link_local.into(), 64)).is_err() {
                log::warn!("no room for the IPv6 link-local address");
            }
        });
        log::info!("IPv6 link-local {link_local}");

        // Every slot the pool can fill, reserved now: the socket set never
        // grows, so the heap comes back to this baseline when connections end.
        let limits = config.limits();
        let mut sockets = SocketSet::new(Vec::with_capacity(Pool::capacity(limits, APP_PORTS) + 1));
        let dhcp = config.dhcp.then(|| sockets.add(dhcpv4::Socket::new()));
        let mut pool = Pool::new(limits);
        // Every server socket is made with Nagle off; the exercise turns it on.
        pool.set_nagle(config.nagle);
        let echo = EchoServer::new(&mut sockets, &mut pool, config.echo_buffer);
        let http = HttpServer::new(&mut sockets, &mut pool, config.http_idle);
        log::info!(
            "net: up to {} connections ({} per peer, {} half-open), {} SYNs waiting",
            limits.max_conns,
            limits.per_peer,
            limits.half_open,
            limits.backlog
        );
        let mut stack = Stack {
            iface,
            sockets,
            dhcp,
            config,
            ipv4: Ipv4Config { address: None, gateway: None, dns: Vec::new(), source: AddressSource::Waiting },
            started: now,
            echo,
            http,
            pool,
            recent: RecentConnections::new(),
        };
        if !config.dhcp {
            stack.use_static();
        } else {
            log::info!("asking DHCP for an address (static fallback after {} ms)", config.dhcp_wait.as_millis());
        }
        stack
    }

    /// The IPv4 configuration.
    pub fn ipv4(&self) -> &Ipv4Config {
        &self.ipv4
    }

    /// One bounded step: up to `ingress_budget` received frames, address
    /// maintenance, the apps, transmission, and a flush of the device.
    /// `host` is the kernel's part of `/stats`, as of now.
    /// Returns whether anything happened (a frame in or out, a state change).
    pub fn poll<D: NetDevice>(
        &mut self,
        now: core::time::Duration,
        adapter: &mut Adapter<D>,
        host: &HostStats,
    ) -> bool {
        let now = instant(now);
        let mut busy = false;
        self.iface.poll_maintenance(now);
        for _ in 0..self.config.ingress_budget {
            match self.iface.poll_ingress_single(now, adapter, &mut self.sockets) {
                PollIngressSingleResult::None => break,
                // A SYN may have taken a listener: the next frame finds another.
                _ => busy = true,
            }
            self.pool.after_ingress(&mut self.sockets, &mut self.recent, now);
        }
        self.poll_address(now);
        self.pool.step(&mut self.sockets, &mut self.recent, now);
        // Slots that timers freed go to SYNs that wait, before `/stats` can show them.
        self.pool.unqueue(&mut self.sockets, &mut self.recent, now);
        self.echo.poll(now, &mut self.sockets, &mut self.pool, &mut self.recent);
        let sources = stats::Sources { host, ipv4: &self.ipv4, echo_bytes: self.echo.bytes(), adapter };
        let date = self.config.boot_unix_secs.and_then(|boot| HttpDate::from_unix(boot + now.secs() as u64));
        self.http.poll(now, &mut self.sockets, &mut self.pool, &mut self.recent, &sources, date);
        // Slots the apps gave back go to SYNs that wait, in this step.
        self.pool.unqueue(&mut self.sockets, &mut self.recent, now);
        // Connections whose sockets went back in TIME-WAIT: remembered
        // before the next frame comes in (`crate::time_wait`).
        self.pool.hand_over_time_wait(adapter.time_wait_mut(), now);
        for _ in 0..EGRESS_ROUNDS {
            match self.iface.poll_egress(now, adapter, &mut self.sockets) {
                PollResult::None => break,
                PollResult::SocketStateChanged => busy = true,
            }
        }
        adapter.device_mut().flush();
        // A connection lingering in TIME-WAIT goes back to the pool in the next step: now.
        busy || self.pool.lingering()
    }

    /// TCP sockets by state name, as `/stats` counts them.
    pub fn socket_states(&self) -> Vec<(&'static str, usize)> {
        socket_states(&self.sockets)
    }

    /// When the stack next needs a poll, if nothing arrives before.
    pub fn poll_delay(&mut self, now: core::time::Duration) -> Option<core::time::Duration> {
        let now = instant(now);
        let stack = self.iface.poll_delay(now, &self.sockets);
        // While waiting for DHCP, wake up for the fallback deadline too.
        let fallback = (self.ipv4.source == AddressSource::Waiting)
            .then(|| (self.started + to_smol(self.config.dhcp_wait)).max(now) - now);
        // The apps' own clocks (idle timeouts) are not smoltcp's: while any
        // connection is open, look in at least this often; at once while one
        // lingers in TIME-WAIT for the next step.
        let apps = match self.pool.lingering() {
            true => Some(Duration::ZERO),
            false => self.has_connections().then_some(to_smol(APP_TICK)),
        };
        let delay = [stack, fallback, apps].into_iter().flatten().min();
        delay.map(|d| core::time::Duration::from_micros(d.total_micros()))
    }

    /// The pool's numbers, as `/stats` shows them.
    pub fn pool_stats(&self) -> crate::pool::PoolStats {
        self.pool.stats()
    }

    /// Heap held by HTTP connection buffers (for tests).
    #[cfg(test)]
    pub(crate) fn http_buffered(&self) -> usize {
        self.http.buffered()
    }

    /// HTTP connections holding a grown buffer (for tests).
    #[cfg(test)]
    pub(crate) fn http_grown(&self) -> usize {
        self.http.grown()
    }

    /// TCP sockets in `state` (for tests).
    #[cfg(test)]
    pub(crate) fn sockets_in(&self, state: smoltcp::socket::tcp::State) -> usize {
        self.sockets.iter().filter(|(_, s)| matches!(s, smoltcp::socket::Socket::Tcp(t) if t.state() == state)).count()
    }

    /// Entries the pool's and the apps' connection lists have room for (for tests).
    #[cfg(test)]
    pub(crate) fn list_room(&self) -> usize {
        self.pool.room() + self.echo.room() + self.http.room()
    }

    /// The largest receive and send buffers among the connected sockets of
    /// local `port`, (0, 0) if none (for tests).
    #[cfg(test)]
    pub(crate) fn largest_buffers(&self, port: u16) -> (usize, usize) {
        let tcp = self.sockets.iter().filter_map(|(_, s)| match s {
            smoltcp::socket::Socket::Tcp(t) if t.local_endpoint().is_some_and(|e| e.port == port) => {
                Some((t.recv_capacity(), t.send_capacity()))
            }
            _ => None,
        });
        tcp.fold((0, 0), |(r, t), (rx, tx)| (r.max(rx), t.max(tx)))
    }

    /// TCP sockets in the set, whatever their state (for tests).
    #[cfg(test)]
    pub(crate) fn tcp_sockets(&self) -> usize {
        self.sockets.iter().filter(|(_, s)| matches!(s, smoltcp::socket::Socket::Tcp(_))).count()
    }

    /// Whether any connection is open (half-open, connected, closing, TIME-WAIT).
    fn has_connections(&self) -> bool {
        self.pool.live() > 0
    }

    fn poll_address(&mut self, now: Instant) {
        if let Some(handle) = self.dhcp {
            let event = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
                Some(dhcpv4::Event::Configured(lease)) => Some(Ipv4Config {
                    address: Some(lease.address),
                    gateway: lease.router,
                    dns: lease.dns_servers.iter().copied().collect(),
                    source: AddressSource::Dhcp,
                }),
                Some(dhcpv4::Event::Deconfigured) => None,
                None => return self.check_fallback(now),
            };
            match event {
                Some(lease) => self.apply(lease),
                None if self.ipv4.source == AddressSource::Dhcp => {
                    log::warn!("DHCP lease lost; using the static address");
                    self.use_static();
                }
                None => {}
            }
        }
        self.check_fallback(now);
    }

    fn check_fallback(&mut self, now: Instant) {
        if self.ipv4.source == AddressSource::Waiting && now - self.started >= to_smol(self.config.dhcp_wait) {
            log::warn!("no DHCP lease within {} ms; using the static address", self.config.dhcp_wait.as_millis());
            self.use_static();
        }
    }

    fn use_static(&mut self) {
        self.apply(Ipv4Config {
            address: Some(self.config.static_ip),
            gateway: self.config.static_gateway,
            dns: Vec::new(),
            source: AddressSource::Static,
        });
    }

    fn apply(&mut self, mut config: Ipv4Config) {
        // A next hop must be a unicast address: smoltcp asserts it when it
        // looks one up, so a DHCP server (or command line) naming a
        // broadcast, multicast or unspecified router would panic the stack.
        if let Some(gateway) = config.gateway.filter(|g| !is_unicast(*g)) {
            log::warn!("ignoring gateway {gateway} ({:?}): not a unicast address", config.source);
            config.gateway = None;
        }
        if config == self.ipv4 {
            return;
        }
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_)));
            if let Some(address) = config.address
                && addrs.push(IpCidr::Ipv4(address)).is_err()
            {
                log::warn!("no room for {address}");
            }
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(gateway) = config.gateway
            && self.iface.routes_mut().add_default_ipv4_route(gateway).is_err()
        {
            log::warn!("cannot add the default route via {gateway}");
        }
        let mut dns = String::new();
        for (i, server) in config.dns.iter().enumerate() {
            let _ = write!(dns, "{}{server}", if i == 0 { "" } else { ", " });
        }
        log::info!(
            "IPv4 {} via {} ({:?}), DNS {}",
            config.address.map_or(String::from("none"), |a| format!("{a}")),
            config.gateway.map_or(String::from("none"), |g| format!("{g}")),
            config.source,
            if dns.is_empty() { "none" } else { &dns },
        );
        self.ipv4 = config;
    }
}

/// Whether `address` can be a host's (or a router's): not broadcast,
/// multicast or 0.0.0.0, which is what smoltcp's neighbour cache requires.
fn is_unicast(address: Ipv4Addr) -> bool {
    !(address.is_broadcast() || address.is_multicast() || address.is_unspecified())
}

/// The kernel's time since boot as smoltcp's `Instant`.
fn instant(since_boot: core::time::Duration) -> Instant {
    Instant::from_micros(since_boot.as_micros() as i64)
}

fn to_smol(d: core::time::Duration) -> Duration {
    Duration::from_micros(d.as_micros() as u64)
}

/// The EUI-64 link-local address for `mac` (RFC 4291, appendix A).
pub fn ipv6_link_local(mac: [u8; 6]) -> Ipv6Address {
    let m = mac;
    Ipv6Address::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}
