//! A small JSON writer for `/stats`: objects, arrays, strings and numbers,
//! with strings escaped (RFC 8259, section 7).

use alloc::string::String;
use core::fmt::Write;

/// Builds one JSON object. Calls must nest properly (`begin_*`/`end_*`).
pub struct JsonWriter {
    out: String,
    /// Whether the current container already has a member (so the next needs a comma).
    has_member: alloc::vec::Vec<bool>,
}

impl Default for JsonWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonWriter {
    /// Starts the top-level object.
    pub fn new() -> Self {
        JsonWriter { out: String::from("{"), has_member: alloc::vec![false] }
    }

    fn key(&mut self, key: &str) {
        self.separator();
        escape(&mut self.out, key);
        self.out.push(':');
    }

    fn separator(&mut self) {
        if let Some(has) = self.has_member.last_mut() {
            if *has {
                self.out.push(',');
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
        let _ = write!(self.out, "{value}");
    }

    /// `"key": {` ... (close with `end_object`).
    pub fn begin_object(&mut self, key: &str) {
        self.key(key);
        self.out.push('{');
        self.has_member.push(false);
    }

    /// Closes an object.
    pub fn end_object(&mut self) {
        self.has_member.pop();
        self.out.push('}');
    }

    /// `"key": [` ... (close with `end_array`).
    pub fn begin_array(&mut self, key: &str) {
        self.key(key);
        self.out.push('[');
        self.has_member.push(false);
    }

    /// An object element of the current array: `{` ... (close with `end_object`).
    pub fn begin_array_object(&mut self) {
        self.separator();
        self.out.push('{');
        self.has_member.push(false);
    }

    /// `"key": null`.
    pub fn null(&mut self, key: &str) {
        self.key(key);
        self.out.push_str("null");
    }

    /// A string element of the current array.
    pub fn array_string(&mut self, value: &str) {
        self.separator();
        escape(&mut self.out, value);
    }

    /// Closes an array.
    pub fn end_array(&mut self) {
        self.has_member.pop();
        self.out.push(']');
    }

    /// Closes the top-level object and returns the text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
}
