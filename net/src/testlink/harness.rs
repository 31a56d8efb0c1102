//! The test bench: a server [`Stack`] and a smoltcp client interface on one
//! in-memory wire, stepped a simulated millisecond at a time.

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Cidr};

use super::{MemDevice, Queue, link};
use crate::config::NetConfig;
use crate::phy::Adapter;
use crate::stack::Stack;
use crate::stats::HostStats;

/// Moves frames across the wire, losing every `lose_every`-th (0: none) and
/// swapping neighbours every `swap_every`-th step (0: never). Deterministic,
/// so a failure reproduces.
pub struct Wire {
    pub lose_every: usize,
    pub swap_every: usize,
    pub count: usize,
    pub lost: usize,
}

impl Wire {
    pub fn carry(&mut self, from: &Queue, to: &Queue) {
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

/// The kernel's part of `/stats` in tests: a fixed uptime, the rest zero.
pub const HOST: HostStats = HostStats {
    uptime_ms: 42,
    heap: crate::stats::HeapStats { in_use: 0, peak: 0, size: 0 },
    interrupts: crate::stats::InterruptStats { timer: 0, nic_config: 0, nic_rx: 0, nic_tx: 0, total: 0 },
    main_loop: crate::stats::MainLoopStats {
        mode: "test",
        wakeups_device: 0,
        wakeups_timer: 0,
        wakeups_other: 0,
        sleeps_raced: 0,
        halted_cycles: 0,
        loop_cycles: 0,
    },
};

pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

/// A server `Stack` and a client interface on one wire.
pub struct Net {
    pub server: Stack,
    pub server_dev: Adapter<MemDevice>,
    pub client: Interface,
    pub client_dev: Adapter<MemDevice>,
    pub sockets: SocketSet<'static>,
    pub queues: (Queue, Queue, Queue, Queue),
    pub wire: Wire,
    pub now: Duration,
}

impl Net {
    pub fn new(lose_every: usize, swap_every: usize) -> Net {
        Net::with_config(lose_every, swap_every, |_| {})
    }

    /// As `new`, with `edit` applied to the server's configuration.
    pub fn with_config(lose_every: usize, swap_every: usize, edit: impl FnOnce(&mut NetConfig)) -> Net {
        let (a, b, a_in, a_out, b_in, b_out) = link(SERVER_MAC, CLIENT_MAC);
        let mut server_dev = Adapter::new(a);
        let mut config = NetConfig {
            dhcp: false,
            static_ip: Ipv4Cidr::new(SERVER_IP, 24),
            static_gateway: None,
            ..NetConfig::default()
        };
        edit(&mut config);
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

    pub fn connect(&mut self, port: u16, local_port: u16) -> SocketHandle {
        self.connect_with_rx_buffer(port, local_port, 65536)
    }

    /// As `connect`, with a receive buffer of `rx` bytes (a small one makes
    /// a slow reader's window close sooner).
    pub fn connect_with_rx_buffer(&mut self, port: u16, local_port: u16, rx: usize) -> SocketHandle {
        self.connect_socket(port, local_port, rx, false)
    }

    /// As `connect`, offering TCP Timestamps, as Linux's clients do.
    pub fn connect_offering_timestamps(&mut self, port: u16, local_port: u16) -> SocketHandle {
        self.connect_socket(port, local_port, 65536, true)
    }

    fn connect_socket(&mut self, port: u16, local_port: u16, rx: usize, timestamps: bool) -> SocketHandle {
        let mut socket = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; rx]), tcp::SocketBuffer::new(vec![0; 65536]));
        socket.set_timestamps_from_clock(timestamps);
        socket.connect(self.client.context(), (SERVER_IP, port), local_port).expect("connect");
        self.sockets.add(socket)
    }

    /// One millisecond of simulated time.
    pub fn step(&mut self) {
        self.step_tampered(|_| {});
    }

    /// As `step`, with `tamper` applied to each frame the client sends.
    pub fn step_tampered(&mut self, tamper: impl FnMut(&mut Vec<u8>)) {
        self.step_with(tamper, |_, _| false);
    }

    /// As `step`, each frame the server sends lost if `lose(now, frame)` says so.
    pub fn step_losing_server_frames(&mut self, lose: impl FnMut(Duration, &[u8]) -> bool) {
        self.step_with(|_| {}, lose);
    }

    fn step_with(&mut self, mut tamper: impl FnMut(&mut Vec<u8>), mut lose: impl FnMut(Duration, &[u8]) -> bool) {
        self.now += Duration::from_millis(1);
        self.server.poll(self.now, &mut self.server_dev, &HOST);
        let now = Instant::from_micros(self.now.as_micros() as i64);
        self.client.poll(now, &mut self.client_dev, &mut self.sockets);
        let (a_in, a_out, b_in, b_out) = &self.queues;
        for frame in b_out.borrow_mut().iter_mut() {
            tamper(frame);
        }
        a_out.borrow_mut().retain(|frame| !lose(self.now, frame));
        self.wire.carry(a_out, b_in);
        self.wire.carry(b_out, a_in);
    }

    pub fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Sends `request`, then reads until `done` says the reply is whole.
    pub fn exchange(&mut self, h: SocketHandle, request: &[u8], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let mut sent = 0;
        let mut reply = Vec::new();
        for _ in 0..200_000 {
            self.step();
            let s = self.socket(h);
            if sent < request.len() && s.can_send() {
                sent += s.send_slice(&request[sent..]).unwrap_or(0);
            }
            read_into(s, &mut reply);
            if done(&reply) {
                return reply;
            }
        }
        panic!("no complete reply in 200 simulated seconds; got {} bytes", reply.len());
    }
}

/// Appends what `socket` has received to `reply`; returns how many bytes.
pub fn read_into(socket: &mut tcp::Socket, reply: &mut Vec<u8>) -> usize {
    read_at_most(socket, reply, usize::MAX)
}

/// Appends at most `limit` bytes of what `socket` has received to `reply`.
pub fn read_at_most(socket: &mut tcp::Socket, reply: &mut Vec<u8>, limit: usize) -> usize {
    if !socket.can_recv() {
        return 0;
    }
    socket
        .recv(|d| {
            let n = d.len().min(limit);
            reply.extend_from_slice(&d[..n]);
            (n, n)
        })
        .unwrap_or(0)
}

pub fn responses(bytes: &[u8]) -> usize {
    bytes.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
}

/// A TCP segment with data, from the client: its checksum is corrupted.
pub fn corrupt_tcp_data(frame: &mut [u8]) -> bool {
    // Ethernet 14 + IPv4 20 (smoltcp sends no options) + TCP 20 or more.
    let is_tcp_with_data = frame.len() > 54 && frame[12..14] == [0x08, 0x00] && frame[23] == 6;
    if is_tcp_with_data {
        let csum = 14 + 20 + 16;
        frame[csum] ^= 0xFF;
    }
    is_tcp_with_data
}

/// A SYN from `src`:`port` to the server, as a client that will never
/// complete the handshake sends it (the server cannot even resolve `src`).
pub fn spoofed_syn(src: Ipv4Addr, port: u16, dst_port: u16) -> Vec<u8> {
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
