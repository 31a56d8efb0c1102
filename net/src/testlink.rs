//! Host tests of the whole stack: Skiff's interface and a client interface
//! joined by an in-memory link that can lose and reorder frames.
//!
//! The in-memory device ([`MemDevice`], [`link`]) is public with the
//! `testing` feature, for the fuzz targets in `fuzz/`; the tests are not.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::device::{DeviceInfo, NetDevice, RxHalf, TxHalf};

#[cfg(test)]
use {
    crate::config::NetConfig,
    crate::json::JsonWriter,
    crate::phy::Adapter,
    crate::stack::{Host, Stack},
    core::net::Ipv4Addr,
    core::time::Duration,
    smoltcp::iface::{Config, Interface, SocketHandle, SocketSet},
    smoltcp::socket::tcp,
    smoltcp::time::Instant,
    smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Cidr},
};

/// Frames in flight on one direction of the link, oldest first.
pub type Queue = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// One end of the link: frames in, frames out. It never runs out of
/// buffers and checks no checksums (no offloads), MTU 1500.
pub struct MemDevice {
    rx: MemRx,
    tx: MemTx,
    mac: [u8; 6],
}

/// The receive half: takes frames from its queue.
pub struct MemRx(Queue);
/// The transmit half: appends frames to its queue.
pub struct MemTx(Queue);

impl RxHalf for MemRx {
    type Frame = Vec<u8>;
    fn receive(&mut self) -> Option<Vec<u8>> {
        self.0.borrow_mut().pop_front()
    }
    fn bytes<'a>(&self, frame: &'a Vec<u8>) -> &'a [u8] {
        frame
    }
    fn checksum_verified(&self, _frame: &Vec<u8>) -> bool {
        false
    }
    fn recycle(&mut self, _frame: Vec<u8>) {}
}

impl TxHalf for MemTx {
    type Frame = Vec<u8>;
    fn has_room(&mut self) -> bool {
        true
    }
    fn reserve(&mut self, len: usize) -> Option<Vec<u8>> {
        Some(vec![0; len])
    }
    fn bytes_mut<'a>(&mut self, frame: &'a mut Vec<u8>) -> &'a mut [u8] {
        frame
    }
    fn send(&mut self, frame: Vec<u8>) {
        self.0.borrow_mut().push_back(frame);
    }
}

impl NetDevice for MemDevice {
    type Rx = MemRx;
    type Tx = MemTx;
    fn info(&self) -> DeviceInfo {
        DeviceInfo { mac: self.mac, mtu: 1500, max_burst: 64, tx_checksum_offload: false, rx_checksum_offload: false }
    }
    fn split(&mut self) -> (&mut MemRx, &mut MemTx) {
        (&mut self.rx, &mut self.tx)
    }
    fn flush(&mut self) {}
    fn has_work(&self) -> bool {
        !self.rx.0.borrow().is_empty()
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("frames_waiting", self.rx.0.borrow().len() as u64)]
    }
    fn features(&self) -> String {
        "MEMORY".into()
    }
}

/// Two devices joined back to back, and their queues: A's input and output, B's input and output.
#[allow(clippy::type_complexity)]
pub fn link(mac_a: [u8; 6], mac_b: [u8; 6]) -> (MemDevice, MemDevice, Queue, Queue, Queue, Queue) {
    let (a_in, a_out, b_in, b_out): (Queue, Queue, Queue, Queue) = Default::default();
    let a = MemDevice { rx: MemRx(a_in.clone()), tx: MemTx(a_out.clone()), mac: mac_a };
    let b = MemDevice { rx: MemRx(b_in.clone()), tx: MemTx(b_out.clone()), mac: mac_b };
    (a, b, a_in, a_out, b_in, b_out)
}

#[cfg(test)]
/// Moves frames across the wire, losing every `lose_every`-th (0: none) and
/// swapping neighbours every `swap_every`-th step (0: never). Deterministic,
/// so a failure reproduces.
struct Wire {
    lose_every: usize,
    swap_every: usize,
    count: usize,
    lost: usize,
}

#[cfg(test)]
impl Wire {
    fn carry(&mut self, from: &Queue, to: &Queue) {
        let mut frames: Vec<Vec<u8>> = from.borrow_mut().drain(..).collect();
        if self.swap_every > 0 && frames.len() >= 2 && self.count.is_multiple_of(self.swap_every) {
            frames.swap(0, 1);
        }
        for frame in frames {
            self.count += 1;
            if self.lose_every > 0 && self.count.is_multiple_of(self.lose_every) {
                self.lost += 1;
                continue;
            }
            to.borrow_mut().push_back(frame);
        }
    }
}

#[cfg(test)]
struct NoHost;

#[cfg(test)]
impl Host for NoHost {
    fn uptime_ms(&self) -> u64 {
        42
    }
    fn write_stats(&self, json: &mut JsonWriter) {
        json.number("test_host", 1);
    }
}

#[cfg(test)]
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
#[cfg(test)]
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
#[cfg(test)]
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
#[cfg(test)]
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

#[cfg(test)]
/// A server `Stack` and a client interface on one wire.
struct Net {
    server: Stack,
    server_dev: Adapter<MemDevice>,
    client: Interface,
    client_dev: Adapter<MemDevice>,
    sockets: SocketSet<'static>,
    queues: (Queue, Queue, Queue, Queue),
    wire: Wire,
    now: Duration,
}

#[cfg(test)]
impl Net {
    fn new(lose_every: usize, swap_every: usize) -> Net {
        let (a, b, a_in, a_out, b_in, b_out) = link(SERVER_MAC, CLIENT_MAC);
        let mut server_dev = Adapter::new(a);
        let config = NetConfig {
            dhcp: false,
            static_ip: Ipv4Cidr::new(SERVER_IP, 24),
            static_gateway: None,
            ..NetConfig::default()
        };
        let server = Stack::new(&mut server_dev, config, 0x1234_5678, Duration::ZERO);
        let mut client_dev = Adapter::new(b);
        let mut client = Interface::new(
            Config::new(HardwareAddress::Ethernet(EthernetAddress(CLIENT_MAC))),
            &mut client_dev,
            Instant::ZERO,
        );
        client.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(CLIENT_IP), 24));
        });
        Net {
            server,
            server_dev,
            client,
            client_dev,
            sockets: SocketSet::new(vec![]),
            queues: (a_in, a_out, b_in, b_out),
            wire: Wire { lose_every, swap_every, count: 0, lost: 0 },
            now: Duration::ZERO,
        }
    }

    fn connect(&mut self, port: u16, local_port: u16) -> SocketHandle {
        let mut socket =
            tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 65536]), tcp::SocketBuffer::new(vec![0; 65536]));
        socket.connect(self.client.context(), (SERVER_IP, port), local_port).expect("connect");
        self.sockets.add(socket)
    }

    /// One millisecond of simulated time.
    fn step(&mut self) {
        self.now += Duration::from_millis(1);
        self.server.poll(self.now, &mut self.server_dev, &NoHost);
        let now = Instant::from_micros(self.now.as_micros() as i64);
        self.client.poll(now, &mut self.client_dev, &mut self.sockets);
        let (a_in, a_out, b_in, b_out) = &self.queues;
        self.wire.carry(a_out, b_in);
        self.wire.carry(b_out, a_in);
    }

    /// As `step`, with `tamper` applied to each frame the client sends.
    fn step_tampered(&mut self, mut tamper: impl FnMut(&mut Vec<u8>)) {
        self.now += Duration::from_millis(1);
        self.server.poll(self.now, &mut self.server_dev, &NoHost);
        let now = Instant::from_micros(self.now.as_micros() as i64);
        self.client.poll(now, &mut self.client_dev, &mut self.sockets);
        let (a_in, a_out, b_in, b_out) = &self.queues;
        for frame in b_out.borrow_mut().iter_mut() {
            tamper(frame);
        }
        self.wire.carry(a_out, b_in);
        self.wire.carry(b_out, a_in);
    }

    fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Sends `request`, then reads until `done` says the reply is whole.
    fn exchange(&mut self, h: SocketHandle, request: &[u8], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let mut sent = 0;
        let mut reply = Vec::new();
        for _ in 0..200_000 {
            self.step();
            let s = self.socket(h);
            if sent < request.len() && s.can_send() {
                sent += s.send_slice(&request[sent..]).unwrap_or(0);
            }
            if s.can_recv() {
                let _ = s.recv(|d| {
                    reply.extend_from_slice(d);
                    (d.len(), ())
                });
            }
            if done(&reply) {
                return reply;
            }
        }
        panic!("no complete reply in 200 simulated seconds; got {} bytes", reply.len());
    }
}

#[cfg(test)]
fn responses(bytes: &[u8]) -> usize {
    bytes.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
}

#[test]
fn http_get_answers_over_a_clean_link() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40000);
    let reply = net.exchange(h, b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n", |r| r.ends_with(b"</html>\n"));
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: keep-alive"));
    assert!(text.contains("href=\"/stats\""));
}

#[test]
fn keep_alive_and_pipelining_survive_loss_and_reordering() {
    let mut net = Net::new(7, 5);
    let h = net.connect(80, 40001);
    let pipelined =
        b"GET / HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nHEAD /stats HTTP/1.1\r\n\r\nGET /stats HTTP/1.1\r\n\r\n";
    let reply = net.exchange(h, pipelined, |r| responses(r) == 4 && r.ends_with(b"}"));
    let text = String::from_utf8_lossy(&reply);
    let statuses: Vec<&str> = text.match_indices("HTTP/1.1 ").map(|(i, _)| &text[i + 9..i + 12]).collect();
    assert_eq!(statuses, ["200", "404", "200", "200"], "{text}");
    assert!(text.contains("\"test_host\":1") && text.contains("\"features\":\"MEMORY\""), "{text}");
    assert!(text.contains("\"address\":\"10.9.0.1/24\""), "{text}");
    assert!(net.wire.lost > 0, "the link lost nothing: the test proves nothing");
    // The same connection still works.
    let again = net.exchange(h, b"GET / HTTP/1.1\r\n\r\n", |r| r.ends_with(b"</html>\n"));
    assert!(again.starts_with(b"HTTP/1.1 200 OK"));
}

#[test]
fn connection_close_is_honoured() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40002);
    let reply = net.exchange(h, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", |r| r.ends_with(b"</html>\n"));
    assert!(String::from_utf8_lossy(&reply).contains("Connection: close"));
    for _ in 0..2000 {
        net.step();
    }
    assert!(!net.socket(h).may_recv(), "the server did not close");
}

#[test]
fn echo_stream_is_byte_identical_despite_loss_and_reordering() {
    let mut net = Net::new(11, 3);
    let h = net.connect(7, 40003);
    let data: Vec<u8> = (0..512 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let reply = net.exchange(h, &data, |r| r.len() >= data.len());
    assert_eq!(reply.len(), data.len());
    assert!(reply == data, "echo differs");
    assert!(net.wire.lost > 10, "lost only {} frames", net.wire.lost);
}

#[test]
fn a_client_that_does_not_read_gets_back_pressure_not_loss() {
    let mut net = Net::new(0, 0);
    let h = net.connect(7, 40004);
    let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    // Send without reading: the client's receive buffer fills, the echo's
    // send buffer fills, then the echo stops reading and our sends stall.
    let mut sent = 0;
    for _ in 0..5000 {
        net.step();
        let s = net.socket(h);
        if s.can_send() {
            sent += s.send_slice(&data[sent..]).unwrap_or(0);
        }
    }
    assert!(sent < data.len(), "a client that never reads pushed all {} bytes through", data.len());
    // Now read everything: what comes back is exactly what was sent, in order.
    let mut reply = Vec::new();
    for _ in 0..200_000 {
        net.step();
        let s = net.socket(h);
        if sent < data.len() && s.can_send() {
            sent += s.send_slice(&data[sent..]).unwrap_or(0);
        }
        if s.can_recv() {
            let _ = s.recv(|d| {
                reply.extend_from_slice(d);
                (d.len(), ())
            });
        }
        if reply.len() == data.len() {
            break;
        }
    }
    assert!(reply == data, "got {} of {} bytes, or out of order", reply.len(), data.len());
}

#[test]
fn bad_requests_get_their_status_and_the_server_goes_on() {
    let mut net = Net::new(0, 0);
    for (i, (request, status)) in [
        (&b"GARBAGE\r\n\r\n"[..], "400"),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "501"),
        (b"GET / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", "413"),
    ]
    .into_iter()
    .enumerate()
    {
        let h = net.connect(80, 41000 + i as u16);
        let reply = net.exchange(h, request, |r| r.ends_with(b"\n") && r.windows(4).any(|w| w == b"\r\n\r\n"));
        assert!(reply.starts_with(format!("HTTP/1.1 {status}").as_bytes()), "{}", String::from_utf8_lossy(&reply));
    }
    let h = net.connect(80, 42000);
    let ok = net.exchange(h, b"GET / HTTP/1.1\r\n\r\n", |r| r.ends_with(b"</html>\n"));
    assert!(ok.starts_with(b"HTTP/1.1 200"));
}

#[test]
fn without_a_dhcp_server_the_static_address_takes_over_in_time() {
    let (a, _b, _a_in, a_out, _b_in, _b_out) = link(SERVER_MAC, CLIENT_MAC);
    let mut dev = Adapter::new(a);
    let config = NetConfig { dhcp_wait: Duration::from_millis(300), ..NetConfig::default() };
    let mut stack = Stack::new(&mut dev, config, 7, Duration::ZERO);
    let mut now = Duration::ZERO;
    while now < Duration::from_millis(290) {
        now += Duration::from_millis(10);
        stack.poll(now, &mut dev, &NoHost);
        assert_eq!(stack.ipv4().source, crate::stack::AddressSource::Waiting, "at {now:?}");
    }
    // DHCP asked (broadcast DISCOVERs went out), nobody answered.
    assert!(a_out.borrow().iter().any(|f| f[..6] == [0xff; 6]), "no DHCP DISCOVER sent");
    // The poll delay wakes the loop for the fallback deadline.
    assert!(stack.poll_delay(now).is_some_and(|d| d <= Duration::from_millis(10)));
    now += Duration::from_millis(20);
    stack.poll(now, &mut dev, &NoHost);
    let ipv4 = stack.ipv4();
    assert_eq!(ipv4.source, crate::stack::AddressSource::Static);
    assert_eq!(ipv4.address, Some(Ipv4Cidr::new(Ipv4Addr::new(10, 0, 2, 15), 24)));
    assert_eq!(ipv4.gateway, Some(Ipv4Addr::new(10, 0, 2, 2)));
}

/// Found by `cargo fuzz` (stack): a DHCP lease whose router option was not a
/// unicast address (here broadcast; multicast and 0.0.0.0 alike) became the
/// default route, and the first answer to an off-link host hit smoltcp's
/// neighbour-cache assertion: a panic, so a rogue DHCP server could stop
/// Skiff. The static gateway from the command line took the same path.
#[test]
fn a_gateway_that_is_not_unicast_is_refused_not_routed_through() {
    for gateway in [Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1), Ipv4Addr::UNSPECIFIED] {
        let (a, _b, a_in, a_out, _b_in, _b_out) = link(SERVER_MAC, CLIENT_MAC);
        let mut dev = Adapter::new(a);
        let config = NetConfig { dhcp: false, static_gateway: Some(gateway), ..NetConfig::default() };
        let mut stack = Stack::new(&mut dev, config, 7, Duration::ZERO);
        assert_eq!(stack.ipv4().gateway, None, "{gateway} kept as the gateway");
        // A UDP datagram from off the link to a closed port: the ICMP answer
        // would go through the gateway.
        let mut frame = crate::checksum::test_frames::udp4_frame(b"anyone?");
        frame[..6].copy_from_slice(&SERVER_MAC);
        frame[26..34].copy_from_slice(&[192, 0, 2, 1, 10, 0, 2, 15]);
        frame[24..26].copy_from_slice(&[0, 0]);
        let sum = !crate::checksum::fold(crate::checksum::sum(&frame[14..34], 0));
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
        a_in.borrow_mut().push_back(frame);
        stack.poll(Duration::from_millis(1), &mut dev, &NoHost);
        assert!(a_out.borrow().is_empty(), "something was sent towards {gateway}");
    }
}

#[test]
fn stats_list_the_connection_asking_among_the_recent_ones() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40123);
    let first = net.exchange(h, b"GET / HTTP/1.1\r\n\r\n", |r| r.ends_with(b"</html>\n"));
    assert!(first.starts_with(b"HTTP/1.1 200 OK"));
    let reply = net.exchange(h, b"GET /stats HTTP/1.1\r\n\r\n", |r| r.ends_with(b"}"));
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.contains("\"connections_total\":1,\"recent\":[{\"app\":\"http\",\"peer\":\"10.9.0.2:40123\""),
        "{text}"
    );
    // Both requests counted (the second is the one asking); 18 + 23 bytes read.
    assert!(text.contains("\"state\":\"established\",\"ending\":\"open\",\"requests\":2,\"bytes_in\":41"), "{text}");
    assert!(text.contains("\"link\":\"up\""), "{text}");
}

#[cfg(test)]
/// A TCP segment with data, from the client: its checksum is corrupted.
fn corrupt_tcp_data(frame: &mut [u8]) -> bool {
    // Ethernet 14 + IPv4 20 (smoltcp sends no options) + TCP 20 or more.
    let is_tcp_with_data = frame.len() > 54 && frame[12..14] == [0x08, 0x00] && frame[23] == 6;
    if is_tcp_with_data {
        let csum = 14 + 20 + 16;
        frame[csum] ^= 0xFF;
    }
    is_tcp_with_data
}

#[test]
fn a_segment_with_a_bad_tcp_checksum_is_dropped_counted_and_its_retransmission_served() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40002);
    for _ in 0..100 {
        net.step();
    }
    assert!(net.socket(h).may_send(), "handshake");
    net.socket(h).send_slice(b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n").expect("queue request");
    let mut corrupted = 0;
    while corrupted == 0 && net.now < Duration::from_secs(1) {
        net.step_tampered(|f| corrupted += usize::from(corrupt_tcp_data(f)));
    }
    assert_eq!(corrupted, 1);
    for _ in 0..100 {
        net.step();
    }
    assert_eq!(net.server_dev.stats().rx.bad_checksum, 1, "the corrupted segment is counted");
    let reply = net.exchange(h, b"", |r| responses(r) == 1 && r.ends_with(b"</html>\n"));
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"), "the retransmission is served");
}

#[test]
fn truncated_and_fragmented_frames_are_counted_by_reason_and_serving_goes_on() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40003);
    for _ in 0..100 {
        net.step();
    }
    // Every client frame of the next few steps, cut inside its TCP header,
    // or marked as a first fragment.
    let mut cut = 0;
    let mut fragmented = 0;
    net.socket(h).send_slice(b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n").expect("queue request");
    while cut + fragmented < 2 && net.now < Duration::from_secs(5) {
        net.step_tampered(|f| {
            if f.len() > 54 && f[23] == 6 {
                if cut == 0 {
                    // Keep 10 bytes of TCP header; IP total length to match, checksum redone.
                    f.truncate(14 + 20 + 10);
                    f[16..18].copy_from_slice(&30u16.to_be_bytes());
                    cut += 1;
                } else {
                    f[20] |= 0x20; // more fragments
                    fragmented += 1;
                }
                f[24..26].copy_from_slice(&[0, 0]);
                let sum = !crate::checksum::fold(crate::checksum::sum(&f[14..34], 0));
                f[24..26].copy_from_slice(&sum.to_be_bytes());
            }
        });
    }
    net.step(); // the server takes in the last tampered frame
    let drops = net.server_dev.stats().rx;
    assert_eq!((drops.malformed_tcp, drops.ipv4_fragment), (1, 1), "{drops:?}");
    let reply = net.exchange(h, b"", |r| responses(r) == 1 && r.ends_with(b"</html>\n"));
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
}

#[cfg(test)]
/// A SYN from `src`:`port` to the server, as a client that will never
/// complete the handshake sends it (the server cannot even resolve `src`).
fn spoofed_syn(src: Ipv4Addr, port: u16, dst_port: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&SERVER_MAC);
    f.extend_from_slice(&[0x02, 0, 0, 0, 1, 1]);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&SERVER_IP.octets());
    let sum = !crate::checksum::fold(crate::checksum::sum(&f[14..34], 0));
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&dst_port.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x30, 0x39, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0x00, 0, 0, 0, 0]);
    assert!(crate::checksum::fill_in_software(&mut f));
    f
}

#[test]
fn after_a_spoofed_syn_flood_the_listeners_come_back_within_the_half_open_timeout() {
    let mut net = Net::new(0, 0);
    net.step();
    // More SYNs than listening sockets, on both ports, from addresses nobody answers for.
    for i in 0..200u16 {
        let src = Ipv4Addr::new(10, 9, 0, 100 + (i % 100) as u8);
        let port = if i % 2 == 0 { crate::apps::http::PORT } else { crate::apps::echo::PORT };
        net.queues.0.borrow_mut().push_back(spoofed_syn(src, 30000 + i, port));
    }
    for _ in 0..50 {
        net.step();
    }
    let half_open = |net: &Net| net.server.sockets_in(smoltcp::socket::tcp::State::SynReceived);
    assert_eq!(half_open(&net), 80, "every listener taken by the flood");
    let until = net.now + crate::apps::SYN_RECEIVED_TIMEOUT.into() + Duration::from_millis(500);
    while net.now < until {
        net.step();
    }
    assert_eq!(half_open(&net), 0, "half-open sockets given up");
    assert_eq!(net.server.sockets_in(smoltcp::socket::tcp::State::Listen), 80);
    let h = net.connect(80, 40004);
    let reply = net.exchange(h, b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n", |r| r.ends_with(b"</html>\n"));
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
    let h = net.connect(7, 40005);
    assert_eq!(net.exchange(h, b"still echoing", |r| r.len() >= 13), b"still echoing");
}

#[test]
fn a_client_trickling_its_header_gets_408_within_the_idle_timeout_of_its_first_byte() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40006);
    for _ in 0..100 {
        net.step();
    }
    net.socket(h).send_slice(b"GET / HTTP/1.1\r\nX-Slow: ").expect("queue");
    let started = net.now;
    let limit = started + NetConfig::default().http_idle + Duration::from_secs(1);
    let mut reply = Vec::new();
    // One more header byte every 500 ms: never idle, never done.
    while net.now < limit && reply.is_empty() {
        if (net.now - started).as_millis().is_multiple_of(500) {
            let _ = net.socket(h).send_slice(b"a");
        }
        net.step();
        let s = net.socket(h);
        if s.can_recv() {
            let _ = s.recv(|d| {
                reply.extend_from_slice(d);
                (d.len(), ())
            });
        }
    }
    assert!(reply.starts_with(b"HTTP/1.1 408 Request Timeout"), "{:?}", String::from_utf8_lossy(&reply));
    for _ in 0..1000 {
        net.step();
    }
    assert!(!net.socket(h).may_recv(), "the server closed the connection");
}

#[test]
fn a_finished_connection_gives_its_buffers_back() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40007);
    // A backlog of pipelined requests, all answered; then the client closes.
    let requests = b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n".repeat(20);
    let reply = net.exchange(h, &requests, |r| responses(r) == 20 && r.ends_with(b"</html>\n"));
    assert_eq!(responses(&reply), 20);
    net.socket(h).close();
    for _ in 0..2000 {
        net.step();
    }
    assert_eq!(net.server.sockets_in(smoltcp::socket::tcp::State::Listen), 80, "every socket listens again");
    assert_eq!(net.server.http_buffered(), 0, "no heap held for a connection that ended");
}

/// Collects the packet trace's lines on each test's own thread.
#[cfg(test)]
mod capture {
    use std::cell::RefCell;
    use std::string::{String, ToString};
    use std::vec::Vec;

    struct Capture;
    static CAPTURE: Capture = Capture;

    std::thread_local! {
        static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    impl log::Log for Capture {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.target() == crate::trace::TARGET
        }
        fn log(&self, record: &log::Record) {
            if self.enabled(record.metadata()) {
                LINES.with(|l| l.borrow_mut().push(record.args().to_string()));
            }
        }
        fn flush(&self) {}
    }

    /// Turns the trace on (for the whole test binary) and empties this thread's lines.
    pub fn start() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if log::set_logger(&CAPTURE).is_ok() {
                log::set_max_level(log::LevelFilter::Trace);
            }
        });
        LINES.with(|l| l.borrow_mut().clear());
    }

    /// This thread's lines so far.
    pub fn lines() -> Vec<String> {
        LINES.with(|l| l.borrow().clone())
    }
}

#[test]
fn the_trace_follows_a_request_from_tcp_to_the_app_and_back() {
    capture::start();
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40200);
    let reply = net.exchange(h, b"GET /traced HTTP/1.1\r\n\r\n", |r| r.ends_with(b"404 Not Found\n"));
    assert!(reply.starts_with(b"HTTP/1.1 404"));
    let lines = capture::lines();
    // The server's side of it, in order (the client's adapter traces too,
    // with the directions the other way round).
    // (start, end) of each line.
    let wanted = [
        ("-- socket http#0 10.9.0.2:40200 listen -> syn_received", ""),
        ("-- socket http#0 10.9.0.2:40200 syn_received -> established", ""),
        ("rx eth    02:00:00:00:00:02 > 02:00:00:00:00:01 ipv4, 78 bytes", ""),
        ("rx ipv4   10.9.0.2 > 10.9.0.1 tcp, len 64, ttl 64", ""),
        ("rx tcp    40200 > 80 [P.] seq ", " len 24"),
        ("rx socket http#0 10.9.0.2:40200 read 24 bytes", ""),
        ("rx app    http#0 GET /traced", ""),
        ("tx app    http#0 404 Not Found, 150 bytes queued", ""),
        ("tx socket http#0 10.9.0.2:40200 wrote 150 bytes", ""),
        ("tx tcp    80 > 40200 [P.] seq ", " len 150"),
        ("tx ipv4   10.9.0.1 > 10.9.0.2 tcp, len 190, ttl 64", ""),
        ("tx eth    02:00:00:00:00:01 > 02:00:00:00:00:02 ipv4, 204 bytes", ""),
    ];
    let mut at = 0;
    for (start, end) in wanted {
        match lines[at..].iter().position(|l| l.starts_with(start) && l.ends_with(end)) {
            Some(i) => at += i + 1,
            None => panic!("no {start:?}...{end:?} after line {at} in:\n{}", lines.join("\n")),
        }
    }
}

#[test]
fn waves_of_connections_closed_by_the_server_are_never_refused() {
    let mut net = Net::new(0, 0);
    // Five waves of 30 connections at once (fewer than the 40 listening
    // sockets), each closed by the server (`Connection: close`) as soon as it
    // has answered; the next wave starts as soon as the last one is served.
    const WAVE: u16 = 30;
    for wave in 0..5u16 {
        let handles: Vec<SocketHandle> = (0..WAVE).map(|i| net.connect(80, 41000 + wave * WAVE + i)).collect();
        let mut replies = vec![Vec::new(); handles.len()];
        let mut sent = vec![false; handles.len()];
        for _ in 0..5_000 {
            net.step();
            for (k, &h) in handles.iter().enumerate() {
                let s = net.socket(h);
                if !sent[k] && s.can_send() {
                    sent[k] = s.send_slice(b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n").is_ok();
                }
                if s.can_recv() {
                    let _ = s.recv(|d| {
                        replies[k].extend_from_slice(d);
                        (d.len(), ())
                    });
                }
                if s.state() == tcp::State::CloseWait && !s.can_recv() {
                    s.close();
                }
            }
            if replies.iter().all(|r| r.ends_with(b"</html>\n")) {
                break;
            }
        }
        for (k, r) in replies.iter().enumerate() {
            assert!(r.starts_with(b"HTTP/1.1 200 OK"), "wave {wave}, connection {k}: {:?}", String::from_utf8_lossy(r));
        }
        for _ in 0..3 {
            net.step();
        }
        for h in handles {
            net.sockets.remove(h);
        }
    }
}

#[test]
fn the_first_connection_after_a_long_quiet_spell_is_served() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40008);
    let reply = net.exchange(h, b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n", |r| r.ends_with(b"</html>\n"));
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
    net.socket(h).close();
    for _ in 0..100 {
        net.step();
    }
    // Nothing connected: the kernel need not poll for a long time, and the
    // next SYN is what wakes it. That SYN must not meet an idle clock that
    // ran all that while.
    for (port, local) in [(80, 40009), (7, 40010)] {
        let h = net.connect(port, local);
        let now = Instant::from_micros(net.now.as_micros() as i64);
        net.client.poll(now, &mut net.client_dev, &mut net.sockets);
        let (a_in, _, _, b_out) = &net.queues;
        net.wire.carry(b_out, a_in);
        net.now += NetConfig::default().http_idle * 2;
        type Check = fn(&[u8]) -> bool;
        let (request, done): (&[u8], Check) = if port == 80 {
            (b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n", |r| r.ends_with(b"</html>\n"))
        } else {
            (b"hello", |r| r == b"hello")
        };
        let reply = net.exchange(h, request, done);
        assert!(done(&reply), "port {port}");
    }
}
