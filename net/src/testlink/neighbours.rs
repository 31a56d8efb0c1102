//! smoltcp's neighbour cache under an ARP flood: it is sized in
//! net/Cargo.toml (`iface-neighbor-cache-count-256`) to hold every
//! neighbour a /24 can have, so made-up neighbours cannot push a real one out.

use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use smoltcp::time::Instant;

use super::harness::{HOST, Net, SERVER_IP, read_into};

const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n";
/// Made-up neighbours: as many as the hostile suite's `arp-flood` uses.
const MADE_UP: u8 = 200;

/// An ARP request (RFC 826) for the server's address from `ip` at `mac`.
fn arp_request_from(ip: Ipv4Addr, mac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xFF; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&SERVER_IP.octets());
    f
}

fn is_arp_request(frame: &[u8]) -> bool {
    frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[20..22] == [0, 1]
}

#[test]
fn an_arp_flood_from_made_up_neighbours_leaves_the_client_in_the_cache() {
    let mut net = Net::new(0, 0);
    // A first connection: each side learns the other by ARP.
    let h = net.connect(80, 40_300);
    assert!(!net.exchange(h, GET_CLOSE, |r| r.ends_with(b"</html>\n")).is_empty());
    // The flood: requests for the server's address from made-up neighbours
    // on its subnet (smoltcp learns the sender of every one).
    for i in 0..MADE_UP {
        let frame = arp_request_from(Ipv4Addr::new(10, 9, 0, 16 + i), [0x02, 0, 0, 2, 0, i]);
        net.queues.0.borrow_mut().push_back(frame);
    }
    for _ in 0..1_000 {
        net.step();
        if net.queues.0.borrow().is_empty() {
            break;
        }
    }
    assert!(net.queues.0.borrow().is_empty(), "the server never took the flood in");
    // A second connection: the server must answer it without asking for the client again.
    let h = net.connect(80, 40_301);
    let (mut sent, mut reply, mut asked) = (0, Vec::new(), 0);
    for _ in 0..5_000 {
        net.now += Duration::from_millis(1);
        net.server.poll(net.now, &mut net.server_dev, &HOST);
        let now = Instant::from_micros(net.now.as_micros() as i64);
        net.client.poll(now, &mut net.client_dev, &mut net.sockets);
        let (a_in, a_out, b_in, b_out) = &net.queues;
        asked += a_out.borrow().iter().filter(|f| is_arp_request(f)).count();
        net.wire.carry(a_out, b_in);
        net.wire.carry(b_out, a_in);
        let s = net.socket(h);
        if sent < GET_CLOSE.len() && s.can_send() {
            sent += s.send_slice(&GET_CLOSE[sent..]).unwrap_or(0);
        }
        read_into(s, &mut reply);
        if reply.ends_with(b"</html>\n") {
            break;
        }
    }
    assert!(reply.ends_with(b"</html>\n"), "no answer to the second connection");
    assert_eq!(asked, 0, "the flood pushed the client out of the server's neighbour cache");
}
