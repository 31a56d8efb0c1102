//! The driver's counters, each named for what it counts, as `/stats` shows them.

use crate::virtio::queue::BadUsed;

/// Defines `NetStats` from one list of counters, with `merge` and `fields`.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// Counters, each named for what it counts.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct NetStats {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl NetStats {
            /// Field-wise sum (each half of the driver keeps its own counters).
            pub fn merge(&self, other: &NetStats) -> NetStats {
                NetStats { $($name: self.$name + other.$name,)* }
            }

            /// Every counter with its name, for publishing.
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($name), self.$name)),*].into_iter()
            }
        }
    };
}

counters! {
    /// Frames received and handed to the caller.
    rx_frames,
    /// Their bytes (Ethernet frames, without the virtio header).
    rx_bytes,
    /// Frames sent.
    tx_frames,
    /// Their bytes.
    tx_bytes,
    /// Used entries with an id that is not a descriptor (rx and tx).
    drop_bad_id,
    /// Used entries for a descriptor not in flight: returned twice (rx and tx).
    drop_not_in_flight,
    /// Used-index jumps past the queue size (rx and tx); the entries between are skipped.
    drop_bad_index,
    /// Received entries claiming more bytes than the buffer.
    rx_drop_bad_len,
    /// Received entries shorter than the header plus an Ethernet header.
    rx_drop_short,
    /// Received headers with offloads we did not negotiate or nonsense offsets.
    rx_drop_bad_header,
    /// Received frames the device vouched for (DATA_VALID).
    rx_csum_valid,
    /// Received frames with a partial checksum that the driver completed (NEEDS_CSUM).
    rx_csum_completed,
    /// Frames sent with the checksum left to the device (CSUM).
    tx_csum_offloaded,
    /// Frames whose checksum the driver computed because the device could not.
    tx_csum_software,
    /// Sends refused because every transmit buffer was in flight.
    tx_queue_full,
    /// Frames handed to the device to cut into segments (TSO, HOST_TSO4/6).
    tx_tso_frames,
    /// Their bytes.
    tx_tso_bytes,
    /// Received frames the device coalesced from several segments (GUEST_TSO4/6).
    rx_gso_frames,
    /// Received frames spread over several buffers and joined here (MRG_RXBUF).
    rx_merged_frames,
    /// Received GSO frames of a kind not negotiated (UDP, ECN, or no GUEST_TSO).
    rx_drop_gso_not_negotiated,
    /// Received GSO frames whose header does not match the frame (type, `gso_size`, `hdr_len`).
    rx_drop_gso_mismatch,
    /// Received frames whose `num_buffers` is 0, more than the ring holds or
    /// than the device has used, or claimed without MRG_RXBUF.
    rx_drop_bad_num_buffers,
    /// Received frames whose buffers' lengths do not add up (an empty buffer
    /// after the first, a total over 64 KiB, or not the IP packet's length).
    rx_drop_bad_chain,
    /// Notifications ("kicks") sent to the device.
    kicks,
    /// Configuration-change events seen.
    config_changes,
    /// Times the device was found asking for a reset (DEVICE_NEEDS_RESET).
    device_needs_reset,
}

/// Counts a used-ring entry the queue refused, by why.
pub(super) fn count_bad_used(stats: &mut NetStats, bad: BadUsed, queue: &str) {
    log::debug!("virtio-net: {queue} queue: {bad}");
    match bad {
        BadUsed::IdOutOfRange { .. } => stats.drop_bad_id += 1,
        BadUsed::NotInFlight { .. } => stats.drop_not_in_flight += 1,
        BadUsed::IndexJump { .. } => stats.drop_bad_index += 1,
        BadUsed::LenTooLong { .. } => {} // the caller decides
    }
}
