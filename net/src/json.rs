//! A small JSON writer for `/stats`: objects, arrays, strings and numbers,
//! with strings escaped (RFC 8259, section 7).
//!
//! `/stats` is rendered on every request for it, and its few hundred keys
//! and numbers made the render the largest part of answering it. So the
//! writer works on bytes: keys and values that need no escaping (nearly
//! all) are copied whole, and numbers, addresses and MACs are written by
//! hand rather than through `core::fmt`.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::wire::{IpAddress, IpEndpoint};

/// Containers open at once that the writer makes room for up front
/// (`/stats` nests three deep); deeper documents still work.
const MAX_NESTING: usize = 4;
/// `u64::MAX` has 20 decimal digits.
const MAX_DIGITS: usize = 20;

/// Builds one JSON object. Calls must nest properly (`begin_*`/`end_*`).
pub struct JsonWriter {
    /// The document so far: UTF-8, as it is only ever given `&str`s and ASCII.
    out: Vec<u8>,
    /// Whether the current container already has a member (so the next needs a comma).
    has_member: Vec<bool>,
}

impl Default for JsonWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonWriter {
    /// Starts the top-level object.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Starts the top-level object with room for `bytes` of output, so
    /// that a document of about that size is written without growing (and
    /// copying) its buffer on the way.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut out = Vec::with_capacity(bytes.max(1));
        out.push(b'{');
        let mut has_member = Vec::with_capacity(MAX_NESTING);
        has_member.push(false);
        JsonWriter { out, has_member }
    }

    fn key(&mut self, key: &str) {
        self.separator();
        escape(&mut self.out, key);
        self.out.push(b':');
    }

    fn separator(&mut self) {
        if let Some(has) = self.has_member.last_mut() {
            if *has {
                self.out.push(b',');
            }
            *has = true;
        }
    }

    /// `"key": "value"`.
    pub fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        escape(&mut self.out, value);
    }

    /// `"key": 123`.
    pub fn number(&mut self, key: &str, value: u64) {
        self.key(key);
        push_decimal(&mut self.out, value);
    }

    /// `"key": "10.0.2.15"`, or `"10.0.2.15/24"` with a prefix length;
    /// `""` without an address.
    pub fn ipv4(&mut self, key: &str, address: Option<Ipv4Addr>, prefix: Option<u8>) {
        self.key(key);
        self.out.push(b'"');
        if let Some(address) = address {
            push_ipv4(&mut self.out, address);
            if let Some(prefix) = prefix {
                self.out.push(b'/');
                push_decimal(&mut self.out, u64::from(prefix));
            }
        }
        self.out.push(b'"');
    }

    /// An IPv4 address as a string element of the current array.
    pub fn array_ipv4(&mut self, address: Ipv4Addr) {
        self.separator();
        self.out.push(b'"');
        push_ipv4(&mut self.out, address);
        self.out.push(b'"');
    }

    /// `"key": "52:54:00:12:34:56"`.
    pub fn mac(&mut self, key: &str, mac: [u8; 6]) {
        self.key(key);
        self.out.push(b'"');
        for (i, byte) in mac.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b':');
            }
            self.out.extend_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
        }
        self.out.push(b'"');
    }

    /// `"key": "10.0.2.2:40000"` (as smoltcp's `Display` writes it, IPv6
    /// in brackets); `""` without one.
    pub fn endpoint(&mut self, key: &str, endpoint: Option<IpEndpoint>) {
        match endpoint {
            Some(IpEndpoint { addr: IpAddress::Ipv4(address), port }) => {
                self.key(key);
                self.out.push(b'"');
                push_ipv4(&mut self.out, address);
                self.out.push(b':');
                push_decimal(&mut self.out, u64::from(port));
                self.out.push(b'"');
            }
            Some(other) => self.string(key, &alloc::format!("{other}")),
            None => self.string(key, ""),
        }
    }

    /// `"key": {` ... (close with `end_object`).
    pub fn begin_object(&mut self, key: &str) {
        self.key(key);
        self.out.push(b'{');
        self.has_member.push(false);
    }

    /// Closes an object.
    pub fn end_object(&mut self) {
        self.has_member.pop();
        self.out.push(b'}');
    }

    /// `"key": [` ... (close with `end_array`).
    pub fn begin_array(&mut self, key: &str) {
        self.key(key);
        self.out.push(b'[');
        self.has_member.push(false);
    }

    /// An object element of the current array: `{` ... (close with `end_object`).
    pub fn begin_array_object(&mut self) {
        self.separator();
        self.out.push(b'{');
        self.has_member.push(false);
    }

    /// `"key": null`.
    pub fn null(&mut self, key: &str) {
        self.key(key);
        self.out.extend_from_slice(b"null");
    }

    /// A string element of the current array.
    pub fn array_string(&mut self, value: &str) {
        self.separator();
        escape(&mut self.out, value);
    }

    /// Closes an array.
    pub fn end_array(&mut self) {
        self.has_member.pop();
        self.out.push(b']');
    }

    /// Closes the top-level object and returns the text.
    pub fn finish(mut self) -> String {
        self.out.push(b'}');
        // Always UTF-8 (see `out`); were it ever not, a lossy copy beats a panic.
        String::from_utf8(self.out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// Hexadecimal digits, lower case.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends an IPv4 address in dotted decimal.
fn push_ipv4(out: &mut Vec<u8>, address: Ipv4Addr) {
    for (i, octet) in address.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        push_decimal(out, u64::from(octet));
    }
}

/// Appends `value` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; MAX_DIGITS];
    let mut at = MAX_DIGITS;
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Whether a byte must be escaped in a JSON string (RFC 8259 7): the
/// quote, the backslash and the control characters. Bytes of multi-byte
/// UTF-8 sequences are all 0x80 or above, so they never are.
fn needs_escape(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// Appends `s` as a JSON string, quoted and escaped.
fn escape(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Nearly every string is clean: find out without a branch per byte
    // (which costs most under QEMU's emulation), then copy it whole.
    if !bytes.iter().fold(false, |dirty, &b| dirty | needs_escape(b)) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut clean = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[clean..i]);
        clean = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            control => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(control >> 4)]);
                out.push(HEX[usize::from(control & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[clean..]);
    out.push(b'"');
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn nested_objects_arrays_and_escapes() {
        let mut j = JsonWriter::new();
        j.number("a", 1);
        j.begin_object("b");
        j.string("c", "quote \" backslash \\ newline \n bell \u{7}");
        j.begin_array("d");
        j.array_string("x");
        j.array_string("y");
        j.begin_array_object();
        j.null("z");
        j.end_object();
        j.end_array();
        j.end_object();
        j.begin_object("empty");
        j.end_object();
        assert_eq!(
            j.finish(),
            r#"{"a":1,"b":{"c":"quote \" backslash \\ newline \n bell \u0007","d":["x","y",{"z":null}]},"empty":{}}"#
        );
    }

    #[test]
    fn numbers_are_written_in_decimal_at_both_ends_of_their_range() {
        let mut j = JsonWriter::new();
        for (key, value) in [("zero", 0), ("nine", 9), ("ten", 10), ("max", u64::MAX)] {
            j.number(key, value);
        }
        assert_eq!(j.finish(), r#"{"zero":0,"nine":9,"ten":10,"max":18446744073709551615}"#);
    }

    #[test]
    fn escapes_find_every_special_character_wherever_it_is() {
        let mut j = JsonWriter::new();
        j.string("\"k\"", "\"");
        j.string("", "");
        j.string("x", "a\u{1f}b\\c\rd\te");
        // Multi-byte UTF-8 is copied as it is (RFC 8259 7: only control characters, `"` and `\\` need escaping).
        j.string("π", "é→\u{10348}");
        let want = "{\"\\\"k\\\"\":\"\\\"\",\"\":\"\",\"x\":\"a\\u001fb\\\\c\\rd\\te\",\"π\":\"é→\u{10348}\"}";
        assert_eq!(j.finish(), want);
    }

    #[test]
    fn addresses_read_as_their_display_forms() {
        use smoltcp::wire::Ipv6Address;
        let address = Ipv4Addr::new(10, 0, 2, 15);
        let v4 = IpEndpoint::new(IpAddress::Ipv4(Ipv4Addr::new(192, 168, 100, 2)), 65535);
        let v6 = IpEndpoint::new(IpAddress::Ipv6(Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)), 80);
        let mut j = JsonWriter::new();
        j.ipv4("address", Some(address), Some(24));
        j.ipv4("gateway", Some(Ipv4Addr::new(0, 0, 0, 0)), None);
        j.ipv4("none", None, Some(24));
        j.begin_array("dns");
        j.array_ipv4(Ipv4Addr::new(255, 255, 255, 255));
        j.array_ipv4(address);
        j.end_array();
        j.mac("mac", [0x52, 0x54, 0x00, 0xab, 0x0c, 0xff]);
        j.endpoint("v4", Some(v4));
        j.endpoint("v6", Some(v6));
        j.endpoint("nobody", None);
        let want = alloc::format!(
            r#"{{"address":"{}","gateway":"0.0.0.0","none":"","dns":["255.255.255.255","{address}"],"mac":"52:54:00:ab:0c:ff","v4":"{v4}","v6":"{v6}","nobody":""}}"#,
            smoltcp::wire::Ipv4Cidr::new(address, 24)
        );
        assert_eq!(j.finish(), want);
    }
}
