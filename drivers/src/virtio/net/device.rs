//! The virtio-net device: initialisation and feature negotiation, the
//! configuration (MAC, link, MTU), interrupts, failure, and shutdown.
//!
//! Ref: virtio spec 5.1 (network device), 3.1 (device initialisation).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::mem::ManuallyDrop;

use skiff_net::device::{DeviceFailure, DeviceInfo, InterruptCause, NetDevice};
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE};

use super::buffers::Buffers;
use super::features::NetFeatures;
use super::gso::Tso;
use super::header::{LEGACY_LEN, MODERN_LEN};
use super::mac::random_mac;
use super::rx::RxRing;
use super::stats::NetStats;
use super::tx::{LARGE_SLOT, TxRing};
use crate::virtio::queue::{QueueError, SplitQueue};

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
/// Large transmit buffers (TSO): one per this many descriptors, at most
/// `MAX_LARGE_TX`: 16 × 64 KiB = 1 MiB with QEMU's 256-entry queue, a
/// megabyte of segments in flight, as much as the TAP takes in one go.
const LARGE_TX_SHARE: u16 = 16;
const MAX_LARGE_TX: u16 = 16;
/// Status reads to wait for a reset to complete (spec 4.1.4.3.2: the driver
/// must wait for `device_status` to read 0 before reusing the queues).
const RESET_POLLS: usize = 1_000_000;

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

/// Both halves. Their memory is the device's to write until a reset, so
/// [`VirtioNet`] frees it only after one (see its `Drop`).
struct Rings<H: Hal> {
    rx: RxRing<H>,
    tx: TxRing<H>,
}

/// A virtio network device over transport `T`, with DMA memory from `H`.
pub struct VirtioNet<H: Hal, T: Transport> {
    transport: T,
    offered: NetFeatures,
    features: NetFeatures,
    /// `features` as `/stats` shows them, named once: they never change,
    /// and naming them is a walk over every flag, on every `/stats`.
    features_text: String,
    mac: [u8; 6],
    mtu: u16,
    link_up: bool,
    failure: Option<DeviceFailure>,
    rings: ManuallyDrop<Rings<H>>,
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
    pub fn new_with(transport: T, random: u64, before_queues: impl FnOnce(&mut T)) -> Result<Self, NetError> {
        Self::new_sized(transport, random, MAX_QUEUE_SIZE, before_queues)
    }

    /// As [`new_with`](Self::new_with), asking a modern device for queues of
    /// at most `max_queue_size` descriptors (rounded down to a power of two;
    /// a legacy device fixes its own size). Smaller than the default only
    /// for the exercise that shows what a tiny queue does (`net.queue_size`).
    pub fn new_sized(
        mut transport: T,
        random: u64,
        max_queue_size: u16,
        before_queues: impl FnOnce(&mut T),
    ) -> Result<Self, NetError> {
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
        let mut features = offered & wanted;
        // Spec 5.1.3.1: TSO depends on the checksum offload of its direction.
        if !features.contains(NetFeatures::CSUM) {
            features -= NetFeatures::HOST_TSO4 | NetFeatures::HOST_TSO6;
        }
        // Coalesced frames need GUEST_CSUM (5.1.3.1), and, since Skiff's
        // receive buffers are MTU-sized, MRG_RXBUF to span several (without
        // it every buffer would have to hold 64 KiB: 5.1.6.3.1).
        if !features.contains(NetFeatures::GUEST_CSUM | NetFeatures::MRG_RXBUF) {
            features -= NetFeatures::GUEST_TSO4 | NetFeatures::GUEST_TSO6;
        }
        // MRG_RXBUF is only for those frames: without them (QEMU's user
        // network offers MRG_RXBUF alone) the receive path stays as it was.
        if !features.intersects(NetFeatures::GUEST_TSO4 | NetFeatures::GUEST_TSO6) {
            features -= NetFeatures::MRG_RXBUF;
        }
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

        // Step 7: the queues. From the first one on, the device may write
        // the memory we give it: on failure it is reset before any of that
        // memory goes back to the heap.
        before_queues(&mut transport);
        let mut setup = QueueSetup::<H>::default();
        let rings = match setup.run(&mut transport, header_len, mtu, features, max_queue_size) {
            Ok(()) => setup.into_rings(features, header_len),
            Err(e) => {
                release_after_reset(&mut transport, setup);
                return Err(fail(&mut transport, e));
            }
        };
        let mut rings = match rings {
            Some(rings) => rings,
            None => unreachable!("queue set-up succeeded without every part"),
        };
        // The driver must not notify before DRIVER_OK (spec 3.1.1): publish
        // now, kick after.
        let rx_kick = rings.rx.flush();
        transport.finish_init();
        let rings = ManuallyDrop::new(rings);
        let mut net = VirtioNet {
            transport,
            offered,
            features,
            features_text: features.to_string(),
            mac,
            mtu,
            link_up,
            failure: None,
            rings,
            stats: NetStats::default(),
        };
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

    /// The largest IP packet the device carries.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// All counters.
    pub fn stats(&self) -> NetStats {
        self.stats.merge(&self.rings.rx.stats).merge(&self.rings.tx.stats)
    }

    /// Receive and transmit queue sizes.
    pub fn queue_sizes(&self) -> (u16, u16) {
        (self.rings.rx.queue.size(), self.rings.tx.queue.size())
    }

    /// The receive half (for its counters and buffers in tests).
    pub fn rx(&self) -> &RxRing<H> {
        &self.rings.rx
    }

    /// The transmit half (for its counters and buffers in tests).
    pub fn tx(&self) -> &TxRing<H> {
        &self.rings.tx
    }

    fn kick(&mut self, queue: u16) {
        self.stats.kicks += 1;
        self.transport.notify(queue);
    }
}

impl<H: Hal, T: Transport> NetDevice for VirtioNet<H, T> {
    type Rx = RxRing<H>;
    type Tx = TxRing<H>;

    fn info(&self) -> DeviceInfo {
        let (rx, tx) = self.queue_sizes();
        DeviceInfo {
            mac: self.mac,
            mtu: usize::from(self.mtu),
            max_burst: usize::from(rx.min(tx)),
            tx_checksum_offload: self.rings.tx.offload,
            rx_checksum_offload: self.rings.rx.guest_csum,
            tso4_max_frame: self.rings.tx.tso.v4.then(|| self.rings.tx.max_tso_frame()),
            tso6_max_frame: self.rings.tx.tso.v6.then(|| self.rings.tx.max_tso_frame()),
        }
    }

    fn split(&mut self) -> (&mut RxRing<H>, &mut TxRing<H>) {
        let Rings { rx, tx } = &mut *self.rings;
        (rx, tx)
    }

    /// Publishes everything recycled and sent since the last flush, kicks
    /// each queue once if its device asks for it, and takes back the
    /// transmit buffers the device is done with (in one batch, here, so that
    /// the used ring is empty when interrupts are turned back on: with
    /// EVENT_IDX the device only interrupts for buffers used after the
    /// driver's last reclaimed one).
    fn flush(&mut self) {
        self.rings.tx.reclaim();
        if self.rings.rx.flush() {
            self.kick(RX_QUEUE);
        }
        if self.rings.tx.queue.publish() {
            self.kick(TX_QUEUE);
        }
    }

    fn has_work(&self) -> bool {
        let Rings { rx, tx } = &*self.rings;
        let tx_room = tx.has_free() || tx.queue.has_used();
        self.failure.is_none() && (tx.queue.has_used() || (tx_room && rx.queue.has_used()))
    }

    fn set_interrupts(&mut self, enabled: bool) {
        self.rings.rx.queue.set_interrupts(enabled);
        self.rings.tx.queue.set_interrupts(enabled);
    }

    /// Spec 4.1.4.5 (ISR status): reading it clears it and deasserts INTx.
    fn acknowledge_interrupt(&mut self) -> InterruptCause {
        let isr = self.transport.ack_interrupt();
        InterruptCause {
            queues: isr.contains(InterruptStatus::QUEUE_INTERRUPT),
            config: isr.contains(InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT),
        }
    }

    /// Re-reads the link (spec 5.1.4, VIRTIO_NET_S_LINK_UP) and the device
    /// status: a device that hits an error it cannot recover from sets
    /// DEVICE_NEEDS_RESET and signals a configuration change (spec 2.1.1).
    fn config_changed(&mut self) {
        if self.failure.is_none() && self.transport.get_status().contains(DeviceStatus::DEVICE_NEEDS_RESET) {
            self.stats.device_needs_reset += 1;
            self.failure = Some(DeviceFailure::NeedsReset);
            log::error!("virtio-net: the device set DEVICE_NEEDS_RESET; it is no longer used");
        }
        let Some(up) = read_link(&self.transport, self.features) else { return };
        if up != self.link_up {
            self.stats.config_changes += 1;
            self.link_up = up;
            log::info!("virtio-net: link {}", if up { "up" } else { "down" });
        }
    }

    fn failure(&self) -> Option<DeviceFailure> {
        self.failure
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.stats().fields().collect()
    }

    fn features(&self) -> String {
        self.features_text.clone()
    }

    fn link_up(&self) -> bool {
        self.link_up
    }
}

impl<H: Hal, T: Transport> Drop for VirtioNet<H, T> {
    fn drop(&mut self) {
        if reset(&mut self.transport) {
            // SAFETY: `rings` is not used again: this is the device's drop.
            unsafe { ManuallyDrop::drop(&mut self.rings) };
        } else {
            log::error!("virtio-net: the device did not finish its reset; its queue memory is kept from the heap");
        }
    }
}

/// The queues and buffers, as far as set-up got.
struct QueueSetup<H: Hal> {
    rx_queue: Option<SplitQueue<H>>,
    rx_buffers: Option<Buffers<H>>,
    tx_queue: Option<SplitQueue<H>>,
    tx_buffers: Option<Buffers<H>>,
    /// Large transmit buffers for TSO, if negotiated and memory allowed.
    tx_large: Option<Buffers<H>>,
}

impl<H: Hal> Default for QueueSetup<H> {
    fn default() -> Self {
        QueueSetup { rx_queue: None, rx_buffers: None, tx_queue: None, tx_buffers: None, tx_large: None }
    }
}

impl<H: Hal> QueueSetup<H> {
    /// Sets up both queues with a buffer per descriptor, and fills the
    /// receive queue (spec 5.1.5). What was set up stays in `self` on error.
    fn run<T: Transport>(
        &mut self,
        transport: &mut T,
        header_len: usize,
        mtu: u16,
        features: NetFeatures,
        max_size: u16,
    ) -> Result<(), NetError> {
        let event_idx = features.contains(NetFeatures::RING_EVENT_IDX);
        let slot_len = header_len + ETHERNET_HEADER + VLAN_TAG + usize::from(mtu);
        let rx_queue =
            self.rx_queue.insert(SplitQueue::new(transport, RX_QUEUE, max_size, event_idx).map_err(NetError::Queue)?);
        let rx_buffers = self.rx_buffers.insert(
            Buffers::new(rx_queue.size(), slot_len, BufferDirection::DeviceToDriver).ok_or(NetError::NoMemory)?,
        );
        for id in 0..rx_queue.size() {
            rx_queue
                .set_buffer(id, rx_buffers.paddr(id), slot_len as u32, true)
                .and_then(|()| rx_queue.push(id))
                .map_err(NetError::Queue)?;
        }
        let tx_queue =
            self.tx_queue.insert(SplitQueue::new(transport, TX_QUEUE, max_size, event_idx).map_err(NetError::Queue)?);
        // TSO: as many large buffers as memory allows, halving on failure;
        // none means no TSO (negotiated, never used).
        let tso = features.intersects(NetFeatures::HOST_TSO4 | NetFeatures::HOST_TSO6);
        let mut large = if tso { (tx_queue.size() / LARGE_TX_SHARE).clamp(1, MAX_LARGE_TX) } else { 0 };
        while large > 0 && self.tx_large.is_none() {
            self.tx_large = Buffers::new(large, LARGE_SLOT, BufferDirection::DriverToDevice);
            if self.tx_large.is_none() {
                large /= 2;
            }
        }
        if tso && large == 0 {
            log::warn!("virtio-net: no memory for TSO's large transmit buffers; segmenting in the stack");
        }
        let small = tx_queue.size() - large;
        self.tx_buffers =
            Some(Buffers::new(small, slot_len, BufferDirection::DriverToDevice).ok_or(NetError::NoMemory)?);
        Ok(())
    }

    /// The two halves, once [`run`](Self::run) succeeded.
    fn into_rings(self, features: NetFeatures, header_len: usize) -> Option<Rings<H>> {
        let tx_queue = self.tx_queue?;
        let large = self.tx_large.as_ref().map_or(0, |l| l.count());
        let large_first = tx_queue.size() - large;
        let free = (0..large_first).rev().collect();
        let free_large = (large_first..tx_queue.size()).rev().collect();
        let tso = match large {
            0 => Tso::default(),
            _ => Tso { v4: features.contains(NetFeatures::HOST_TSO4), v6: features.contains(NetFeatures::HOST_TSO6) },
        };
        Some(Rings {
            rx: RxRing {
                queue: self.rx_queue?,
                buffers: self.rx_buffers?,
                header_len,
                guest_csum: features.contains(NetFeatures::GUEST_CSUM),
                mergeable: features.contains(NetFeatures::MRG_RXBUF),
                gso: Tso {
                    v4: features.contains(NetFeatures::GUEST_TSO4),
                    v6: features.contains(NetFeatures::GUEST_TSO6),
                },
                spare: Vec::new(),
                returned: Vec::new(),
                stats: NetStats::default(),
            },
            tx: TxRing {
                queue: tx_queue,
                buffers: self.tx_buffers?,
                large: self.tx_large,
                large_first,
                header_len,
                offload: features.contains(NetFeatures::CSUM),
                tso,
                free,
                free_large,
                stats: NetStats::default(),
            },
        })
    }
}

/// Resets the device (spec 2.4) and waits until it reads back 0; `false` if
/// it never does.
fn reset<T: Transport>(transport: &mut T) -> bool {
    transport.set_status(DeviceStatus::empty());
    (0..RESET_POLLS).any(|_| transport.get_status().is_empty())
}

/// Frees `memory`, which the device may have been told about, only once a
/// reset has stopped the device; otherwise keeps it from the heap for good.
fn release_after_reset<T: Transport, M>(transport: &mut T, memory: M) {
    if reset(transport) {
        drop(memory);
    } else {
        log::error!("virtio-net: the device did not finish its reset; its queue memory is kept from the heap");
        core::mem::forget(memory);
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
