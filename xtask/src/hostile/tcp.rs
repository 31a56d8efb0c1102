//! TCP abuse on connections driven by hand: overlapping and out-of-window
//! segments, a zero window, RST and FIN storms.

use std::time::{Duration, Instant};

use super::checks::Ctx;
use super::raw::OPEN_WINDOW;
use super::{ECHO, Result};
use crate::frames::{ACK, FIN, PSH, RST};
use crate::rawlink::FRAME_BUFFER;

/// The window the FIN storm's segments for no connection advertise.
const STRAY_FIN_WINDOW: u16 = 512;

/// TCP abuse on connections driven by hand.
pub(super) fn run(ctx: &mut Ctx) -> Result<()> {
    ctx.class("overlapping-segments", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let s = c.snd_nxt;
        let text = b"abcdefghijklmnopqrstuvwxyz";
        // Out of order first, then overlapping pieces, then a duplicate.
        let pieces: [(usize, usize); 6] = [(20, 26), (0, 6), (2, 10), (6, 14), (12, 22), (0, 26)];
        for &(from, to) in &pieces {
            ctx.send_seg(&c, ACK | PSH, s.wrapping_add(from as u32), c.rcv_nxt, OPEN_WINDOW, &text[from..to])?;
            std::thread::sleep(Duration::from_millis(20));
        }
        c.snd_nxt = s.wrapping_add(text.len() as u32);
        let (back, _) = ctx.raw_read(&mut c, Duration::from_secs(5), |d, _| d.len() >= text.len())?;
        ctx.send_seg(&c, RST, c.snd_nxt, 0, 0, &[])?;
        if back != text {
            return Err(format!("echoed {:?}", String::from_utf8_lossy(&back)));
        }
        Ok((pieces.len(), vec![]))
    })?;

    ctx.class("out-of-window", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let s = c.snd_nxt;
        let mut sent = 0;
        for _ in 0..50 {
            let far = s.wrapping_add(1 << 30).wrapping_add(ctx.rng.next() as u32 % 1000);
            ctx.send_seg(&c, ACK | PSH, far, c.rcv_nxt, OPEN_WINDOW, b"FAR")?;
            ctx.send_seg(&c, ACK | PSH, s.wrapping_sub(100_000), c.rcv_nxt, OPEN_WINDOW, b"OLD")?;
            // Acknowledging data the guest never sent.
            ctx.send_seg(&c, ACK | PSH, s, c.rcv_nxt.wrapping_add(1 << 20), OPEN_WINDOW, b"ACK")?;
            sent += 3;
        }
        ctx.send_seg(&c, ACK | PSH, s, c.rcv_nxt, OPEN_WINDOW, b"good")?;
        c.snd_nxt = s.wrapping_add(4);
        let (back, _) = ctx.raw_read(&mut c, Duration::from_secs(5), |d, _| d.len() >= 4)?;
        ctx.send_seg(&c, RST, c.snd_nxt, 0, 0, &[])?;
        if back != b"good" {
            return Err(format!("echoed {:?}, expected only \"good\"", String::from_utf8_lossy(&back)));
        }
        Ok((sent + 1, vec![]))
    })?;

    ctx.class("zero-window", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let s = c.snd_nxt;
        // Our window is zero: the guest must hold its echo and probe.
        ctx.send_seg(&c, ACK | PSH, s, c.rcv_nxt, 0, b"held back")?;
        c.snd_nxt = s.wrapping_add(9);
        let mut buf = [0u8; FRAME_BUFFER];
        let mut leaked = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(1500);
        let mut probes = 0;
        while let Some(n) = ctx.link.recv(&mut buf, deadline.saturating_duration_since(Instant::now())) {
            if let Some(seg) = c.ours(&buf[..n]) {
                if seg.payload.len() > 1 {
                    leaked.extend_from_slice(&seg.payload);
                }
                // Our zero-window probes' answers: keep the window shut.
                probes += 1;
                ctx.send_seg(&c, ACK, c.snd_nxt, c.rcv_nxt, 0, &[])?;
            }
        }
        if !leaked.is_empty() {
            return Err(format!("the guest sent {} bytes into a zero window", leaked.len()));
        }
        ctx.send_seg(&c, ACK, c.snd_nxt, c.rcv_nxt, OPEN_WINDOW, &[])?;
        let (back, _) = ctx.raw_read(&mut c, Duration::from_secs(10), |d, _| d.len() >= 9)?;
        ctx.send_seg(&c, RST, c.snd_nxt, 0, 0, &[])?;
        if back != b"held back" {
            return Err(format!("after the window opened, echoed {:?}", String::from_utf8_lossy(&back)));
        }
        Ok((2 + probes, vec![]))
    })?;

    let storm = ctx.sizes.storm;
    ctx.class("rst-storm", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let mut frames = Vec::new();
        for i in 0..storm {
            // RSTs for connections that do not exist, and blind ones at a
            // live connection, outside its window (RFC 5961 3).
            let tcp = if i % 2 == 0 {
                ctx.stray_at_either(i, RST, 0, 0)
            } else {
                let off = (1u32 << 20) + (ctx.rng.next() as u32 % (1 << 30));
                c.segment(RST, c.snd_nxt.wrapping_add(off), 0, 0)
            };
            frames.push(ctx.tcp_frame(&tcp, &[]));
        }
        let sent = ctx.send_all(&frames)?;
        ctx.link.drain();
        let s = c.snd_nxt;
        ctx.send_seg(&c, ACK | PSH, s, c.rcv_nxt, OPEN_WINDOW, b"alive")?;
        c.snd_nxt = s.wrapping_add(5);
        let (back, flags) = ctx.raw_read(&mut c, Duration::from_secs(5), |d, _| d.len() >= 5)?;
        if back != b"alive" || flags & RST != 0 {
            return Err(format!("blind RSTs hurt a live connection: echoed {back:?}"));
        }
        ctx.send_seg(&c, RST, c.snd_nxt, 0, 0, &[])?;
        Ok((sent, vec![]))
    })?;

    ctx.class("fin-storm", |ctx| {
        let mut c = ctx.raw_connect(ECHO)?;
        let mut frames = Vec::new();
        for i in 0..storm {
            let tcp = if i % 2 == 0 {
                let ack = ctx.rng.next() as u32;
                ctx.stray_at_either(i, FIN | ACK, ack, STRAY_FIN_WINDOW)
            } else {
                // Duplicate FINs on the live connection.
                c.segment(FIN | ACK, c.snd_nxt, c.rcv_nxt, OPEN_WINDOW)
            };
            frames.push(ctx.tcp_frame(&tcp, &[]));
        }
        let sent = ctx.send_all(&frames)?;
        c.snd_nxt = c.snd_nxt.wrapping_add(1);
        // The guest closes its side too: its FIN comes, and we acknowledge it.
        let (_, flags) = ctx.raw_read(&mut c, Duration::from_secs(5), |_, flags| flags & FIN != 0)?;
        if flags & FIN == 0 {
            return Err("the guest never closed the connection whose peer sent FIN".into());
        }
        Ok((sent, vec![]))
    })?;
    Ok(())
}
