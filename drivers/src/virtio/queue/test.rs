//! The split queue against the fake device end (`virtio::fake`).

use super::super::fake::{DeviceQueue, FakeHal, FakeTransport};
use super::*;

fn queue(max: u32, cap: u16, event_idx: bool) -> (SplitQueue<FakeHal>, DeviceQueue, FakeTransport) {
    let mut t = FakeTransport::new(0, vec![], max);
    let q = SplitQueue::<FakeHal>::new(&mut t, 0, cap, event_idx).unwrap();
    let dev = DeviceQueue::new(t.queue(0));
    (q, dev, t)
}

/// Gives every descriptor a 64-byte buffer at a made-up address.
fn fill(q: &mut SplitQueue<FakeHal>) {
    for id in 0..q.size() {
        q.set_buffer(id, 0x10_0000 + 64 * u64::from(id), 64, true).unwrap();
    }
}

#[test]
fn size_comes_from_the_device_capped_and_rounded_to_a_power_of_two() {
    assert_eq!(queue(256, 1024, false).0.size(), 256);
    assert_eq!(queue(1024, 256, false).0.size(), 256);
    assert_eq!(queue(100, 1024, false).0.size(), 64);
    let mut t = FakeTransport::new(0, vec![], 0);
    assert_eq!(SplitQueue::<FakeHal>::new(&mut t, 0, 256, false).err(), Some(QueueError::NotAvailable));
}

#[test]
fn a_legacy_queue_takes_the_device_size_or_nothing() {
    let mut t = FakeTransport::new(0, vec![], 512);
    t.0.borrow_mut().legacy = true;
    assert_eq!(SplitQueue::<FakeHal>::new(&mut t, 0, 256, false).unwrap().size(), 512);
    let mut t = FakeTransport::new(0, vec![], 100);
    t.0.borrow_mut().legacy = true;
    assert_eq!(SplitQueue::<FakeHal>::new(&mut t, 0, 256, false).err(), Some(QueueError::BadSize(100)));
}

#[test]
fn pushed_buffers_reach_the_device_only_when_published() {
    let (mut q, mut dev, _) = queue(8, 8, false);
    fill(&mut q);
    q.push(3).unwrap();
    q.push(5).unwrap();
    assert!(dev.take_avail().is_empty(), "visible before publish");
    assert!(q.publish(), "device did not suppress notifications");
    assert_eq!(dev.take_avail(), [3, 5]);
    assert_eq!(dev.descriptor(5), (0x10_0000 + 5 * 64, 64, DESC_F_WRITE));
    assert!(!q.publish(), "nothing new, no kick");
    assert_eq!(q.push(3), Err(QueueError::InvalidId(3)), "already in flight");
    assert_eq!(q.push(8), Err(QueueError::InvalidId(8)));
}

#[test]
fn used_entries_come_back_in_device_order() {
    let (mut q, mut dev, _) = queue(8, 8, false);
    fill(&mut q);
    for id in [1, 2, 3] {
        q.push(id).unwrap();
    }
    q.publish();
    dev.put_used(2, 60);
    dev.put_used(1, 10);
    assert_eq!(q.pop_used(), Some(Ok(Used { id: 2, len: 60 })));
    assert_eq!(q.pop_used(), Some(Ok(Used { id: 1, len: 10 })));
    assert_eq!(q.pop_used(), None);
    assert_eq!(q.in_flight(), 1);
}

#[test]
fn hostile_used_entries_are_reported_skipped_and_the_queue_goes_on() {
    let (mut q, mut dev, _) = queue(8, 8, false);
    fill(&mut q);
    for id in 0..4 {
        q.push(id).unwrap();
    }
    q.publish();
    assert_eq!(dev.take_avail(), [0, 1, 2, 3]);
    dev.put_used(9, 10); // not a descriptor
    dev.put_used(u32::MAX, 10); // not even a u16
    dev.put_used(6, 10); // never given
    dev.put_used(0, 10);
    dev.put_used(0, 10); // returned twice
    dev.put_used(1, 65); // longer than the 64-byte buffer
    dev.put_used(2, 64);
    assert_eq!(q.pop_used(), Some(Err(BadUsed::IdOutOfRange { id: 9 })));
    assert_eq!(q.pop_used(), Some(Err(BadUsed::IdOutOfRange { id: u32::MAX })));
    assert_eq!(q.pop_used(), Some(Err(BadUsed::NotInFlight { id: 6 })));
    assert_eq!(q.pop_used(), Some(Ok(Used { id: 0, len: 10 })));
    assert_eq!(q.pop_used(), Some(Err(BadUsed::NotInFlight { id: 0 })));
    assert_eq!(q.pop_used(), Some(Err(BadUsed::LenTooLong { id: 1, len: 65, max: 64 })));
    assert_eq!(q.pop_used(), Some(Ok(Used { id: 2, len: 64 })));
    assert_eq!(q.pop_used(), None);
    // The freed descriptors can be used again, and the queue still works.
    q.push(0).unwrap();
    q.push(1).unwrap();
    q.publish();
    assert_eq!(dev.take_avail(), [0, 1]);
    dev.put_used(1, 5);
    assert_eq!(q.pop_used(), Some(Ok(Used { id: 1, len: 5 })));
}

#[test]
fn a_used_index_that_jumps_past_the_queue_is_reported_and_skipped() {
    let (mut q, mut dev, _) = queue(8, 8, false);
    fill(&mut q);
    q.push(0).unwrap();
    q.publish();
    dev.take_avail();
    // The device claims 20 entries at once in an 8-entry queue.
    for _ in 0..20 {
        dev.put_used(0, 1);
    }
    assert_eq!(q.pop_used(), Some(Err(BadUsed::IndexJump { distance: 20 })));
    assert_eq!(q.pop_used(), None, "skipped to the device's index");
    // Later entries are taken normally.
    dev.put_used(0, 3);
    assert_eq!(q.pop_used(), Some(Ok(Used { id: 0, len: 3 })));
}

#[test]
fn device_notification_suppression_is_honoured() {
    let (mut q, dev, _) = queue(8, 8, false);
    fill(&mut q);
    // SAFETY: the used ring's flags word, in the live queue memory.
    unsafe { (dev.q.used as *mut u16).write_volatile(USED_F_NO_NOTIFY) };
    q.push(0).unwrap();
    assert!(!q.publish());
}

#[test]
fn event_idx_kicks_exactly_when_the_device_asks_across_65536_buffers() {
    // More buffers than the 16-bit indices can count, so they wrap.
    let (mut q, mut dev, _) = queue(4, 4, true);
    fill(&mut q);
    let mut kicks = 0;
    for round in 0..70_000u32 {
        let id = (round % 4) as u16;
        // The device asks to be kicked once the driver has made available
        // the entry after the one it has seen (what a busy device does
        // every few buffers); here it asks every other round.
        if round % 2 == 0 {
            dev.set_avail_event(round as u16);
        }
        q.push(id).unwrap();
        let kicked = q.publish();
        assert_eq!(kicked, round % 2 == 0, "round {round}");
        kicks += u32::from(kicked);
        assert_eq!(dev.take_avail(), [id]);
        dev.put_used(u32::from(id), 1);
        assert_eq!(q.pop_used(), Some(Ok(Used { id, len: 1 })), "round {round}");
    }
    assert_eq!(kicks, 35_000);
}

#[test]
fn interrupt_suppression_writes_flags_or_used_event() {
    let (mut q, dev, _) = queue(8, 8, false);
    q.set_interrupts(false);
    assert_eq!(dev.used_event_and_flags().1, AVAIL_F_NO_INTERRUPT);
    q.set_interrupts(true);
    assert_eq!(dev.used_event_and_flags().1, 0);
    let (mut q, dev, _) = queue(8, 8, true);
    q.set_interrupts(true);
    assert_eq!(dev.used_event_and_flags().0, 0, "interrupt after the next used buffer");
    q.set_interrupts(false);
    assert_eq!(dev.used_event_and_flags().0, 0x8000, "out of reach of 8 in-flight buffers");
    // It stays out of reach while entries are taken with interrupts off.
    let mut dev = dev;
    for id in 0..8 {
        q.set_buffer(id, 0x1000, 64, true).unwrap();
    }
    for round in 0..20u16 {
        let id = round % 8;
        q.push(id).unwrap();
        q.publish();
        dev.take_avail();
        dev.put_used(u32::from(id), 1);
        assert!(q.pop_used().is_some());
        assert_eq!(dev.used_event_and_flags().0, (round + 1).wrapping_add(0x8000), "round {round}");
    }
}

#[test]
fn layout_puts_the_used_ring_on_a_page_boundary() {
    assert_eq!(Layout::new(256), Layout { avail: 4096, used: 8192, total: 8192 + 6 + 2048 });
    assert_eq!(Layout::new(8), Layout { avail: 128, used: 4096, total: 4096 + 6 + 64 });
}

#[test]
fn need_event_is_right_across_the_wrap() {
    // Device wants a kick once index 5 is passed.
    assert!(need_event(5, 6, 5));
    assert!(need_event(5, 10, 3));
    assert!(!need_event(5, 5, 3));
    assert!(!need_event(9, 8, 3));
    // The same, with the indices wrapped past 65535.
    assert!(need_event(65534, 2, 65530), "crossed 65534 while wrapping");
    assert!(!need_event(3, 2, 65530), "not yet at 3");
    assert!(need_event(65535, 0, 65535));
}
