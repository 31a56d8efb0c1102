//! Skiff's virtio-net device: feature negotiation, the receive and transmit
//! queues with their buffers, checksum offload, and counters.
//!
//! Buffers: each queue has one DMA region cut into `size` slots of
//! `header + frame` bytes, and descriptor `i` always points at slot `i`. The
//! receive queue is kept full; a received frame is lent to the caller as a
//! slice of its slot until the caller gives it back. A frame to send is
//! written straight into a free transmit slot. Nothing is copied.
//!
//! Ref: virtio spec 5.1 (network device), 3.1 (device initialisation).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

use super::features::NetFeatures;
use super::header::{FLAG_DATA_VALID, FLAG_NEEDS_CSUM, GSO_NONE, LEGACY_LEN, MODERN_LEN, NetHeader};
use crate::virtio::queue::{BadUsed, QueueError, SplitQueue};
use skiff_net::device::{DeviceInfo, NetDevice, RxHalf, TxHalf};
use skiff_net::{checksum, trace};

/// Queue indices (spec 5.1.2): receiveq1 and transmitq1.
const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;
/// Largest queue Skiff asks a modern device for. QEMU's default is 256; more
/// only costs memory (one buffer per descriptor) once bursts fit.
pub const MAX_QUEUE_SIZE: u16 = 256;
/// Ethernet header, and an 802.1Q tag a device may leave in place.
const ETHERNET_HEADER: usize = 14;
const VLAN_TAG: usize = 4;
/// The MTU without the MTU feature: Ethernet's.
pub const DEFAULT_MTU: u16 = 1500;
/// The smallest MTU IPv4 allows (RFC 791); a device offering less is ignored.
pub const MIN_MTU: u16 = 68;
/// The largest MTU Skiff takes from a device: jumbo frames, not 64 KiB ones.
pub const MAX_MTU: u16 = 9000;
/// `virtio_net_config` offsets (spec 5.1.4).
const CONFIG_MAC: usize = 0;
const CONFIG_STATUS: usize = 6;
const CONFIG_MTU: usize = 10;
/// `status` bit: link is up.
const STATUS_LINK_UP: u16 = 1;

/// What the driver could not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The transport's device is not a network card.
    NotNetwork(DeviceType),
    /// The device cleared FEATURES_OK: it cannot work with our feature set.
    FeaturesRejected,
    /// A modern transport whose device does not offer VERSION_1.
    NoVersion1,
    /// A legacy device that needs the header in its own descriptor (no ANY_LAYOUT).
    NoAnyLayout,
    /// A queue could not be set up.
    Queue(QueueError),
    /// No DMA memory for the buffers.
    NoMemory,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            NetError::NotNetwork(t) => write!(f, "not a network device: {t:?}"),
            NetError::FeaturesRejected => write!(f, "the device rejected the negotiated features"),
            NetError::NoVersion1 => write!(f, "a modern device that does not offer VERSION_1"),
            NetError::NoAnyLayout => {
                write!(f, "a legacy device without ANY_LAYOUT (header in a separate descriptor) is not supported")
            }
            NetError::Queue(e) => write!(f, "queue set-up failed: {e}"),
            NetError::NoMemory => write!(f, "no DMA memory for packet buffers"),
        }
    }
}

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
    /// Notifications ("kicks") sent to the device.
    kicks,
    /// Configuration-change events seen.
    config_changes,
}

/// What the driver knows about a received frame's TCP/UDP checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxChecksum {
    /// The device validated it (DATA_VALID), or sent a partial one that the
    /// driver completed (NEEDS_CSUM): the stack need not check it.
    Valid,
    /// Nothing is known: the stack must check it.
    Unknown,
}

/// A received frame, lent to the caller until [`RxRing::recycle`].
#[derive(Debug, PartialEq, Eq)]
pub struct RxFrame {
    id: u16,
    len: usize,
    /// The checksum's state.
    pub checksum: RxChecksum,
}

impl RxFrame {
    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty (never: frames hold at least an Ethernet header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A transmit buffer being filled.
#[derive(Debug, PartialEq, Eq)]
pub struct TxFrame {
    id: u16,
    len: usize,
}

/// One queue's buffers: `count` slots of `slot_len` bytes in one DMA region.
struct Buffers<H: Hal> {
    paddr: PhysAddr,
    base: core::ptr::NonNull<u8>,
    pages: usize,
    slot_len: usize,
    _hal: core::marker::PhantomData<H>,
}

impl<H: Hal> Buffers<H> {
    fn new(count: u16, slot_len: usize, direction: BufferDirection) -> Result<Self, NetError> {
        let pages = (usize::from(count) * slot_len).div_ceil(PAGE_SIZE);
        let (paddr, base) = H::dma_alloc(pages, direction);
        if paddr == 0 {
            return Err(NetError::NoMemory);
        }
        Ok(Buffers { paddr, base, pages, slot_len, _hal: core::marker::PhantomData })
    }

    fn paddr(&self, id: u16) -> PhysAddr {
        self.paddr + (usize::from(id) * self.slot_len) as u64
    }

    /// Slot `id`. Callers pass only ids below the queue size, which the
    /// region was sized for, and only for slots the device does not own.
    fn slot(&self, id: u16) -> &[u8] {
        // SAFETY: `id * slot_len + slot_len` is within the region (see above);
        // the memory is initialised (zeroed by dma_alloc, then written by the
        // device or us) and not written by the device while we hold it.
        unsafe { core::slice::from_raw_parts(self.base.as_ptr().add(usize::from(id) * self.slot_len), self.slot_len) }
    }

    fn slot_mut(&mut self, id: u16) -> &mut [u8] {
        // SAFETY: as in `slot`, and `&mut self` makes this the only reference.
        unsafe {
            core::slice::from_raw_parts_mut(self.base.as_ptr().add(usize::from(id) * self.slot_len), self.slot_len)
        }
    }
}

impl<H: Hal> Drop for Buffers<H> {
    fn drop(&mut self) {
        // SAFETY: allocated by `H::dma_alloc` with these pages; the device is
        // reset before the driver (and so the buffers) is dropped.
        unsafe { H::dma_dealloc(self.paddr, self.base, self.pages) };
    }
}

/// The receive half: the receive queue, its buffers, and its counters
/// (spec 5.1.6.3: setting up receive buffers, 5.1.6.4: processing incoming packets).
pub struct RxRing<H: Hal> {
    queue: SplitQueue<H>,
    buffers: Buffers<H>,
    header_len: usize,
    /// GUEST_CSUM was negotiated: honour the header's checksum flags.
    guest_csum: bool,
    /// Buffers the caller gave back, reposted at the next flush. Holding them
    /// until then means an id the device returns twice within a burst is
    /// still not in flight, so the queue catches it.
    returned: Vec<u16>,
    stats: NetStats,
}

impl<H: Hal> RxRing<H> {
    /// Takes the next received frame, skipping (and counting) anything the
    /// device got wrong. The frame's slot stays the caller's until
    /// [`recycle`](Self::recycle). The header's flags are honoured as spec
    /// 5.1.6.4.1 says: NEEDS_CSUM completed here, DATA_VALID trusted.
    pub fn receive(&mut self) -> Option<RxFrame> {
        loop {
            let used = match self.queue.pop_used()? {
                Ok(used) => used,
                Err(bad) => {
                    count_bad_used(&mut self.stats, bad, "receive");
                    if let BadUsed::LenTooLong { id, .. } = bad {
                        self.stats.rx_drop_bad_len += 1;
                        self.returned.push(id);
                    }
                    continue;
                }
            };
            match self.check(used.id, used.len as usize) {
                Some(frame) => {
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += frame.len as u64;
                    log::trace!(
                        target: trace::TARGET,
                        "rx virtq  desc {} used len {} = header {} + frame {}, checksum {}",
                        frame.id,
                        used.len,
                        self.header_len,
                        frame.len,
                        match frame.checksum {
                            RxChecksum::Valid => "valid",
                            RxChecksum::Unknown => "unchecked",
                        }
                    );
                    return Some(frame);
                }
                None => self.returned.push(used.id),
            }
        }
    }

    /// This half's counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Receive buffers the device holds. With every frame recycled and
    /// flushed this is the queue size, whatever the device did (except skip
    /// its used index past buffers, which stay the device's).
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// The bytes of a received frame.
    pub fn frame(&self, frame: &RxFrame) -> &[u8] {
        &self.buffers.slot(frame.id)[self.header_len..self.header_len + frame.len]
    }

    /// Gives a received frame's buffer back to the device (at the next flush).
    pub fn recycle(&mut self, frame: RxFrame) {
        self.returned.push(frame.id);
    }

    /// Validates a used receive buffer; `None` (counted) if it must be dropped.
    fn check(&mut self, id: u16, len: usize) -> Option<RxFrame> {
        let header_len = self.header_len;
        if len < header_len + ETHERNET_HEADER {
            self.stats.rx_drop_short += 1;
            return None;
        }
        let slot = self.buffers.slot_mut(id);
        let Ok(header) = NetHeader::parse(slot, header_len) else {
            self.stats.rx_drop_short += 1;
            return None;
        };
        // We negotiated no receive segmentation offload, and one buffer per packet.
        if header.gso_type != GSO_NONE || (header_len == MODERN_LEN && header.num_buffers > 1) {
            self.stats.rx_drop_bad_header += 1;
            return None;
        }
        let frame_len = len - header_len;
        let mut checksum = RxChecksum::Unknown;
        if header.flags & FLAG_NEEDS_CSUM != 0 {
            let data = &mut slot[header_len..len];
            let start = usize::from(header.csum_start);
            let end = checksum::find_segment(data).filter(|s| s.start == start).map_or(frame_len, |s| s.start + s.len);
            if !self.guest_csum || !checksum::complete(data, start, usize::from(header.csum_offset), end) {
                self.stats.rx_drop_bad_header += 1;
                return None;
            }
            self.stats.rx_csum_completed += 1;
            checksum = RxChecksum::Valid;
        } else if header.flags & FLAG_DATA_VALID != 0 && self.guest_csum {
            self.stats.rx_csum_valid += 1;
            checksum = RxChecksum::Valid;
        }
        Some(RxFrame { id, len: frame_len, checksum })
    }

    /// Reposts returned buffers and publishes them; true if the device wants a kick.
    fn flush(&mut self) -> bool {
        while let Some(id) = self.returned.pop() {
            // Ids come from this queue's used ring, checked to be ours and no longer in flight.
            if let Err(e) = self.queue.push(id) {
                unreachable!("receive buffer {id}: {e}");
            }
        }
        self.queue.publish()
    }
}

/// The transmit half: the transmit queue, its buffers, and its counters
/// (spec 5.1.6.2: packet transmission).
pub struct TxRing<H: Hal> {
    queue: SplitQueue<H>,
    buffers: Buffers<H>,
    header_len: usize,
    /// CSUM was negotiated: leave TCP/UDP checksums to the device.
    offload: bool,
    free: Vec<u16>,
    stats: NetStats,
}

impl<H: Hal> TxRing<H> {
    /// A free transmit buffer for a frame of up to `len` bytes, reclaiming
    /// sent buffers first if none is free. `None` if the frame is too large
    /// or every buffer is still with the device.
    pub fn transmit_buffer(&mut self, len: usize) -> Option<TxFrame> {
        if len > self.buffers.slot_len - self.header_len {
            return None;
        }
        if self.free.is_empty() {
            self.reclaim();
        }
        match self.free.pop() {
            Some(id) => Some(TxFrame { id, len }),
            None => {
                self.stats.tx_queue_full += 1;
                None
            }
        }
    }

    /// This half's counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Transmit buffers the device holds (sent, not yet reclaimed).
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// Transmit buffers free to fill now.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Whether a buffer is free, reclaiming sent ones if none is.
    pub fn has_room(&mut self) -> bool {
        if self.free.is_empty() {
            self.reclaim();
        }
        !self.free.is_empty()
    }

    /// The frame bytes of a transmit buffer, to fill in.
    pub fn frame_mut(&mut self, frame: &TxFrame) -> &mut [u8] {
        let header_len = self.header_len;
        &mut self.buffers.slot_mut(frame.id)[header_len..header_len + frame.len]
    }

    /// Queues a filled transmit buffer. TCP/UDP checksums are left to the
    /// device where it offers CSUM (the stack must leave them zero), or filled
    /// in here where it cannot describe the frame. It goes out at the next
    /// flush. Spec 5.1.6.2 (the header's NEEDS_CSUM, `csum_start`, `csum_offset`).
    pub fn send(&mut self, frame: TxFrame) {
        let header_len = self.header_len;
        let slot = self.buffers.slot_mut(frame.id);
        let (header, data) = slot.split_at_mut(header_len);
        let data = &mut data[..frame.len];
        let mut net_header = NetHeader::default();
        if self.offload {
            match checksum::prepare_offload(data) {
                Some((start, offset)) => {
                    net_header = NetHeader::needs_csum(start, offset);
                    self.stats.tx_csum_offloaded += 1;
                }
                None if checksum::fill_in_software(data) => self.stats.tx_csum_software += 1,
                None => {}
            }
        }
        net_header.emit(header, header_len);
        let len = (header_len + frame.len) as u32;
        let paddr = self.buffers.paddr(frame.id);
        match self.queue.set_buffer(frame.id, paddr, len, false).and_then(|()| self.queue.push(frame.id)) {
            Ok(()) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += frame.len as u64;
                log::trace!(
                    target: trace::TARGET,
                    "tx virtq  desc {} len {len} = header {header_len} + frame {}, checksum {}",
                    frame.id,
                    frame.len,
                    if net_header.flags & FLAG_NEEDS_CSUM != 0 { "left to the device" } else { "complete" }
                );
            }
            // Ids in TxFrame come from `free`, so they are valid and not in flight.
            Err(e) => unreachable!("transmit buffer {}: {e}", frame.id),
        }
    }

    /// Takes back transmit buffers the device has finished with; returns how
    /// many. Spec 5.1.6.2.1 (the device returns sent buffers in the used ring).
    pub fn reclaim(&mut self) -> usize {
        let mut reclaimed = 0;
        while let Some(used) = self.queue.pop_used() {
            match used {
                Ok(used) => {
                    self.free.push(used.id);
                    reclaimed += 1;
                }
                // A transmit descriptor is device-readable: the device writes
                // no bytes into it, so any length will do; the buffer is free.
                Err(BadUsed::LenTooLong { id, .. }) => {
                    self.free.push(id);
                    reclaimed += 1;
                }
                Err(bad) => count_bad_used(&mut self.stats, bad, "transmit"),
            }
        }
        reclaimed
    }
}

fn count_bad_used(stats: &mut NetStats, bad: BadUsed, queue: &str) {
    log::debug!("virtio-net: {queue} queue: {bad}");
    match bad {
        BadUsed::IdOutOfRange { .. } => stats.drop_bad_id += 1,
        BadUsed::NotInFlight { .. } => stats.drop_not_in_flight += 1,
        BadUsed::IndexJump { .. } => stats.drop_bad_index += 1,
        BadUsed::LenTooLong { .. } => {} // the caller decides
    }
}

/// A virtio network device over transport `T`, with DMA memory from `H`.
pub struct VirtioNet<H: Hal, T: Transport> {
    transport: T,
    offered: NetFeatures,
    features: NetFeatures,
    mac: [u8; 6],
    mtu: u16,
    link_up: bool,
    rx: RxRing<H>,
    tx: TxRing<H>,
    /// Device-wide counters (kicks, configuration changes).
    stats: NetStats,
}

impl<H: Hal, T: Transport> VirtioNet<H, T> {
    /// Initialises the device (spec 3.1.1): reset, negotiate features, read
    /// the configuration, set up both queues, fill the receive queue, and go
    /// live. `random` seeds a locally administered MAC address if the device
    /// has none.
    pub fn new(transport: T, random: u64) -> Result<Self, NetError> {
        Self::new_with(transport, random, |_| {})
    }

    /// As [`new`](Self::new), running `before_queues` once the features are
    /// agreed and before any queue is set up and enabled: the place to give
    /// the device its MSI-X vectors (spec 4.1.4.3.2: queue fields, the vector
    /// among them, are configured before `queue_enable`).
    pub fn new_with(mut transport: T, random: u64, before_queues: impl FnOnce(&mut T)) -> Result<Self, NetError> {
        let device_type = transport.device_type();
        if device_type != DeviceType::Network {
            return Err(NetError::NotNetwork(device_type));
        }
        let legacy = transport.requires_legacy_layout();
        let fail = |transport: &mut T, e: NetError| {
            transport.set_status(DeviceStatus::FAILED);
            e
        };
        // Spec 3.1.1, steps 1-3: reset, ACKNOWLEDGE, DRIVER.
        transport.set_status(DeviceStatus::empty());
        transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        // Step 4: read the device's features, and decide ours. The MTU field
        // may be read now (spec 5.1.4.2); one we cannot use is declined
        // rather than accepted and then ignored.
        let offered = NetFeatures::from_bits_retain(transport.read_device_features());
        if !legacy && !offered.contains(NetFeatures::VERSION_1) {
            return Err(fail(&mut transport, NetError::NoVersion1));
        }
        if legacy && !offered.contains(NetFeatures::ANY_LAYOUT) {
            return Err(fail(&mut transport, NetError::NoAnyLayout));
        }
        let mut wanted = NetFeatures::WANTED;
        let device_mtu = offered.contains(NetFeatures::MTU).then(|| transport.read_config_space::<u16>(CONFIG_MTU));
        let mtu = match device_mtu {
            Some(Ok(mtu)) if (MIN_MTU..=MAX_MTU).contains(&mtu) => mtu,
            Some(other) => {
                log::warn!("virtio-net: device MTU {other:?} unusable; declining the MTU feature, using {DEFAULT_MTU}");
                wanted -= NetFeatures::MTU;
                DEFAULT_MTU
            }
            None => DEFAULT_MTU,
        };
        let features = offered & wanted;
        transport.write_driver_features(features.bits());
        // Steps 5-6; legacy devices have no FEATURES_OK handshake (spec 3.1.2).
        transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK);
        if !legacy && !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
            return Err(fail(&mut transport, NetError::FeaturesRejected));
        }
        transport.set_guest_page_size(PAGE_SIZE as u32);

        let header_len =
            if features.intersects(NetFeatures::VERSION_1 | NetFeatures::MRG_RXBUF) { MODERN_LEN } else { LEGACY_LEN };
        let mac = if features.contains(NetFeatures::MAC) { read_mac(&transport) } else { None }
            .unwrap_or_else(|| random_mac(random));
        let link_up = read_link(&transport, features).unwrap_or(true);

        before_queues(&mut transport);
        let event_idx = features.contains(NetFeatures::RING_EVENT_IDX);
        let slot_len = header_len + ETHERNET_HEADER + VLAN_TAG + usize::from(mtu);
        let mut rx_queue = SplitQueue::new(&mut transport, RX_QUEUE, MAX_QUEUE_SIZE, event_idx)
            .map_err(|e| fail(&mut transport, NetError::Queue(e)))?;
        let rx_buffers = Buffers::<H>::new(rx_queue.size(), slot_len, BufferDirection::DeviceToDriver)
            .map_err(|e| fail(&mut transport, e))?;
        let tx_queue = SplitQueue::new(&mut transport, TX_QUEUE, MAX_QUEUE_SIZE, event_idx)
            .map_err(|e| fail(&mut transport, NetError::Queue(e)))?;
        let tx_buffers = Buffers::<H>::new(tx_queue.size(), slot_len, BufferDirection::DriverToDevice)
            .map_err(|e| fail(&mut transport, e))?;
        for id in 0..rx_queue.size() {
            rx_queue
                .set_buffer(id, rx_buffers.paddr(id), slot_len as u32, true)
                .and_then(|()| rx_queue.push(id))
                .map_err(|e| fail(&mut transport, NetError::Queue(e)))?;
        }
        // The driver must not notify before DRIVER_OK (spec 3.1.1): publish
        // now, kick after.
        let rx_kick = rx_queue.publish();
        let free = (0..tx_queue.size()).rev().collect();
        transport.finish_init();

        let rx = RxRing {
            queue: rx_queue,
            buffers: rx_buffers,
            header_len,
            guest_csum: features.contains(NetFeatures::GUEST_CSUM),
            returned: Vec::new(),
            stats: NetStats::default(),
        };
        let tx = TxRing {
            queue: tx_queue,
            buffers: tx_buffers,
            header_len,
            offload: features.contains(NetFeatures::CSUM),
            free,
            stats: NetStats::default(),
        };
        let mut net = VirtioNet { transport, offered, features, mac, mtu, link_up, rx, tx, stats: NetStats::default() };
        if rx_kick {
            net.kick(RX_QUEUE);
        }
        Ok(net)
    }

    /// Feature bits the device offered.
    pub fn offered_features(&self) -> NetFeatures {
        self.offered
    }

    /// Feature bits both sides agreed on.
    pub fn features(&self) -> NetFeatures {
        self.features
    }

    /// The MAC address: the device's, or a random locally administered one.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The largest IP packet the device carries.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// Whether the link is up (always, without the STATUS feature).
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// All counters.
    pub fn stats(&self) -> NetStats {
        self.stats.merge(&self.rx.stats).merge(&self.tx.stats)
    }

    /// Receive and transmit queue sizes.
    pub fn queue_sizes(&self) -> (u16, u16) {
        (self.rx.queue.size(), self.tx.queue.size())
    }

    /// Whether the device computes TCP/UDP checksums of sent frames (CSUM).
    pub fn tx_checksum_offload(&self) -> bool {
        self.tx.offload
    }

    /// Whether received frames may arrive with checksums validated or
    /// partial (GUEST_CSUM); see [`RxChecksum`].
    pub fn rx_checksum_offload(&self) -> bool {
        self.rx.guest_csum
    }

    /// Frames waiting in the receive queue, or buffers to reclaim from the
    /// transmit queue.
    pub fn has_work(&self) -> bool {
        self.rx.queue.has_used() || self.tx.queue.has_used()
    }

    /// The transport, for what the driver does not wrap (the ISR read that
    /// acknowledges an INTx interrupt).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Asks the device to interrupt (or not) when it uses receive or
    /// transmit buffers: off while a burst is processed, on before sleeping.
    /// A hint; after turning them on, check [`has_work`](Self::has_work)
    /// again, since a buffer may have been used just before.
    pub fn set_queue_interrupts(&mut self, enabled: bool) {
        self.rx.queue.set_interrupts(enabled);
        self.tx.queue.set_interrupts(enabled);
    }

    /// Both halves, to receive and transmit at the same time.
    pub fn split(&mut self) -> (&mut RxRing<H>, &mut TxRing<H>) {
        (&mut self.rx, &mut self.tx)
    }

    /// See [`RxRing::receive`].
    pub fn receive(&mut self) -> Option<RxFrame> {
        self.rx.receive()
    }

    /// See [`RxRing::frame`].
    pub fn frame(&self, frame: &RxFrame) -> &[u8] {
        self.rx.frame(frame)
    }

    /// See [`RxRing::recycle`].
    pub fn recycle(&mut self, frame: RxFrame) {
        self.rx.recycle(frame)
    }

    /// See [`TxRing::transmit_buffer`].
    pub fn transmit_buffer(&mut self, len: usize) -> Option<TxFrame> {
        self.tx.transmit_buffer(len)
    }

    /// See [`TxRing::frame_mut`].
    pub fn frame_mut(&mut self, frame: &TxFrame) -> &mut [u8] {
        self.tx.frame_mut(frame)
    }

    /// See [`TxRing::send`].
    pub fn send(&mut self, frame: TxFrame) {
        self.tx.send(frame)
    }

    /// See [`TxRing::reclaim`].
    pub fn reclaim_tx(&mut self) -> usize {
        self.tx.reclaim()
    }

    /// Publishes everything recycled and sent since the last flush, kicks
    /// each queue once if its device asks for it, and takes back the
    /// transmit buffers the device is done with (in one batch, here, so that
    /// the used ring is empty when interrupts are turned back on: with
    /// EVENT_IDX the device only interrupts for buffers used after the
    /// driver's last reclaimed one).
    pub fn flush(&mut self) {
        self.tx.reclaim();
        if self.rx.flush() {
            self.kick(RX_QUEUE);
        }
        if self.tx.queue.publish() {
            self.kick(TX_QUEUE);
        }
    }

    /// Acknowledges the device's interrupt and, on a configuration change,
    /// re-reads the link state. Returns the new link state if it changed.
    /// Spec 4.1.4.5 (ISR status), 4.1.5.3 (configuration change notification).
    pub fn handle_interrupt(&mut self) -> Option<bool> {
        let isr = self.transport.ack_interrupt();
        if isr.contains(InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT) { self.poll_link() } else { None }
    }

    /// Re-reads the link state (with STATUS); returns it if it changed.
    /// Spec 5.1.4 (`virtio_net_config.status`, VIRTIO_NET_S_LINK_UP).
    pub fn poll_link(&mut self) -> Option<bool> {
        let up = read_link(&self.transport, self.features)?;
        if up == self.link_up {
            return None;
        }
        self.stats.config_changes += 1;
        self.link_up = up;
        log::info!("virtio-net: link {}", if up { "up" } else { "down" });
        Some(up)
    }

    fn kick(&mut self, queue: u16) {
        self.stats.kicks += 1;
        self.transport.notify(queue);
    }
}

impl<H: Hal> RxHalf for RxRing<H> {
    type Frame = RxFrame;
    fn receive(&mut self) -> Option<RxFrame> {
        RxRing::receive(self)
    }
    fn bytes<'a>(&'a self, frame: &'a RxFrame) -> &'a [u8] {
        self.frame(frame)
    }
    fn checksum_verified(&self, frame: &RxFrame) -> bool {
        frame.checksum == RxChecksum::Valid
    }
    fn recycle(&mut self, frame: RxFrame) {
        RxRing::recycle(self, frame)
    }
}

impl<H: Hal> TxHalf for TxRing<H> {
    type Frame = TxFrame;
    fn has_room(&mut self) -> bool {
        TxRing::has_room(self)
    }
    fn reserve(&mut self, len: usize) -> Option<TxFrame> {
        self.transmit_buffer(len)
    }
    fn bytes_mut<'a>(&'a mut self, frame: &'a mut TxFrame) -> &'a mut [u8] {
        self.frame_mut(frame)
    }
    fn send(&mut self, frame: TxFrame) {
        TxRing::send(self, frame)
    }
}

impl<H: Hal, T: Transport> NetDevice for VirtioNet<H, T> {
    type Rx = RxRing<H>;
    type Tx = TxRing<H>;
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            mac: self.mac,
            mtu: usize::from(self.mtu),
            max_burst: usize::from(self.rx.queue.size().min(self.tx.queue.size())),
            tx_checksum_offload: self.tx.offload,
            rx_checksum_offload: self.rx.guest_csum,
        }
    }
    fn split(&mut self) -> (&mut RxRing<H>, &mut TxRing<H>) {
        VirtioNet::split(self)
    }
    fn flush(&mut self) {
        VirtioNet::flush(self)
    }
    fn has_work(&self) -> bool {
        VirtioNet::has_work(self)
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.stats().fields().collect()
    }
    fn features(&self) -> String {
        self.features.to_string()
    }
    fn link_up(&self) -> bool {
        self.link_up
    }
}

/// Status reads to wait for a reset to complete (spec 4.1.4.3.2: the driver
/// must wait for `device_status` to read 0 before reusing the queues).
const RESET_POLLS: usize = 1_000_000;

impl<H: Hal, T: Transport> Drop for VirtioNet<H, T> {
    fn drop(&mut self) {
        // Stop the device before its queues and buffers are freed.
        self.transport.set_status(DeviceStatus::empty());
        if !(0..RESET_POLLS).any(|_| self.transport.get_status().is_empty()) {
            log::error!("virtio-net: the device did not finish its reset; its memory is freed anyway");
        }
    }
}

/// Reads the MAC address, consistently (spec 2.5.1: generation counter).
fn read_mac<T: Transport>(transport: &T) -> Option<[u8; 6]> {
    transport.read_consistent(|| transport.read_config_space::<[u8; 6]>(CONFIG_MAC)).ok()
}

/// Reads the link state; `None` without the STATUS feature or if unreadable.
fn read_link<T: Transport>(transport: &T, features: NetFeatures) -> Option<bool> {
    if !features.contains(NetFeatures::STATUS) {
        return None;
    }
    transport.read_config_space::<u16>(CONFIG_STATUS).ok().map(|s| s & STATUS_LINK_UP != 0)
}

/// A unicast, locally administered MAC address from the low 46 bits of
/// `random` (IEEE 802: bit 0 of the first byte is the group bit, bit 1 the
/// local bit).
pub fn random_mac(random: u64) -> [u8; 6] {
    let b = random.to_le_bytes();
    [(b[0] & !0b11) | 0b10, b[1], b[2], b[3], b[4], b[5]]
}

/// Formats a MAC address as `52:54:00:12:34:56`.
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}
