//! Receive coalescing (MRG_RXBUF with GUEST_TSO4/6) against the fake
//! device: frames over several buffers joined, small ones left in place,
//! and each hostile case dropped, counted, with no buffer leaked or posted twice.

use super::header::{FLAG_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, MODERN_LEN, NetHeader};
use super::test::{ALL, QUEUE_SIZE, Rig, rig};
use super::*;
use skiff_net::checksum::{self, test_frames::tcp4_frame};
use skiff_net::device::{NetDevice, RxHalf};

const MRG: NetFeatures = ALL.union(NetFeatures::MRG_RXBUF);
const GRO: NetFeatures = MRG.union(NetFeatures::GUEST_TSO4).union(NetFeatures::GUEST_TSO6);
/// Each receive buffer: header, Ethernet header, a tag, 1500 bytes.
const BUFFER: usize = MODERN_LEN + 14 + 4 + 1500;

/// A coalesced TCP/IPv4 frame of `payload` bytes, its header asking for
/// the checksum to be completed, as Linux hands one to a TAP reader.
fn coalesced(payload: usize) -> (NetHeader, Vec<u8>) {
    let mut frame = tcp4_frame(&(0..payload).map(|i| (i * 7) as u8).collect::<Vec<_>>());
    let (start, offset) = offload::prepare(&mut frame).expect("TCP");
    let header = NetHeader {
        flags: FLAG_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: start,
        csum_offset: offset,
        num_buffers: 0,
    };
    (header, frame)
}

impl Rig {
    /// The device writes `header` (with `num_buffers`) and `frame` across
    /// buffers `ids`, filling each, and publishes one used entry per buffer
    /// with `lens` (or the bytes written) in one index update.
    fn deliver_chain(&mut self, ids: &[u16], header: NetHeader, num_buffers: u16, frame: &[u8], lens: Option<&[u32]>) {
        let mut bytes = vec![0; MODERN_LEN];
        header.emit(&mut bytes, MODERN_LEN);
        bytes[10..12].copy_from_slice(&num_buffers.to_le_bytes());
        bytes.extend_from_slice(frame);
        let mut written = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let chunk = &bytes[(i * BUFFER).min(bytes.len())..((i + 1) * BUFFER).min(bytes.len())];
            self.rx.fill(id, chunk);
            written.push(chunk.len() as u32);
        }
        let lens = lens.unwrap_or(&written);
        for (ahead, (&id, &len)) in ids.iter().zip(lens).enumerate() {
            self.rx.write_used(ahead as u16, u32::from(id), len);
        }
        self.rx.publish_used(ids.len() as u16);
    }

    /// Every buffer the driver has reposted since the last call, checked to
    /// be posted once each.
    fn reposted(&mut self) -> Vec<u16> {
        let ids = self.rx.take_avail();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "a buffer posted twice: {ids:?}");
        ids
    }

    /// After a drop: every buffer is back (or was never taken), and a good
    /// frame still goes through.
    fn still_works(&mut self, next: u16) {
        assert_eq!(self.net.rx().in_flight(), QUEUE_SIZE as usize, "a receive buffer leaked");
        let (header, frame) = coalesced(2000);
        self.deliver_chain(&[next, next + 1], header, 2, &frame, None);
        let got = self.receive_all();
        assert_eq!(got.len(), 1, "the queue still works");
        assert_eq!(got[0].0.len(), frame.len());
        self.reposted();
    }
}

#[test]
fn coalescing_is_negotiated_only_with_guest_csum_and_mrg_rxbuf() {
    assert_eq!(rig(GRO).net.features(), GRO);
    let no_mrg = GRO - NetFeatures::MRG_RXBUF;
    assert_eq!(rig(no_mrg).net.features(), no_mrg - NetFeatures::GUEST_TSO4 - NetFeatures::GUEST_TSO6);
    let no_csum = GRO - NetFeatures::GUEST_CSUM;
    let coalescing = NetFeatures::GUEST_TSO4 | NetFeatures::GUEST_TSO6 | NetFeatures::MRG_RXBUF;
    assert_eq!(rig(no_csum).net.features(), no_csum - coalescing);
    // QEMU's user network offers MRG_RXBUF alone: declined, nothing changes.
    assert_eq!(rig(MRG).net.features(), ALL);
}

#[test]
fn a_coalesced_frame_over_three_buffers_is_joined_and_its_checksum_completed() {
    let mut r = rig(GRO);
    let (header, frame) = coalesced(4000);
    r.deliver_chain(&[0, 1, 2], header, 3, &frame, None);
    let (rx, _) = r.net.split();
    let got = rx.receive().expect("the joined frame");
    assert!(got.is_joined());
    let bytes = rx.bytes(&got).to_vec();
    assert_eq!(bytes.len(), frame.len());
    assert_eq!(bytes[54..], frame[54..], "the payload, in order");
    assert_eq!(checksum::verify(&bytes), Some(true), "the partial checksum was completed over all of it");
    assert!(rx.checksum_verified(&got));
    rx.recycle(got);
    r.net.flush();
    let mut back = r.reposted();
    back.sort_unstable();
    assert_eq!(back, [0, 1, 2], "each buffer of the chain reposted once");
    let s = r.net.stats();
    assert_eq!((s.rx_merged_frames, s.rx_gso_frames, s.rx_csum_completed, s.rx_frames), (1, 1, 1, 1));
}

/// Found while writing the journey of a coalesced frame: the trace gave a
/// joined frame's first buffer's length as its used length
/// (`used len 1530 = header 12 + frame 4054`, which does not add up), and
/// showed neither the buffers nor the header's fields.
#[test]
fn the_trace_shows_a_joined_frame_whole_and_its_header() {
    let mut r = rig(GRO);
    let (header, frame) = coalesced(4000);
    super::test::trace::start();
    r.deliver_chain(&[0, 1, 2], header, 3, &frame, None);
    let (rx, _) = r.net.split();
    let got = rx.receive().expect("the joined frame");
    let len = frame.len();
    assert_eq!(
        super::test::trace::lines(),
        [
            format!("rx virtq  desc 0 used len {} in 3 buffers = header 12 + frame {len} (joined: MRG_RXBUF), checksum valid", len + 12),
            "rx vnet   flags NEEDS_CSUM, gso TCPV4 gso_size 1448 hdr_len 54, csum_start 34 csum_offset 16, num_buffers 3".into(),
        ]
    );
    rx.recycle(got);
}

#[test]
fn a_frame_in_one_buffer_is_lent_in_place() {
    let mut r = rig(GRO);
    let (header, frame) = coalesced(100);
    r.deliver_chain(&[5], header, 1, &frame, None);
    let (rx, _) = r.net.split();
    let got = rx.receive().expect("a frame");
    assert!(!got.is_joined(), "no copy for a frame that fits");
    assert_eq!(rx.bytes(&got).len(), frame.len());
    rx.recycle(got);
    assert_eq!(r.net.stats().rx_merged_frames, 0);
}

#[test]
fn a_gso_frame_that_was_not_negotiated_is_dropped() {
    let mut r = rig(ALL);
    let (header, frame) = coalesced(1000);
    r.deliver_chain(&[0], header, 1, &frame, None);
    assert!(r.receive_all().is_empty());
    assert_eq!(r.net.stats().rx_drop_gso_not_negotiated, 1);
    assert_eq!(r.reposted().len(), 1);
    let (header, frame) = coalesced(3000);
    let mut r = rig(GRO - NetFeatures::GUEST_TSO4);
    r.deliver_chain(&[0, 1, 2], header, 3, &frame, None);
    assert!(r.receive_all().is_empty());
    assert_eq!(r.net.stats().rx_drop_gso_not_negotiated, 1, "TSO6 is not TSO4");
    assert_eq!(r.reposted().len(), 3);
}

#[test]
fn num_buffers_of_zero_or_more_than_the_ring_holds_is_dropped() {
    let mut r = rig(GRO);
    let (header, frame) = coalesced(1000);
    r.deliver_chain(&[0], header, 0, &frame, None);
    r.deliver_chain(&[1], header, QUEUE_SIZE as u16 + 1, &frame, None);
    r.deliver_chain(&[2], header, u16::MAX, &frame, None);
    assert!(r.receive_all().is_empty());
    assert_eq!(r.net.stats().rx_drop_bad_num_buffers, 3);
    assert_eq!(r.reposted().len(), 3);
    r.still_works(3);
}

#[test]
fn num_buffers_more_than_were_posted_is_dropped() {
    let mut r = rig(GRO);
    let (header, small) = coalesced(100);
    // The stack holds ten frames: six buffers are with the device.
    let mut held = Vec::new();
    for id in 0..10u16 {
        r.deliver_chain(&[id], header, 1, &small, None);
        held.push(r.net.split().0.receive().expect("a frame"));
    }
    assert_eq!(r.net.rx().in_flight(), 6);
    // A frame claiming eight buffers, and the device has only six.
    let (header, frame) = coalesced(1000);
    r.deliver_chain(&[10], header, 8, &frame, None);
    assert!(r.net.split().0.receive().is_none());
    assert_eq!(r.net.stats().rx_drop_bad_num_buffers, 1);
    for f in held {
        r.net.split().0.recycle(f);
    }
    r.net.flush();
    assert_eq!(r.reposted().len(), 11);
    r.still_works(11);
}

#[test]
fn fewer_buffers_used_than_num_buffers_claims_is_dropped() {
    let mut r = rig(GRO);
    let (header, frame) = coalesced(4000);
    // Three buffers' worth, but only the first two used entries published.
    r.deliver_chain(&[0, 1], header, 3, &frame, None);
    assert!(r.receive_all().is_empty());
    assert_eq!(r.net.stats().rx_drop_bad_num_buffers, 1);
    assert_eq!(r.reposted().len(), 2);
    r.still_works(2);
}

#[test]
fn a_chain_whose_lengths_do_not_add_up_is_dropped() {
    let mut r = rig(GRO);
    let (header, frame) = coalesced(4000);
    let full = BUFFER as u32;
    // An empty buffer in the middle.
    r.deliver_chain(&[0, 1, 2], header, 3, &frame, Some(&[full, 0, full]));
    // The last buffer short of what the IP header says.
    let last = (MODERN_LEN + frame.len() - 2 * BUFFER) as u32;
    r.deliver_chain(&[3, 4, 5], header, 3, &frame, Some(&[full, full, last - 10]));
    // A buffer claiming more than it holds (the queue's check).
    r.deliver_chain(&[6, 7, 8], header, 3, &frame, Some(&[full, full + 1, last]));
    // An id the device was never given, inside the chain.
    r.deliver_chain(&[9], header, 2, &frame, None);
    r.rx.put_used(99, full);
    assert!(r.receive_all().is_empty());
    let s = r.net.stats();
    assert_eq!(s.rx_drop_bad_chain, 4);
    assert_eq!((s.rx_drop_bad_len, s.drop_bad_id), (1, 1));
    // Buffer 8, after the chain broke at 7, was taken as a frame of its
    // own: its "header" is payload bytes, dropped.
    assert_eq!(s.rx_drop_bad_num_buffers, 1);
    // Every buffer given back once.
    assert_eq!(r.reposted().len(), 10);
    r.still_works(10);
}

#[test]
fn gso_headers_that_do_not_match_the_frame_are_dropped() {
    let mut r = rig(GRO);
    let (header, frame) = coalesced(3000);
    let cases = [
        NetHeader { gso_size: 0, ..header },
        NetHeader { hdr_len: frame.len() as u16 + 1, ..header },
        NetHeader { gso_type: GSO_TCPV6, ..header },
    ];
    for (i, bad) in cases.into_iter().enumerate() {
        let first = 3 * i as u16;
        r.deliver_chain(&[first, first + 1, first + 2], bad, 3, &frame, None);
    }
    assert!(r.receive_all().is_empty());
    assert_eq!(r.net.stats().rx_drop_gso_mismatch, 3);
    assert_eq!(r.reposted().len(), 9);
    r.still_works(9);
}
