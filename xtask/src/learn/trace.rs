//! Checks a packet trace (`log=info,packet=trace`, see net/src/trace.rs):
//! one request, followed through the serial log from the virtqueue up to the
//! app and its answer back down to the virtqueue, each layer in order and
//! agreeing with the next on lengths and ports, and the main loop's wake-up
//! that let its connection in (`wake    by the card: ...`).

/// The path the suite asks for, so that its request is easy to find.
pub const PATH: &str = "/packet-journey";

/// One trace line: its time and the text after `packet: `.
#[derive(Clone, Copy, Debug)]
struct Line<'a> {
    index: usize,
    seconds: f64,
    text: &'a str,
}

fn trace_lines(lines: &[String]) -> Vec<Line<'_>> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(index, line)| {
            let (stamp, rest) = line.strip_prefix('[')?.split_once(']')?;
            let text = rest.trim_start().strip_prefix("TRACE packet: ")?;
            Some(Line { index, seconds: stamp.trim().parse().ok()?, text })
        })
        .collect()
}

/// The number after `word ` in `text` (`len 50` → 50).
fn number_after(text: &str, word: &str) -> Option<u64> {
    let rest = text.split(&format!(" {word} ")).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Finds, from `from` on (forwards) or before it (backwards), the first trace
/// line that starts with `prefix` and satisfies `also`.
fn find<'a>(
    lines: &[Line<'a>],
    from: usize,
    forwards: bool,
    prefix: &str,
    also: impl Fn(&str) -> bool,
) -> Option<(usize, Line<'a>)> {
    let hit = |&(_, l): &(usize, &Line)| l.text.starts_with(prefix) && also(l.text);
    if forwards {
        lines.iter().enumerate().skip(from).find(hit).map(|(i, l)| (i, *l))
    } else {
        lines.iter().enumerate().take(from).rev().find(hit).map(|(i, l)| (i, *l))
    }
}

/// A frame's lines below its TCP line: where each is, and what they say.
struct Lower<'a> {
    /// Output line numbers, in the order the frame crossed them.
    order: Vec<usize>,
    /// The Ethernet frame's length.
    frame: u64,
    /// The `virtio_net_hdr` line, when the header said something (offloads).
    vnet: Option<&'a str>,
    /// The descriptor line.
    virtq: &'a str,
}

/// The lines right below (`rx`) or right after (`tx`) a TCP line: IPv4,
/// Ethernet, the virtio header when it says something (only with offloads),
/// and the virtqueue, with consistent lengths.
fn lower_layers<'a>(lines: &[Line<'a>], tcp: usize, dir: &str) -> Result<Lower<'a>, String> {
    let at = |offset: isize| -> Result<&Line<'a>, String> {
        tcp.checked_add_signed(offset)
            .and_then(|i| lines.get(i))
            .ok_or_else(|| format!("the trace ends around the {dir} TCP line"))
    };
    let step: isize = if dir == "rx" { -1 } else { 1 };
    let (ip, eth) = (at(step)?, at(2 * step)?);
    let vnet = Some(at(3 * step)?).filter(|l| l.text.starts_with(&format!("{dir} vnet ")));
    let virtq = at(if vnet.is_some() { 4 } else { 3 } * step)?;
    for (line, prefix) in [(ip, "ipv4 "), (eth, "eth "), (virtq, "virtq ")] {
        if !line.text.starts_with(&format!("{dir} {prefix}")) {
            return Err(format!("expected a {dir} {prefix}line next to the TCP line, got {:?}", line.text));
        }
    }
    let frame = eth.text.rsplit_once(", ").and_then(|(_, b)| b.strip_suffix(" bytes")?.parse::<u64>().ok());
    let ip_len = number_after(ip.text, "len");
    let virtq_frame = number_after(virtq.text, "frame");
    let frame = match (frame, ip_len, virtq_frame) {
        (Some(f), Some(ip), Some(v)) if f == v && f >= ip + 14 => f,
        _ => {
            return Err(format!("lengths disagree: {:?} / {:?} / {:?}", ip.text, eth.text, virtq.text));
        }
    };
    let mut order: Vec<usize> =
        [Some(virtq), vnet, Some(eth), Some(ip)].into_iter().flatten().map(|l| l.index).collect();
    if dir == "tx" {
        order.reverse();
    }
    Ok(Lower { order, frame, vnet: vnet.map(|l| l.text), virtq: virtq.text })
}

/// Whether `line` is a trace record of a target other than the packet trace.
/// The harness stops QEMU while it may be writing a line, so the output's
/// last line can end inside the target's name ("TRACE packe"): a line cut
/// short of "packet: " is not another target.
fn from_another_target(line: &str) -> bool {
    const PACKET: &str = "packet: ";
    match line.split_once("] TRACE ") {
        Some((_, rest)) => !rest.starts_with(PACKET) && !PACKET.starts_with(rest),
        None => false,
    }
}

/// Checks that `lines` (a boot's output) show the request for [`PATH`] at
/// every layer in order: virtqueue, Ethernet, IPv4, TCP, socket, app, then
/// the answer from the app down to the virtqueue. Says what it found.
pub fn check_journey(lines: &[String]) -> Result<String, String> {
    let trace = trace_lines(lines);
    if trace.is_empty() {
        return Err("no packet trace lines in the output (is log=...,packet=trace passed?)".into());
    }
    // `packet=trace` turns on that target alone (kernel/src/logger.rs):
    // smoltcp's and the drivers' own trace lines stay off.
    if let Some(other) = lines.iter().find(|l| from_another_target(l)) {
        return Err(format!("a trace line from another target got through: {other:?}"));
    }
    let want = format!(" GET {PATH}");
    let (app_i, app) = find(&trace, 0, true, "rx app ", |t| t.ends_with(&want))
        .ok_or_else(|| format!("no `rx app ... GET {PATH}` line"))?;
    let socket = app.text.split_whitespace().nth(2).ok_or("app line without a socket name")?.to_string();
    let (read_i, read) = find(&trace, app_i, false, &format!("rx socket {socket} "), |t| t.contains(" read "))
        .ok_or_else(|| format!("no `rx socket {socket} ... read` line before the app's"))?;
    let bytes = number_after(read.text, "read").ok_or("socket line without a byte count")?;
    let peer_port = read.text.split_whitespace().nth(3).and_then(|p| p.rsplit_once(':')).map(|(_, p)| p.to_string());
    let peer_port = peer_port.ok_or("socket line without the peer")?;
    let (tcp_i, tcp) = find(&trace, read_i, false, &format!("rx tcp    {peer_port} > 80 "), |t| {
        number_after(t, "len") == Some(bytes) && t.contains('P')
    })
    .ok_or_else(|| format!("no `rx tcp {peer_port} > 80 [P.] ... len {bytes}` line before the socket read"))?;
    let rx = lower_layers(&trace, tcp_i, "rx")?.order;
    let woken = wake_before_syn(&trace, tcp_i, &peer_port)?;

    let (answer_i, answer) = find(&trace, app_i, true, &format!("tx app    {socket} "), |_| true)
        .ok_or_else(|| format!("no `tx app {socket}` line after the request"))?;
    let queued: u64 = answer
        .text
        .rsplit_once(", ")
        .and_then(|(_, b)| b.strip_suffix(" bytes queued")?.parse().ok())
        .ok_or("app answer line without a byte count")?;
    let (wrote_i, wrote) = find(&trace, answer_i, true, &format!("tx socket {socket} "), |t| t.contains(" wrote "))
        .ok_or_else(|| format!("no `tx socket {socket} ... wrote` line after the answer"))?;
    if number_after(wrote.text, "wrote") != Some(queued) {
        return Err(format!("the app queued {queued} bytes but the socket line says {:?}", wrote.text));
    }
    let (out_i, out) = find(&trace, wrote_i, true, &format!("tx tcp    80 > {peer_port} "), |t| {
        number_after(t, "len").is_some_and(|n| n > 0)
    })
    .ok_or_else(|| format!("no `tx tcp 80 > {peer_port} ... len N` line after the socket write"))?;
    let tx = lower_layers(&trace, out_i, "tx")?.order;

    let chain: Vec<usize> = rx
        .iter()
        .copied()
        .chain([tcp.index, read.index, app.index, answer.index, wrote.index, out.index])
        .chain(tx.iter().copied())
        .collect();
    if !chain.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("the layers are out of order (output lines {chain:?})"));
    }
    let at = |i: usize| trace.iter().find(|l| l.index == i).map_or(0.0, |l| l.seconds);
    let (first, last) = (at(chain[0]), at(chain[chain.len() - 1]));
    if last < first {
        return Err("the trace's timestamps go backwards".into());
    }
    Ok(format!(
        "GET {PATH} traced through {} layers in order, {bytes} bytes in, {queued} out, {:.2} ms from rx descriptor to tx descriptor; {woken}",
        chain.len(),
        (last - first) * 1000.0
    ))
}

/// What one big frame's trace lines say.
struct BigFrame {
    /// The Ethernet frame's length.
    frame: u64,
    /// The TCP payload.
    payload: u64,
    /// The header's `gso_size` and `hdr_len`.
    gso_size: u64,
    hdr_len: u64,
    /// Descriptors: the segments the device cuts a TSO frame into, or the
    /// buffers a coalesced one arrived in.
    pieces: u64,
}

/// A TCP line and its lower layers as one big frame: a TSO frame (`tx`)
/// whose header asks the device to cut it into more than one segment, with
/// `hdr_len` the length of its headers and the descriptor line saying how
/// many segments; or a coalesced frame (`rx`) whose header names a GSO type
/// and `num_buffers` above one, with the descriptor line joining as many.
fn big_frame(trace: &[Line], tcp: usize, dir: &str) -> Result<BigFrame, String> {
    let lower = lower_layers(trace, tcp, dir)?;
    let vnet = lower.vnet.ok_or("no vnet line")?;
    if !(vnet.contains(", gso TCPV4 ") || vnet.contains(", gso TCPV6 ")) {
        return Err(format!("no TCP GSO type in {vnet:?}"));
    }
    let payload = number_after(trace[tcp].text, "len").ok_or("TCP line without a length")?;
    let (gso_size, hdr_len) = match (number_after(vnet, "gso_size"), number_after(vnet, "hdr_len")) {
        (Some(size), Some(len)) if size > 0 => (size, len),
        _ => return Err(format!("no gso_size or hdr_len in {vnet:?}")),
    };
    if payload <= gso_size {
        return Err(format!("{payload} bytes of payload fit one segment of {gso_size}"));
    }
    let pieces = if dir == "tx" {
        let segments = payload.div_ceil(gso_size);
        if hdr_len + payload != lower.frame || number_after(lower.virtq, "into") != Some(segments) {
            return Err(format!("{vnet:?} and {:?} do not describe a {} byte frame", lower.virtq, lower.frame));
        }
        segments
    } else {
        // The host's hdr_len is a hint (Linux may count some payload in
        // it), but the buffers must be as many as the header says, joined.
        let buffers = number_after(vnet, "num_buffers").filter(|&n| n > 1).ok_or("num_buffers 1")?;
        let joined = lower.virtq.contains("(joined");
        if !joined || number_after(lower.virtq, "in") != Some(buffers) || hdr_len > lower.frame {
            return Err(format!("{vnet:?} and {:?} do not describe one joined frame", lower.virtq));
        }
        buffers
    };
    Ok(BigFrame { frame: lower.frame, payload, gso_size, hdr_len, pieces })
}

/// Checks that `lines` show segmentation offload at work, each frame at
/// every layer with lengths that agree: a TSO frame on its way down (TCP,
/// IPv4, Ethernet, its virtio header with a GSO type, the descriptor) and
/// a coalesced frame on its way up (the descriptor over several buffers,
/// the header with `num_buffers`, Ethernet, IPv4, TCP). Says what it found.
pub fn check_offloads(lines: &[String]) -> Result<String, String> {
    let trace = trace_lines(lines);
    let first = |dir: &str| {
        let mut why = format!("no {dir} tcp line with a payload");
        for (i, line) in trace.iter().enumerate() {
            if line.text.starts_with(&format!("{dir} tcp ")) && number_after(line.text, "len").is_some_and(|n| n > 0) {
                match big_frame(&trace, i, dir) {
                    Ok(frame) => return Ok(frame),
                    Err(e) => why = e,
                }
            }
        }
        Err(why)
    };
    let tso = first("tx").map_err(|e| format!("no TSO frame traced through every layer (last: {e})"))?;
    let coalesced = first("rx").map_err(|e| format!("no coalesced frame traced through every layer (last: {e})"))?;
    Ok(format!(
        "a TSO frame of {} bytes ({} of payload, gso_size {}, hdr_len {}: {} segments) and a coalesced frame of {} \
         bytes ({} of payload, gso_size {}, joined from {} buffers) traced through 5 layers each",
        tso.frame,
        tso.payload,
        tso.gso_size,
        tso.hdr_len,
        tso.pieces,
        coalesced.frame,
        coalesced.payload,
        coalesced.gso_size,
        coalesced.pieces
    ))
}

/// The main loop's wake-up that let the request's connection in: the last
/// `wake` (or `sleep   skipped`, the re-enable race) line before its SYN.
/// The trace must show the card's interrupt waking the loop somewhere too.
fn wake_before_syn(trace: &[Line], tcp: usize, peer_port: &str) -> Result<String, String> {
    let (syn, _) = find(trace, tcp, false, &format!("rx tcp    {peer_port} > 80 [S]"), |_| true)
        .ok_or_else(|| format!("no SYN from port {peer_port} before the request"))?;
    let loop_line = |t: &str| t.starts_with("wake    ") || t.starts_with("sleep   ");
    let (_, last) = find(trace, syn, false, "", loop_line)
        .ok_or("no main-loop line (`wake    ...`) before the request's SYN: are wake-ups traced?")?;
    let woken = match last.text.strip_prefix("wake    ") {
        Some(by) => format!("woken {}", by.split(", after").next().unwrap_or(by)),
        None if last.text.starts_with("sleep   skipped") => "its SYN caught by the re-enable race re-check".into(),
        None => return Err(format!("the loop went to sleep and the SYN came without a wake-up line: {:?}", last.text)),
    };
    if !trace.iter().any(|l| l.text.starts_with("wake    by the card: ") && l.text.contains("interrupt")) {
        return Err("no `wake    by the card: ... interrupt` line: the card's interrupts never woke the loop".into());
    }
    Ok(woken)
}

/// A real journey, for tests elsewhere in xtask.
#[cfg(test)]
pub fn tests_journey() -> &'static str {
    tests::JOURNEY
}

/// Real big frames, for tests elsewhere in xtask.
#[cfg(test)]
pub fn tests_offloads() -> &'static str {
    tests::OFFLOADS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output of `cargo xtask run --trace` while `curl http://127.0.0.1:8080/packet-journey`
    /// ran (copied from a boot, unabridged, from the sleep before the request).
    pub const JOURNEY: &str = "\
[    3.998309] TRACE packet: sleep   for up to 1000000 us (the stack's next deadline, or the heartbeat)
[    5.426124] TRACE packet: wake    by the card: rx interrupt (vector 0x41), after 1427658 us halted
[    5.426363] TRACE packet: rx virtq  desc 11 used len 70 = header 12 + frame 58, checksum unchecked
[    5.426538] TRACE packet: rx eth    52:55:0a:00:02:02 > 52:54:00:12:34:56 ipv4, 58 bytes
[    5.426694] TRACE packet: rx ipv4   10.0.2.2 > 10.0.2.15 tcp, len 44, ttl 64
[    5.426833] TRACE packet: rx tcp    58510 > 80 [S] seq 768001 win 65535 len 0
[    5.427058] TRACE packet: -- socket http#0 10.0.2.2:58510 listen -> syn_received
[    5.427283] TRACE packet: tx tcp    80 > 58510 [S.] seq 3961434601 ack 768002 win 8192 len 0
[    5.427430] TRACE packet: tx ipv4   10.0.2.15 > 10.0.2.2 tcp, len 44, ttl 64
[    5.427554] TRACE packet: tx eth    52:54:00:12:34:56 > 52:55:0a:00:02:02 ipv4, 58 bytes
[    5.427707] TRACE packet: tx virtq  desc 0 len 70 = header 12 + frame 58, checksum complete
[    5.428415] TRACE packet: sleep   for up to 100000 us (the stack's next deadline, or the heartbeat)
[    5.428591] TRACE packet: sleep   skipped: work came in while interrupts were turned back on (no card interrupt)
[    5.428800] TRACE packet: rx virtq  desc 12 used len 66 = header 12 + frame 54, checksum unchecked
[    5.428961] TRACE packet: rx eth    52:55:0a:00:02:02 > 52:54:00:12:34:56 ipv4, 54 bytes
[    5.429124] TRACE packet: rx ipv4   10.0.2.2 > 10.0.2.15 tcp, len 40, ttl 64
[    5.429261] TRACE packet: rx tcp    58510 > 80 [.] seq 768002 ack 3961434602 win 65535 len 0
[    5.429448] TRACE packet: rx virtq  desc 13 used len 159 = header 12 + frame 147, checksum unchecked
[    5.429584] TRACE packet: rx eth    52:55:0a:00:02:02 > 52:54:00:12:34:56 ipv4, 147 bytes
[    5.429737] TRACE packet: rx ipv4   10.0.2.2 > 10.0.2.15 tcp, len 133, ttl 64
[    5.429868] TRACE packet: rx tcp    58510 > 80 [P.] seq 768002 ack 3961434602 win 65535 len 93
[    5.430081] TRACE packet: -- socket http#0 10.0.2.2:58510 syn_received -> established
[    5.430237] TRACE packet: rx socket http#0 10.0.2.2:58510 read 93 bytes
[    5.430760] TRACE packet: rx app    http#0 GET /packet-journey
[    5.431068] TRACE packet: tx app    http#0 404 Not Found, 187 bytes queued
[    5.431204] TRACE packet: tx socket http#0 10.0.2.2:58510 wrote 187 bytes
[    5.431432] TRACE packet: tx tcp    80 > 58510 [P.] seq 3961434602 ack 768095 win 8192 len 187
[    5.431587] TRACE packet: tx ipv4   10.0.2.15 > 10.0.2.2 tcp, len 227, ttl 64
[    5.431713] TRACE packet: tx eth    52:54:00:12:34:56 > 52:55:0a:00:02:02 ipv4, 241 bytes
[    5.431857] TRACE packet: tx virtq  desc 4 len 253 = header 12 + frame 241, checksum complete
[    5.433926] TRACE packet: rx virtq  desc 14 used len 66 = header 12 + frame 54, checksum unchecked
[    5.434109] TRACE packet: rx eth    52:55:0a:00:02:02 > 52:54:00:12:34:56 ipv4, 54 bytes
[    5.434269] TRACE packet: rx ipv4   10.0.2.2 > 10.0.2.15 tcp, len 40, ttl 64
[    5.434403] TRACE packet: rx tcp    58510 > 80 [F.] seq 768095 ack 3961434789 win 65535 len 0
[    5.434735] TRACE packet: -- socket http#0 10.0.2.2:58510 established -> close_wait
[    5.434997] TRACE packet: tx tcp    80 > 58510 [F.] seq 3961434789 ack 768096 win 8192 len 0
[    5.435143] TRACE packet: tx ipv4   10.0.2.15 > 10.0.2.2 tcp, len 40, ttl 64
[    5.435263] TRACE packet: tx eth    52:54:00:12:34:56 > 52:55:0a:00:02:02 ipv4, 54 bytes
[    5.435422] TRACE packet: tx virtq  desc 0 len 66 = header 12 + frame 54, checksum complete
[    5.435681] TRACE packet: rx virtq  desc 15 used len 66 = header 12 + frame 54, checksum unchecked
[    5.435824] TRACE packet: rx eth    52:55:0a:00:02:02 > 52:54:00:12:34:56 ipv4, 54 bytes
[    5.435980] TRACE packet: rx ipv4   10.0.2.2 > 10.0.2.15 tcp, len 40, ttl 64
[    5.436106] TRACE packet: rx tcp    58510 > 80 [.] seq 768096 ack 3961434790 win 65535 len 0
[    5.436405] TRACE packet: -- socket http#0 10.0.2.2:58510 close_wait -> closed
[    5.436604] TRACE packet: sleep   for up to 1000000 us (the stack's next deadline, or the heartbeat)";

    /// Real output of `cargo xtask run --tap --trace` while 100 KiB went
    /// through the echo (`nc -N 127.0.0.1 8007 < 100k`), copied unabridged
    /// from the first coalesced frame to the first one after the first TSO frame.
    pub const OFFLOADS: &str = "\
[    0.474622] TRACE packet: rx virtq  desc 16 used len 7366 in 5 buffers = header 12 + frame 7354 (joined: MRG_RXBUF), checksum valid
[    0.474810] TRACE packet: rx vnet   flags NEEDS_CSUM, gso TCPV4 gso_size 1460 hdr_len 54, csum_start 34 csum_offset 16, num_buffers 5
[    0.475026] TRACE packet: rx eth    22:cd:ee:34:4a:95 > 52:54:00:12:34:56 ipv4, 7354 bytes
[    0.475115] TRACE packet: rx ipv4   10.0.2.2 > 10.0.2.15 tcp, len 7340, ttl 64
[    0.475192] TRACE packet: rx tcp    45816 > 7 [P.] seq 570698219 ack 4042216624 win 63 len 7300
[    0.475409] TRACE packet: rx virtq  desc 21 used len 7366 in 5 buffers = header 12 + frame 7354 (joined: MRG_RXBUF), checksum valid
[    0.475532] TRACE packet: rx vnet   flags NEEDS_CSUM, gso TCPV4 gso_size 1460 hdr_len 54, csum_start 34 csum_offset 16, num_buffers 5
[    0.475652] TRACE packet: rx eth    22:cd:ee:34:4a:95 > 52:54:00:12:34:56 ipv4, 7354 bytes
[    0.475740] TRACE packet: rx ipv4   10.0.2.2 > 10.0.2.15 tcp, len 7340, ttl 64
[    0.475849] TRACE packet: rx tcp    45816 > 7 [P.] seq 570705519 ack 4042216624 win 63 len 7300
[    0.476014] TRACE packet: -- socket echo#0 10.0.2.2:45816 syn_received -> established
[    0.476497] TRACE packet: rx socket echo#0 read 4096 bytes
[    0.476595] TRACE packet: tx app    echo#0 echoes 4096 bytes
[    0.476687] TRACE packet: tx socket echo#0 wrote 4096 bytes
[    0.476772] TRACE packet: rx socket echo#0 read 4096 bytes
[    0.476828] TRACE packet: tx app    echo#0 echoes 4096 bytes
[    0.476886] TRACE packet: tx socket echo#0 wrote 4096 bytes
[    0.476946] TRACE packet: rx socket echo#0 read 4096 bytes
[    0.477001] TRACE packet: tx app    echo#0 echoes 4096 bytes
[    0.477058] TRACE packet: tx socket echo#0 wrote 4096 bytes
[    0.477117] TRACE packet: rx socket echo#0 read 2312 bytes
[    0.477226] TRACE packet: tx app    echo#0 echoes 2312 bytes
[    0.477283] TRACE packet: tx socket echo#0 wrote 2312 bytes
[    0.477409] TRACE packet: tx tcp    7 > 45816 [P.] seq 4042216624 ack 570712819 win 32768 len 14600
[    0.477503] TRACE packet: tx ipv4   10.0.2.15 > 10.0.2.2 tcp, len 14640, ttl 64
[    0.477581] TRACE packet: tx eth    52:54:00:12:34:56 > 22:cd:ee:34:4a:95 ipv4, 14654 bytes
[    0.477678] TRACE packet: tx vnet   flags NEEDS_CSUM, gso TCPV4 gso_size 1460 hdr_len 54, csum_start 34 csum_offset 16
[    0.477783] TRACE packet: tx virtq  desc 240 len 14666 = header 12 + frame 14654, checksum left to the device, TSO: the device cuts it into 10 segments of up to 1460 bytes
[    0.478372] TRACE packet: rx virtq  desc 26 used len 14666 in 10 buffers = header 12 + frame 14654 (joined: MRG_RXBUF), checksum valid
[    0.478497] TRACE packet: rx vnet   flags NEEDS_CSUM, gso TCPV4 gso_size 1460 hdr_len 54, csum_start 34 csum_offset 16, num_buffers 10
[    0.478619] TRACE packet: rx eth    22:cd:ee:34:4a:95 > 52:54:00:12:34:56 ipv4, 14654 bytes
[    0.478710] TRACE packet: rx ipv4   10.0.2.2 > 10.0.2.15 tcp, len 14640, ttl 64
[    0.478870] TRACE packet: rx tcp    45816 > 7 [P.] seq 570712819 ack 4042231224 win 92 len 14600";

    #[test]
    fn a_tso_frame_and_a_coalesced_frame_pass() {
        let found = check_offloads(&lines(OFFLOADS)).unwrap();
        assert!(found.contains("TSO frame of 14654 bytes (14600 of payload, gso_size 1460, hdr_len 54: 10 segments)"));
        assert!(
            found.contains("coalesced frame of 7354 bytes (7300 of payload, gso_size 1460, joined from 5 buffers)")
        );
        // The user network's journey has neither.
        assert!(check_offloads(&lines(JOURNEY)).unwrap_err().contains("no TSO frame"));
    }

    #[test]
    fn big_frames_must_be_told_whole_and_consistently() {
        let tso_only = |gone: &str| lines(OFFLOADS).into_iter().filter(|l| !l.contains(gone)).collect::<Vec<_>>();
        assert!(check_offloads(&tso_only("tx vnet")).unwrap_err().contains("no TSO frame"));
        assert!(check_offloads(&tso_only("rx vnet")).unwrap_err().contains("no coalesced frame"));
        // Each edit spoils every frame of its kind in the sample.
        let edits: [&[(&str, &str)]; 5] = [
            &[("into 10 segments", "into 9 segments")],
            &[("hdr_len 54, csum_start 34 csum_offset 16\n", "hdr_len 66, csum_start 34 csum_offset 16\n")],
            &[("in 5 buffers", "in 4 buffers"), ("in 10 buffers", "in 9 buffers")],
            &[("num_buffers 5", "num_buffers 1"), ("num_buffers 10", "num_buffers 1")],
            &[("frame 7354 (joined", "frame 7355 (joined"), ("frame 14654 (joined", "frame 14655 (joined")],
        ];
        for edit in edits {
            let text = edit.iter().fold(OFFLOADS.to_string(), |text, (from, to)| text.replace(from, to));
            assert_ne!(text, OFFLOADS, "{edit:?}");
            assert!(check_offloads(&lines(&text)).is_err(), "passed with {edit:?}");
        }
    }

    #[test]
    fn a_journey_over_tap_reads_through_the_vnet_lines() {
        // On TAP every frame's header says something (NEEDS_CSUM): the
        // layers are read past its line.
        let text = JOURNEY
            .replace("checksum complete", "checksum left to the device")
            .replace(
                "\n[    5.427707] TRACE packet: tx virtq",
                "\n[    5.427700] TRACE packet: tx vnet   flags NEEDS_CSUM, csum_start 34 csum_offset 16\n[    5.427707] TRACE packet: tx virtq",
            );
        assert!(text.contains("tx vnet"));
        assert!(check_journey(&lines(&text)).is_ok());
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_whole_journey_passes() {
        let found = check_journey(&lines(JOURNEY)).unwrap();
        assert!(found.contains("12 layers in order, 93 bytes in, 187 out"), "{found}");
        assert!(found.contains("woken by the card: rx interrupt (vector 0x41)"), "{found}");
    }

    #[test]
    fn a_missing_layer_fails() {
        for gone in ["rx eth", "rx socket", "tx socket", "tx virtq  desc 4 ", "rx app"] {
            let text: Vec<String> = lines(JOURNEY).into_iter().filter(|l| !l.contains(gone)).collect();
            assert!(check_journey(&text).is_err(), "passed without {gone}");
        }
    }

    #[test]
    fn disagreeing_lengths_fail() {
        let text = JOURNEY.replace("frame 147", "frame 148");
        assert!(check_journey(&lines(&text)).unwrap_err().contains("lengths disagree"));
        let text = JOURNEY.replace("wrote 187", "wrote 186");
        assert!(check_journey(&lines(&text)).is_err());
    }

    #[test]
    fn other_targets_at_trace_level_fail() {
        let mut text = lines(JOURNEY);
        text.push("[    1.700000] TRACE smoltcp::iface::interface: address 10.0.2.15 not in neighbor cache".into());
        assert!(check_journey(&text).unwrap_err().contains("another target"));
    }

    #[test]
    fn a_last_line_cut_inside_the_target_name_is_not_another_target() {
        // Seen in CI: QEMU was stopped while "[...] TRACE packet: ..." was
        // being written, and the check failed the boot.
        for cut in ["[    0.151182] TRACE ", "[    0.151182] TRACE packe", "[    0.151182] TRACE packet:"] {
            let mut text = lines(JOURNEY);
            text.push(cut.into());
            assert!(check_journey(&text).is_ok(), "{cut:?}");
        }
        let mut text = lines(JOURNEY);
        text.push("[    0.151182] TRACE pack".into());
        text.push("[    1.700000] TRACE smoltcp: more".into());
        assert!(check_journey(&text).is_err(), "a whole line of another target still fails");
    }

    #[test]
    fn untraced_wake_ups_fail() {
        let text: Vec<String> = lines(JOURNEY).into_iter().filter(|l| !l.contains("wake  ")).collect();
        assert!(check_journey(&text).unwrap_err().contains("went to sleep"), "{:?}", check_journey(&text));
        let text: Vec<String> =
            lines(JOURNEY).into_iter().filter(|l| !l.contains("wake  ") && !l.contains("sleep  ")).collect();
        assert!(check_journey(&text).unwrap_err().contains("are wake-ups traced"));
    }

    #[test]
    fn no_trace_at_all_fails() {
        assert!(check_journey(&lines("[    0.1] INFO  kernel: hi")).is_err());
    }
}
