//! Framing and judging one HTTP/1.1 request.
//!
//! The request line and headers are parsed by `httparse` (zero-copy,
//! `no_std`, fuzzed, used by hyper); this module adds the rules around it:
//! size limits, which requests Skiff answers, message length, keep-alive.
//!
//! Ref: RFC 9112 (HTTP/1.1 message syntax), RFC 9110 (semantics).

/// The most header bytes Skiff reads before answering 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// The largest request body Skiff buffers (and discards): none of its
/// routes but [`SINK`] takes one, and that one's body is streamed, not buffered.
pub const MAX_BODY: usize = 4 * 1024;
/// The upload route: `POST /sink` reads its body as it arrives and
/// discards it, so its Content-Length has no limit but `u64`'s.
pub const SINK: &str = "/sink";
/// Headers beyond this many get a 431 too.
pub const MAX_HEADERS: usize = 32;

use super::target;

/// Response status codes Skiff uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 200 OK.
    Ok,
    /// 400 Bad Request.
    BadRequest,
    /// 404 Not Found.
    NotFound,
    /// 405 Method Not Allowed.
    MethodNotAllowed,
    /// 408 Request Timeout (RFC 9110 15.5.9): the request did not arrive whole in time.
    RequestTimeout,
    /// 411 Length Required (RFC 9110 15.5.12): an upload without Content-Length.
    LengthRequired,
    /// 413 Content Too Large.
    ContentTooLarge,
    /// 431 Request Header Fields Too Large.
    HeadersTooLarge,
    /// 501 Not Implemented.
    NotImplemented,
    /// 505 HTTP Version Not Supported (RFC 9110 15.6.6): a major version other than 1.
    VersionNotSupported,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::LengthRequired => 411,
            Status::ContentTooLarge => 413,
            Status::HeadersTooLarge => 431,
            Status::NotImplemented => 501,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::LengthRequired => "Length Required",
            Status::ContentTooLarge => "Content Too Large",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::NotImplemented => "Not Implemented",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// The methods Skiff serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: GET without the body.
    Head,
    /// OPTIONS: which methods a resource (or, with `*`, the server) allows.
    Options,
    /// POST: only [`SINK`] allows it.
    Post,
    /// A method RFC 9110 defines that Skiff does not serve: 405.
    Unsupported,
}

impl Method {
    /// The method's name (`OTHER` for the unsupported ones).
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Post => "POST",
            Method::Unsupported => "OTHER",
        }
    }
}

/// A complete, well-framed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The path, without a query string (from an absolute-form target too);
    /// `*` for OPTIONS' asterisk-form.
    pub path: &'a str,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
    /// Whether an HTTP/1.1 client sent `Expect: 100-continue` (RFC 9110 10.1.1).
    pub expect_continue: bool,
}

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Not a whole request yet.
    Partial,
    /// The head of a valid request whose body has not all arrived, from a
    /// client that sent `Expect: 100-continue` and may wait for an interim
    /// 100 before sending it (RFC 9110 10.1.1). Otherwise like `Partial`.
    AwaitingBody(Request<'a>),
    /// A request, and the bytes it took (head and body).
    Request(Request<'a>, usize),
    /// The head of a `POST` to [`SINK`], as soon as it is whole: the bytes
    /// the head took, then the body's length (its Content-Length). The
    /// body follows the head and is read as it arrives, never buffered;
    /// what comes after it is the next request (RFC 9112 6.3).
    Streamed(Request<'a>, usize, u64),
    /// A request that cannot be served, or framed: answer with this status
    /// and close the connection (where the next request starts is unknown).
    Error(Status),
}

/// Looks for one request at the start of `input`.
pub fn parse(input: &[u8]) -> Parsed<'_> {
    // The head is looked for in the first MAX_HEAD bytes only: what lies
    // beyond must not change the answer, or it would depend on how the
    // bytes happened to arrive (431 if the first MAX_HEAD came alone, 400
    // if a bad byte past them came in the same read).
    let head_input = &input[..input.len().min(MAX_HEAD)];
    match parse_head(input, head_input) {
        Err(httparse::Error::Version) => {}
        other => return other.unwrap_or(Parsed::Error(Status::BadRequest)),
    }
    // httparse knows only HTTP/1.0 and 1.1. A later 1.x is read as 1.1
    // (RFC 9110 2.5: a server SHOULD), from a copy with the minor digit
    // changed: the bytes are otherwise the same, so the lengths hold.
    match target::version(head_input) {
        target::Version::Partial if input.len() > MAX_HEAD => Parsed::Error(Status::HeadersTooLarge),
        target::Version::Partial => Parsed::Partial,
        target::Version::OtherMajor => Parsed::Error(Status::VersionNotSupported),
        target::Version::Invalid => Parsed::Error(Status::BadRequest),
        target::Version::LaterMinor(at) => {
            let mut copy = head_input.to_vec();
            copy[at] = b'1';
            parse_head(input, &copy).unwrap_or(Parsed::Error(Status::BadRequest))
        }
    }
}

/// Parses the head in `head` (the first MAX_HEAD bytes of `input`, or a
/// copy of them of the same length) and frames the request in `input`.
/// Only httparse's errors other than TooManyHeaders are `Err`.
fn parse_head<'a>(input: &'a [u8], head: &[u8]) -> Result<Parsed<'a>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(head) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() > MAX_HEAD => return Ok(Parsed::Error(Status::HeadersTooLarge)),
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Ok(Parsed::Error(Status::HeadersTooLarge)),
        Err(e) => return Err(e),
    };
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return Ok(Parsed::Error(Status::BadRequest));
    };
    // The target as a slice of `input`, not of `head` (which may be a copy):
    // httparse checked it is visible ASCII, so it is valid UTF-8 there too.
    let start = target.as_ptr() as usize - head.as_ptr() as usize;
    let Ok(target) = core::str::from_utf8(&input[start..start + target.len()]) else {
        return Ok(Parsed::Error(Status::BadRequest));
    };
    Ok(judge(input, head_len, method, target, version, request.headers))
}

/// The rules around a parsed head: framing, limits, method, target, Host.
fn judge<'a>(
    input: &'a [u8],
    head_len: usize,
    method: &str,
    target: &'a str,
    version: u8,
    headers: &[httparse::Header<'_>],
) -> Parsed<'a> {
    let http11 = version >= 1;
    let mut keep_alive = http11;
    let mut close = false;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut hosts = 0;
    let mut expect_continue = false;
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            // Whatever its value (even bytes that are not UTF-8): see below.
            transfer_encoding = true;
            continue;
        }
        if name.eq_ignore_ascii_case("host") {
            // RFC 9112 3.2: a Host with an invalid value gets 400.
            hosts += 1;
            if !target::host_is_valid(trim_ows(header.value)) {
                return Parsed::Error(Status::BadRequest);
            }
            continue;
        }
        let Ok(value) = core::str::from_utf8(header.value) else {
            // Only Connection and Content-Length matter here, and both are ASCII.
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("connection") {
                return Parsed::Error(Status::BadRequest);
            }
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            // 1*DIGIT (RFC 9110 8.6): `parse` alone would also take "+5".
            let digits = value.trim_matches([' ', '\t']);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Parsed::Error(Status::BadRequest);
            }
            let Ok(n) = digits.parse::<u64>() else { return Parsed::Error(Status::BadRequest) };
            if content_length.is_some_and(|m| m != n) {
                return Parsed::Error(Status::BadRequest); // conflicting lengths (RFC 9112 6.3)
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            // RFC 9110 10.1.1: a server MUST ignore 100-continue in an
            // HTTP/1.0 request; other expectations MAY get 417, and are ignored.
            expect_continue |= http11 && value.trim_matches([' ', '\t']).eq_ignore_ascii_case("100-continue");
        }
    }
    if transfer_encoding {
        // Both Transfer-Encoding and Content-Length: a smuggling attempt,
        // which a server MAY reject (RFC 9112 6.1) and Skiff does, 400.
        // Transfer-Encoding alone: chunked request bodies are not supported,
        // and without them the request's end cannot be found: 501 (6.1).
        let status = if content_length.is_some() { Status::BadRequest } else { Status::NotImplemented };
        return Parsed::Error(status);
    }
    // "close" wins over any "keep-alive", in whichever order (RFC 9112 9.6).
    keep_alive &= !close;
    // The upload route's body is streamed: no limit but the length's type.
    let streamed = method == "POST" && target::path(target) == Some(SINK);
    let body = content_length.unwrap_or(0);
    if body > MAX_BODY as u64 && !streamed {
        return Parsed::Error(Status::ContentTooLarge);
    }

    // Judged on the head alone, so that a request that will be refused is
    // refused before its body comes (RFC 9110 10.1.1 lets the server answer
    // at once; the connection then closes, so the body is never misread).
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        "POST" => Method::Post,
        "PUT" | "DELETE" | "PATCH" | "CONNECT" | "TRACE" => Method::Unsupported,
        _ => return Parsed::Error(Status::NotImplemented),
    };
    let Some(path) = target::path(target) else { return Parsed::Error(Status::BadRequest) };
    if path == "*" && method != Method::Options {
        return Parsed::Error(Status::BadRequest); // asterisk-form is for OPTIONS only (RFC 9112 3.2.4)
    }
    // RFC 9112 3.2: 400 for an HTTP/1.1 request without Host, and for any
    // with more than one.
    if hosts > 1 || (http11 && hosts == 0) {
        return Parsed::Error(Status::BadRequest);
    }

    let request = Request { method, path, keep_alive, expect_continue };
    if streamed {
        // RFC 9110 15.5.12: an upload whose end cannot be known without a
        // length (no chunked bodies here) gets 411.
        let Some(length) = content_length else { return Parsed::Error(Status::LengthRequired) };
        return Parsed::Streamed(request, head_len, length);
    }
    let total = head_len + body as usize;
    if input.len() < total {
        return if expect_continue { Parsed::AwaitingBody(request) } else { Parsed::Partial };
    }
    Parsed::Request(request, total)
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

#[cfg(test)]
mod test;
