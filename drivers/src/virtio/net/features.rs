//! Feature bits a virtio network device offers and a driver accepts.
//!
//! Ref: virtio spec 5.1.3 (network device feature bits) and 6 (reserved,
//! device-independent bits).

use core::fmt;

bitflags::bitflags! {
    /// Feature bits, named as in the spec without the `VIRTIO_NET_F_` / `VIRTIO_F_` prefix.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NetFeatures: u64 {
        /// Device handles packets with partial checksum (TX offload).
        const CSUM = 1 << 0;
        /// Driver handles packets with partial checksum (RX offload).
        const GUEST_CSUM = 1 << 1;
        /// Control channel offloads reconfiguration.
        const CTRL_GUEST_OFFLOADS = 1 << 2;
        /// Device reports its maximum MTU in its config.
        const MTU = 1 << 3;
        /// Device has a MAC address in its config.
        const MAC = 1 << 5;
        /// Legacy: segmentation offload of any kind (deprecated).
        const GSO = 1 << 6;
        /// Driver can receive TSOv4.
        const GUEST_TSO4 = 1 << 7;
        /// Driver can receive TSOv6.
        const GUEST_TSO6 = 1 << 8;
        /// Driver can receive TSO with ECN.
        const GUEST_ECN = 1 << 9;
        /// Driver can receive UFO.
        const GUEST_UFO = 1 << 10;
        /// Device can receive TSOv4.
        const HOST_TSO4 = 1 << 11;
        /// Device can receive TSOv6.
        const HOST_TSO6 = 1 << 12;
        /// Device can receive TSO with ECN.
        const HOST_ECN = 1 << 13;
        /// Device can receive UFO.
        const HOST_UFO = 1 << 14;
        /// Driver can merge receive buffers.
        const MRG_RXBUF = 1 << 15;
        /// Device reports link status in its config.
        const STATUS = 1 << 16;
        /// Control virtqueue.
        const CTRL_VQ = 1 << 17;
        /// Control channel RX mode.
        const CTRL_RX = 1 << 18;
        /// Control channel VLAN filtering.
        const CTRL_VLAN = 1 << 19;
        /// Control channel: extra RX modes.
        const CTRL_RX_EXTRA = 1 << 20;
        /// Driver can send gratuitous packets.
        const GUEST_ANNOUNCE = 1 << 21;
        /// Multiqueue with automatic steering.
        const MQ = 1 << 22;
        /// Set MAC address through the control channel.
        const CTRL_MAC_ADDR = 1 << 23;
        /// Legacy: notify when the queue runs empty.
        const NOTIFY_ON_EMPTY = 1 << 24;
        /// Legacy: the header may share a descriptor with the frame.
        const ANY_LAYOUT = 1 << 27;
        /// Indirect descriptors.
        const RING_INDIRECT_DESC = 1 << 28;
        /// `used_event`/`avail_event` notification suppression.
        const RING_EVENT_IDX = 1 << 29;
        /// Legacy: QEMU offers this bit to catch drivers that accept everything.
        const BAD_FEATURE = 1 << 30;
        /// The device conforms to virtio 1.0 or later (modern).
        const VERSION_1 = 1 << 32;
        /// The device sits behind an IOMMU or similar.
        const ACCESS_PLATFORM = 1 << 33;
        /// Packed virtqueue layout.
        const RING_PACKED = 1 << 34;
        /// Buffers are used in the order they were made available.
        const IN_ORDER = 1 << 35;
        /// Memory accesses are ordered as the platform orders them.
        const ORDER_PLATFORM = 1 << 36;
        /// Single-root I/O virtualisation.
        const SR_IOV = 1 << 37;
        /// Notifications carry extra data.
        const NOTIFICATION_DATA = 1 << 38;
        /// Individual queues can be reset.
        const RING_RESET = 1 << 40;
        /// Device reports hash values.
        const HASH_REPORT = 1 << 57;
        /// Receive-side scaling.
        const RSS = 1 << 60;
        /// Device reports link speed and duplex.
        const SPEED_DUPLEX = 1 << 63;
    }
}

impl NetFeatures {
    /// What Skiff's driver accepts when offered:
    /// - VERSION_1: a modern device (required on the modern transport);
    /// - MAC, STATUS, MTU: read address, link state and MTU from config;
    /// - CSUM, GUEST_CSUM: checksum offload in both directions;
    /// - RING_EVENT_IDX: the device says when it needs a kick, so bursts
    ///   cost one notification (the queue's index arithmetic is wrap-safe);
    /// - ANY_LAYOUT: legacy devices may take header and frame in one descriptor;
    /// - HOST_TSO4, HOST_TSO6: the device cuts the stack's 64 KiB TCP frames
    ///   into segments (only with CSUM, spec 5.1.3.1);
    /// - MRG_RXBUF, GUEST_TSO4, GUEST_TSO6: the device may hand up coalesced
    ///   frames of up to 64 KiB over several receive buffers (TSO only with
    ///   GUEST_CSUM and MRG_RXBUF, MRG_RXBUF only with TSO).
    pub const WANTED: NetFeatures = NetFeatures::VERSION_1
        .union(NetFeatures::MRG_RXBUF)
        .union(NetFeatures::GUEST_TSO4)
        .union(NetFeatures::GUEST_TSO6)
        .union(NetFeatures::HOST_TSO4)
        .union(NetFeatures::HOST_TSO6)
        .union(NetFeatures::MAC)
        .union(NetFeatures::STATUS)
        .union(NetFeatures::MTU)
        .union(NetFeatures::CSUM)
        .union(NetFeatures::GUEST_CSUM)
        .union(NetFeatures::RING_EVENT_IDX)
        .union(NetFeatures::ANY_LAYOUT);
}

/// Prints the set as space-separated names (`VERSION_1 MAC STATUS`), plus
/// the numbers of any bits without a name.
impl fmt::Display for NetFeatures {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut first = true;
        for (name, _) in self.iter_names() {
            write!(f, "{}{name}", if first { "" } else { " " })?;
            first = false;
        }
        let unknown = self.bits() & !NetFeatures::all().bits();
        for bit in (0..64).filter(|b| unknown & (1 << b) != 0) {
            write!(f, "{}bit{bit}", if first { "" } else { " " })?;
            first = false;
        }
        if first {
            write!(f, "(none)")?;
        }
        Ok(())
    }
}

/// Formats raw feature bits as [`NetFeatures`] names, keeping unnamed bits.
pub fn describe(bits: u64) -> NetFeatures {
    NetFeatures::from_bits_retain(bits)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn bits_match_the_spec() {
        assert_eq!(NetFeatures::CSUM.bits(), 1);
        assert_eq!(NetFeatures::GUEST_CSUM.bits(), 2);
        assert_eq!(NetFeatures::MAC.bits(), 1 << 5);
        assert_eq!(NetFeatures::STATUS.bits(), 1 << 16);
        assert_eq!(NetFeatures::RING_EVENT_IDX.bits(), 1 << 29);
        assert_eq!(NetFeatures::VERSION_1.bits(), 1 << 32);
    }

    #[test]
    fn display_names_bits_in_order_and_keeps_unknown_ones() {
        let set = NetFeatures::VERSION_1 | NetFeatures::MAC | NetFeatures::CSUM;
        assert_eq!(set.to_string(), "CSUM MAC VERSION_1");
        assert_eq!(describe(1 << 5 | 1 << 40 | 1 << 50).to_string(), "MAC RING_RESET bit50");
        assert_eq!(NetFeatures::empty().to_string(), "(none)");
    }
}
