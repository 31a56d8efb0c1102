//! The card's interrupts: MSI-X vectors, and INTx pins shared with others.

use alloc::format;

use super::{ANSWER_WITHIN, Context, TestResult, arp_request, exchange, is_gateway_arp_reply};
use crate::{clock, interrupts, ioapic, println};
use skiff_net::device::NetDevice;

pub(super) fn nic_msix_vectors_fire_for_rx_and_tx(ctx: &mut Context) -> TestResult {
    let (nic, signal) = ctx.nic.as_mut().ok_or("no network card")?;
    if *signal != crate::nic::Signal::Msix {
        println!("ktest:   (skipped: the card has no MSI-X)");
        return Ok(());
    }
    let (rx, tx) = (interrupts::count(interrupts::NIC_RX_VECTOR), interrupts::count(interrupts::NIC_TX_VECTOR));
    nic.set_interrupts(true);
    let mac = nic.info().mac;
    let request = arp_request(mac);
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
