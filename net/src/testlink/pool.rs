//! Host tests of the connection pool (`crate::pool`) over the in-memory link:
//! many clients at once, the limits, floods, and the return to baseline.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::harness::*;
use crate::pool::{LISTENERS_PER_PORT, PoolStats};

/// All the TCP sockets an idle server holds: its two ports' listeners.
const LISTENING: usize = 2 * LISTENERS_PER_PORT;
const KEEP_ALIVE: &[u8] = b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n";
const LAST: &[u8] = b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n";

/// What happened to a crowd of clients.
#[derive(Debug, Default)]
struct Crowd {
    /// Clients that got every answer.
    served: usize,
    /// Clients whose connection closed before they had every answer (a
    /// reset, since the server closes only after the last answer).
    failed: usize,
}

/// `clients` HTTP clients connect at once, each makes `requests` keep-alive
/// requests one after another (the last with `Connection: close`) and
/// closes. Bounded: at most `limit` of simulated time.
fn crowd(net: &mut Net, clients: u16, requests: usize, limit: Duration) -> Crowd {
    let handles: Vec<SocketHandle> = (0..clients).map(|i| net.connect(80, 20000 + i)).collect();
    let mut replies = vec![Vec::new(); handles.len()];
    let mut asked = vec![0usize; handles.len()];
    let mut done = vec![false; handles.len()];
    let mut crowd = Crowd::default();
    let until = net.now + limit;
    while net.now < until && crowd.served + crowd.failed < handles.len() {
        net.step();
        for (k, &h) in handles.iter().enumerate() {
            if done[k] {
                continue;
            }
            let s = net.socket(h);
            read_into(s, &mut replies[k]);
            let answered = responses(&replies[k]);
            let whole = replies[k].ends_with(b"</html>\n");
            if answered == requests && whole {
                s.close();
                done[k] = true;
                crowd.served += 1;
                continue;
            }
            if s.state() == tcp::State::Closed || s.state() == tcp::State::CloseWait {
                done[k] = true;
                crowd.failed += 1;
                continue;
            }
            if s.can_send() && asked[k] == answered && (answered == 0 || whole) && asked[k] < requests {
                let request = if asked[k] + 1 == requests { LAST } else { KEEP_ALIVE };
                if s.send_slice(request) == Ok(request.len()) {
                    asked[k] += 1;
                }
            }
        }
    }
    // The clients' side finishes; then their sockets go.
    for _ in 0..100 {
        net.step();
    }
    for h in handles {
        net.sockets.remove(h);
    }
    crowd
}

/// Waits out the server's linger and timers, then checks that the pool
/// holds nothing but its listeners.
fn assert_back_to_baseline(net: &mut Net) {
    for _ in 0..200 {
        net.step();
    }
    let stats = net.server.pool_stats();
    assert_eq!((stats.half_open, stats.established), (0, 0), "{stats:?}");
    assert_eq!(stats.listening, LISTENING as u64);
    assert_eq!(net.server.tcp_sockets(), LISTENING, "every connection's socket freed");
    assert_eq!(net.server.http_buffered(), 0, "no HTTP buffers held");
    // Found by the hostile suite: the lists grew with a crowd of 1,000 and
    // kept their size, 211 KB of heap above the baseline. 64 entries then,
    // and the pool's list of sockets freed in TIME-WAIT (`time_wait::Departures`)
    // keeps `KEEP_ROOM` more.
    let bound = 64 + crate::room::KEEP_ROOM;
    assert!(net.server.list_room() <= bound, "the connection lists kept room for {}", net.server.list_room());
}

/// Found in issue 16: each port had 40 fixed listening sockets and
/// smoltcp no backlog, so of many clients at once all but 40 were reset.
#[test]
fn two_hundred_keep_alive_clients_at_once_are_all_served() {
    let mut net = Net::new(0, 0);
    let crowd = crowd(&mut net, 200, 3, Duration::from_secs(60));
    assert_eq!((crowd.served, crowd.failed), (200, 0), "{:?}", net.server.pool_stats());
    assert_back_to_baseline(&mut net);
}

#[test]
fn past_the_limit_clients_wait_for_a_slot_and_are_all_served() {
    // One client address: its own cap would come first.
    let mut net = Net::with_config(0, 0, |c| {
        c.max_conns = Some(20);
        c.max_conns_per_peer = Some(20);
        c.backlog = Some(100);
    });
    let start = net.now;
    let crowd = crowd(&mut net, 100, 2, Duration::from_secs(120));
    let stats = net.server.pool_stats();
    assert_eq!((crowd.served, crowd.failed), (100, 0), "{stats:?}");
    assert_eq!(stats.syn_dropped_full, 0, "the queue held every SYN: {stats:?}");
    // Served from the queue as slots freed, not at the clients' SYN retries (1 s on).
    assert!(net.now - start < Duration::from_millis(900), "took {:?}", net.now - start);
    assert_back_to_baseline(&mut net);
}

#[test]
fn past_the_limit_and_the_queue_clients_retry_and_are_all_served() {
    let mut net = Net::with_config(0, 0, |c| {
        c.max_conns = Some(20);
        c.max_conns_per_peer = Some(20);
        c.backlog = Some(10);
    });
    let crowd = crowd(&mut net, 100, 2, Duration::from_secs(120));
    let stats = net.server.pool_stats();
    assert_eq!((crowd.served, crowd.failed), (100, 0), "{stats:?}");
    assert!(stats.syn_dropped_full > 0, "the queue never filled: {stats:?}");
    assert_back_to_baseline(&mut net);
}

/// Steps until `h` is established (or `steps` ms pass).
fn establish(net: &mut Net, h: SocketHandle, steps: usize) -> bool {
    for _ in 0..steps {
        net.step();
        if net.socket(h).state() == tcp::State::Established {
            return true;
        }
    }
    false
}

#[test]
fn at_the_limit_a_syn_waits_without_a_reply_and_is_answered_when_a_slot_frees() {
    let mut net = Net::with_config(0, 0, |c| {
        c.max_conns = Some(2);
        c.max_conns_per_peer = Some(3);
    });
    let first = net.connect(80, 41001);
    let second = net.connect(80, 41002);
    assert!(establish(&mut net, first, 100) && establish(&mut net, second, 100));
    let third = net.connect(80, 41003);
    for _ in 0..1500 {
        net.step();
    }
    // A reset would have closed it; a SYN-ACK established it. Its
    // retransmitted SYN (at 1 s) took no second place in the queue.
    assert_eq!(net.socket(third).state(), tcp::State::SynSent, "the third SYN got an answer");
    let stats = net.server.pool_stats();
    assert_eq!((stats.queued, stats.syn_dropped_full), (1, 0), "{stats:?}");
    // A slot frees up: the waiting SYN gets it at once.
    net.socket(first).close();
    assert!(establish(&mut net, third, 50), "the waiting client was not answered when a slot freed");
    let reply = net.exchange(third, KEEP_ALIVE, |r| r.ends_with(b"</html>\n"));
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
}

#[test]
fn at_the_limit_with_the_queue_full_a_syn_is_dropped_without_a_reply() {
    let mut net = Net::with_config(0, 0, |c| {
        c.max_conns = Some(2);
        c.max_conns_per_peer = Some(3);
        c.backlog = Some(0);
    });
    let first = net.connect(80, 41001);
    let second = net.connect(80, 41002);
    assert!(establish(&mut net, first, 100) && establish(&mut net, second, 100));
    let third = net.connect(80, 41003);
    for _ in 0..500 {
        net.step();
    }
    // A reset would have closed it; a SYN-ACK established it.
    assert_eq!(net.socket(third).state(), tcp::State::SynSent, "the third SYN got an answer");
    assert!(net.server.pool_stats().syn_dropped_full >= 1);
    // A slot frees up: the client's next SYN gets it.
    net.socket(first).close();
    assert!(establish(&mut net, third, 5_000), "the waiting client never got in");
    let reply = net.exchange(third, KEEP_ALIVE, |r| r.ends_with(b"</html>\n"));
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
}

#[test]
fn a_retransmitted_syn_takes_no_second_socket() {
    let mut net = Net::new(0, 0);
    net.step();
    let syn = spoofed_syn(Ipv4Addr::new(10, 9, 0, 77), 33333, 80);
    for _ in 0..3 {
        net.queues.0.borrow_mut().push_back(syn.clone());
        net.step();
    }
    assert_eq!(net.server.pool_stats().half_open, 1);
    assert_eq!(net.server.sockets_in(tcp::State::SynReceived), 1);
    assert_eq!(net.server.tcp_sockets(), LISTENING + 1);
}

#[test]
fn a_spoofed_syn_flood_evicts_its_own_half_open_connections_not_a_real_client() {
    // Half-open connections are capped at 6 (three quarters of 8); no accept
    // queue, so that what does not fit is dropped.
    let mut net = Net::with_config(0, 0, |c| {
        c.max_conns = Some(8);
        c.backlog = Some(0);
    });
    net.step();
    let flood = |net: &mut Net, from: u16, count: u16| {
        for i in from..from + count {
            let src = Ipv4Addr::new(10, 9, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
            net.queues.0.borrow_mut().push_back(spoofed_syn(src, 30000 + i, 80));
        }
    };
    flood(&mut net, 0, 10);
    net.step();
    let stats = net.server.pool_stats();
    // Too young to evict: the SYNs past the cap are dropped instead.
    assert_eq!((stats.half_open, stats.half_open_evicted, stats.syn_dropped_full), (6, 0, 4), "{stats:?}");
    for _ in 0..crate::pool::HALF_OPEN_GRACE.total_millis() {
        net.step();
    }
    flood(&mut net, 10, 4);
    net.step();
    let stats = net.server.pool_stats();
    assert_eq!((stats.half_open, stats.half_open_evicted), (6, 4), "the oldest make room: {stats:?}");
    // A real client connects while the flood goes on, a SYN every 10 ms.
    let h = net.connect(80, 41010);
    let mut established = false;
    for i in 0..200 {
        if i % 10 == 0 {
            flood(&mut net, 100 + i, 1);
        }
        net.step();
        established |= net.socket(h).state() == tcp::State::Established;
    }
    assert!(established, "{:?}", net.server.pool_stats());
    let reply = net.exchange(h, KEEP_ALIVE, |r| r.ends_with(b"</html>\n"));
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
    net.socket(h).close();
    let until = net.now + crate::sockets::SYN_RECEIVED_TIMEOUT.into() + Duration::from_secs(1);
    while net.now < until {
        net.step();
    }
    assert_back_to_baseline(&mut net);
}

#[test]
fn one_peer_cannot_hold_more_than_its_share() {
    let mut net = Net::with_config(0, 0, |c| {
        c.max_conns = Some(8);
        c.max_conns_per_peer = Some(2);
    });
    let first = net.connect(80, 41021);
    let second = net.connect(80, 41022);
    assert!(establish(&mut net, first, 100) && establish(&mut net, second, 100));
    let third = net.connect(80, 41023);
    for _ in 0..500 {
        net.step();
    }
    assert_eq!(net.socket(third).state(), tcp::State::SynSent, "refused without a reply");
    let stats: PoolStats = net.server.pool_stats();
    assert!(stats.per_peer_refused >= 1 && stats.syn_dropped_full == 0, "{stats:?}");
    // Another address still gets in.
    net.queues.0.borrow_mut().push_back(spoofed_syn(Ipv4Addr::new(10, 9, 0, 99), 30001, 80));
    net.step();
    assert_eq!(net.server.pool_stats().half_open, 1);
    net.socket(second).close();
    assert!(establish(&mut net, third, 5_000), "the peer never got its slot back");
}

#[test]
fn stats_shows_the_pool() {
    let mut net = Net::with_config(0, 0, |c| c.max_conns = Some(50));
    let h = net.connect(80, 41030);
    let reply = net.exchange(h, b"GET /stats HTTP/1.1\r\nHost: skiff\r\n\r\n", |r| r.ends_with(b"}"));
    let text = String::from_utf8_lossy(&reply);
    let wanted = r#""pool":{"listening":8,"half_open":0,"established":1,"limit":50,"queued":0,"#;
    assert!(text.contains(wanted), "{text}");
}

/// Found in issue 16: a socket the server closed lingered in TIME-WAIT for
/// 1 ms and until the apps' next look, which with nothing else to do came
/// `APP_TICK` (100 ms) later: its slot was held for a poll delay, not
/// microseconds. Now it goes back in the very next step, which the stack asks
/// for at once.
#[test]
fn a_closed_connection_goes_back_to_the_pool_in_the_next_step_at_once() {
    let mut net = Net::new(0, 0);
    let h = net.connect(80, 41040);
    let reply = net.exchange(h, LAST, |r| r.ends_with(b"</html>\n"));
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
    let mut lingering = false;
    for _ in 0..1000 {
        net.step();
        let s = net.socket(h);
        if s.state() == tcp::State::CloseWait {
            s.close();
        }
        if net.server.sockets_in(tcp::State::TimeWait) == 1 {
            lingering = true;
            break;
        }
    }
    assert!(lingering, "the server's socket never reached TIME-WAIT");
    assert_eq!(net.server.poll_delay(net.now), Some(Duration::ZERO), "the stack must look again at once");
    // The next step, at the same instant: the socket is back.
    net.server.poll(net.now, &mut net.server_dev, &HOST);
    assert_eq!(net.server.tcp_sockets(), LISTENING, "still held: {:?}", net.server.pool_stats());
}

/// Found by the hostile suite: after a SYN flood on the echo port (capped at
/// 40 connections), the flood's half-open connections held the port for 8 s
/// and its queued SYNs stood ahead of a real client's: the health check's
/// echo took 16 s. A port at its own cap now evicts its oldest half-open
/// connection past the grace, as the pool does at its limit.
#[test]
fn a_real_client_gets_through_a_flood_on_a_port_at_its_own_cap() {
    let mut net = Net::new(0, 0);
    net.step();
    for i in 0..100u16 {
        let src = Ipv4Addr::new(10, 9, 2, 1 + (i % 200) as u8);
        net.queues.0.borrow_mut().push_back(spoofed_syn(src, 30000 + i, crate::apps::echo::PORT));
    }
    for _ in 0..2 * crate::pool::HALF_OPEN_GRACE.total_millis() {
        net.step();
    }
    // The port is at its cap, with the flood's stale half-open connections.
    let stats = net.server.pool_stats();
    assert_eq!(stats.half_open, crate::apps::echo::CONNECTIONS as u64, "{stats:?}");
    let h = net.connect(crate::apps::echo::PORT, 41050);
    assert!(establish(&mut net, h, 500), "not connected before the SYN's retry: {:?}", net.server.pool_stats());
    assert_eq!(net.exchange(h, b"through", |r| r.len() >= 7), b"through");
}

/// The hostile suite's SYN flood sends half its SYNs to the echo port (40
/// connections at most): the flood's SYNs past those 40 queued, each taking
/// a slot 20 ms (`HALF_OPEN_GRACE`) in turn, and a real client's SYN after
/// the flood waited behind all of them (0.78 s seen on a TAP boot).
#[test]
fn a_real_clients_syn_after_a_flood_waits_behind_no_more_than_its_ports_share_of_it() {
    let mut net = Net::new(0, 0);
    net.step();
    for i in 0..1000u16 {
        let src = Ipv4Addr::new(10, 9, 3 + (i / 250) as u8, 1 + (i % 250) as u8);
        net.queues.0.borrow_mut().push_back(spoofed_syn(src, 30000 + i, crate::apps::echo::PORT));
    }
    for _ in 0..2 * crate::pool::HALF_OPEN_GRACE.total_millis() {
        net.step();
    }
    let stats = net.server.pool_stats();
    assert!(stats.queued <= crate::apps::echo::CONNECTIONS as u64, "the port's queue is bounded: {stats:?}");
    let h = net.connect(crate::apps::echo::PORT, 41060);
    // Well before the client's first SYN retransmission (1 s, RFC 6298 2.1).
    assert!(establish(&mut net, h, 100), "still not connected after 100 ms: {:?}", net.server.pool_stats());
    assert_eq!(net.exchange(h, b"first", |r| r.len() >= 5), b"first");
}

/// The sum of `/stats`' loss-recovery counters in `reply`.
fn recovery_total(reply: &[u8]) -> u64 {
    let text = core::str::from_utf8(reply).unwrap_or("");
    ["retransmit_timeouts", "fast_retransmits", "loss_probes"]
        .iter()
        .map(|key| {
            let at = text.find(&alloc::format!("\"{key}\":")).map_or(text.len(), |i| i + key.len() + 3);
            text[at..].split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum()
}

#[test]
fn loss_recovery_counts_outlive_the_socket_of_the_connection_that_made_them() {
    // The pool frees a connection's socket when it ends; `/stats` must still
    // count the retransmissions that connection needed.
    let mut net = Net::new(4, 0);
    for i in 0..4 {
        let h = net.connect(80, 41_000 + i);
        let reply = net
            .exchange(h, b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n", |r| r.ends_with(b"</html>\n"));
        assert!(reply.starts_with(b"HTTP/1.1 200"));
    }
    for _ in 0..30_000 {
        net.step();
    }
    assert!(net.wire.lost > 0);
    net.wire.lose_every = 0;
    let h = net.connect(80, 41_100);
    let stats = net.exchange(h, b"GET /stats HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n", |r| {
        r.ends_with(b"}") || r.ends_with(b"}\n")
    });
    assert!(recovery_total(&stats) > 0, "{}", String::from_utf8_lossy(&stats));
}

/// Found by a fresh-clone run of the hostile suite (heap 164 KB above its
/// baseline once): the lists gave their room back only when empty, so one
/// connection still open kept the room a crowd had needed.
#[test]
fn a_crowds_room_is_given_back_while_a_connection_stays_open() {
    let mut net = Net::new(0, 0);
    let stayer = net.connect(80, 19_000);
    let reply = net.exchange(stayer, KEEP_ALIVE, |r| r.ends_with(b"</html>\n"));
    assert!(reply.starts_with(b"HTTP/1.1 200"));
    let crowd = crowd(&mut net, 200, 3, Duration::from_secs(60));
    assert_eq!((crowd.served, crowd.failed), (200, 0));
    for _ in 0..200 {
        net.step();
    }
    assert_eq!(net.socket(stayer).state(), tcp::State::Established, "the stayer is still connected");
    assert!(net.server.list_room() <= 64, "the connection lists kept room for {}", net.server.list_room());
}
