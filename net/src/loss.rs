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

/// Out-of-order ranges each TCP socket keeps (smoltcp's
/// `assembler-max-segment-count-*` feature, set in net/Cargo.toml).
pub const ASSEMBLER_RANGES: usize = 32;

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
    fn a_window_with_many_holes_keeps_every_out_of_order_segment() {
        // Eight holes in one window: 2 % loss and 5 % reordering over the
        // 45 segments of a 64 KiB window make this common. With smoltcp's
        // default of 4 ranges, the later four segments were dropped unacknowledged.
        assert_eq!(kept(8), 8);
        assert_eq!(kept(ASSEMBLER_RANGES), ASSEMBLER_RANGES);
    }
}
