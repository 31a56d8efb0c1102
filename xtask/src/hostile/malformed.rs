//! Malformed frames, one field broken at a time: each class must move
//! exactly its drop counter by exactly what the host kernel let through.

use std::time::{Duration, Instant};

use super::checks::{Ctx, number};
use super::raw::SYN_WINDOW;
use super::{ECHO, FAKE_IP, FAKE_MAC, GUEST_IP, GUEST_MAC, HTTP, Result, say};
use crate::frames::{self, ACK, Ipv4, RST, SYN, Tcp};
use crate::netns::TAP;
use crate::rawlink::FRAME_BUFFER;
use crate::testnet::DISCARD_PORT;

/// The TAP device's MTU while the oversize frames go out (a jumbo frame's).
const JUMBO_MTU: usize = 9000;
/// The headers in front of a UDP payload in a frame.
const UDP_FRAME_HEADERS: usize = frames::ETHERNET_HEADER + frames::IPV4_HEADER + frames::UDP_HEADER;

/// Every malformed class, with the counter each must move.
pub(super) fn run(ctx: &mut Ctx) -> Result<()> {
    let rounds = ctx.sizes.malformed_rounds;
    let base = ctx.syn(HTTP);
    let ip = frames::ETHERNET_HEADER;
    let tcp_at = ip + frames::IPV4_HEADER;

    ctx.class("truncated-ethernet", |ctx| {
        let runts: Vec<Vec<u8>> = (0..frames::ETHERNET_HEADER).map(|n| base[..n].to_vec()).collect();
        let frames = repeat(&runts, rounds);
        // The host kernel refuses frames shorter than a link header; what it takes must be counted.
        let sent = ctx.send_all(&frames)?;
        say(format!(
            "    {} runts attempted, {} refused by the host kernel (shorter than its link header)",
            frames.len(),
            frames.len() - sent
        ));
        Ok((sent, vec![("/device/rx_drop_malformed_ethernet", sent as u64)]))
    })?;

    ctx.class("truncated-ipv4", |ctx| {
        let cut: Vec<Vec<u8>> = (0..frames::IPV4_HEADER).map(|n| base[..ip + n].to_vec()).collect();
        each_counted(ctx, &repeat(&cut, rounds), "/device/rx_drop_malformed_ipv4")
    })?;

    ctx.class("bad-ihl-total-length", |ctx| {
        let mut variants = Vec::new();
        for ihl in [0u8, 1, 4, 15] {
            variants.push(edit_ipv4(&base, |f| f[ip] = 0x40 | ihl));
        }
        for version in [0u8, 6, 15] {
            variants.push(edit_ipv4(&base, |f| f[ip] = (version << 4) | 5));
        }
        for total in [0u16, 10, 19, 41, 1500, 65535] {
            variants.push(edit_ipv4(&base, |f| set_total_length(f, total)));
        }
        each_counted(ctx, &repeat(&variants, rounds), "/device/rx_drop_malformed_ipv4")
    })?;

    ctx.class("bad-ip-checksum", |ctx| {
        let frames: Vec<Vec<u8>> = (0..rounds * 25)
            .map(|_| {
                let mut f = ctx.syn(HTTP);
                f[ip + frames::IPV4_CHECKSUM_OFFSET] ^= 0x5A;
                f
            })
            .collect();
        each_counted(ctx, &frames, "/device/rx_drop_bad_ipv4_checksum")
    })?;

    ctx.class("bad-tcp-udp-checksum", |ctx| {
        let mut frames = Vec::new();
        for i in 0..rounds * 25 {
            let (mut f, at) = if i % 2 == 0 {
                (ctx.syn(if i % 4 == 0 { HTTP } else { ECHO }), frames::TCP_CHECKSUM_OFFSET)
            } else {
                (ctx.udp_frame(ECHO, 64), frames::UDP_CHECKSUM_OFFSET)
            };
            f[tcp_at + at] ^= 0x81;
            frames.push(f);
        }
        each_counted(ctx, &frames, "/device/rx_drop_bad_checksum")
    })?;

    ctx.class("truncated-tcp-bad-offset", |ctx| {
        let mut variants: Vec<Vec<u8>> = (0..frames::TCP_HEADER).map(|keep| cut_transport(&base, keep)).collect();
        for offset in (0u8..5).chain(6..16) {
            let mut f = base.clone();
            f[tcp_at + frames::TCP_DATA_OFFSET] = offset << 4;
            variants.push(f);
        }
        each_counted(ctx, &repeat(&variants, rounds), "/device/rx_drop_malformed_tcp")
    })?;

    let u = ctx.udp_frame(ECHO, 32);
    ctx.class("truncated-udp-bad-length", |ctx| {
        let mut variants: Vec<Vec<u8>> = (0..frames::UDP_HEADER).map(|keep| cut_transport(&u, keep)).collect();
        for len in [0u16, 7, 41, 1000] {
            let mut f = u.clone();
            f[tcp_at + frames::UDP_LENGTH_OFFSET..tcp_at + frames::UDP_LENGTH_OFFSET + 2]
                .copy_from_slice(&len.to_be_bytes());
            variants.push(f);
        }
        each_counted(ctx, &repeat(&variants, rounds), "/device/rx_drop_malformed_udp")
    })?;

    ctx.class("truncated-arp-runts", |ctx| {
        let arp = frames::arp(1, FAKE_MAC, FAKE_IP, [0; 6], GUEST_IP);
        let frames: Vec<Vec<u8>> = (0..rounds)
            .flat_map(|_| {
                (0..arp.len() - 1)
                    .step_by(3)
                    .map(|n| frames::ethernet(GUEST_MAC, FAKE_MAC, frames::ETHERTYPE_ARP, &arp[..n]))
            })
            .collect();
        each_counted(ctx, &frames, "/device/rx_drop_malformed_arp")
    })?;

    ctx.class("fragments", |ctx| {
        let mut frames = Vec::new();
        for _ in 0..rounds * 5 {
            let payload = vec![0x42u8; 64];
            let datagram = frames::udp(FAKE_IP, GUEST_IP, 4000, ECHO, &payload);
            for (offset, flags) in [(0u16, frames::MORE_FRAGMENTS), (3, frames::MORE_FRAGMENTS), (6, 0), (1, 0)] {
                let mut ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_UDP);
                ip.ident = ctx.rng.next() as u16;
                ip.flags_offset = flags | offset;
                let start = (usize::from(offset) * 8).min(datagram.len());
                let end = (start + 24).min(datagram.len());
                frames.push(frames::ipv4_frame(GUEST_MAC, FAKE_MAC, &ip, &datagram[start..end]));
            }
        }
        each_counted(ctx, &frames, "/device/rx_drop_ipv4_fragment")
    })?;

    ctx.class("ip-options", |ctx| {
        // Valid options must not cost a connection: each SYN is answered.
        ctx.announce()?;
        ctx.link.drain();
        let options: [&[u8]; 3] = [&[1, 1, 1, 0], &[7, 7, 4, 0, 0, 0, 0, 0], &[0x94, 4, 0, 0]];
        let mut sent = 0;
        let mut answered = 0;
        for i in 0..rounds * 6 {
            let port = ctx.rng.port();
            let mut ip = Ipv4::new(FAKE_IP, GUEST_IP, frames::PROTO_TCP);
            ip.options = options[i % options.len()].to_vec();
            let tcp = Tcp { src_port: port, dst_port: HTTP, seq: 1000, ack: 0, flags: SYN, window: SYN_WINDOW };
            sent += usize::from(ctx.link.send(&frames::ipv4_frame(
                GUEST_MAC,
                FAKE_MAC,
                &ip,
                &tcp.build(FAKE_IP, GUEST_IP, &[]),
            ))?);
            let mut buf = [0u8; FRAME_BUFFER];
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Some(n) = ctx.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) {
                if let Some(seg) = frames::parse_tcp(&buf[..n])
                    && seg.dst_port == port
                    && seg.flags & (SYN | ACK) == SYN | ACK
                {
                    answered += 1;
                    let rst = Tcp { src_port: port, dst_port: HTTP, seq: 1001, ack: 0, flags: RST, window: 0 };
                    ctx.link.send(&ctx.tcp_frame(&rst, &[]))?;
                    break;
                }
            }
        }
        if answered != sent {
            return Err(format!("{answered} of {sent} SYNs with IP options answered"));
        }
        Ok((sent, vec![]))
    })?;

    ctx.class("oversize-undersize", |ctx| {
        // The TAP device takes jumbo frames once its MTU allows them; the
        // guest's buffers hold 1514 bytes, so QEMU or the driver must drop them.
        set_mtu(JUMBO_MTU);
        let oversize = [1515usize, 1518, 1600, 4000, frames::ETHERNET_HEADER + JUMBO_MTU];
        let mut frames = Vec::new();
        for len in oversize {
            let mut f = ctx.udp_frame(ECHO, len - UDP_FRAME_HEADERS);
            f.truncate(len);
            frames.push(f);
        }
        for len in [14usize, 20, 33, 42, 59] {
            let mut f = ctx.udp_frame(DISCARD_PORT, 64);
            f.truncate(len);
            frames.push(f);
        }
        let all = repeat(&frames, rounds);
        let before = ctx.stats()?;
        let sent = ctx.send_all(&all)?;
        let after = ctx.stats()?;
        // The undersize ones are IPv4 whose total length overruns the frame;
        // QEMU drops the oversize ones itself (they fit no receive buffer).
        say(format!(
            "    {sent} sent ({} oversize); the guest received {} frames meanwhile",
            rounds * oversize.len(),
            number(&after, "/device/rx_frames") - number(&before, "/device/rx_frames")
        ));
        set_mtu(frames::MTU);
        Ok((sent, vec![]))
    })?;
    Ok(())
}

/// `variants`, `rounds` times over.
fn repeat(variants: &[Vec<u8>], rounds: usize) -> Vec<Vec<u8>> {
    (0..rounds).flat_map(|_| variants.iter().cloned()).collect()
}

/// Sends `frames`: each one the host kernel takes must move `counter` by one.
fn each_counted(ctx: &mut Ctx, frames: &[Vec<u8>], counter: &'static str) -> Result<(usize, Vec<(&'static str, u64)>)> {
    let sent = ctx.send_all(frames)?;
    Ok((sent, vec![(counter, sent as u64)]))
}

/// A copy of `frame` changed by `edit`, with its IPv4 header checksum made
/// right again: so that only what `edit` broke is wrong.
fn edit_ipv4(frame: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = frame.to_vec();
    edit(&mut f);
    frames::fix_ipv4_checksum(&mut f);
    f
}

/// Sets the IPv4 total length of a frame (RFC 791 3.1).
fn set_total_length(frame: &mut [u8], total: u16) {
    let at = frames::ETHERNET_HEADER + frames::IPV4_TOTAL_LENGTH_OFFSET;
    frame[at..at + 2].copy_from_slice(&total.to_be_bytes());
}

/// `frame` (Ethernet, a 20-byte IPv4 header, a transport header) cut
/// `keep` bytes into its transport header, with a valid IPv4 header that
/// says so: only the transport header is short.
fn cut_transport(frame: &[u8], keep: usize) -> Vec<u8> {
    let ip_end = frames::ETHERNET_HEADER + frames::IPV4_HEADER;
    edit_ipv4(&frame[..ip_end + keep], |f| set_total_length(f, (frames::IPV4_HEADER + keep) as u16))
}

/// Sets the TAP device's MTU (best effort: the class reports what went out).
fn set_mtu(mtu: usize) {
    let _ = std::process::Command::new("ip").args(["link", "set", TAP, "mtu", &mtu.to_string()]).status();
}
