//! JSON text utilities for raw values the mapper passes through without a parse into a tree:
//! [`compact_json`] (the bytes Segment receives) and [`canonical_json`] (what a content hash
//! is taken of).

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Whitespace outside strings is what makes a JSON text pretty-printed.
fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The same JSON without whitespace outside strings, borrowed when there is none.
/// Strings, numbers (`1.50` stays `1.50`) and key order are kept byte for byte, so a value
/// sent pretty-printed yields the same bytes as the value sent compact. `raw` must be valid
/// JSON (as serde_json's raw values are).
pub fn compact_json(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    // Most values hold no byte at or below a space at all: tell that in one branch-free
    // pass (JSON strings hold no raw control characters, so only whitespace is that low).
    if !bytes
        .chunks(16)
        .any(|c| c.iter().fold(false, |any, &b| any | (b <= b' ')))
    {
        return Cow::Borrowed(raw);
    }
    compact_spaced(raw)
}

/// [`compact_json`] for a value known to hold whitespace (the scanner saw it, see
/// [`crate::decode::scan::Scanner::value_spaced`]): copies the runs between whitespace outside
/// strings, jumping over each string to its closing quote a word at a time. Borrowed when
/// the whitespace was only inside strings.
pub fn compact_spaced(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    // `bytes[run..i]` is kept and not yet copied.
    let mut run = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                // To the closing quote: the next `"` not escaped (a `\` skips the byte
                // after it; in valid JSON nothing else below a space is in a string).
                let mut j = i + 1;
                i = loop {
                    match crate::decode::scan::next_special(bytes, j) {
                        Some(k) if bytes[k] == b'"' => break k + 1,
                        Some(k) if bytes[k] == b'\\' => j = k + 2,
                        Some(k) => j = k + 1,
                        None => break bytes.len(),
                    }
                };
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                if out.capacity() == 0 {
                    out.reserve_exact(bytes.len());
                }
                out.extend_from_slice(&bytes[run..i]);
                i += 1;
                while bytes.get(i).copied().is_some_and(is_json_whitespace) {
                    i += 1;
                }
                run = i;
            }
            _ => i += 1,
        }
    }
    if out.capacity() == 0 {
        return Cow::Borrowed(raw);
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    // Only ASCII bytes were removed from valid UTF-8, so `out` is valid UTF-8.
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(raw),
    }
}

/// The canonical text of a JSON value: compact, every object's keys sorted (byte order; of
/// repeated keys the last wins), strings and numbers as serde_json writes them. Equal to
/// `serde_json::from_str::<Value>(raw)?.to_string()`, so content hashes stay what they were,
/// but without building the tree: one pass, one buffer, each object's members sorted in
/// place. Errors as serde_json does (invalid JSON, nesting deeper than 128).
pub fn canonical_json(raw: &str) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(raw.len());
    let mut de = serde_json::Deserializer::from_str(raw);
    Canonical { out: &mut out }.deserialize(&mut de)?;
    de.end()?;
    // Everything written is valid UTF-8 (serde_json's escaping, ASCII punctuation, copies).
    String::from_utf8(out).map_err(|e| de::Error::custom(e.to_string()))
}

/// Writes the canonical text of one value at the end of `out`.
struct Canonical<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Canonical<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Canonical<'_> {
    fn scalar<T: serde::Serialize + ?Sized, E: de::Error>(self, v: &T) -> Result<(), E> {
        serde_json::to_writer(&mut *self.out, v).map_err(E::custom)
    }
}

impl<'de> Visitor<'de> for Canonical<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(&v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(&v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(&v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(&v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(v)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let at = self.out.len();
            if !first {
                self.out.push(b',');
            }
            if seq
                .next_element_seed(Canonical {
                    out: &mut *self.out,
                })?
                .is_none()
            {
                self.out.truncate(at);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Each member's value is written after the previous one; then the members are
        // re-emitted in key order.
        let region = self.out.len();
        let mut members: Vec<(Cow<'de, str>, Range<usize>)> = Vec::new();
        while let Some(key) = map.next_key::<KeyText<'de>>()? {
            let start = self.out.len();
            map.next_value_seed(Canonical {
                out: &mut *self.out,
            })?;
            members.push((key.0, start - region..self.out.len() - region));
        }
        members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let values = self.out.split_off(region);
        self.out.reserve(values.len() + members.len() * 8 + 2);
        self.out.push(b'{');
        let mut first = true;
        for (i, (key, range)) in members.iter().enumerate() {
            // Of repeated keys the last one wins (as in a map); the sort is stable.
            if members.get(i + 1).is_some_and(|(next, _)| next == key) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *self.out, key.as_ref()).map_err(de::Error::custom)?;
            self.out.push(b':');
            self.out
                .write_all(&values[range.clone()])
                .map_err(de::Error::custom)?;
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// An object key, borrowed when it has no escapes.
pub(crate) struct KeyText<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for KeyText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeyText(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeyText(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(KeyText(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn compact_json_removes_only_whitespace_outside_strings() {
        assert!(matches!(compact_json(r#"{"a":[1,2]}"#), Cow::Borrowed(_)));
        assert!(matches!(
            compact_json(r#"["a b","c\td"]"#),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            compact_json("{\n\t\"a b\" : [ 1.50 ,\r\n \"x \\\" y\" ] }"),
            r#"{"a b":[1.50,"x \" y"]}"#
        );
        assert_eq!(compact_json(r#"[ "\\", 1 ]"#), r#"["\\",1]"#);
    }

    /// The byte-by-byte compaction `compact_spaced` replaced: the oracle it is held to.
    fn compact_reference(raw: &str) -> String {
        let (mut in_string, mut escaped) = (false, false);
        let mut out = String::new();
        for c in raw.chars() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
                out.push(c);
            } else if c == '"' {
                in_string = true;
                out.push(c);
            } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn compact_spaced_matches_the_byte_by_byte_compaction() {
        // Whitespace of every kind at every place outside and inside strings, escapes
        // (quotes, backslashes, \u) at string ends and word boundaries, multibyte text.
        let pieces = [
            " ",
            "\t",
            "\n",
            "\r\n",
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "1.50",
            "-0",
            "true",
            "null",
            r#""""#,
            r#""a b""#,
            r#""x\" y""#,
            r#""\\""#,
            r#""\\\"""#,
            r#""\u00e9 é""#,
            r#""1234567\"""#,
            r#""12345678""#,
            r#""a\\ b\\""#,
            "\"ü ü\"",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let want = compact_reference(&text);
            let got = compact_spaced(&text);
            assert_eq!(got, want, "{text:?}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), want == text, "{text:?}");
            assert_eq!(compact_json(&text), want, "{text:?}");
        }
    }

    fn value_text(raw: &str) -> String {
        serde_json::from_str::<Value>(raw).unwrap().to_string()
    }

    #[test]
    fn canonical_equals_the_value_round_trip() {
        for raw in [
            r#"{"b":1,"a":{"d":[1,2,{"z":null,"y":true}],"c":"x"}}"#,
            "{ \"b\" : 1.50 ,\n \"a\" : -0 , \"c\": -0.0, \"d\": 1e3, \"e\": 12345678901234567890123 }",
            r#"{"k":1,"k":2,"j":[],"i":{}}"#,
            r#"{"\u00e9":1,"e":2,"\u0041":"\u0041\n\ud83d\ude00"}"#,
            r#"[{"b":2,"a":1},[],"s",18446744073709551615,-9223372036854775808]"#,
            "\"top\"",
            "null",
        ] {
            assert_eq!(canonical_json(raw).unwrap(), value_text(raw), "{raw}");
        }
    }

    #[test]
    fn canonical_ignores_key_order_and_whitespace() {
        let a = canonical_json(r#"{"x":{"b":[1, 2],"a":"1"},"y":2}"#).unwrap();
        let b = canonical_json("{\n\t\"y\": 2,\n\t\"x\": {\"a\": \"1\", \"b\": [\n1,\n2\n]}\n}")
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, r#"{"x":{"a":"1","b":[1,2]},"y":2}"#);
    }

    #[test]
    fn canonical_errors_like_serde_json() {
        assert!(canonical_json("{").is_err());
        assert!(canonical_json("[1] x").is_err());
        assert!(canonical_json(&format!("{}{}", "[".repeat(200), "]".repeat(200))).is_err());
        assert!(canonical_json(r#"["\ud800"]"#).is_err());
    }
}
