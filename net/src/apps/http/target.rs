//! The request line's edges that `httparse` leaves to its caller: the
//! version (it knows only 1.0 and 1.1), the request-target's forms, and the
//! `Host` field's grammar.
//!
//! Ref: RFC 9112 2.3 (version), 3.2 (request-target, Host), RFC 9110 2.5
//! (version numbers), 4.2.1 (the http URI), 7.2 (Host).

/// The length of `HTTP/d.d` (RFC 9112 2.3: `HTTP-version = HTTP-name "/" DIGIT "." DIGIT`).
const VERSION_LEN: usize = 8;
/// Where the minor digit sits in `HTTP/d.d`.
const MINOR_AT: usize = 7;
/// Where the major digit sits in `HTTP/d.d`.
const MAJOR_AT: usize = 5;

/// What the request line's version says, when `httparse` refused it.
#[derive(Debug, PartialEq, Eq)]
pub enum Version {
    /// The line is still arriving, and what has come could be a version.
    Partial,
    /// `HTTP/1.x` with x above 1: to be read as 1.1 (RFC 9110 2.5); the
    /// index of the minor digit in the input.
    LaterMinor(usize),
    /// A well-formed version of another major: 505 (RFC 9110 15.6.6).
    OtherMajor,
    /// Not a version: 400.
    Invalid,
}

/// Looks at the version at the end of the request line in `head`.
pub fn version(head: &[u8]) -> Version {
    let (line, complete) = match head.iter().position(|&b| b == b'\n') {
        Some(end) => (&head[..end], true),
        None => (head, false),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // `method SP request-target SP HTTP-version` (RFC 9112 3): the version
    // is everything after the second space. Not the last space: while the
    // line is arriving, bytes after a bad version could hold more spaces,
    // and the verdict must not change as they come.
    let mut spaces = line.iter().enumerate().filter(|(_, b)| **b == b' ').map(|(i, _)| i);
    let Some(start) = spaces.nth(1).map(|sp| sp + 1) else { return Version::Invalid };
    let token = &line[start..];
    let fits = token.len() <= VERSION_LEN
        && token.iter().zip(b"HTTP/0.0").all(|(&b, &p)| if p == b'0' { b.is_ascii_digit() } else { b == p });
    match (fits, complete, token.len() == VERSION_LEN) {
        (false, _, _) | (true, true, false) => Version::Invalid,
        (true, false, _) => Version::Partial,
        (true, true, true) if token[MAJOR_AT] == b'1' => Version::LaterMinor(start + MINOR_AT),
        (true, true, true) => Version::OtherMajor,
    }
}

/// The path a request-target names, or `None` if Skiff cannot serve it.
/// Origin-form (`/path?query`) and absolute-form (`http://host/path`,
/// which a server MUST accept: RFC 9112 3.2.2) give the path without the
/// query; asterisk-form (`*`) is itself (only OPTIONS may use it, 3.2.4).
pub fn path(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(without_query(target));
    }
    if target == "*" {
        return Some(target);
    }
    // absolute-URI with the http or https scheme (RFC 9110 4.2): the
    // authority runs to the first '/', '?' or the end, and must not be empty
    // (4.2.1: a recipient MUST reject an http URI with an empty host).
    let (scheme, rest) = target.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(authority_end);
    if authority.is_empty() || !host_is_valid(authority.as_bytes()) || target.contains('#') {
        return None;
    }
    // An empty path is "/" (RFC 9112 3.2.1, by way of 3.3).
    let path = without_query(rest);
    Some(if path.is_empty() { "/" } else { path })
}

/// `target` without its query.
fn without_query(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

/// Whether `value` fits `Host = uri-host [ ":" port ]` (RFC 9110 7.2): the
/// characters of a reg-name, an IP literal or an IPv4 address, and a port.
/// Empty is allowed (RFC 9112 3.2). Checked by character class only: a
/// value no URI could hold (spaces, '/', '@', controls) is refused.
pub fn host_is_valid(value: &[u8]) -> bool {
    value.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn versions_httparse_refuses() {
        assert_eq!(version(b"GET / HTTP/1.2\r\n"), Version::LaterMinor(13));
        assert_eq!(version(b"GET / HTTP/1.9\n"), Version::LaterMinor(13));
        assert_eq!(version(b"GET / HTTP/2.0\r\n"), Version::OtherMajor);
        assert_eq!(version(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Version::OtherMajor);
        assert_eq!(version(b"GET / HTTP/0.9\r\n"), Version::OtherMajor);
        assert_eq!(version(b"GET / HTTP/1.2"), Version::Partial);
        assert_eq!(version(b"GET / HTTP/1."), Version::Partial);
        // Found by `cargo fuzz` (http_request): the version was taken after
        // the last space, so "GET / HC(GET /o HT" was Partial while its
        // prefix "GET / HC(GET /o" was refused.
        assert_eq!(version(b"GET / HC(GET /o HT"), Version::Invalid);
        assert_eq!(version(b"GET / HC(GET /o"), Version::Invalid);
        for bad in [&b"GET / HTTP/1.10\r\n"[..], b"GET / HTTP/1\r\n", b"GET / XTTP/1.1", b"GET / HTTP/1.x\r\n"] {
            assert_eq!(version(bad), Version::Invalid, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_forms_of_a_request_target() {
        assert_eq!(path("/stats?x=1"), Some("/stats"));
        assert_eq!(path("http://a/"), Some("/"));
        assert_eq!(path("HTTP://a:80"), Some("/"));
        assert_eq!(path("http://a?q"), Some("/"));
        assert_eq!(path("https://[::1]:8080/stats.html?x"), Some("/stats.html"));
        assert_eq!(path("*"), Some("*"));
        for bad in ["http:///x", "ftp://a/", "a:80", "http://a b/", "http://u@a/", "stats", "http://a/#f", ""] {
            assert_eq!(path(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_values() {
        for good in ["", "skiff", "10.0.2.15:80", "[::1]:8080", "a-b.example"] {
            assert!(host_is_valid(good.as_bytes()), "{good}");
        }
        for bad in ["a b", "a/b", "u@h", "a\tb", "\u{e9}"] {
            assert!(!host_is_valid(bad.as_bytes()), "{bad}");
        }
    }
}
