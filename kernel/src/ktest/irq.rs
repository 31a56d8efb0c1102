//! The card's interrupts: MSI-X vectors, and INTx pins shared with others.

use alloc::format;

use super::{ANSWER_WITHIN, Context, TestResult, arp_request, exchange, is_gateway_arp_reply};
use crate::nic::Nic;
use crate::{clock, interrupts, ioapic, println};
use skiff_net::device::{NetDevice, RxHalf, TxHalf};

pub(super) fn nic_msix_vectors_fire_for_rx_and_tx(ctx: &mut Context) -> TestResult {
    let (nic, signal) = ctx.nic.as_mut().ok_or("no network card")?;
    if *signal != crate::nic::Signal::Msix {
        println!("ktest:   (skipped: the card has no MSI-X)");
        return Ok(());
    }
    let mac = nic.info().mac;
    let request = arp_request(mac);
    // Under `cargo xtask run` frames arrive unasked (xtask's own HTTP probe,
    // through the host forward); the suite's networks are quiet. Leave one
    // waiting, unread, so that every network tests the same thing.
    leave_a_frame_unread(nic, &request)?;
    let (rx, tx) = (interrupts::count(interrupts::NIC_RX_VECTOR), interrupts::count(interrupts::NIC_TX_VECTOR));
    interrupts_on_with_nothing_unread(nic)?;
    let result = exchange(nic, &request, is_gateway_arp_reply);
    // The transmit interrupt may trail the reply a little.
    let start = clock::now();
    while interrupts::count(interrupts::NIC_TX_VECTOR) == tx && clock::now() - start < ANSWER_WITHIN {
        core::hint::spin_loop();
    }
    nic.set_interrupts(false);
    result?;
    let (rx_fired, tx_fired) =
        (interrupts::count(interrupts::NIC_RX_VECTOR) - rx, interrupts::count(interrupts::NIC_TX_VECTOR) - tx);
    check!(rx_fired > 0, "no receive interrupt (vector {:#x})", interrupts::NIC_RX_VECTOR);
    check!(tx_fired > 0, "no transmit interrupt (vector {:#x})", interrupts::NIC_TX_VECTOR);
    println!("ktest:   MSI-X interrupts: rx {rx_fired}, tx {tx_fired}");
    Ok(())
}

pub(super) fn nic_intx_pin_that_fired_while_the_card_was_quiet_is_unmasked(ctx: &mut Context) -> TestResult {
    let (nic, signal) = ctx.nic.as_mut().ok_or("no network card")?;
    if *signal != crate::nic::Signal::Intx {
        println!("ktest:   (skipped: the card does not use INTx)");
        return Ok(());
    }
    // With interrupts off, so that what is checked is what `service_intx`
    // did: if the card's own line is still asserted (its ISR unread since
    // earlier tests, as on microvm, where the only candidate pin is the
    // card's), unmasking delivers it at once, and its handler masks again.
    let masked = x86_64::instructions::interrupts::without_interrupts(|| {
        nic.acknowledge_interrupt();
        // Another device on a candidate pin interrupts; the card had not.
        let gsi = crate::nic::simulate_intx_fire()?;
        let fired = ioapic::is_masked(gsi);
        crate::nic::service_intx(|| false);
        Some((gsi, fired, ioapic::is_masked(gsi)))
    });
    let (gsi, fired, after) = masked.ok_or("no INTx pin routed")?;
    check!(fired == Some(true), "the handler did not mask GSI {gsi}");
    check!(
        after == Some(false),
        "GSI {gsi} stayed masked after an unclaimed fire: the card's interrupts on it would be lost"
    );
    check!(!crate::nic::intx_parked(), "one unclaimed fire parked a pin");
    Ok(())
}

/// Times the receive ring is drained before interrupts come on with it empty.
const ARM_TRIES: usize = 100;

/// Turns the card's interrupts on with nothing left unread. With EVENT_IDX
/// the device interrupts when it uses the ring entry the driver names
/// (`used_event`, virtio 1.2, 2.7.10), the one after the last the driver
/// took: a frame already waiting when interrupts come on has passed it, and
/// no later frame raises one until that frame is read. The main loop looks
/// again after turning them on (kernel/src/runloop.rs, step 3); this test
/// reads what is waiting, turns them on, and starts over if a frame slipped
/// in between.
fn interrupts_on_with_nothing_unread(nic: &mut Nic) -> TestResult {
    for _ in 0..ARM_TRIES {
        let (rx, _) = nic.split();
        while let Some(frame) = rx.receive() {
            rx.recycle(frame);
        }
        nic.flush();
        nic.set_interrupts(true);
        let (rx, _) = nic.split();
        let Some(late) = rx.receive() else { return Ok(()) };
        rx.recycle(late);
        nic.set_interrupts(false);
    }
    Err(format!("frames kept arriving through {ARM_TRIES} drains of the receive ring"))
}

/// Sends `frame` and waits until the card has put something in the receive
/// ring (the answer), without reading it.
fn leave_a_frame_unread(nic: &mut Nic, frame: &[u8]) -> TestResult {
    let (_, tx) = nic.split();
    let mut buffer = tx.reserve(frame.len()).ok_or("no transmit buffer")?;
    tx.bytes_mut(&mut buffer).copy_from_slice(frame);
    tx.send(buffer);
    let start = clock::now();
    while clock::now() - start < ANSWER_WITHIN {
        // `flush` takes back the sent buffer, so that what `has_work` then
        // sees is a received frame (or a send that completed just after).
        nic.flush();
        if nic.has_work() {
            nic.flush();
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(format!("nothing arrived within {ANSWER_WITHIN:?}"))
}
