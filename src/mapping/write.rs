//! The JSON writer of the outgoing messages: the same bytes as `serde_json::to_string` of the
//! same values, written straight into one buffer. A message is mostly text copied from the
//! request (attribute values, which are already compact JSON, and strings without escapes),
//! so the writer's work is finding out, a word at a time, that a string needs no escaping and
//! copying it whole.

use std::fmt::Write as _;

use crate::decode::scan::next_special;

/// A value that writes itself as JSON.
pub trait WriteJson {
    fn write_json(&self, out: &mut String);
}

/// `value` as JSON, in a buffer of `capacity` bytes to start with.
pub fn to_json<T: WriteJson + ?Sized>(value: &T, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    value.write_json(&mut out);
    out
}

/// Writes `s` as a JSON string, escaped as serde_json escapes it: `"`, `\`, and control
/// characters (`\b \f \n \r \t`, else `\u00XX`); everything else as it is.
pub fn write_str(out: &mut String, s: &str) {
    let Some(first) = next_special(s.as_bytes(), 0) else {
        // Most strings need no escape: one reservation, one copy.
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    };
    out.push('"');
    let (clean, mut rest) = s.split_at(first);
    out.push_str(clean);
    // The bytes JSON escapes are the ones the scanner stops at in strings.
    while let Some(at) = next_special(rest.as_bytes(), 0) {
        // `at` is an ASCII byte: a char boundary.
        let (clean, tail) = rest.split_at(at);
        out.push_str(clean);
        let b = tail.as_bytes()[0];
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        rest = &tail[1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// Writes an unsigned integer (only counts: off the hot path).
pub fn write_u64(out: &mut String, n: u64) {
    let _ = write!(out, "{n}");
}

/// Writes the members of a JSON object one by one: `{`, then `"key":value` separated by
/// commas, then `}` on [`Object::end`].
pub struct Object<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> Object<'o> {
    pub fn new(out: &'o mut String) -> Self {
        out.push('{');
        Object { out, first: true }
    }

    /// Starts a member whose key needs no escaping (a name of this crate's own): the caller
    /// writes the value into the returned buffer.
    pub fn key(&mut self, key: &'static str) -> &mut String {
        debug_assert!(next_special(key.as_bytes(), 0).is_none());
        self.out.push_str(if self.first { "\"" } else { ",\"" });
        self.first = false;
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    /// Starts a member whose key is known to need no escaping (see `map::key_is_clean`).
    /// Kept apart from [`Object::key`], which it mirrors: one body for both changed what is
    /// inlined and cost ~1.5% of `moe2seg map`'s instructions (measured with callgrind).
    pub fn clean_key(&mut self, key: &str) -> &mut String {
        debug_assert!(
            next_special(key.as_bytes(), 0).is_none(),
            "a key said to be clean needs escaping: {key:?}"
        );
        self.out.reserve(key.len() + 4);
        self.out.push_str(if self.first { "\"" } else { ",\"" });
        self.first = false;
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    /// Starts a member whose key is any text (escaped as needed).
    pub fn any_key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, key);
        self.out.push(':');
        self.out
    }

    /// A member with a string value.
    pub fn str(&mut self, key: &'static str, value: &str) {
        write_str(self.key(key), value);
    }

    /// A member with a string value, left out when `None`.
    pub fn opt_str(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    /// A member with a string value, `null` when `None`.
    pub fn str_or_null(&mut self, key: &'static str, value: Option<&str>) {
        match value {
            Some(v) => self.str(key, v),
            None => self.key(key).push_str("null"),
        }
    }

    /// A member with any value.
    pub fn value<T: WriteJson + ?Sized>(&mut self, key: &'static str, value: &T) {
        value.write_json(self.key(key));
    }

    pub fn end(self) {
        self.out.push('}');
    }
}

impl WriteJson for str {
    fn write_json(&self, out: &mut String) {
        write_str(out, self);
    }
}

impl WriteJson for String {
    fn write_json(&self, out: &mut String) {
        write_str(out, self);
    }
}

impl WriteJson for bool {
    fn write_json(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl WriteJson for usize {
    fn write_json(&self, out: &mut String) {
        write_u64(out, *self as u64);
    }
}

impl<T: WriteJson> WriteJson for [T] {
    fn write_json(&self, out: &mut String) {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            v.write_json(out);
        }
        out.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é😀\u{2028}\u{7f}/");
        let cases = [
            "",
            "plain",
            "exactly8",
            "sixteen bytes ok",
            "\"",
            "\\",
            "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}",
            "seventeen bytes \" at the end",
            "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
            "ÿÿÿÿÿÿÿÿ\"ÿ",
            &all,
        ];
        for s in cases {
            let mut out = String::new();
            write_str(&mut out, s);
            assert_eq!(out, serde(s), "{s:?}");
        }
        // Every single byte value at every offset of a word.
        for b in 0u8..0x80 {
            for pos in 0..17 {
                let mut s = "x".repeat(17);
                s.replace_range(pos..pos + 1, &char::from(b).to_string());
                let mut out = String::new();
                write_str(&mut out, &s);
                assert_eq!(out, serde(&s), "{b:#x} at {pos}");
            }
        }
    }

    #[test]
    fn numbers_and_objects() {
        for n in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let mut out = String::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let mut out = String::new();
        let mut o = Object::new(&mut out);
        o.str("a", "x\"");
        o.opt_str("skipped", None);
        o.str_or_null("n", None);
        o.value("list", &["p".to_owned(), "q".to_owned()][..]);
        o.any_key("k\"ey").push('1');
        o.value("count", &12usize);
        o.value("b", &false);
        o.end();
        assert_eq!(
            out,
            r#"{"a":"x\"","n":null,"list":["p","q"],"k\"ey":1,"count":12,"b":false}"#
        );
        let mut empty = String::new();
        Object::new(&mut empty).end();
        assert_eq!(empty, "{}");
    }
}
