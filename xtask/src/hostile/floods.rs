//! Floods: SYN from spoofed addresses, ARP, ICMP echo and UDP, sent with
//! no pause; the guest must serve again afterwards.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::checks::{Ctx, number};
use super::raw::SYN_WINDOW;
use super::{ECHO, FAKE_IP, FAKE_MAC, GUEST_IP, GUEST_MAC, HTTP, Result, Rng, say};
use crate::frames::{self, Ipv4, SYN, Tcp};
use crate::netns::TAP;
use crate::testnet::DISCARD_PORT;

/// How long HTTP may take to answer after a flood.
///
/// A flood is sent far faster than the guest takes frames in under TCG
/// (2,000 SYNs in about 10 ms; the guest takes a few thousand frames a
/// second), so the TAP device's queue toward QEMU (`TAP_QUEUE_FRAMES`)
/// overflows and the host kernel drops the rest (the TAP's `tx_dropped`)
/// before QEMU reads them: often the client's own SYN sent right after the
/// flood too. Captures on the TAP and in QEMU (`filter-dump`) showed that
/// SYN missing in QEMU and its retransmission, 1 s later (RFC 6298 2.1),
/// answered at once: the 1.0 s "HTTP answered" after `syn-flood`,
/// `arp-flood` and `icmp-flood`. That is the host's queue, not Skiff; any
/// guest behind it loses the same frames. This window allows two lost SYNs
/// (Linux resends at 1 s and 3 s).
///
/// After the ARP flood it also bounds the neighbour cache: the flood's
/// made-up neighbours once pushed the client out of smoltcp's 8-entry
/// cache, and its ARP request then waited behind the SYN flood's half-open
/// connections: 8 to 11 s. Now the cache holds a whole /24 and the limit is
/// per address (smoltcp patch 13).
const FLOOD_RECOVERY: Duration = Duration::from_secs(5);

/// Frames the host kernel dropped on the TAP device toward QEMU so far.
fn tap_dropped() -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{TAP}/statistics/tx_dropped"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends `frames` as a flood, then waits (within `FLOOD_RECOVERY`) for HTTP
/// to answer; says how long that took and how many frames the TAP queue
/// dropped meanwhile. Returns the frames sent.
fn flood_then_serve(ctx: &Ctx, what: &str, frames: impl Iterator<Item = Vec<u8>>) -> Result<usize> {
    let dropped = tap_dropped();
    let sent = ctx.flood(frames)?;
    let took = ctx.serving_within(FLOOD_RECOVERY).map_err(|e| format!("{e} after the {what}"))?;
    say(format!(
        "    {what}: HTTP answered {:.2} s after it; the TAP queue dropped {} frames before QEMU read them",
        took.as_secs_f64(),
        tap_dropped().saturating_sub(dropped)
    ));
    Ok(sent)
}

/// `n` SYNs from addresses nobody answers ARP for: the SYN-ACKs go nowhere,
/// as in a spoofed flood. To `port`, or to HTTP and echo in turn.
pub(super) fn spoofed_syns(n: usize, port: Option<u16>) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = Rng::from_os();
    (0..n).map(move |i| {
        let src = Ipv4Addr::new(10, 0, 2, 100 + (rng.next() % 150) as u8);
        let mac = [0x02, 0, 0, 0, 1, src.octets()[3]];
        let tcp = Tcp {
            src_port: rng.port(),
            dst_port: port.unwrap_or(if i % 2 == 0 { HTTP } else { ECHO }),
            seq: rng.next() as u32,
            ack: 0,
            flags: SYN,
            window: SYN_WINDOW,
        };
        let ip = Ipv4::new(src, GUEST_IP, frames::PROTO_TCP);
        frames::ipv4_frame(GUEST_MAC, mac, &ip, &tcp.build(src, GUEST_IP, &[]))
    })
}

/// SYN, ARP, ICMP and UDP floods.
pub(super) fn run(ctx: &mut Ctx) -> Result<()> {
    let n = ctx.sizes.syn_flood;
    ctx.class("syn-flood", |ctx| Ok((flood_then_serve(ctx, "syn flood", spoofed_syns(n, None))?, vec![])))?;

    let n = ctx.sizes.arp_flood;
    ctx.class("arp-flood", |ctx| {
        let mut rng = Rng::from_os();
        let frames = (0..n).map(|i| {
            // Never the gateway's or the guest's own address: ARP has no
            // authentication, and poisoning the gateway is not a Skiff bug.
            let ip = Ipv4Addr::new(10, 0, 2, 16 + (rng.next() % 200) as u8);
            let mac = [0x02, 0, 0, 2, (rng.next() >> 8) as u8, ip.octets()[3]];
            let (op, dst) = if i % 4 == 3 { (2, GUEST_MAC) } else { (1, [0xFF; 6]) };
            frames::ethernet(dst, mac, frames::ETHERTYPE_ARP, &frames::arp(op, mac, ip, [0; 6], GUEST_IP))
        });
        // Right after the SYN flood: the guest must still know this client.
        Ok((flood_then_serve(ctx, "arp flood", frames)?, vec![]))
    })?;

    let n = ctx.sizes.icmp_flood;
    ctx.class("icmp-flood", |ctx| {
        ctx.announce()?;
        let ident = ctx.rng.next() as u16;
        let frames = (0..n).map(|i| {
            let ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_ICMP);
            frames::ipv4_frame(
                GUEST_MAC,
                FAKE_MAC,
                &ip,
                &frames::icmp_echo(frames::ICMP_ECHO_REQUEST, ident, i as u16, &[0x5A; 56]),
            )
        });
        let sent = flood_then_serve(ctx, "icmp flood", frames)?;
        ctx.link.drain();
        Ok((sent, vec![]))
    })?;

    let n = ctx.sizes.udp_flood;
    ctx.class("udp-flood-rx-ring", |ctx| {
        let before = ctx.stats()?;
        let frames: Vec<Vec<u8>> =
            (0..256).map(|i| ctx.udp_frame(if i % 2 == 0 { DISCARD_PORT } else { ECHO }, 1400)).collect();
        let sent = ctx.flood((0..n).map(|i| frames[i % frames.len()].clone()))?;
        let after = ctx.stats()?;
        say(format!(
            "    udp flood: {sent} frames sent, {} reached the guest",
            number(&after, "/device/rx_frames") - number(&before, "/device/rx_frames")
        ));
        Ok((sent, vec![]))
    })?;
    Ok(())
}
