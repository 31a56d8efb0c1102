//! The HTTP answers, byte for byte as Skiff's `net/src/apps/http` writes
//! them (only the `Server` header names this server): the request rules
//! are Skiff's own (`skiff_net::apps::http::request::parse`), and so are
//! the routes (`skiff_net::apps::http::respond`), the bulk ones included:
//! `GET /bytes/N` and `POST /sink` (`skiff_net::apps::http::bulk`).

use skiff_net::apps::http::bulk::{Generated, Sink};
use skiff_net::apps::http::date::HttpDate;
use skiff_net::apps::http::request::{self, Parsed, Status};
use skiff_net::apps::http::{Origin, respond, write_response, write_sink_answer};

/// The page at `/`: Skiff's own file, which `respond` serves (the test checks the bytes).
#[cfg(test)]
pub const INDEX_HTML: &str = include_str!("../../../net/src/apps/http/index.html");

/// What this server calls itself: as long as "Skiff", so heads are the same size.
const SERVER: &str = "Linux";

/// The `Server` and `Date` fields: Linux knows the time, as Skiff does from its RTC.
fn origin() -> Origin<'static> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok();
    Origin { server: SERVER, date: now.and_then(|d| HttpDate::from_unix(d.as_secs())) }
}

/// Counters shown in `/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    pub http_requests: u64,
    pub echo_bytes: u64,
    pub connections: u64,
}

/// What a connection owes after the answers `answer` wrote.
#[derive(Debug, PartialEq, Eq)]
pub enum Pending {
    /// Nothing: more requests may be answered.
    None,
    /// A `/bytes/N` body, to write after the output; nothing else is
    /// answered until it is all written.
    Bytes(Generated),
    /// A `POST /sink` body still to read and discard; its answer follows.
    Sink(Sink),
}

/// Answers every complete request at the start of `input` into `out`, up to
/// one that leaves a body pending (an upload's whole body already in `input`
/// is taken, and answered); returns the bytes used, whether the connection
/// must close afterwards, and what is pending.
pub fn answer(
    input: &[u8],
    out: &mut Vec<u8>,
    counters: &mut Counters,
    stats: &dyn Fn(&Counters) -> String,
) -> (usize, bool, Pending) {
    let mut used = 0;
    loop {
        match request::parse(&input[used..]) {
            // No 100 Continue here: the bench's clients never expect one.
            Parsed::Partial | Parsed::AwaitingBody(_) => return (used, false, Pending::None),
            Parsed::Request(req, n) => {
                counters.http_requests += 1;
                used += n;
                let (_, body) = respond(out, &origin(), &req, || stats(counters));
                if let Some(body) = body {
                    return (used, !req.keep_alive, Pending::Bytes(body));
                }
                if !req.keep_alive {
                    return (used, true, Pending::None);
                }
            }
            Parsed::Streamed(req, head, length) => {
                counters.http_requests += 1;
                used += head;
                let mut sink = Sink::new(length, req.keep_alive);
                used += sink.take(input.len() - used);
                if !sink.done() {
                    return (used, false, Pending::Sink(sink));
                }
                write_sink_answer(out, &origin(), &sink);
                if !sink.keep_alive {
                    return (used, true, Pending::None);
                }
            }
            Parsed::Error(status) => {
                counters.http_requests += 1;
                answer_error(out, status);
                return (input.len(), true, Pending::None);
            }
        }
    }
}

/// Appends an error answer, after which the connection closes.
pub fn answer_error(out: &mut Vec<u8>, status: Status) {
    let body = format!("{} {}\n", status.code(), status.reason());
    write_response(out, &origin(), status, "text/plain", body.as_bytes(), true, false);
}

/// Appends the answer to an upload whose whole body has now been read.
pub fn answer_sink(out: &mut Vec<u8>, sink: &Sink) {
    write_sink_answer(out, &origin(), sink);
}

/// `/stats`: the counters as JSON, padded with spaces to `size` bytes (the
/// size of Skiff's `/stats`, which the bench passes), so both send as much.
pub fn stats_json(counters: &Counters, uptime_ms: u128, size: usize) -> String {
    let mut json = format!(
        "{{\"uptime_ms\":{uptime_ms},\"apps\":{{\"http_requests\":{},\"echo_bytes\":{}}},\"connections\":{}}}",
        counters.http_requests, counters.echo_bytes, counters.connections
    );
    // JSON allows whitespace after the value.
    let pad = size.saturating_sub(json.len());
    json.extend(std::iter::repeat_n(' ', pad));
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> (String, usize, bool) {
        let mut out = Vec::new();
        let mut counters = Counters::default();
        let (used, close, pending) = answer(input.as_bytes(), &mut out, &mut counters, &|c| stats_json(c, 5, 300));
        assert_eq!(pending, Pending::None);
        (String::from_utf8(out).unwrap(), used, close)
    }

    #[test]
    fn index_head_is_skiffs_with_another_server_name() {
        let (out, used, close) = run("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let head = format!(
            "HTTP/1.1 200 OK\r\nServer: Linux\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n\r\n",
            INDEX_HTML.len()
        );
        // The Date line is Linux's clock now (checked for shape), the rest Skiff's bytes.
        let (before, rest) = out.split_once("Date: ").expect("a Date field");
        let (date, after) = rest.split_at(29);
        assert!(date.ends_with(" GMT") && after.starts_with("\r\n"), "{date:?}");
        assert_eq!(format!("{before}{}", &after[2..]), format!("{head}{INDEX_HTML}"));
        assert_eq!((used, close), (27, false));
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_until_close() {
        let (out, used, close) = run(
            "GET /stats HTTP/1.1\r\nHost: skiff\r\n\r\nGET /nope HTTP/1.1\r\nHost: skiff\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: skiff\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains("HTTP/1.1 404 Not Found\r\n") && out.ends_with("Connection: close\r\n\r\n404 Not Found\n"),
            "{out}"
        );
        assert_eq!((used, close), (90, true));
    }

    #[test]
    fn partial_requests_wait_and_bad_ones_close() {
        assert_eq!(run("GET / HTTP/1.1\r\nHost: skiff\r\n"), (String::new(), 0, false));
        let (out, used, close) = run("GARBAGE\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert_eq!((used, close), (11, true));
    }

    #[test]
    fn bulk_routes_leave_their_bodies_pending_as_skiff_does() {
        let mut out = Vec::new();
        let mut counters = Counters::default();
        let stats = |c: &Counters| stats_json(c, 5, 300);
        let input = b"GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let (used, close, pending) = answer(input, &mut out, &mut counters, &stats);
        assert_eq!((used, close, pending), (37, false, Pending::Bytes(Generated::new(1000))));
        let head = String::from_utf8(out).unwrap();
        assert!(head.contains("Content-Length: 1000\r\n") && head.ends_with("\r\n\r\n"), "{head}");

        let mut out = Vec::new();
        let input = b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc";
        let (used, close, pending) = answer(input, &mut out, &mut counters, &stats);
        let mut sink = Sink::new(9, true);
        sink.take(3);
        assert_eq!((used, close, pending, out.len()), (input.len(), false, Pending::Sink(sink), 0));

        let input =
            b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
        let (used, close, pending) = answer(input, &mut out, &mut counters, &stats);
        assert_eq!((used, close, pending), (input.len(), false, Pending::None));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\n\r\n{\"received\":3}\n") && text.contains("HTTP/1.1 404 Not Found"), "{text}");
    }

    #[test]
    fn stats_are_padded_to_the_asked_size_and_parse_as_json() {
        let c = Counters { http_requests: 3, echo_bytes: 7, connections: 1 };
        let json = stats_json(&c, 1234, 500);
        assert_eq!(json.len(), 500);
        assert!(json.starts_with("{\"uptime_ms\":1234,\"apps\":{\"http_requests\":3,\"echo_bytes\":7}"), "{json}");
        assert!(stats_json(&c, 1, 10).len() > 10, "never cut below the JSON itself");
    }
}
