//! TIME-WAIT after the socket listens again (crate::time_wait): the peer's
//! retransmitted FIN, its first ACK lost, gets an ACK, not a reset.

use alloc::vec::Vec;
use core::time::Duration;

use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetFrame, Ipv4Packet, TcpPacket};

use super::harness::{HOST, Net, read_into};

/// The TCP flags of a frame, if it is TCP over IPv4.
fn tcp_flags(frame: &[u8]) -> Option<(bool, bool, bool, usize)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((tcp.fin(), tcp.ack(), tcp.rst(), tcp.payload().len()))
}

#[test]
fn a_retransmitted_fin_after_the_socket_listens_again_is_acknowledged_not_reset() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40_100);
    // Skiff answers and closes first (Connection: close).
    let reply =
        net.exchange(h, b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n", |r| r.ends_with(b"</html>\n"));
    assert!(!reply.is_empty());
    let mut rest = Vec::new();
    for _ in 0..100 {
        net.step();
        read_into(net.socket(h), &mut rest);
        if net.socket(h).state() == tcp::State::CloseWait {
            break;
        }
    }
    assert_eq!(net.socket(h).state(), tcp::State::CloseWait);
    net.socket(h).close();
    // Step by hand: every frame Skiff sends is looked at; its ACK of our FIN
    // (the first pure ACK after our FIN) is lost.
    let (mut lost_ack, mut resets, mut acks_after) = (false, 0, 0);
    for _ in 0..5_000 {
        net.now += Duration::from_millis(1);
        net.server.poll(net.now, &mut net.server_dev, &HOST);
        let now = smoltcp::time::Instant::from_micros(net.now.as_micros() as i64);
        net.client.poll(now, &mut net.client_dev, &mut net.sockets);
        let (a_in, a_out, b_in, b_out) = &net.queues;
        let from_server: Vec<Vec<u8>> = a_out.borrow_mut().drain(..).collect();
        for frame in from_server {
            match tcp_flags(&frame) {
                Some((false, true, false, 0)) if !lost_ack => lost_ack = true,
                Some((_, _, true, _)) => {
                    resets += 1;
                    b_in.borrow_mut().push_back(frame);
                }
                Some((false, true, false, 0)) => {
                    acks_after += 1;
                    b_in.borrow_mut().push_back(frame);
                }
                _ => b_in.borrow_mut().push_back(frame),
            }
        }
        let to_server: Vec<Vec<u8>> = b_out.borrow_mut().drain(..).collect();
        a_in.borrow_mut().extend(to_server);
        if net.socket(h).state() == tcp::State::Closed {
            break;
        }
    }
    assert!(lost_ack, "Skiff never acknowledged the FIN");
    // Skiff's socket listens again long before the client's FIN comes back.
    assert_eq!(net.server.sockets_in(tcp::State::TimeWait), 0);
    assert_eq!(net.socket(h).state(), tcp::State::Closed);
    assert_eq!(resets, 0, "the retransmitted FIN was answered with a reset");
    assert_eq!(acks_after, 1);
    assert_eq!(net.server_dev.stats().time_wait_fins_answered, 1);
}

#[test]
fn the_record_is_taken_when_the_pool_frees_the_socket_not_by_a_scan() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 40_200);
    // Skiff answers and closes first (Connection: close); the client closes too.
    let reply =
        net.exchange(h, b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n", |r| r.ends_with(b"</html>\n"));
    assert!(!reply.is_empty());
    let mut rest = Vec::new();
    let now = |net: &Net| smoltcp::time::Instant::from_micros(net.now.as_micros() as i64);
    let (mut seen_in_time_wait, mut freed) = (false, false);
    for _ in 0..1_000 {
        net.step();
        read_into(net.socket(h), &mut rest);
        if net.socket(h).state() == tcp::State::CloseWait {
            net.socket(h).close();
        }
        if net.server.sockets_in(tcp::State::TimeWait) == 1 {
            // The socket still answers for itself: nothing scans the set for it.
            seen_in_time_wait = true;
            assert_eq!(net.server_dev.time_wait().len(now(&net)), 0, "remembered before the pool freed it");
        } else if seen_in_time_wait {
            freed = true;
            break;
        }
    }
    assert!(seen_in_time_wait && freed, "the server's socket never went through TIME-WAIT");
    // The pool freed it: its hook handed the connection over, in that step.
    assert_eq!(net.server_dev.time_wait().len(now(&net)), 1);
}
