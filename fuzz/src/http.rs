//! `http_request`: Skiff's HTTP request parsing and framing
//! (`skiff_net::apps::http::request`).
//!
//! Input: one byte that sets how the rest is cut into arriving chunks, then
//! the bytes a client sends on one connection. Checked:
//!
//! - An accepted request agrees with an independent model of its framing
//!   (RFC 9112): the head ends where `httparse` says, the body is exactly
//!   the one Content-Length (plain digits, every copy the same), no
//!   Transfer-Encoding, one Host (required in HTTP/1.1), the path is the
//!   origin-form's or the absolute-form's (or `*` for OPTIONS), and the
//!   connection is kept open only as the version and the `Connection`
//!   tokens allow. HTTP/1.2 to 1.9 are read as 1.1 (RFC 9110 2.5).
//! - Parsing is prefix-stable: every shorter prefix of an accepted request
//!   is `Partial`, and the request alone parses the same.
//! - The server's input buffer (head and body limits plus one byte) can
//!   never hold something still `Partial`, or the connection would stall.
//! - An upload (`POST /sink`, `Parsed::Streamed`) is framed by its head
//!   alone, whose every shorter prefix is `Partial`; its body, however it
//!   is cut, is skipped to exactly its Content-Length.
//! - Pipelined requests cut into chunks at any points are answered exactly
//!   as when they arrive at once.

use skiff_net::apps::http::request::{self, MAX_BODY, MAX_HEAD, Method, Parsed, SINK};

/// The most bytes the server buffers for one request (see `apps::http`).
const INPUT_LIMIT: usize = MAX_HEAD + MAX_BODY;
/// Headers the model reads: more than the parser allows, so it sees them all.
const MODEL_HEADERS: usize = 128;

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Some((&cut, input)) = data.split_first() else { return };
    let whole = request::parse(input);
    if input.len() > INPUT_LIMIT {
        let waiting = matches!(whole, Parsed::Partial | Parsed::AwaitingBody(_));
        assert!(!waiting, "a full input buffer ({} bytes) is still waiting", input.len());
    }
    if let Parsed::Request(req, used) = &whole {
        check_framing(input, req, *used);
        assert_eq!(request::parse(&input[..*used]), whole, "the request alone parses differently");
        let shorter = usize::from(cut) * *used / 256;
        for prefix in [shorter, used - 1] {
            // Partial, or the head alone when it expects 100-continue.
            let part = request::parse(&input[..prefix]);
            assert!(matches!(part, Parsed::Partial | Parsed::AwaitingBody(_)), "prefix of {prefix} bytes: {part:?}");
        }
    }
    if let Parsed::Streamed(req, head, _) = &whole {
        assert_eq!((req.method, req.path), (Method::Post, SINK), "streamed a body that is not an upload");
        let part = request::parse(&input[..head - 1]);
        assert!(matches!(part, Parsed::Partial), "prefix of the upload's head: {part:?}");
        assert_eq!(request::parse(&input[..*head]), whole, "the head alone parses differently");
    }
    let chunk = usize::from(cut) + 1;
    assert_eq!(serve(input, input.len().max(1)), serve(input, chunk), "chunks of {chunk} bytes change the answers");
}

/// What the server makes of a request, owned so that runs can be compared.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Request { method: Method, path: Vec<u8>, keep_alive: bool, used: usize },
    Upload { path: Vec<u8>, keep_alive: bool, head: usize, length: u64 },
    Error(u16),
}

/// The server's loop over one connection (`HttpServer::poll`): bytes arrive
/// `chunk` at a time, into a buffer of at most `INPUT_LIMIT + 1` bytes, and
/// every complete request is answered before more is read. Stops where the
/// server closes: after an error or a request without keep-alive.
fn serve(input: &[u8], chunk: usize) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut buffer: Vec<u8> = Vec::new();
    let mut rest = input;
    loop {
        let room = INPUT_LIMIT + 1 - buffer.len().min(INPUT_LIMIT);
        let take = rest.len().min(chunk).min(room);
        buffer.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            match request::parse(&buffer) {
                Parsed::Partial | Parsed::AwaitingBody(_) => break,
                Parsed::Request(req, used) => {
                    let keep_alive = req.keep_alive;
                    answers.push(Answer::Request { method: req.method, path: req.path.into(), keep_alive, used });
                    buffer.drain(..used);
                    if !keep_alive {
                        return answers;
                    }
                }
                Parsed::Streamed(req, head, length) => {
                    let keep_alive = req.keep_alive;
                    answers.push(Answer::Upload { path: req.path.into(), keep_alive, head, length });
                    buffer.drain(..head);
                    // The body is skipped as it comes: from the buffer, then
                    // from what arrives (the server reads it in any pieces).
                    let from_buffer = buffer.len().min(usize::try_from(length).unwrap_or(usize::MAX));
                    buffer.drain(..from_buffer);
                    let left = length - from_buffer as u64;
                    let from_rest = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    rest = &rest[from_rest..];
                    if from_rest as u64 != left || !keep_alive {
                        return answers; // the client ended before the body did, or asked to close
                    }
                }
                Parsed::Error(status) => {
                    answers.push(Answer::Error(status.code()));
                    return answers;
                }
            }
        }
        if take == 0 {
            return answers; // nothing more will arrive, or no room (checked in `run`)
        }
    }
}

/// The framing of an accepted request, recomputed from the raw head.
fn check_framing(input: &[u8], req: &request::Request, used: usize) {
    let mut headers = [httparse::EMPTY_HEADER; MODEL_HEADERS];
    let mut model = httparse::Request::new(&mut headers);
    // httparse reads only 1.0 and 1.1: a later 1.x is modelled as 1.1.
    let mut patched = input.to_vec();
    if let Some(end) = input.iter().position(|&b| b == b'\n') {
        let line = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
        let version = &line[line.len().saturating_sub(8)..];
        if version.starts_with(b"HTTP/1.") && matches!(version.last(), Some(b'2'..=b'9')) {
            patched[line.len() - 1] = b'1';
        }
    }
    let head_len = match model.parse(&patched) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("accepted a request whose head httparse reads as {other:?}"),
    };
    assert!(head_len <= MAX_HEAD, "accepted a head of {head_len} bytes");
    let mut length: Option<u64> = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut hosts = 0;
    for h in model.headers.iter() {
        hosts += usize::from(h.name.eq_ignore_ascii_case("host"));
        let name = h.name.to_ascii_lowercase();
        assert!(name != "transfer-encoding", "accepted a request with Transfer-Encoding {:?}", h.value);
        if name == "content-length" {
            let value = trim_ows(h.value);
            assert!(
                !value.is_empty() && value.iter().all(u8::is_ascii_digit),
                "accepted Content-Length {:?}, which is not 1*DIGIT",
                String::from_utf8_lossy(h.value)
            );
            let n = std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok());
            assert!(n.is_some() && (length.is_none() || length == n), "accepted conflicting Content-Lengths");
            length = n;
        } else if name == "connection" {
            for token in h.value.split(|&b| b == b',').map(trim_ows) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let body = length.unwrap_or(0);
    assert!(body <= MAX_BODY as u64, "accepted a body of {body} bytes");
    assert_eq!(used as u64, head_len as u64 + body, "request length is not head + Content-Length");

    assert!(hosts == 1 || (hosts == 0 && model.version == Some(0)), "accepted {hosts} Host fields");
    let target = model.path.unwrap_or_default();
    let method = match model.method.unwrap_or_default() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        "POST" => Method::Post,
        _ => Method::Unsupported,
    };
    // Origin-form; absolute-form (RFC 9112 3.2.2) past its authority; `*` for OPTIONS.
    let origin_form = match target.split_once("://") {
        _ if target.starts_with('/') || (target == "*" && method == Method::Options) => target,
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => {
            let at = rest.find(['/', '?']).unwrap_or(rest.len());
            assert!(at > 0, "accepted an empty authority in {target:?}");
            if rest[at..].starts_with('/') { &rest[at..] } else { "/" }
        }
        _ => panic!("accepted target {target:?}"),
    };
    assert_eq!(req.path, origin_form.split('?').next().unwrap_or_default(), "path");
    assert_eq!(req.method, method, "method");
    // RFC 9112 9.3 and 9.6: HTTP/1.1 persists unless "close" is among the
    // Connection options; HTTP/1.0 only with "keep-alive". "close" always wins.
    let keep_alive = !close && (model.version == Some(1) || keep_alive_token);
    assert_eq!(req.keep_alive, keep_alive, "keep-alive (version {:?})", model.version);
}

/// Strips optional whitespace (RFC 9110 5.6.3: spaces and tabs).
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}
