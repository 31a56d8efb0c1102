//! TSO (HOST_TSO4/6) against the fake device: negotiation, the header the
//! device gets, the large buffers, and throttling when they are all out.

use super::header::{FLAG_NEEDS_CSUM, GSO_NONE, GSO_TCPV4};
use super::test::{ALL, QUEUE_SIZE, rig};
use super::*;
use crate::virtio::fake::{FakeHal, FakeTransport};
use skiff_net::checksum::{
    self,
    test_frames::{tcp4_frame, udp4_frame},
};
use skiff_net::device::{NetDevice, TxHalf};

const TSO: NetFeatures = ALL.union(NetFeatures::HOST_TSO4).union(NetFeatures::HOST_TSO6);
/// What a large buffer holds: 64 KiB less the 12-byte header.
const MAX_FRAME: usize = 64 * 1024 - 12;

#[test]
fn tso_is_negotiated_with_csum_and_offered_to_the_stack() {
    let r = rig(TSO);
    assert_eq!(r.net.features(), TSO);
    assert_eq!((r.net.info().tso4_max_frame, r.net.info().tso6_max_frame), (Some(MAX_FRAME), Some(MAX_FRAME)));
    assert_eq!(r.net.tx().free_large(), 1, "one large buffer per 16 descriptors");
    assert_eq!(r.net.tx().free(), QUEUE_SIZE as usize, "the others stay MTU-sized");
}

#[test]
fn tso_without_csum_is_declined() {
    let offered = TSO - NetFeatures::CSUM;
    let r = rig(offered);
    assert_eq!(r.net.features(), offered - NetFeatures::HOST_TSO4 - NetFeatures::HOST_TSO6);
    assert_eq!((r.net.info().tso4_max_frame, r.net.info().tso6_max_frame), (None, None));
    assert_eq!(r.net.tx().free_large(), 0);
}

#[test]
fn a_big_segment_goes_out_with_the_gso_fields_of_spec_5_1_6_2() {
    let mut r = rig(TSO);
    let payload: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let frame = tcp4_frame(&payload);
    let (_, tx) = r.net.split();
    let mut buffer = tx.reserve(frame.len()).expect("a large buffer");
    tx.bytes_mut(&mut buffer).copy_from_slice(&frame);
    tx.send_segmented(buffer, 1448);
    r.net.flush();
    let sent = r.transmitted();
    assert_eq!(sent.len(), 1);
    let (header, mut bytes) = sent.into_iter().next().unwrap();
    assert_eq!(
        (header.flags, header.gso_type, header.hdr_len, header.gso_size, header.csum_start, header.csum_offset),
        (FLAG_NEEDS_CSUM, GSO_TCPV4, 14 + 20 + 20, 1448, 34, 16)
    );
    assert_eq!(bytes[54..], payload[..], "the payload as the stack wrote it");
    // What the device does before cutting: complete the checksum over it all.
    let len = bytes.len();
    assert!(offload::complete(&mut bytes, 34, 16, len));
    assert_eq!(checksum::verify(&bytes), Some(true));
    let stats = r.net.stats();
    assert_eq!((stats.tx_tso_frames, stats.tx_tso_bytes), (1, frame.len() as u64));
}

/// Found while writing the journey of a TSO frame: the trace said "TSO"
/// for every frame the stack asked to segment, also one the device could
/// not take segmented (here UDP), which went out whole.
#[test]
fn the_trace_says_tso_only_for_frames_the_device_segments() {
    let mut r = rig(TSO);
    super::test::trace::start();
    for (frame, segment) in [(tcp4_frame(&[7u8; 20_000]), true), (udp4_frame(&[7u8; 3000]), false)] {
        let (_, tx) = r.net.split();
        let mut buffer = tx.reserve(frame.len()).expect("a large buffer");
        tx.bytes_mut(&mut buffer).copy_from_slice(&frame);
        tx.send_segmented(buffer, 1448);
        r.net.flush();
        let lines = super::test::trace::lines();
        let virtq = lines.last().expect("a virtq line");
        if segment {
            assert_eq!(
                lines[0],
                "tx vnet   flags NEEDS_CSUM, gso TCPV4 gso_size 1448 hdr_len 54, csum_start 34 csum_offset 16"
            );
            assert!(
                virtq.ends_with(
                    "checksum left to the device, TSO: the device cuts it into 14 segments of up to 1448 bytes"
                ),
                "{virtq}"
            );
        } else {
            assert!(!lines.iter().any(|l| l.contains("TSO") || l.contains("gso")), "{lines:?}");
        }
        super::test::trace::start();
        let ids = r.tx.take_avail();
        r.tx.put_used(u32::from(ids[0]), 0);
    }
}

#[test]
fn a_small_frame_sent_plainly_uses_a_small_buffer_and_no_gso() {
    let mut r = rig(TSO);
    r.send(&tcp4_frame(b"hello"));
    r.net.flush();
    let sent = r.transmitted();
    assert_eq!(sent[0].0.gso_type, GSO_NONE);
    assert_eq!(r.net.tx().free_large(), 1, "the large buffer stays free");
}

#[test]
fn the_stack_waits_while_every_large_buffer_is_in_flight() {
    let mut r = rig(TSO);
    let frame = tcp4_frame(&[1u8; 30_000]);
    let (_, tx) = r.net.split();
    let mut buffer = tx.reserve(frame.len()).expect("a large buffer");
    tx.bytes_mut(&mut buffer).copy_from_slice(&frame);
    tx.send_segmented(buffer, 1448);
    r.net.flush();
    let (_, tx) = r.net.split();
    assert!(!tx.has_room(), "small buffers are free, but a big segment would find none");
    assert!(tx.reserve(frame.len()).is_none());
    assert!(!r.net.has_work(), "nothing to do until the device gives the buffer back");
    let ids = r.tx.take_avail();
    r.tx.put_used(u32::from(ids[0]), 0);
    let (_, tx) = r.net.split();
    assert!(tx.has_room(), "the large buffer came back");
    assert!(tx.reserve(frame.len()).is_some());
    assert!(tx.reserve(MAX_FRAME + 1).is_none(), "nothing past 64 KiB");
}

#[test]
fn without_memory_for_large_buffers_tso_is_not_offered_but_all_works() {
    // Allocations over 15 pages fail: a 16-page large buffer cannot be had.
    FakeHal::limit_allocations(15);
    let t = FakeTransport::new(TSO.bits(), super::test::config(true, 1500), QUEUE_SIZE);
    let mut net = super::test::Net::new(t, 1).expect("the device still initialises");
    FakeHal::limit_allocations(usize::MAX);
    assert_eq!((net.info().tso4_max_frame, net.info().tso6_max_frame), (None, None));
    let (_, tx) = net.split();
    assert!(tx.reserve(1514).is_some());
    assert!(tx.reserve(1600).is_none());
}
