//! How the interface gets its address: DHCP, with a static fallback, set on
//! the kernel command line without editing code.
//!
//! ```text
//! net.dhcp=on|off            ask DHCP first (default on)
//! net.dhcp_wait_ms=3000      how long to wait for a lease before the fallback
//! net.ip=10.0.2.15/24        the static address (default: QEMU's user network)
//! net.gateway=10.0.2.2       the static default gateway (default: QEMU's)
//! http.idle_ms=15000         close HTTP connections idle this long
//! net.max_conns=N            connections at once (default: what the heap holds)
//! net.max_conns_per_peer=N   connections at once from one address (default 3/4 of max_conns)
//! net.backlog=N              SYNs waiting for a slot (default: what the heap holds)
//! net.ingress_budget=64      frames taken in per poll step (docs/exercises.md)
//! net.nagle=off|on           Nagle's algorithm on the server sockets (docs/exercises.md)
//! ```

use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;

use smoltcp::wire::Ipv4Cidr;

/// The interface's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Ask DHCP first.
    pub dhcp: bool,
    /// How long to wait for a lease before using the static address.
    pub dhcp_wait: Duration,
    /// The static address and prefix.
    pub static_ip: Ipv4Cidr,
    /// The static default gateway.
    pub static_gateway: Option<Ipv4Addr>,
    /// HTTP connections idle this long are closed.
    pub http_idle: Duration,
    /// Frames taken in per poll step before the apps and transmission get
    /// their turn (at least 1; [`crate::stack::INGRESS_BUDGET`] by default).
    pub ingress_budget: usize,
    /// Nagle's algorithm (RFC 896) on the server sockets: off by default
    /// (see [`crate::sockets::server_socket`] for why); on for the exercise
    /// that shows what it does.
    pub nagle: bool,
    /// Each echo socket's receive and send buffer, in bytes (not on the
    /// command line: the kernel sizes it to its heap with
    /// `EchoServer::buffer_for_heap`).
    pub echo_buffer: usize,
    /// Connections at once (`net.max_conns`); `None`: the kernel sizes it
    /// to its heap (`crate::pool::conns_for_heap`), host tests take
    /// `crate::pool::DEFAULT_MAX_CONNS`.
    pub max_conns: Option<usize>,
    /// Connections at once from one address (`net.max_conns_per_peer`);
    /// `None`: `crate::pool::Limits::new`'s default.
    pub max_conns_per_peer: Option<usize>,
    /// SYNs waiting for a slot at once (`net.backlog`); `None`: the kernel
    /// sizes it to its heap, host tests take `max_conns`.
    pub backlog: Option<usize>,
    /// The wall-clock time at boot, in seconds since the Unix epoch, for
    /// HTTP's `Date` header; `None` when the kernel does not know it (then
    /// no Date is sent: RFC 9110 6.6.1). Set by the kernel, not the command line.
    pub boot_unix_secs: Option<u64>,
}

impl Default for NetConfig {
    /// QEMU's user network: 10.0.2.15/24 via 10.0.2.2, which its DHCP server also hands out.
    fn default() -> Self {
        NetConfig {
            dhcp: true,
            dhcp_wait: Duration::from_secs(3),
            static_ip: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24),
            static_gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            http_idle: Duration::from_secs(15),
            ingress_budget: crate::stack::INGRESS_BUDGET,
            nagle: false,
            echo_buffer: crate::apps::echo::MAX_BUFFER,
            max_conns: None,
            max_conns_per_peer: None,
            backlog: None,
            boot_unix_secs: None,
        }
    }
}

/// A command-line word that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// Why.
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl NetConfig {
    /// Builds a configuration from `get(key)` lookups (the kernel command
    /// line); absent keys keep their defaults.
    pub fn from_lookup<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<NetConfig, ConfigError> {
        let mut c = NetConfig::default();
        if let Some(v) = get("net.dhcp") {
            c.dhcp = on_off(v).ok_or(ConfigError { key: "net.dhcp", reason: "expected on or off" })?;
        }
        if let Some(v) = get("net.dhcp_wait_ms") {
            let ms = v.parse().map_err(|_| ConfigError { key: "net.dhcp_wait_ms", reason: "expected milliseconds" })?;
            c.dhcp_wait = Duration::from_millis(ms);
        }
        if let Some(v) = get("net.ip") {
            c.static_ip = parse_cidr(v).ok_or(ConfigError { key: "net.ip", reason: "expected A.B.C.D/PREFIX" })?;
        }
        if let Some(v) = get("net.gateway") {
            c.static_gateway = match v {
                "none" => None,
                _ => Some(
                    v.parse().map_err(|_| ConfigError { key: "net.gateway", reason: "expected A.B.C.D or none" })?,
                ),
            };
        }
        if let Some(v) = get("http.idle_ms") {
            let ms: u64 =
                v.parse().map_err(|_| ConfigError { key: "http.idle_ms", reason: "expected milliseconds" })?;
            c.http_idle = Duration::from_millis(ms.max(1));
        }
        if let Some(v) = get("net.ingress_budget") {
            let frames: usize = v
                .parse()
                .ok()
                .filter(|n| (1..=MAX_INGRESS_BUDGET).contains(n))
                .ok_or(ConfigError { key: "net.ingress_budget", reason: "expected a number of frames, 1 to 1024" })?;
            c.ingress_budget = frames;
        }
        if let Some(v) = get("net.nagle") {
            c.nagle = on_off(v).ok_or(ConfigError { key: "net.nagle", reason: "expected on or off" })?;
        }
        for (key, field) in [
            ("net.max_conns", &mut c.max_conns),
            ("net.max_conns_per_peer", &mut c.max_conns_per_peer),
            ("net.backlog", &mut c.backlog),
        ] {
            if let Some(v) = get(key) {
                let n: usize =
                    v.parse().ok().filter(|n| *n > 0).ok_or(ConfigError { key, reason: "expected a count above 0" })?;
                *field = Some(n);
            }
        }
        Ok(c)
    }

    /// The pool's limits this configuration asks for.
    pub fn limits(&self) -> crate::pool::Limits {
        let max_conns = self.max_conns.unwrap_or(crate::pool::DEFAULT_MAX_CONNS);
        crate::pool::Limits::new(max_conns, self.max_conns_per_peer, self.backlog)
    }
}

/// The most frames a poll step may take in: a budget is a bound, and a
/// larger one would let a flood starve transmission for longer.
const MAX_INGRESS_BUDGET: usize = 1024;

fn on_off(value: &str) -> Option<bool> {
    match value {
        "on" | "yes" | "1" => Some(true),
        "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn parse_cidr(text: &str) -> Option<Ipv4Cidr> {
    let (addr, prefix) = text.split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some(Ipv4Cidr::new(addr.parse().ok()?, prefix))
}

#[cfg(test)]
mod test {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
    }

    #[test]
    fn defaults_are_qemus_user_network() {
        let c = NetConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c, NetConfig::default());
        assert!(c.dhcp);
        assert_eq!(c.static_ip.to_string(), "10.0.2.15/24");
    }

    #[test]
    fn every_key_is_read() {
        let c = NetConfig::from_lookup(lookup(&[
            ("net.dhcp", "off"),
            ("net.dhcp_wait_ms", "500"),
            ("net.ip", "192.0.2.7/25"),
            ("net.gateway", "none"),
            ("http.idle_ms", "2000"),
            ("net.ingress_budget", "1"),
            ("net.nagle", "on"),
            ("net.max_conns", "100"),
            ("net.max_conns_per_peer", "10"),
            ("net.backlog", "7"),
        ]))
        .unwrap();
        assert_eq!(c.backlog, Some(7));
        assert_eq!(c.ingress_budget, 1);
        assert!(c.nagle);
        assert!(!c.dhcp);
        assert_eq!(c.dhcp_wait, Duration::from_millis(500));
        assert_eq!(c.static_ip, Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 7), 25));
        assert_eq!(c.static_gateway, None);
        assert_eq!(c.http_idle, Duration::from_secs(2));
        assert_eq!((c.max_conns, c.max_conns_per_peer), (Some(100), Some(10)));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("net.dhcp", "maybe"),
            ("net.ip", "10.0.2.15"),
            ("net.ip", "10.0.2.15/33"),
            ("net.gateway", "x"),
            ("net.dhcp_wait_ms", "-1"),
            ("net.ingress_budget", "0"),
            ("net.ingress_budget", "1025"),
            ("net.nagle", "sometimes"),
            ("net.max_conns", "0"),
            ("net.max_conns_per_peer", "many"),
            ("net.backlog", "-3"),
        ] {
            let err = NetConfig::from_lookup(lookup(&[(key, value)])).unwrap_err();
            assert_eq!(err.key, key);
        }
    }
}
