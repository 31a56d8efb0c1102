//! The answers: which resources exist, which methods each allows, and the
//! bytes of every response Skiff writes (the bench's Linux guest writes
//! them with these functions too).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::bulk::{self, BytesPath, Generated, Sink};
use super::date::HttpDate;
use super::request::{Method, Request, SINK, Status};

/// The page at `/`: a live view of `/stats` (link, address, counters,
/// interrupt rate, recent connections), refreshed in place every second by a
/// few lines of script; no external resources.
const INDEX_HTML: &str = include_str!("index.html");
/// The resources Skiff serves; each allows the methods in `ALLOW`.
const RESOURCES: [&str; 4] = ["/", "/index.html", "/stats", "/stats.html"];
/// The methods every resource allows, for `Allow` (RFC 9110 10.2.1) in 405
/// answers (15.5.6: MUST) and OPTIONS answers (9.3.7).
pub const ALLOW: &str = "GET, HEAD, OPTIONS";
/// The methods the upload route ([`SINK`]) allows.
pub const SINK_ALLOW: &str = "POST, OPTIONS";

/// The methods `path` allows (for `Allow`), or the status of a path Skiff
/// does not serve: 404, or 400 for a `/bytes/N` above its limit.
fn allowed(path: &str) -> Result<&'static str, Status> {
    match bulk::bytes_path(path) {
        BytesPath::Size(_) => Ok(ALLOW),
        BytesPath::TooLarge => Err(Status::BadRequest),
        BytesPath::NotFound => Err(Status::NotFound),
        BytesPath::Other if path == SINK => Ok(SINK_ALLOW),
        // `*` is the server itself, for OPTIONS.
        BytesPath::Other if path == "*" || RESOURCES.contains(&path) => Ok(ALLOW),
        BytesPath::Other => Err(Status::NotFound),
    }
}

/// The status a request will get: 404 for what Skiff does not serve, 405
/// for a method the resource does not allow.
pub(super) fn route(req: &Request) -> Status {
    let ok = match (allowed(req.path), req.method) {
        (Err(status), _) => return status,
        (Ok(_), Method::Options) => true,
        (Ok(allow), Method::Post) => allow == SINK_ALLOW,
        (Ok(allow), Method::Get | Method::Head) => allow == ALLOW,
        (Ok(_), Method::Unsupported) => false,
    };
    if ok { Status::Ok } else { Status::MethodNotAllowed }
}

/// Appends the answer to a whole upload (`POST /sink`) to `out`: how many
/// bytes it had.
pub fn write_sink_answer(out: &mut Vec<u8>, origin: &Origin, sink: &Sink) {
    let body = sink.answer();
    write_response(out, origin, Status::Ok, "application/json", body.as_bytes(), true, sink.keep_alive);
}

/// Appends the answer to one request to `out`; `stats_json` renders
/// `/stats`, for the routes that show it. A `GET /bytes/N` gets its head
/// here and its body as the socket takes it: the second value. (The
/// bench's Linux guest answers with this too.)
pub fn respond(
    out: &mut Vec<u8>,
    origin: &Origin,
    req: &Request,
    stats_json: impl FnOnce() -> String,
) -> (Status, Option<Generated>) {
    let status = route(req);
    let keep_alive = req.keep_alive;
    let allow = allowed(req.path).unwrap_or(ALLOW);
    // HEAD: the same head as GET, Content-Length included, without the body (RFC 9110 9.3.2).
    let with_body = req.method != Method::Head;
    let bytes = bulk::bytes_path(req.path);
    if let (Status::Ok, Method::Get | Method::Head, BytesPath::Size(n)) = (status, req.method, bytes) {
        write_head(out, origin, status, Some(bulk::CONTENT_TYPE), n, keep_alive, allow);
        return (status, (with_body && n > 0).then(|| Generated::new(n)));
    }
    let (content_type, body): (&str, String) = match (status, req.method, req.path) {
        (Status::Ok, Method::Options, _) => {
            // RFC 9110 9.3.7: the methods allowed, and no content.
            write_head(out, origin, status, None, 0, keep_alive, allow);
            return (status, None);
        }
        (Status::Ok, _, "/stats") => ("application/json", stats_json()),
        (Status::Ok, _, "/stats.html") => ("text/html; charset=utf-8", stats_page(&stats_json())),
        (Status::Ok, _, _) => ("text/html; charset=utf-8", INDEX_HTML.into()),
        (Status::BadRequest, _, _) if bytes == BytesPath::TooLarge => ("text/plain", bulk::too_large_body()),
        (status, _, _) => ("text/plain", format!("{} {}\n", status.code(), status.reason())),
    };
    if allow == ALLOW {
        write_response(out, origin, status, content_type, body.as_bytes(), with_body, keep_alive);
    } else {
        // `/sink`'s 405 names its own methods.
        write_head(out, origin, status, Some(content_type), body.len() as u64, keep_alive, allow);
        if with_body {
            out.extend_from_slice(body.as_bytes());
        }
    }
    (status, None)
}

/// Appends an error's answer, after which the connection closes.
pub(super) fn error_response(out: &mut Vec<u8>, origin: &Origin, status: Status) {
    let body = format!("{} {}\n", status.code(), status.reason());
    write_response(out, origin, status, "text/plain", body.as_bytes(), true, false);
}

/// Who answers, and when: the fields every response carries.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The `Server` header (the bench's Linux guest sends the same bytes under its own name).
    pub server: &'a str,
    /// The `Date` header (RFC 9110 6.6.1), or none without a reliable clock.
    pub date: Option<HttpDate>,
}

/// Appends one response to `out`: the status line, the headers, and the
/// body unless `with_body` is false (HEAD). RFC 9112 4 (status line),
/// RFC 9110 8.6 (Content-Length).
pub fn write_response(
    out: &mut Vec<u8>,
    origin: &Origin,
    status: Status,
    content_type: &str,
    body: &[u8],
    with_body: bool,
    keep_alive: bool,
) {
    write_head(out, origin, status, Some(content_type), body.len() as u64, keep_alive, ALLOW);
    if with_body {
        out.extend_from_slice(body);
    }
}

/// Appends a response's status line and headers to `out`: `Allow` (the
/// resource's methods, `allow`) on 405 and on 200 without a content type
/// (OPTIONS).
fn write_head(
    out: &mut Vec<u8>,
    origin: &Origin,
    status: Status,
    content_type: Option<&str>,
    length: u64,
    keep_alive: bool,
    allow: &str,
) {
    let head = format!("HTTP/1.1 {} {}\r\nServer: {}\r\n", status.code(), status.reason(), origin.server);
    out.extend_from_slice(head.as_bytes());
    if let Some(date) = &origin.date {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(content_type) = content_type {
        out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    }
    if status == Status::MethodNotAllowed || content_type.is_none() {
        out.extend_from_slice(format!("Allow: {allow}\r\n").as_bytes());
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let tail = format!("Content-Length: {length}\r\nCache-Control: no-store\r\nConnection: {connection}\r\n\r\n");
    out.extend_from_slice(tail.as_bytes());
}

/// `/stats.html`: the JSON, shown as a page that reloads every two seconds.
fn stats_page(json: &str) -> String {
    let escaped = json.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Skiff: stats</title></head>\n\
<body style=\"font-family: sans-serif; margin: 1em\"><h1>Skiff</h1><p><a href=\"/\">home</a> · refreshes every 2 s · \
<a href=\"/stats\">JSON</a></p>\n<pre id=\"stats\">{escaped}</pre></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_page_is_self_contained_and_fits_a_phone() {
        let page = INDEX_HTML;
        assert!(page.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#));
        // Nothing from elsewhere: no scripts, styles, fonts or images to fetch.
        for external in ["http://", "https://", "src=", "@import", "url("] {
            assert!(!page.contains(external), "the page refers to something outside: {external}");
        }
        assert!(page.contains("fetch('/stats'"), "the page does not poll /stats");
        assert!(page.len() < 8 * 1024, "the page grew to {} bytes", page.len());
    }

    #[test]
    fn every_element_the_script_fills_exists() {
        let page = INDEX_HTML;
        let mut rest = page;
        let mut ids = 0;
        while let Some(at) = rest.find("$('") {
            let name = &rest[at + 3..];
            let name = &name[..name.find('\'').unwrap()];
            assert!(page.contains(&format!("id=\"{name}\"")), "the script fills #{name}, which the page lacks");
            ids += 1;
            rest = &rest[at + 3..];
        }
        assert!(ids >= 10, "only {ids} elements filled");
    }

    #[test]
    fn the_root_answers_with_the_live_page() {
        let mut out = Vec::new();
        let req = Request { method: Method::Get, path: "/", keep_alive: true, expect_continue: false };
        let origin = Origin { server: "Skiff", date: None };
        let (status, body) = respond(&mut out, &origin, &req, || String::from("{}"));
        assert_eq!((status, body), (Status::Ok, None));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(text.ends_with(INDEX_HTML));
    }
}
