//! The HTTP answers, byte for byte as Skiff's `net/src/apps/http` writes
//! them (only the `Server` header names this server), and the request rules
//! are Skiff's own: `skiff_net::apps::http::request::parse`.

use skiff_net::apps::http::date::HttpDate;
use skiff_net::apps::http::request::{self, Method, Parsed, Status};
use skiff_net::apps::http::{Origin, write_response};

/// The page at `/`: Skiff's own file (the bench checks that both serve the same bytes).
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

/// Answers every complete request at the start of `input` into `out`;
/// returns the bytes used and whether the connection must close afterwards.
pub fn answer(
    input: &[u8],
    out: &mut Vec<u8>,
    counters: &mut Counters,
    stats: &dyn Fn(&Counters) -> String,
) -> (usize, bool) {
    let mut used = 0;
    loop {
        match request::parse(&input[used..]) {
            // No 100 Continue here: the bench's clients never expect one.
            Parsed::Partial | Parsed::AwaitingBody(_) => return (used, false),
            Parsed::Request(req, n) => {
                counters.http_requests += 1;
                used += n;
                respond(out, req.method, req.path, req.keep_alive, counters, stats);
                if !req.keep_alive {
                    return (used, true);
                }
            }
            Parsed::Error(status) => {
                counters.http_requests += 1;
                let body = format!("{} {}\n", status.code(), status.reason());
                write_response(out, &origin(), status, "text/plain", body.as_bytes(), true, false);
                return (input.len(), true);
            }
        }
    }
}

fn respond(
    out: &mut Vec<u8>,
    method: Method,
    path: &str,
    keep_alive: bool,
    counters: &Counters,
    stats: &dyn Fn(&Counters) -> String,
) {
    let with_body = method != Method::Head;
    match (path, method) {
        ("/" | "/index.html", Method::Get | Method::Head) => write_response(
            out,
            &origin(),
            Status::Ok,
            "text/html; charset=utf-8",
            INDEX_HTML.as_bytes(),
            with_body,
            keep_alive,
        ),
        ("/stats", Method::Get | Method::Head) => write_response(
            out,
            &origin(),
            Status::Ok,
            "application/json",
            stats(counters).as_bytes(),
            with_body,
            keep_alive,
        ),
        (_, Method::Unsupported) => write_response(
            out,
            &origin(),
            Status::MethodNotAllowed,
            "text/plain",
            b"405 Method Not Allowed\n",
            true,
            keep_alive,
        ),
        _ => write_response(out, &origin(), Status::NotFound, "text/plain", b"404 Not Found\n", with_body, keep_alive),
    }
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
        let (used, close) = answer(input.as_bytes(), &mut out, &mut counters, &|c| stats_json(c, 5, 300));
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
    fn stats_are_padded_to_the_asked_size_and_parse_as_json() {
        let c = Counters { http_requests: 3, echo_bytes: 7, connections: 1 };
        let json = stats_json(&c, 1234, 500);
        assert_eq!(json.len(), 500);
        assert!(json.starts_with("{\"uptime_ms\":1234,\"apps\":{\"http_requests\":3,\"echo_bytes\":7}"), "{json}");
        assert!(stats_json(&c, 1, 10).len() > 10, "never cut below the JSON itself");
    }
}
