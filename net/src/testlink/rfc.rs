//! Host tests of the HTTP server against RFC 9110 and 9112, over the
//! in-memory link: each names the section it shows.

use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::iface::SocketHandle;

use super::harness::*;

/// One response: its status, its head (status line and fields) and body.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn field(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// Splits `bytes` into whole responses; `head_only[i]` says the i-th answers
/// a HEAD (its Content-Length describes a body that is not sent).
fn split(mut bytes: &[u8], head_only: &[bool]) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end + 4]).into_owned();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut r = Response { status, head, body: Vec::new() };
        let length: usize = if status / 100 == 1 || head_only.get(out.len()).copied().unwrap_or(false) {
            0
        } else {
            r.field("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        if bytes.len() < end + 4 + length {
            break;
        }
        r.body = bytes[end + 4..end + 4 + length].to_vec();
        bytes = &bytes[end + 4 + length..];
        out.push(r);
    }
    out
}

/// Sends `request` on a new connection and reads until `count` responses have come.
fn ask(net: &mut Net, port: u16, request: &[u8], count: usize, head_only: &[bool]) -> (SocketHandle, Vec<Response>) {
    let h = net.connect(80, port);
    let bytes = net.exchange(h, request, |r| split(r, head_only).len() >= count);
    (h, split(&bytes, head_only))
}

fn one(net: &mut Net, port: u16, request: &str) -> Response {
    let (_, mut responses) = ask(net, port, request.as_bytes(), 1, &[request.starts_with("HEAD")]);
    responses.remove(0)
}

/// Steps until the server has closed `h` (or 2 simulated seconds pass).
fn closed(net: &mut Net, h: SocketHandle) -> bool {
    for _ in 0..2000 {
        net.step();
        if !net.socket(h).may_recv() {
            return true;
        }
    }
    false
}

/// RFC 9112 3.2.2: a server MUST accept the absolute-form.
#[test]
fn an_absolute_form_target_is_served() {
    let mut net = Net::new(0, 0);
    let r = one(&mut net, 43000, "GET http://skiff/stats?x=1 HTTP/1.1\r\nHost: skiff\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.starts_with(b"{"), "{r:?}");
}

/// RFC 9112 3.2: HTTP/1.1 without Host, or with two, gets 400; HTTP/1.0 needs none.
#[test]
fn host_is_required_once() {
    let mut net = Net::new(0, 0);
    assert_eq!(one(&mut net, 43010, "GET / HTTP/1.1\r\n\r\n").status, 400);
    assert_eq!(one(&mut net, 43011, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status, 400);
    assert_eq!(one(&mut net, 43012, "GET / HTTP/1.0\r\n\r\n").status, 200);
}

/// RFC 9110 2.5: HTTP/1.2 is handled as 1.1; RFC 9110 15.6.6: HTTP/2.0 in
/// HTTP/1 syntax gets 505.
#[test]
fn later_minor_versions_are_served_and_other_majors_get_505() {
    let mut net = Net::new(0, 0);
    let r = one(&mut net, 43020, "GET / HTTP/1.2\r\nHost: skiff\r\n\r\n");
    assert_eq!((r.status, r.field("connection")), (200, Some("keep-alive")), "{r:?}");
    assert_eq!(one(&mut net, 43021, "GET / HTTP/2.0\r\nHost: skiff\r\n\r\n").status, 505);
}

/// RFC 9110 10.1.1: a request with `Expect: 100-continue` gets a 100 before
/// its body is sent, or its final status at once if it will be refused.
#[test]
fn expect_100_continue_gets_100_or_the_refusal_at_once() {
    let mut net = Net::new(0, 0);
    let head = "OPTIONS / HTTP/1.1\r\nHost: skiff\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let (h, first) = ask(&mut net, 43030, head.as_bytes(), 1, &[]);
    assert_eq!(first[0].status, 100, "{first:?}");
    assert_eq!(first[0].head, "HTTP/1.1 100 Continue\r\n\r\n");
    let rest = net.exchange(h, b"hello", |r| !split(r, &[]).is_empty());
    let rest = split(&rest, &[]);
    assert_eq!((rest[0].status, rest[0].field("allow")), (200, Some("GET, HEAD, OPTIONS")), "{rest:?}");

    // POST is not allowed: 405 without waiting for the body, then close.
    let head = "POST / HTTP/1.1\r\nHost: skiff\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    let (h, r) = ask(&mut net, 43031, head.as_bytes(), 1, &[]);
    assert_eq!((r[0].status, r[0].field("connection")), (405, Some("close")), "{r:?}");
    assert!(closed(&mut net, h), "the server kept a connection whose body it will not read");
}

/// RFC 9110 9.3.7 and RFC 9112 3.2.4: `OPTIONS *` asks about the server.
#[test]
fn options_asterisk_lists_the_methods() {
    let mut net = Net::new(0, 0);
    let r = one(&mut net, 43040, "OPTIONS * HTTP/1.1\r\nHost: skiff\r\n\r\n");
    assert_eq!((r.status, r.field("allow"), r.field("content-length")), (200, Some("GET, HEAD, OPTIONS"), Some("0")));
}

/// RFC 9110 6.6.1: Date on every response when the clock is known, none when not.
#[test]
fn every_response_has_a_date_when_the_time_is_known() {
    // RFC 9110 5.6.7's example instant, as the kernel's boot time.
    let mut net = Net::with_config(0, 0, |c| c.boot_unix_secs = Some(784_111_777));
    for (i, request) in
        ["GET / HTTP/1.1\r\nHost: s\r\n\r\n", "GET /nope HTTP/1.1\r\nHost: s\r\n\r\n", "BREW / HTTP/1.1\r\n\r\n"]
            .iter()
            .enumerate()
    {
        let r = one(&mut net, 43050 + i as u16, request);
        assert_eq!(r.field("date"), Some("Sun, 06 Nov 1994 08:49:37 GMT"), "{r:?}");
    }
    let mut net = Net::new(0, 0);
    assert_eq!(one(&mut net, 43060, "GET / HTTP/1.1\r\nHost: s\r\n\r\n").field("date"), None);
}

/// RFC 9110 9.3.2: HEAD gets GET's head, Content-Length included, and no body.
#[test]
fn head_is_get_without_the_body() {
    let mut net = Net::with_config(0, 0, |c| c.boot_unix_secs = Some(1_700_000_000));
    let request =
        b"GET / HTTP/1.1\r\nHost: s\r\n\r\nHEAD / HTTP/1.1\r\nHost: s\r\n\r\nGET /stats HTTP/1.1\r\nHost: s\r\n\r\n";
    let (_, r) = ask(&mut net, 43070, request, 3, &[false, true, false]);
    assert_eq!(r[0].head, r[1].head);
    assert_eq!((r[1].body.len(), r[2].status), (0, 200), "{r:?}");
}

/// RFC 9110 15.5.6: 405 carries Allow; 15.6.2: an unknown method gets 501.
#[test]
fn methods_not_allowed_and_not_known() {
    let mut net = Net::new(0, 0);
    let r = one(&mut net, 43080, "DELETE /stats HTTP/1.1\r\nHost: s\r\n\r\n");
    assert_eq!((r.status, r.field("allow")), (405, Some("GET, HEAD, OPTIONS")));
    assert_eq!(one(&mut net, 43081, "BREW /stats HTTP/1.1\r\nHost: s\r\n\r\n").status, 501);
}

/// RFC 9112 9.3: HTTP/1.0 closes unless it asks for keep-alive; 1.1 persists
/// unless it says close.
#[test]
fn http10_closes_by_default_and_keeps_alive_when_asked() {
    let mut net = Net::new(0, 0);
    let (h, r) = ask(&mut net, 43090, b"GET / HTTP/1.0\r\n\r\n", 1, &[]);
    assert_eq!(r[0].field("connection"), Some("close"));
    assert!(closed(&mut net, h));
    let twice = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /stats HTTP/1.0\r\n\r\n";
    let (h, r) = ask(&mut net, 43091, twice, 2, &[]);
    assert_eq!((r[0].field("connection"), r[1].status), (Some("keep-alive"), 200), "{r:?}");
    assert!(closed(&mut net, h));
}

/// RFC 9112 6.3: a body on GET is framed by Content-Length, read and
/// discarded, and the next request follows it; RFC 9112 6.1: both
/// Transfer-Encoding and Content-Length get 400, and the connection closes.
#[test]
fn message_bodies_are_framed_and_smuggling_refused() {
    let mut net = Net::new(0, 0);
    let request = b"GET / HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\n\r\nhelloGET /stats HTTP/1.1\r\nHost: s\r\n\r\n";
    let (_, r) = ask(&mut net, 43100, request, 2, &[]);
    assert_eq!((r[0].status, r[1].status), (200, 200), "{r:?}");
    let both = b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let (h, r) = ask(&mut net, 43101, both, 1, &[]);
    assert_eq!(r[0].status, 400);
    assert!(closed(&mut net, h));
}
