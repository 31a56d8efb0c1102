//! The handshake and the losses right after it, on a link whose damage a
//! test chooses frame by frame (issue 14): a resent SYN-ACK leaves the
//! server no sequence-based round trip, so what follows it depends on
//! smoltcp patches 6 and 16.

use alloc::vec::Vec;
use core::time::Duration;

use smoltcp::socket::tcp;

use super::harness::*;

/// Ethernet + IPv4 headers, then the TCP flags byte (RFC 9293 3.1).
const TCP_FLAGS: usize = 14 + 20 + 13;
const SYN_ACK: u8 = 0x12;

/// How a connection through [`serve_get`]'s link went.
struct Served {
    /// The client socket's state at the end.
    state: tcp::State,
    /// When the whole answer (up to the server's FIN) had arrived.
    answered_at: Option<Duration>,
    /// Whether it was a 200.
    ok: bool,
}

/// Connects to port 80 (the client offering TCP Timestamps, as Linux's
/// do), sends a GET, and runs for `run_for`, each frame the server sends
/// lost if `lose(now, frame)` says so.
fn serve_get(mut lose: impl FnMut(Duration, &[u8]) -> bool, run_for: Duration) -> Served {
    let mut net = Net::new(0, 0);
    let h = net.connect_offering_timestamps(80, 40_000);
    let (mut sent, mut reply, mut answered_at) = (false, Vec::new(), None);
    while net.now < run_for {
        net.step_losing_server_frames(&mut lose);
        let now = net.now;
        let s = net.socket(h);
        if !sent && s.can_send() {
            sent = s.send_slice(b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n").is_ok();
        }
        read_into(s, &mut reply);
        if answered_at.is_none() && sent && !s.may_recv() {
            answered_at = Some(now);
        }
    }
    let state = net.socket(h).state();
    Served { state, answered_at, ok: reply.starts_with(b"HTTP/1.1 200") }
}

fn flags(frame: &[u8]) -> u8 {
    frame.get(TCP_FLAGS).map_or(0, |f| f & 0x3F)
}

/// The TCP payload's length: IPv4's total length less its header and
/// TCP's (RFC 791 3.1, RFC 9293 3.1).
fn payload_len(frame: &[u8]) -> usize {
    let (Some(len), Some(tcp_words)) = (frame.get(16..18), frame.get(TCP_FLAGS - 1)) else {
        return 0;
    };
    let ip_total = usize::from(u16::from_be_bytes([len[0], len[1]]));
    ip_total.saturating_sub(20 + usize::from(tcp_words >> 4) * 4)
}

#[test]
fn a_connection_whose_syn_acks_are_lost_for_three_seconds_is_still_served() {
    // The server's SYN-ACKs at 0, 1 and 3 s and its answers to the
    // client's SYNs at 1 and 3 s are lost (what 10 % loss did, measured):
    // the handshake completes with the client's SYN at 7 s. With a 3 s
    // half-open limit the server had given up and reset it.
    let lose = |now: Duration, f: &[u8]| flags(f) == SYN_ACK && now < Duration::from_millis(3500);
    let served = serve_get(lose, Duration::from_secs(10));
    assert!(served.ok, "no answer; the client's socket ended {:?}", served.state);
}

#[test]
fn losses_after_a_resent_syn_ack_are_repaired_within_a_few_round_trips() {
    // The first SYN-ACK is lost (resent at 1 s), then the first and third
    // of the answer's four segments: the first is the one a sequence-based
    // round trip would have timed, and two duplicate ACKs are one short of
    // fast retransmit. The resent SYN-ACK leaves no round trip either
    // (Karn's rule): without the timestamp echo's (smoltcp patch 16) the
    // server had no SRTT, so no reordering window or loss probe, and a
    // backed-off 2 s timeout (a 2.00 s stall in issue 14's bench).
    let (mut syn_acks, mut data) = (0, 0);
    let lose = |_: Duration, f: &[u8]| {
        if flags(f) == SYN_ACK {
            syn_acks += 1;
            return syn_acks == 1;
        }
        if payload_len(f) == 0 {
            return false;
        }
        data += 1;
        data == 1 || data == 3
    };
    let served = serve_get(lose, Duration::from_secs(5));
    assert!(served.ok, "no answer; the client's socket ended {:?}", served.state);
    let answered_at = served.answered_at.unwrap_or(Duration::MAX);
    // The handshake ends just after 1 s; the SACKed holes go again a
    // reordering window (SRTT/4) or at most a probe timeout later.
    assert!(answered_at < Duration::from_millis(1200), "answered at {answered_at:?}");
}
