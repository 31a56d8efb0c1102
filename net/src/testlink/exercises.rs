//! The expected results of docs/exercises.md that the host can show: what
//! `net.ingress_budget=1` and `net.nagle=on` change, frame by frame.

use alloc::vec::Vec;
use core::time::Duration;

use smoltcp::time::Instant;

use super::harness::*;

/// Steps like [`Net::step`], and returns the TCP payload length of every
/// segment the server sent in this step.
fn step_recording(net: &mut Net) -> Vec<usize> {
    net.now += Duration::from_millis(1);
    net.server.poll(net.now, &mut net.server_dev, &HOST);
    let sent: Vec<usize> = net.queues.1.borrow().iter().filter_map(|f| tcp_payload(f)).collect();
    let now = Instant::from_micros(net.now.as_micros() as i64);
    net.client.poll(now, &mut net.client_dev, &mut net.sockets);
    let (a_in, a_out, b_in, b_out) = &net.queues;
    net.wire.carry(a_out, b_in);
    net.wire.carry(b_out, a_in);
    sent
}

/// The TCP payload length of an Ethernet + IPv4 + TCP frame.
fn tcp_payload(frame: &[u8]) -> Option<usize> {
    const ETHERNET: usize = 14;
    const IPV4: u16 = 0x0800;
    const TCP: u8 = 6;
    if frame.len() < ETHERNET + 20 || u16::from_be_bytes([frame[12], frame[13]]) != IPV4 || frame[ETHERNET + 9] != TCP {
        return None;
    }
    let ihl = usize::from(frame[ETHERNET] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([frame[ETHERNET + 2], frame[ETHERNET + 3]]));
    let offset = usize::from(frame.get(ETHERNET + ihl + 12)? >> 4) * 4;
    Some(total.saturating_sub(ihl + offset))
}

/// Asks for `/` (about 5 KB: three full segments and a short one) and
/// returns, for each step that sent data, the payload lengths it sent.
fn answer_steps(nagle: bool) -> Vec<Vec<usize>> {
    let mut net = Net::with_config(0, 0, |c| c.nagle = nagle);
    let h = net.connect(80, 40100);
    let request = b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n";
    let (mut sent, mut reply, mut steps) = (0, Vec::new(), Vec::new());
    for _ in 0..10_000 {
        let lengths: Vec<usize> = step_recording(&mut net).into_iter().filter(|&n| n > 0).collect();
        if !lengths.is_empty() {
            steps.push(lengths);
        }
        let s = net.socket(h);
        if sent < request.len() && s.can_send() {
            sent += s.send_slice(&request[sent..]).unwrap_or(0);
        }
        read_into(s, &mut reply);
        if reply.ends_with(b"</html>\n") {
            return steps;
        }
    }
    panic!("no whole answer; got {} bytes", reply.len());
}

/// Exercise "Nagle back on": with it off (Skiff's default) the whole answer
/// leaves in one step; with it on, the short last segment waits for the
/// client's ACK of the full ones (RFC 896; RFC 9293 3.7.4).
#[test]
fn nagle_on_holds_the_short_last_segment_until_the_ack() {
    const MSS: usize = 1460;
    let off = answer_steps(false);
    assert_eq!(off.len(), 1, "Nagle off: one step sends it all, got {off:?}");
    assert!(off[0].len() >= 2 && off[0].last().is_some_and(|&n| n < MSS), "{off:?}");
    let on = answer_steps(true);
    assert!(on.len() >= 2, "Nagle on: the short segment must wait, got {on:?}");
    assert!(on[0].iter().all(|&n| n == MSS), "first step sends only full segments: {on:?}");
    assert!(on.last().and_then(|s| s.last()).is_some_and(|&n| n < MSS), "{on:?}");
    let total = |steps: &[Vec<usize>]| steps.iter().flatten().sum::<usize>();
    assert_eq!(total(&on), total(&off), "the same bytes either way");
}

/// Exercise "an ingress budget of 1": one poll step takes in one frame and
/// leaves the rest with the device for the next step; by default it takes
/// up to 64.
#[test]
fn an_ingress_budget_of_one_takes_one_frame_per_poll() {
    for (budget, left) in [(1, 4), (crate::stack::INGRESS_BUDGET, 0)] {
        let mut net = Net::with_config(0, 0, |c| c.ingress_budget = budget);
        for port in 0..5 {
            let syn = spoofed_syn(core::net::Ipv4Addr::new(10, 9, 0, 50), 41000 + port, 80);
            net.queues.0.borrow_mut().push_back(syn);
        }
        net.server.poll(Duration::from_millis(1), &mut net.server_dev, &HOST);
        assert_eq!(net.queues.0.borrow().len(), left, "budget {budget}");
    }
}
