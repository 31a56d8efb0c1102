//! The seed corpora in `fuzz/corpus/<target>/`: a few meaningful inputs per
//! target, from which libFuzzer starts. Written by this module so that they
//! stay in step with the harnesses' input formats:
//!
//! ```sh
//! cd fuzz && SKIFF_WRITE_SEEDS=1 cargo test --lib seeds
//! ```
//!
//! Without the variable, the test checks that the committed files match.

use crate::stack::tcp_frame;

/// Named seed inputs of one target.
pub type Seeds = Vec<(&'static str, Vec<u8>)>;

/// Seeds for `http_request`: a cut byte, then what a client sends.
pub fn http_request() -> Seeds {
    let seed = |cut: u8, text: &[u8]| [&[cut][..], text].concat();
    vec![
        ("get", seed(0, b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\n")),
        ("get-stats-query", seed(9, b"GET /stats?x=1 HTTP/1.1\r\nHost: skiff\r\nAccept: */*\r\n\r\n")),
        (
            "pipelined",
            seed(5, b"GET / HTTP/1.1\r\nHost: skiff\r\n\r\nHEAD /stats HTTP/1.1\r\nHost: skiff\r\n\r\nGET /stats.html HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n"),
        ),
        ("post-body-then-get", seed(17, b"POST / HTTP/1.1\r\nHost: skiff\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: skiff\r\n\r\n")),
        ("http10-keep-alive", seed(2, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")),
        ("connection-tokens", seed(40, b"GET / HTTP/1.1\r\nHost: skiff\r\nConnection: Upgrade, close\r\n\r\n")),
        ("chunked", seed(3, b"POST / HTTP/1.1\r\nHost: skiff\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")),
        ("two-lengths", seed(1, b"POST / HTTP/1.1\r\nHost: skiff\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi")),
        ("bare-lf", seed(0, b"GET / HTTP/1.1\nHost: skiff\n\n")),
        ("absolute-form", seed(7, b"GET http://skiff/stats?x HTTP/1.1\r\nHost: skiff\r\n\r\n")),
        ("http12", seed(2, b"GET / HTTP/1.2\r\nHost: skiff\r\n\r\nGET / HTTP/2.0\r\n\r\n")),
        ("expect-continue", seed(30, b"POST / HTTP/1.1\r\nHost: skiff\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")),
        ("options-asterisk", seed(6, b"OPTIONS * HTTP/1.1\r\nHost: skiff\r\n\r\n")),
        ("no-host", seed(8, b"GET / HTTP/1.1\r\n\r\n")),
        // Found by the fuzzer: a bad version with spaces after it, cut byte by byte.
        ("bad-version-then-spaces", seed(0, b"GET / HC(GET /o HT")),
        ("unknown-method", seed(4, b"BREW /pot HTTP/1.1\r\nHost: skiff\r\n\r\n")),
        // The bulk routes: an upload past the buffered-body limit, then a
        // request; one with more bytes than announced; one without a length;
        // one cut short; generated bodies, the second too large.
        ("sink-upload", {
            let mut text = b"POST /sink HTTP/1.1\r\nHost: skiff\r\nContent-Length: 6000\r\n\r\n".to_vec();
            text.extend((0..6000u32).map(|i| i as u8));
            text.extend_from_slice(b"GET /bytes/100 HTTP/1.1\r\nHost: skiff\r\n\r\n");
            seed(33, &text)
        }),
        ("sink-longer-than-announced", seed(7, b"POST /sink HTTP/1.1\r\nHost: skiff\r\nContent-Length: 5\r\n\r\nhello world\r\n\r\n")),
        ("sink-no-length", seed(16, b"POST /sink HTTP/1.1\r\nHost: skiff\r\n\r\n")),
        (
            "sink-cut-short",
            seed(64, b"POST /sink HTTP/1.1\r\nHost: skiff\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\nabc"),
        ),
        (
            "bytes-then-close",
            seed(48, b"GET /bytes/1048576 HTTP/1.1\r\nHost: skiff\r\n\r\nHEAD /bytes/99999999999 HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\n"),
        ),
    ]
}

/// The `virtio_rx` operations (see `virtio::run`).
const DELIVER: u8 = 0;
const JUMP: u8 = 3;
const RECEIVE: u8 = 4;
const RECYCLE: u8 = 5;
const DRAIN: u8 = 6;
const SEND: u8 = 7;
const COMPLETE_TX: u8 = 8;
const AVAIL_EVENT: u8 = 10;
const CHAIN: u8 = 11;
const SEND_BIG: u8 = 12;
/// `setup` bits: legacy, GUEST_CSUM, CSUM, RING_EVENT_IDX, MTU.
const LEGACY: u8 = 1;
const GUEST_CSUM: u8 = 2;
const CSUM: u8 = 4;
const EVENT_IDX: u8 = 8;
const MTU: u8 = 16;
const MRG_RXBUF: u8 = 32;
const GUEST_TSO: u8 = 64;
const HOST_TSO: u8 = 128;

/// A `deliver` operation: a UDP frame of `payload` bytes into buffer `id`,
/// with header `mode` bits (2: NEEDS_CSUM, 4: DATA_VALID) and an honest length.
fn deliver(id: u8, mode: u8, payload: u8) -> Vec<u8> {
    let mut op = vec![DELIVER, id, mode, payload];
    op.extend((0..payload % 64).map(|i| i.wrapping_mul(7)));
    op.push(3); // length: what was written
    op
}

/// Seeds for `virtio_rx`: set-up bytes (features, queue size, MTU), then operations.
pub fn virtio_rx() -> Seeds {
    let setup = |bits: u8, queue: u8| vec![bits, queue, 0xDC, 0x05]; // MTU 1500
    let mut burst = setup(EVENT_IDX, 7);
    for id in 0..8 {
        burst.extend(deliver(id, 0, 10 + id));
    }
    // The device asks for a kick only once the driver has reposted 12 buffers.
    burst.extend([AVAIL_EVENT, 0, 12 + 8, 0, RECEIVE, RECEIVE, RECYCLE, 0, DRAIN]);
    for id in 0..6 {
        burst.extend(deliver(id, 0, 10));
    }
    burst.extend([DRAIN]);

    let mut offload = setup(GUEST_CSUM | CSUM | EVENT_IDX | MTU, 15);
    offload.extend(deliver(0, 2, 30)); // NEEDS_CSUM, completed
    offload.extend(deliver(1, 4, 30)); // DATA_VALID
    offload.extend(deliver(2, 2 | 8, 30)); // NEEDS_CSUM with fuzzed offsets
    offload.extend([0x22, 0, 0x10, 0]);
    offload.extend([DRAIN, SEND, 0x40, 0, 0, COMPLETE_TX, 0, 0, 0, 0, 0, DRAIN]);

    let mut legacy = setup(LEGACY | GUEST_CSUM | EVENT_IDX, 3);
    legacy.extend(deliver(0, 0, 20));
    legacy.extend(deliver(1, 2, 20));
    legacy.extend([DRAIN]);

    let mut hostile = setup(GUEST_CSUM | EVENT_IDX, 7);
    hostile.extend(deliver(0, 0, 20));
    hostile.extend(deliver(0, 0, 20)); // the same buffer twice
    hostile.extend([DELIVER, 0xF0, 0, 0, 0]); // id 65535, length 0
    hostile.extend(deliver(9, 0, 20)); // past the queue
    hostile.extend([DELIVER, 2, 0x01, 20]); // raw header bytes...
    hostile.extend([0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0]); // ...GSO 7, num_buffers 3
    hostile.extend([0; 20]);
    hostile.extend([3]);
    hostile.extend([DELIVER, 3, 0, 20]);
    hostile.extend([0; 20]);
    hostile.extend([0, 0xFF, 0xFF, 0xFF, 0x7F]); // length 2^31 - 1
    hostile.extend([RECEIVE, DRAIN, JUMP, 0x00, 0x10, 1, DRAIN]); // the used index jumps 4096

    let mut batch = setup(EVENT_IDX, 7);
    for id in 0..8 {
        batch.extend(deliver(id, 0, 40));
    }
    batch.extend([JUMP, 4, 0, 0, 1, 60, 0, 2, 60, 0, 3, 60, 0, 9, 60, 0, DRAIN]);
    // MRG_RXBUF with GUEST_TSO: a coalesced TCP/IPv4 frame of 4,000 bytes
    // over three buffers (mode 0x42: TCPV4, NEEDS_CSUM), honestly; then
    // num_buffers one too many, and an unnegotiated ECN GSO type (0xC2)
    // on a 2,000-byte frame over two;
    // then a 30,000-byte TSO send.
    let mut coalesce = setup(GUEST_CSUM | CSUM | EVENT_IDX | MRG_RXBUF | GUEST_TSO | HOST_TSO, 15);
    let (big, small) = (4000u16.to_le_bytes(), 2000u16.to_le_bytes());
    coalesce.extend([CHAIN, 2, 0, 0x42, big[0], big[1], 3, 1]);
    coalesce.extend([RECEIVE, DRAIN]);
    coalesce.extend([CHAIN, 2, 4, 0x42, big[0], big[1], 1, 1, DRAIN]);
    coalesce.extend([CHAIN, 1, 8, 0xC2, small[0], small[1], 3, 1, DRAIN]);
    coalesce.extend([SEND_BIG, 0x30, 0x75, 0xA8, 0x05, COMPLETE_TX, 15, 0, 0, 0, 0, DRAIN]);
    vec![
        ("burst", burst),
        ("offload", offload),
        ("legacy", legacy),
        ("hostile", hostile),
        ("batch", batch),
        ("coalesce", coalesce),
    ]
}

/// The `stack` operations (see `stack::run`).
const RAW: u8 = 0;
const TCP: u8 = 1;
const TIME: u8 = 3;
const DHCP: u8 = 4;
/// TCP flags.
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;

/// A raw frame, sent as it is.
fn raw(frame: &[u8]) -> Vec<u8> {
    raw_with(frame, 0)
}

/// A raw frame; `fix` 1: the harness makes its checksums right first.
fn raw_with(frame: &[u8], fix: u8) -> Vec<u8> {
    let mut op = vec![RAW, fix];
    op.extend((frame.len() as u16).to_le_bytes());
    op.extend_from_slice(frame);
    op
}

/// A TCP operation on connection `conn` to port selector `port` (0: 80, 8: 7, 12: 9).
fn tcp(conn: u8, port: u8, flags: u8, kind: u8, extra: &[u8]) -> Vec<u8> {
    let mut op = vec![TCP, conn | port, flags, 0, 0, 0xFF, 0xFF, kind];
    op.extend_from_slice(extra);
    op
}

fn time(ms: u16) -> Vec<u8> {
    let mut op = vec![TIME];
    op.extend(ms.to_le_bytes());
    op
}

/// A DHCP answer of `message` (0: OFFER, 1: ACK) to the stack's last
/// transaction: 10.0.2.15/24, server and router 10.0.2.2, one DNS server,
/// a one-hour lease (see `stack::Harness::dhcp`).
fn dhcp_answer(message: u8) -> Vec<u8> {
    let kind = message | 4 | 8 | 0x10 | 1 << 5; // our address, server id, router, one DNS server
    let mut op = vec![DHCP, kind, 24, 10, 0, 2, 2, 10, 0, 2, 3];
    op.extend(3600u32.to_be_bytes());
    op
}

/// Seeds for `stack`: a set-up byte (bit 0: DHCP), then operations.
pub fn stack() -> Seeds {
    let arp_request = {
        let mut f = vec![0xFF; 6];
        f.extend([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 10, 0, 2, 2]);
        f.extend([0; 6]);
        f.extend([10, 0, 2, 15]);
        f
    };
    let http = [
        raw(&arp_request),
        tcp(0, 0, SYN, 7, &[]),
        time(10),
        tcp(0, 0, ACK, 7, &[]),
        tcp(0, 0, PSH_ACK, 0, &[]), // GET / HTTP/1.1
        time(50),
        tcp(0, 0, ACK, 7, &[]),
        tcp(0, 0, FIN_ACK, 7, &[]),
        time(200),
    ]
    .concat();
    let echo = [
        raw(&arp_request),
        tcp(1, 8, SYN, 7, &[]),
        time(10),
        tcp(1, 8, ACK, 7, &[]),
        tcp(1, 8, PSH_ACK, 2, &[100]), // 600 stream bytes
        time(50),
        tcp(1, 8, ACK, 7, &[]),
        tcp(1, 8, PSH_ACK, 2, &[250]),
        time(300),
        tcp(1, 8, ACK, 7, &[]),
        time(10),
        tcp(1, 8, ACK, 7, &[]),
        tcp(1, 8, FIN_ACK, 7, &[]),
        time(10),
        tcp(1, 8, ACK, 7, &[]),
    ]
    .concat();
    let pipelined = [
        raw(&arp_request),
        tcp(2, 0, SYN, 7, &[]),
        time(10),
        tcp(2, 0, ACK, 7, &[]),
        tcp(2, 0, PSH_ACK, 3 << 3, &[]), // two pipelined requests, the second closes
        time(100),
        tcp(2, 0, ACK, 7, &[]),
    ]
    .concat();
    let closed_port = [raw(&arp_request), tcp(3, 12, SYN, 7, &[]), time(10)].concat();
    let mut frames = raw(&arp_request);
    // An ICMP echo request and a UDP datagram to a closed port.
    let mut ping = vec![0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x00];
    ping.extend([0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0x62, 0xd3, 10, 0, 2, 2, 10, 0, 2, 15]);
    ping.extend([8, 0, 0xf7, 0xfe, 0, 1, 0, 0]);
    frames.extend(raw(&ping));
    let mut udp = skiff_net::checksum::test_frames::udp4_frame(b"hello");
    udp[..6].copy_from_slice(&[0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    udp[26..34].copy_from_slice(&[10, 0, 2, 2, 10, 0, 2, 15]);
    frames.extend(raw(&udp));
    frames.extend(raw(&tcp_frame(40000, 80, 1, 0, SYN, 1024, &[])));
    frames.extend(time(1000));

    // IPv6: neighbour solicitation for the stack's link-local address, then
    // an echo request to it; IPv4: a ping in two fragments, and one with an
    // IP option (checksums made right by the harness).
    let client_ll = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x55, 0x0a, 0xff, 0xfe, 0x00, 0x02, 0x02];
    let server_ll = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56];
    let ipv6 = |dst_mac: [u8; 6], dst: [u8; 16], icmp: &[u8]| {
        let mut f = dst_mac.to_vec();
        f.extend([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x86, 0xdd, 0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 255]);
        f.extend(client_ll);
        f.extend(dst);
        f.extend_from_slice(icmp);
        f
    };
    let mut solicit = vec![135, 0, 0, 0, 0, 0, 0, 0];
    solicit.extend(server_ll);
    solicit.extend([1, 1, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
    let solicited = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0x12, 0x34, 0x56];
    let mut v6 = raw_with(&ipv6([0x33, 0x33, 0xff, 0x12, 0x34, 0x56], solicited, &solicit), 1);
    v6.extend(raw_with(&ipv6([0x52, 0x54, 0x00, 0x12, 0x34, 0x56], server_ll, &[128, 0, 0, 0, 0, 7, 0, 1, 0xaa]), 1));
    v6.extend(time(10));
    let mut fragments = raw(&arp_request);
    let mut first = ping.clone();
    first[20] = 0x20; // more fragments
    fragments.extend(raw_with(&first, 1));
    let mut second = ping.clone();
    second[21] = 1; // offset 8 bytes
    fragments.extend(raw_with(&second, 1));
    let mut option = ping[..34].to_vec();
    option[14] = 0x46; // IHL 6: one 4-byte option word
    option[17] = 32;
    option.extend([1, 1, 1, 0]); // NOPs and end of options
    option.extend(&ping[34..]);
    fragments.extend(raw_with(&option, 1));
    fragments.extend(time(10));
    // ARP with hardware addresses of 0 and 8 bytes: the packet trace read
    // the sender's as a 6-byte MAC and panicked (issue 13).
    let arp_hardware_len = |hlen: u8| {
        let mut f = vec![0xFF; 6];
        f.extend([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x06, 0, 1, 8, 0, hlen, 4, 0, 2]);
        for ip in [[10, 0, 2, 2], [10, 0, 2, 15]] {
            f.extend(vec![0x52; usize::from(hlen)]);
            f.extend(ip);
        }
        raw(&f)
    };
    let odd_arp = [arp_hardware_len(0), arp_hardware_len(8), time(10)].concat();
    vec![
        ("arp-hardware-lengths", [&[0][..], &odd_arp].concat()),
        ("http-get", [&[0][..], &http].concat()),
        ("echo", [&[0][..], &echo].concat()),
        ("pipelined-close", [&[0][..], &pipelined].concat()),
        ("closed-port", [&[0][..], &closed_port].concat()),
        ("arp-icmp-udp-syn", [&[0][..], &frames].concat()),
        ("ipv6-ndp-ping", [&[0][..], &v6].concat()),
        ("ipv4-fragments-options", [&[0][..], &fragments].concat()),
        ("dhcp-then-http", [&[1][..], &time(100), &http].concat()),
        ("dhcp-lease", [&[1][..], &time(10), &dhcp_answer(0), &time(10), &dhcp_answer(1), &time(10), &http].concat()),
    ]
}

/// Every target's seeds.
pub fn all() -> Vec<(&'static str, Seeds)> {
    vec![("http_request", http_request()), ("virtio_rx", virtio_rx()), ("stack", stack())]
}

#[cfg(test)]
mod test {
    use std::path::PathBuf;

    #[test]
    fn seed_corpus_is_current() {
        let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let write = std::env::var_os("SKIFF_WRITE_SEEDS").is_some();
        for (target, seeds) in super::all() {
            let dir = corpus.join(target);
            for (name, bytes) in seeds {
                let path = dir.join(name);
                if write {
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(&path, &bytes).unwrap();
                } else {
                    let on_disk = std::fs::read(&path).unwrap_or_default();
                    assert!(on_disk == bytes, "{} is stale: run SKIFF_WRITE_SEEDS=1 cargo test", path.display());
                }
            }
        }
    }

    #[test]
    fn seeds_pass_their_harnesses() {
        for (name, bytes) in super::http_request() {
            println!("http_request/{name}");
            crate::http::run(&bytes);
        }
        for (name, bytes) in super::virtio_rx() {
            println!("virtio_rx/{name}");
            crate::virtio::run(&bytes);
        }
        for (name, bytes) in super::stack() {
            println!("stack/{name}");
            crate::stack::run(&bytes);
        }
    }
}
