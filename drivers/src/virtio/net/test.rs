//! The network device against a fake transport and a fake device end.

use super::header::{FLAG_DATA_VALID, FLAG_NEEDS_CSUM, MODERN_LEN, NetHeader};
use super::*;
use crate::virtio::fake::{DeviceQueue, FakeHal, FakeTransport};
use crate::virtio::{DeviceStatus, InterruptStatus};
use skiff_net::checksum::{self, test_frames::udp4_frame};
use skiff_net::device::{DeviceFailure, InterruptCause, NetDevice, RxHalf, TxHalf};

pub(super) const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
pub(super) const QUEUE_SIZE: u32 = 16;

pub(super) type Net = VirtioNet<FakeHal, FakeTransport>;

/// `virtio_net_config`: mac, status, max_virtqueue_pairs, mtu.
pub(super) fn config(link_up: bool, mtu: u16) -> Vec<u8> {
    let mut c = MAC.to_vec();
    c.extend_from_slice(&u16::from(link_up).to_le_bytes());
    c.extend_from_slice(&1u16.to_le_bytes());
    c.extend_from_slice(&mtu.to_le_bytes());
    c
}

fn transport(features: NetFeatures) -> FakeTransport {
    FakeTransport::new(features.bits(), config(true, 1500), QUEUE_SIZE)
}

pub(super) struct Rig {
    pub(super) net: Net,
    pub(super) t: FakeTransport,
    pub(super) rx: DeviceQueue,
    pub(super) tx: DeviceQueue,
}

pub(super) fn rig(features: NetFeatures) -> Rig {
    let t = transport(features);
    let net = Net::new(t.clone(), 0x1234_5678_9abc_def0).expect("device initialises");
    let mut rx = DeviceQueue::new(t.queue(0));
    let tx = DeviceQueue::new(t.queue(1));
    assert_eq!(rx.take_avail().len(), QUEUE_SIZE as usize, "receive queue not filled");
    Rig { net, t, rx, tx }
}

/// This thread's packet trace lines: the stack's collector (`packet` is
/// the target drivers log their descriptors to as well).
pub(super) use skiff_net::testlink::capture as trace;

pub(super) const BASIC: NetFeatures = NetFeatures::VERSION_1.union(NetFeatures::MAC).union(NetFeatures::STATUS);
pub(super) const ALL: NetFeatures = BASIC.union(NetFeatures::CSUM).union(NetFeatures::GUEST_CSUM);

impl Rig {
    /// The device delivers `frame` with `header` into the next receive buffer.
    pub(super) fn deliver(&mut self, id: u16, header: NetHeader, frame: &[u8]) {
        let mut bytes = vec![0; MODERN_LEN];
        header.emit(&mut bytes, MODERN_LEN);
        // emit() writes a transmit header, whose num_buffers is always zero.
        bytes[10..12].copy_from_slice(&header.num_buffers.to_le_bytes());
        bytes.extend_from_slice(frame);
        self.rx.fill(id, &bytes);
        self.rx.put_used(u32::from(id), bytes.len() as u32);
    }

    pub(super) fn receive_all(&mut self) -> Vec<(Vec<u8>, RxChecksum)> {
        let mut out = Vec::new();
        let (rx, _) = self.net.split();
        while let Some(f) = rx.receive() {
            out.push((rx.bytes(&f).to_vec(), f.checksum));
            rx.recycle(f);
        }
        self.net.flush();
        out
    }

    pub(super) fn send(&mut self, frame: &[u8]) {
        let (_, tx) = self.net.split();
        let mut buffer = tx.reserve(frame.len()).expect("a free transmit buffer");
        tx.bytes_mut(&mut buffer).copy_from_slice(frame);
        tx.send(buffer);
    }

    /// What the device sees on the transmit queue: (header, frame) per buffer.
    pub(super) fn transmitted(&mut self) -> Vec<(NetHeader, Vec<u8>)> {
        self.tx
            .take_avail()
            .into_iter()
            .map(|id| {
                let (_, len, _) = self.tx.descriptor(id);
                let bytes = self.tx.contents(id);
                assert_eq!(bytes.len(), len as usize);
                (NetHeader::parse(&bytes, MODERN_LEN).unwrap(), bytes[MODERN_LEN..].to_vec())
            })
            .collect()
    }

    fn notifications(&self, queue: u16) -> usize {
        self.t.0.borrow().notifications.iter().filter(|&&q| q == queue).count()
    }
}

#[test]
fn every_combination_of_the_four_features_negotiates_and_degrades_correctly() {
    let optional = [NetFeatures::MAC, NetFeatures::STATUS, NetFeatures::CSUM, NetFeatures::GUEST_CSUM];
    for mask in 0..16 {
        let mut offered = NetFeatures::VERSION_1;
        for (i, f) in optional.iter().enumerate() {
            if mask & (1 << i) != 0 {
                offered |= *f;
            }
        }
        // A link that is down, to see STATUS honoured (or ignored without it).
        let t = FakeTransport::new(offered.bits(), config(false, 1500), QUEUE_SIZE);
        let net = Net::new(t.clone(), 0xfeed_face_cafe_beef).unwrap();
        assert_eq!(net.features(), offered, "mask {mask}");
        assert_eq!(t.0.borrow().driver_features, offered.bits(), "mask {mask}");
        assert_eq!(net.offered_features(), offered);
        if offered.contains(NetFeatures::MAC) {
            assert_eq!(net.info().mac, MAC, "mask {mask}");
        } else {
            assert_ne!(net.info().mac, MAC, "mask {mask}: read a MAC the device did not offer");
            assert_eq!(net.info().mac[0] & 0b11, 0b10, "mask {mask}: not unicast and locally administered");
        }
        assert_eq!(net.link_up(), !offered.contains(NetFeatures::STATUS), "mask {mask}: without STATUS the link is up");
        assert_eq!(net.info().tx_checksum_offload, offered.contains(NetFeatures::CSUM));
        assert_eq!(net.info().rx_checksum_offload, offered.contains(NetFeatures::GUEST_CSUM));
        let status = DeviceStatus::from_bits_truncate(t.0.borrow().status);
        assert!(status.contains(DeviceStatus::DRIVER_OK | DeviceStatus::FEATURES_OK), "mask {mask}");
    }
}

#[test]
fn features_we_do_not_handle_are_declined() {
    let offered = ALL
        | NetFeatures::CTRL_VQ
        | NetFeatures::GUEST_UFO
        | NetFeatures::GUEST_ECN
        | NetFeatures::HOST_ECN
        | NetFeatures::MQ
        | NetFeatures::RING_PACKED;
    let r = rig(offered);
    assert_eq!(r.net.features(), ALL);
}

#[test]
fn mtu_comes_from_the_device_when_offered_and_sane() {
    let t = FakeTransport::new((BASIC | NetFeatures::MTU).bits(), config(true, 4000), QUEUE_SIZE);
    let net = Net::new(t.clone(), 1).unwrap();
    assert_eq!(net.mtu(), 4000);
    assert!(net.features().contains(NetFeatures::MTU));
    let (_, len, _) = DeviceQueue::new(t.queue(0)).descriptor(0);
    assert_eq!(len as usize, MODERN_LEN + 14 + 4 + 4000, "receive buffers hold the device's MTU");
    let t = FakeTransport::new((BASIC | NetFeatures::MTU).bits(), config(true, 10), QUEUE_SIZE);
    let net = Net::new(t.clone(), 1).unwrap();
    assert_eq!(net.mtu(), DEFAULT_MTU, "an MTU below IPv4's minimum is not used");
    assert!(!net.features().contains(NetFeatures::MTU), "an unusable MTU is declined, not accepted and ignored");
    assert_eq!(t.0.borrow().driver_features & NetFeatures::MTU.bits(), 0);
    let t = FakeTransport::new(BASIC.bits(), config(true, 4000), QUEUE_SIZE);
    assert_eq!(Net::new(t, 1).unwrap().mtu(), DEFAULT_MTU, "no MTU feature, no MTU read");
}

#[test]
fn a_device_that_refuses_our_features_is_failed_cleanly() {
    let t = transport(ALL);
    t.0.borrow_mut().refuse_status = DeviceStatus::FEATURES_OK.bits();
    assert_eq!(Net::new(t.clone(), 1).err(), Some(NetError::FeaturesRejected));
    assert!(DeviceStatus::from_bits_truncate(t.0.borrow().status).contains(DeviceStatus::FAILED));
}

#[test]
fn modern_devices_need_version_1_and_legacy_ones_any_layout() {
    assert_eq!(Net::new(transport(NetFeatures::MAC), 1).err(), Some(NetError::NoVersion1));
    let t = transport(NetFeatures::MAC);
    t.0.borrow_mut().legacy = true;
    assert_eq!(Net::new(t, 1).err(), Some(NetError::NoAnyLayout));
    let t = transport(NetFeatures::MAC | NetFeatures::ANY_LAYOUT);
    t.0.borrow_mut().legacy = true;
    let net = Net::new(t.clone(), 1).unwrap();
    assert_eq!(net.info().mac, MAC);
    // The 10-byte legacy header: a frame of 60 bytes takes a 70-byte buffer.
    let mut net = net;
    let tx = net.split().1.reserve(60).unwrap();
    net.split().1.send(tx);
    net.flush();
    let mut dev = DeviceQueue::new(t.queue(1));
    let id = dev.take_avail()[0];
    assert_eq!(dev.descriptor(id).1, 70);
}

/// The exercise's tiny queue (`net.queue_size`): a modern device is asked
/// for fewer descriptors (a power of two), and every one is posted.
#[test]
fn a_smaller_queue_size_is_asked_for_and_filled() {
    for (asked, got) in [(4, 4), (6, 4), (1, 1), (u16::MAX, QUEUE_SIZE as u16)] {
        let t = transport(ALL);
        let net = Net::new_sized(t.clone(), 1, asked, |_| {}).expect("device initialises");
        assert_eq!(net.queue_sizes(), (got, got), "asked for {asked}");
        assert_eq!(DeviceQueue::new(t.queue(0)).take_avail().len(), usize::from(got));
    }
}

#[test]
fn the_receive_queue_is_full_and_kicked_after_driver_ok() {
    let r = rig(ALL);
    assert_eq!(r.notifications(0), 1);
    assert_eq!(r.net.queue_sizes(), (QUEUE_SIZE as u16, QUEUE_SIZE as u16));
    let (_, len, flags) = r.rx.descriptor(0);
    assert_eq!(len as usize, MODERN_LEN + 14 + 4 + 1500);
    assert_eq!(flags & 2, 2, "receive buffers are device-writable");
}

#[test]
fn frames_are_received_in_a_burst_and_buffers_go_back() {
    let mut r = rig(BASIC);
    for id in 0..10u16 {
        r.deliver(id, NetHeader::default(), &udp4_frame(&[id as u8; 30]));
    }
    let got = r.receive_all();
    assert_eq!(got.len(), 10);
    for (i, (frame, csum)) in got.iter().enumerate() {
        assert_eq!(*frame, udp4_frame(&[i as u8; 30]));
        assert_eq!(*csum, RxChecksum::Unknown);
    }
    assert_eq!(r.rx.take_avail().len(), 10, "all ten buffers reposted");
    assert_eq!(r.net.stats().rx_frames, 10);
    assert_eq!(r.net.stats().rx_bytes, 10 * udp4_frame(&[0; 30]).len() as u64);
}

#[test]
fn a_hostile_device_is_counted_dropped_and_survived() {
    let mut r = rig(ALL);
    let good = udp4_frame(b"good");
    r.rx.put_used(999, 100); // not a descriptor
    r.deliver(0, NetHeader::default(), &good);
    r.rx.put_used(0, 100); // returned twice
    r.rx.put_used(1, 100_000); // longer than the buffer
    r.rx.put_used(2, 5); // shorter than a header
    r.deliver(3, NetHeader { gso_type: 1, ..NetHeader::default() }, &good); // GSO not negotiated
    r.deliver(4, NetHeader::needs_csum(30, 2000), &good); // checksum offset past the end
    r.deliver(5, NetHeader::needs_csum(u16::MAX, u16::MAX), &good); // overflow bait
    r.deliver(6, NetHeader { num_buffers: 3, ..NetHeader::default() }, &good); // MRG_RXBUF not negotiated
    r.deliver(7, NetHeader::default(), &good);
    let got = r.receive_all();
    assert_eq!(got.iter().map(|g| &g.0).collect::<Vec<_>>(), [&good, &good], "only the two good frames");
    let s = r.net.stats();
    assert_eq!(
        (s.drop_bad_id, s.drop_not_in_flight, s.rx_drop_bad_len, s.rx_drop_short, s.rx_drop_bad_header),
        (1, 1, 1, 1, 2)
    );
    assert_eq!((s.rx_drop_gso_not_negotiated, s.rx_drop_bad_num_buffers), (1, 1));
    // Every buffer is back with the device: nothing leaked.
    assert_eq!(r.rx.take_avail().len(), 8);
    // And the queue still works.
    r.deliver(8, NetHeader::default(), &good);
    assert_eq!(r.receive_all().len(), 1);
}

#[test]
fn needs_csum_without_guest_csum_is_dropped() {
    let mut r = rig(BASIC);
    let mut f = udp4_frame(b"partial");
    let (start, offset) = offload::prepare(&mut f).unwrap();
    r.deliver(0, NetHeader::needs_csum(start, offset), &f);
    assert!(r.receive_all().is_empty());
    assert_eq!(r.net.stats().rx_drop_bad_header, 1);
}

#[test]
fn partial_checksums_are_completed_and_valid_ones_trusted() {
    let mut r = rig(ALL);
    let mut partial = udp4_frame(b"partial checksum from the host");
    let (start, offset) = offload::prepare(&mut partial).unwrap();
    r.deliver(0, NetHeader::needs_csum(start, offset), &partial);
    r.deliver(1, NetHeader { flags: FLAG_DATA_VALID, ..NetHeader::default() }, &udp4_frame(b"vouched for"));
    r.deliver(2, NetHeader::default(), &udp4_frame(b"unknown"));
    let got = r.receive_all();
    assert_eq!(checksum::verify(&got[0].0), Some(true), "completed checksum is right");
    assert_eq!(
        got.iter().map(|g| g.1).collect::<Vec<_>>(),
        [RxChecksum::Valid, RxChecksum::Valid, RxChecksum::Unknown]
    );
    assert_eq!((r.net.stats().rx_csum_completed, r.net.stats().rx_csum_valid), (1, 1));
}

#[test]
fn data_valid_means_nothing_without_guest_csum() {
    let mut r = rig(BASIC);
    r.deliver(0, NetHeader { flags: FLAG_DATA_VALID, ..NetHeader::default() }, &udp4_frame(b"x"));
    assert_eq!(r.receive_all()[0].1, RxChecksum::Unknown);
}

#[test]
fn with_csum_the_device_gets_a_partial_checksum_and_offsets() {
    let mut r = rig(ALL);
    let frame = udp4_frame(b"offload me");
    r.send(&frame);
    r.net.flush();
    let sent = r.transmitted();
    let (header, mut data) = sent.into_iter().next().unwrap();
    assert_eq!(header.flags, FLAG_NEEDS_CSUM);
    assert_eq!((header.csum_start, header.csum_offset), (34, 6));
    // Completing it as the device would gives a valid frame.
    let end = data.len();
    assert!(offload::complete(&mut data, 34, 6, end));
    assert_eq!(checksum::verify(&data), Some(true));
    assert_eq!(r.net.stats().tx_csum_offloaded, 1);
}

#[test]
fn without_csum_frames_go_out_as_the_stack_wrote_them() {
    let mut r = rig(BASIC);
    let mut frame = udp4_frame(b"software checksum");
    checksum::fill_in_software(&mut frame);
    r.send(&frame);
    r.net.flush();
    let (header, data) = r.transmitted().remove(0);
    assert_eq!(header, NetHeader::default());
    assert_eq!(data, frame);
}

#[test]
fn frames_the_device_cannot_checksum_are_checksummed_here() {
    let mut r = rig(ALL);
    let mut padded = udp4_frame(b"padded");
    padded.extend_from_slice(&[0; 8]); // the device would sum the padding
    r.send(&padded);
    r.net.flush();
    let (header, data) = r.transmitted().remove(0);
    assert_eq!(header.flags, 0);
    assert_eq!(checksum::verify(&data), Some(true));
    assert_eq!(r.net.stats().tx_csum_software, 1);
}

#[test]
fn a_burst_costs_one_kick_and_buffers_are_reclaimed_when_needed() {
    let mut r = rig(BASIC);
    let frame = udp4_frame(b"burst");
    for _ in 0..QUEUE_SIZE {
        r.send(&frame);
    }
    r.net.flush();
    assert_eq!(r.notifications(1), 1, "one kick for the whole burst");
    assert!(r.net.split().1.reserve(frame.len()).is_none(), "all buffers with the device");
    assert_eq!(r.net.stats().tx_queue_full, 1);
    let ids = r.tx.take_avail();
    assert_eq!(ids.len(), QUEUE_SIZE as usize);
    for id in &ids[..5] {
        r.tx.put_used(u32::from(*id), 0);
    }
    r.tx.put_used(500, 0); // a bogus transmit completion is counted, not trusted
    assert!(r.net.split().1.reserve(frame.len()).is_some(), "reclaimed on demand");
    assert_eq!(r.net.stats().drop_bad_id, 1);
    assert_eq!(r.net.stats().tx_frames, u64::from(QUEUE_SIZE));
}

#[test]
fn oversized_frames_get_no_buffer() {
    let mut r = rig(BASIC);
    assert!(r.net.split().1.reserve(14 + 4 + 1500).is_some());
    assert!(r.net.split().1.reserve(14 + 4 + 1501).is_none());
}

#[test]
fn a_config_interrupt_rereads_the_link() {
    let mut r = rig(ALL);
    assert!(r.net.link_up());
    r.t.0.borrow_mut().config[6] = 0;
    r.t.0.borrow_mut().isr = InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT.bits();
    assert_eq!(r.net.acknowledge_interrupt(), InterruptCause { queues: false, config: true });
    r.net.config_changed();
    assert!(!r.net.link_up());
    r.t.0.borrow_mut().isr = InterruptStatus::QUEUE_INTERRUPT.bits();
    assert_eq!(r.net.acknowledge_interrupt(), InterruptCause { queues: true, config: false });
    assert_eq!(r.net.acknowledge_interrupt(), InterruptCause::default(), "reading the ISR cleared it");
    r.t.0.borrow_mut().config[6] = 1;
    r.net.config_changed();
    assert!(r.net.link_up());
    assert_eq!(r.net.stats().config_changes, 2);
}

#[test]
fn random_macs_are_unicast_local_and_differ() {
    let a = random_mac(0x0000_0000_0100);
    let b = random_mac(0x0000_0000_0200);
    assert_ne!(a, b);
    for m in [a, b, random_mac(u64::MAX)] {
        assert_eq!(m[0] & 0b11, 0b10);
    }
    assert_eq!(Mac(MAC).to_string(), "52:54:00:12:34:56");
}

#[test]
fn frames_waiting_behind_a_full_transmit_queue_are_no_work() {
    // A device that stops completing transmits: with every transmit buffer
    // in flight the adapter takes no frame in, so frames waiting must not
    // count as work, or the main loop would poll them forever.
    let mut r = rig(BASIC);
    let frame = udp4_frame(b"stuck");
    for _ in 0..QUEUE_SIZE {
        r.send(&frame);
    }
    r.net.flush();
    r.deliver(0, NetHeader::default(), &frame);
    assert!(!r.net.split().1.has_room());
    assert!(!r.net.has_work(), "no progress is possible until a transmit buffer comes back");
    // One completion makes room: now the waiting frame is work again.
    let id = r.tx.take_avail()[0];
    r.tx.put_used(u32::from(id), 0);
    assert!(r.net.has_work());
    r.net.flush();
    assert!(r.net.has_work(), "a frame waits and a transmit buffer is free");
}

#[test]
fn a_device_that_needs_a_reset_is_reported_and_left_alone() {
    let mut r = rig(ALL);
    r.deliver(0, NetHeader::default(), &udp4_frame(b"x"));
    assert!(r.net.has_work());
    assert_eq!(r.net.failure(), None);
    r.t.0.borrow_mut().status |= DeviceStatus::DEVICE_NEEDS_RESET.bits();
    r.t.0.borrow_mut().isr = InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT.bits();
    assert!(r.net.acknowledge_interrupt().config);
    r.net.config_changed();
    assert_eq!(r.net.failure(), Some(DeviceFailure::NeedsReset));
    assert!(!r.net.has_work(), "a failed device gives the main loop no work");
    r.net.config_changed();
    assert_eq!(r.net.stats().device_needs_reset, 1, "counted once");
}

/// Queues of 32,768 entries, as a legacy device may dictate: the receive
/// queue is set up (and so live on the device) before its 50 MB of buffers
/// are found not to fit.
fn huge_legacy_transport() -> FakeTransport {
    let t = FakeTransport::new((NetFeatures::MAC | NetFeatures::ANY_LAYOUT).bits(), config(true, 1500), 32768);
    t.0.borrow_mut().legacy = true;
    FakeHal::limit_allocations(1024);
    t
}

#[test]
fn a_failed_set_up_resets_the_device_before_freeing_its_queues() {
    let before = FakeHal::live_pages();
    let t = huge_legacy_transport();
    assert_eq!(Net::new(t.clone(), 1).err(), Some(NetError::NoMemory));
    assert_eq!(FakeHal::freed_while_live(), 0, "queue memory freed while the device could still write it");
    assert_eq!(FakeHal::live_pages(), before, "a device that did reset gets its memory freed");
    assert!(!t.0.borrow().live);
    assert!(DeviceStatus::from_bits_truncate(t.0.borrow().status).contains(DeviceStatus::FAILED));
}

#[test]
fn memory_of_a_device_that_will_not_reset_never_returns_to_the_heap() {
    let before = FakeHal::live_pages();
    let t = huge_legacy_transport();
    t.0.borrow_mut().ignores_reset = true;
    assert_eq!(Net::new(t.clone(), 1).err(), Some(NetError::NoMemory));
    assert_eq!(FakeHal::freed_while_live(), 0);
    assert!(FakeHal::live_pages() > before, "the receive queue is kept from the heap");

    // The same when a working device is dropped and then will not reset.
    FakeHal::limit_allocations(usize::MAX);
    let r = rig(ALL);
    r.t.0.borrow_mut().ignores_reset = true;
    drop(r);
    assert_eq!(FakeHal::freed_while_live(), 0);
}
