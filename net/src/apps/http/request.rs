//! Framing and judging one HTTP/1.1 request.
//!
//! The request line and headers are parsed by `httparse` (zero-copy,
//! `no_std`, fuzzed, used by hyper); this module adds the rules around it:
//! size limits, which requests Skiff answers, message length, keep-alive.
//!
//! Ref: RFC 9112 (HTTP/1.1 message syntax), RFC 9110 (semantics).

/// The most header bytes Skiff reads before answering 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// The largest request body Skiff accepts (and discards): none of its routes take one.
pub const MAX_BODY: usize = 4 * 1024;
/// Headers beyond this many get a 431 too.
pub const MAX_HEADERS: usize = 32;

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
    /// 413 Content Too Large.
    ContentTooLarge,
    /// 431 Request Header Fields Too Large.
    HeadersTooLarge,
    /// 501 Not Implemented.
    NotImplemented,
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
            Status::ContentTooLarge => 413,
            Status::HeadersTooLarge => 431,
            Status::NotImplemented => 501,
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
            Status::ContentTooLarge => "Content Too Large",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::NotImplemented => "Not Implemented",
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
    /// A method RFC 9110 defines that Skiff does not serve: 405.
    Unsupported,
}

impl Method {
    /// The method's name (`OTHER` for the unsupported ones).
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Unsupported => "OTHER",
        }
    }
}

/// A complete, well-framed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The path, without a query string.
    pub path: &'a str,
    /// Whether the client wants the connection kept open afterwards.
    pub keep_alive: bool,
}

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Not a whole request yet.
    Partial,
    /// A request, and the bytes it took (head and body).
    Request(Request<'a>, usize),
    /// A request that cannot be served, or framed: answer with this status
    /// and close the connection (where the next request starts is unknown).
    Error(Status),
}

/// Looks for one request at the start of `input`.
pub fn parse(input: &[u8]) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    // The head is looked for in the first MAX_HEAD bytes only: what lies
    // beyond must not change the answer, or it would depend on how the
    // bytes happened to arrive (431 if the first MAX_HEAD came alone, 400
    // if a bad byte past them came in the same read).
    let head_input = &input[..input.len().min(MAX_HEAD)];
    let head_len = match request.parse(head_input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() > MAX_HEAD => return Parsed::Error(Status::HeadersTooLarge),
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Error(Status::HeadersTooLarge),
        Err(_) => return Parsed::Error(Status::BadRequest),
    };
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return Parsed::Error(Status::BadRequest);
    };

    let mut keep_alive = version >= 1;
    let mut close = false;
    let mut content_length: Option<u64> = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            // Whatever its value (even bytes that are not UTF-8): chunked
            // request bodies are not supported, and without them the
            // request's end cannot be found (RFC 9112 6.1).
            return Parsed::Error(Status::NotImplemented);
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
        }
    }
    // "close" wins over any "keep-alive", in whichever order (RFC 9112 9.6).
    keep_alive &= !close;
    let body = content_length.unwrap_or(0);
    if body > MAX_BODY as u64 {
        return Parsed::Error(Status::ContentTooLarge);
    }
    let total = head_len + body as usize;
    if input.len() < total {
        return Parsed::Partial;
    }

    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "CONNECT" | "TRACE" => Method::Unsupported,
        _ => return Parsed::Error(Status::NotImplemented),
    };
    if !target.starts_with('/') {
        return Parsed::Error(Status::BadRequest);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Parsed::Request(Request { method, path, keep_alive }, total)
}

#[cfg(test)]
mod test {
    use super::*;

    fn req(text: &str) -> Parsed<'_> {
        parse(text.as_bytes())
    }

    #[test]
    fn a_simple_get() {
        let r = req("GET /stats?x=1 HTTP/1.1\r\nHost: skiff\r\n\r\n");
        let Parsed::Request(r, n) = r else { panic!("{r:?}") };
        assert_eq!((r.method, r.path, r.keep_alive, n), (Method::Get, "/stats", true, 40));
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        let ka = |t: &str| match parse(t.as_bytes()) {
            Parsed::Request(r, _) => r.keep_alive,
            other => panic!("{other:?}"),
        };
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn partial_until_the_blank_line_and_the_body() {
        let full = "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..full.len() {
            assert_eq!(parse(&full.as_bytes()[..cut]), Parsed::Partial, "cut at {cut}");
        }
        assert!(matches!(req(full), Parsed::Request(_, 42)));
    }

    #[test]
    fn pipelined_requests_are_taken_one_at_a_time() {
        let two = "GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\n";
        let Parsed::Request(first, n) = req(two) else { panic!() };
        assert_eq!((first.path, n), ("/a", 19));
        let Parsed::Request(second, m) = parse(&two.as_bytes()[n..]) else { panic!() };
        assert_eq!((second.method, second.path, m), (Method::Head, "/b", 20));
    }

    #[test]
    fn every_error_status() {
        assert_eq!(req("GARBAGE\r\n\r\n"), Parsed::Error(Status::BadRequest));
        assert_eq!(req("GET / HTTP/1.1\r\nBad Header\r\n\r\n"), Parsed::Error(Status::BadRequest));
        assert_eq!(req("GET / HTTP/9.9\r\n\r\n"), Parsed::Error(Status::BadRequest));
        assert_eq!(req("GET http://x/ HTTP/1.1\r\n\r\n"), Parsed::Error(Status::BadRequest));
        assert_eq!(req("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), Parsed::Error(Status::BadRequest));
        assert_eq!(
            req("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Parsed::Error(Status::BadRequest)
        );
        assert_eq!(req("GET / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"), Parsed::Error(Status::ContentTooLarge));
        assert_eq!(req("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Parsed::Error(Status::NotImplemented));
        assert_eq!(req("BREW / HTTP/1.1\r\n\r\n"), Parsed::Error(Status::NotImplemented));
        assert!(matches!(
            req("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"),
            Parsed::Request(Request { method: Method::Unsupported, .. }, _)
        ));
    }

    /// Found by `cargo fuzz` (http_request, after 5 minutes): a head over
    /// the limit with a bad byte past it got 400 when it arrived in one
    /// piece and 431 when the first 8 KiB came alone.
    #[test]
    fn an_oversized_head_gets_431_however_it_arrives() {
        let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
        head.resize(MAX_HEAD + 8, b'a');
        head.extend_from_slice(b"\x01\r\n\r\n");
        for len in [MAX_HEAD + 1, MAX_HEAD + 8, head.len()] {
            assert_eq!(parse(&head[..len]), Parsed::Error(Status::HeadersTooLarge), "{len} bytes");
        }
        // A bad byte within the limit is still a bad request.
        head[MAX_HEAD - 1] = 1;
        assert_eq!(parse(&head), Parsed::Error(Status::BadRequest));
    }

    /// Found by `cargo fuzz` (http_request, with its dictionary): a
    /// `keep-alive` after `close` kept the connection open.
    #[test]
    fn close_wins_whatever_the_order_of_connection_tokens() {
        for text in [
            "GET / HTTP/1.1\r\nConnection: close, keep-alive\r\n\r\n",
            "GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
        ] {
            assert!(matches!(req(text), Parsed::Request(Request { keep_alive: false, .. }, _)), "{text}");
        }
    }

    /// Found by the http_request fuzz target's framing model: Rust's integer
    /// parsing takes a leading '+', which Content-Length's grammar does not
    /// allow; another parser in front of Skiff could frame such a request
    /// differently.
    #[test]
    fn content_length_is_digits_only() {
        for value in ["+0", "+5", "-0", " 5 x", "", "0x5", "5,5"] {
            let text = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\nhello");
            assert_eq!(parse(text.as_bytes()), Parsed::Error(Status::BadRequest), "{value:?}");
        }
        assert!(matches!(req("POST / HTTP/1.1\r\nContent-Length: \t5 \r\n\r\nhello"), Parsed::Request(_, 45)));
    }

    /// Found by `cargo fuzz` (http_request): a Transfer-Encoding value with
    /// bytes that are not UTF-8 was skipped like an unknown header, and the
    /// request framed as if it had no body: the chunked body that followed
    /// was then read as the next request.
    #[test]
    fn transfer_encoding_is_refused_whatever_its_bytes() {
        let smuggled = b"POST / HTTP/1.1\r\nTransfer-Encoding:\x98\xdfucnked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(parse(smuggled), Parsed::Error(Status::NotImplemented));
    }

    #[test]
    fn oversized_heads_get_431_whether_complete_or_not() {
        let mut big = String::from("GET / HTTP/1.1\r\nX: ");
        big.push_str(&"a".repeat(MAX_HEAD));
        assert_eq!(parse(big.as_bytes()), Parsed::Error(Status::HeadersTooLarge), "still arriving");
        big.push_str("\r\n\r\n");
        assert_eq!(parse(big.as_bytes()), Parsed::Error(Status::HeadersTooLarge), "complete");
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(req(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Parsed::Error(Status::HeadersTooLarge));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic walk over byte soup; cargo fuzz does this properly.
        let mut x: u32 = 0x1234_5678;
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    b"GET / HTTP/1.1\r\n:x Content-Length: 9\0\xff"[x as usize % 38]
                })
                .collect();
            let _ = parse(&bytes);
        }
    }
}
