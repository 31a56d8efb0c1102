//! Loss recovery on a damaged link (issue 14): what Skiff asks of smoltcp's
//! TCP, and why. The figures and the evidence are in docs/network.md
//! ("TCP on a bad link"); `cargo xtask qemu --filter lossy` measures them.
//!
//! - Out-of-order segments: smoltcp keeps a received segment that leaves a
//!   hole only if its assembler has a free slot for one more contiguous
//!   range; otherwise it drops the segment without acknowledging it, and the
//!   peer must send it again. smoltcp's default is 4 ranges per socket; with
//!   a 64 KiB window (some 45 full segments) on a link that loses 2 % and
//!   reorders 5 % of frames, a window with more than 4 holes is common.
//!   net/Cargo.toml turns on `assembler-max-segment-count-32`
//!   ([`ASSEMBLER_RANGES`]): 512 bytes per socket instead of 64.
//! - Retransmission: smoltcp itself is patched (third_party/smoltcp/SKIFF.md:
//!   duplicate ACKs from SACK, partial ACKs, a 200 ms RTO floor, a SYN to the
//!   socket holding its connection, a tail-loss probe after two round trips).
//! - `/stats` shows loss recovery at work: [`write_stats`] sums the counters
//!   the vendored smoltcp keeps per socket (third_party/smoltcp, patch 5).

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp::RecoveryCounters;

use crate::json::JsonWriter;

/// Out-of-order ranges each TCP socket keeps (smoltcp's
/// `assembler-max-segment-count-*` feature, set in net/Cargo.toml).
pub const ASSEMBLER_RANGES: usize = 32;

/// Totals since boot: every live TCP socket's recovery counters plus
/// `retired`, what the sockets freed so far had counted (the pool frees a
/// connection's socket when it ends: `crate::pool`).
pub fn totals(sockets: &SocketSet<'_>, retired: &RecoveryCounters) -> RecoveryCounters {
    let mut sum = *retired;
    for (_, socket) in sockets.iter() {
        if let smoltcp::socket::Socket::Tcp(tcp) = socket {
            add(&mut sum, &tcp.recovery_counters());
        }
    }
    sum
}

/// Adds `c` into `sum`.
pub fn add(sum: &mut RecoveryCounters, c: &RecoveryCounters) {
    sum.timeouts += c.timeouts;
    sum.fast_retransmits += c.fast_retransmits;
    sum.out_of_order_kept += c.out_of_order_kept;
    sum.out_of_order_dropped += c.out_of_order_dropped;
    sum.loss_probes += c.loss_probes;
}

/// `/stats`' `tcp` object: retransmission timeouts, fast retransmits,
/// segments received ahead of a hole, kept or dropped, tail-loss probes
/// (third_party/smoltcp, patch 7), and retransmitted
/// FINs answered in TIME-WAIT without a socket (`crate::time_wait`).
pub fn write_stats(json: &mut JsonWriter, t: &RecoveryCounters, time_wait_fins_answered: u64) {
    json.begin_object("tcp");
    json.number("retransmit_timeouts", t.timeouts);
    json.number("fast_retransmits", t.fast_retransmits);
    json.number("out_of_order_kept", t.out_of_order_kept);
    json.number("out_of_order_dropped", t.out_of_order_dropped);
    json.number("loss_probes", t.loss_probes);
    json.number("time_wait_fins_answered", time_wait_fins_answered);
    json.end_object();
}

#[cfg(test)]
mod tests {
    use smoltcp::storage::Assembler;

    use super::ASSEMBLER_RANGES;

    /// Adds `holes` segments, each after a gap, as a window with that many
    /// losses ahead of its later segments looks to the receiver.
    fn kept(holes: usize) -> usize {
        let mut assembler = Assembler::new();
        (0..holes).filter(|i| assembler.add(1 + i * 2, 1).is_ok()).count()
    }

    #[test]
    fn stats_has_the_recovery_counters_of_every_socket() {
        let mut sockets = smoltcp::iface::SocketSet::new(alloc::vec![]);
        for _ in 0..3 {
            sockets.add(crate::sockets::server_socket(1024, 1024, 80));
        }
        assert_eq!(super::totals(&sockets, &Default::default()), smoltcp::socket::tcp::RecoveryCounters::default());
        let mut json = crate::json::JsonWriter::new();
        super::write_stats(&mut json, &super::totals(&sockets, &Default::default()), 0);
        let text = json.finish();
        for key in [
            "retransmit_timeouts",
            "fast_retransmits",
            "out_of_order_kept",
            "out_of_order_dropped",
            "loss_probes",
            "time_wait_fins_answered",
        ] {
            assert!(text.contains(&alloc::format!("\"{key}\":0")), "{key} missing from {text}");
        }
    }

    #[test]
    fn a_window_with_many_holes_keeps_every_out_of_order_segment() {
        // Eight holes in one window: 2 % loss and 5 % reordering over the
        // 45 segments of a 64 KiB window make this common. With smoltcp's
        // default of 4 ranges, the later four segments were dropped unacknowledged.
        assert_eq!(kept(8), 8);
        assert_eq!(kept(ASSEMBLER_RANGES), ASSEMBLER_RANGES);
    }
}
