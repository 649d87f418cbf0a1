//! Scalar fields as text ([`Text`]: strings, numbers with their exact digits, booleans) and
//! attribute maps as raw JSON ([`Attributes`]).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::MAX_ATTRIBUTES;
use super::json::{KeyText, compact_json};

/// A scalar read leniently: a string (borrowed when it has no escapes), a number or a
/// boolean, rendered as text. Numbers keep their exact digits (`123456789012345678901234567890`
/// stays as it is; integral decimals such as `4000052183.0` lose the fraction, see
/// [`number_text_exact`]). An object or array becomes [`Text::Unusable`] holding its raw JSON,
/// rather than an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text<'a> {
    Str(Cow<'a, str>),
    Num(Cow<'a, str>),
    Bool(bool),
    /// An array, object or `null` (the raw JSON, as sent).
    Unusable(&'a str),
}

impl<'a> Text<'a> {
    /// The text, if the value was a string, number or boolean.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Text::Str(s) => Some(s),
            Text::Num(s) => Some(s),
            Text::Bool(true) => Some("true"),
            Text::Bool(false) => Some("false"),
            Text::Unusable(_) => None,
        }
    }

    /// The text, trimmed, when not empty.
    pub fn non_empty(&self) -> Option<&str> {
        self.as_str().map(str::trim).filter(|s| !s.is_empty())
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Text::Num(_))
    }

    /// Reads one raw JSON value (as serde_json validated it). Errors only for a string
    /// whose escapes cannot be decoded (a lone surrogate).
    pub fn from_raw(raw: &'a str) -> Result<Text<'a>, serde_json::Error> {
        Ok(match raw.as_bytes().first() {
            Some(b'"') => {
                // A valid raw string starts and ends with an ASCII quote.
                let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or("");
                if inner.contains('\\') {
                    Text::Str(Cow::Owned(serde_json::from_str::<String>(raw)?))
                } else {
                    Text::Str(Cow::Borrowed(inner))
                }
            }
            Some(b't') => Text::Bool(true),
            Some(b'f') => Text::Bool(false),
            Some(b'-' | b'0'..=b'9') => match number_text_exact(raw) {
                Some(n) => Text::Num(n),
                None => Text::Unusable(raw),
            },
            _ => Text::Unusable(raw),
        })
    }
}

/// Renders a JSON number as text; integral floats lose their `.0`.
pub fn number_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// Renders a JSON number literal as text without losing digits: integers and decimals are
/// kept digit for digit (trailing fraction zeros and a zero fraction dropped, `-0` is `0`);
/// only exponent forms (`1e3`) go through `f64`. `None` for a literal that is not a finite
/// number.
pub fn number_text_exact(literal: &str) -> Option<Cow<'_, str>> {
    if literal.bytes().any(|b| b == b'e' || b == b'E') {
        let f: f64 = literal.parse().ok()?;
        return f.is_finite().then(|| Cow::Owned(number_text(f)));
    }
    let (negative, digits) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (int, frac, dot) = match digits.split_once('.') {
        Some((int, frac)) => (int, frac, true),
        None => (digits, "", false),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = frac.trim_end_matches('0');
    let zero = trimmed.is_empty() && int.bytes().all(|b| b == b'0');
    // Already as it would be written (the usual case): borrowed.
    if !(negative && zero) && (!dot || (!trimmed.is_empty() && trimmed.len() == frac.len())) {
        return Some(Cow::Borrowed(literal));
    }
    let mut s = String::with_capacity(literal.len());
    if negative && !zero {
        s.push('-');
    }
    s.push_str(int);
    if !trimmed.is_empty() {
        s.push('.');
        s.push_str(trimmed);
    }
    Some(Cow::Owned(s))
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through the raw value: serde would turn an integer beyond u64 into a lossy f64.
        let raw = <&'de RawValue>::deserialize(d)?;
        Text::from_raw(raw.get()).map_err(de::Error::custom)
    }
}

/// A raw attribute value: valid, compact JSON text, borrowed from the body, or a compact copy
/// of an array or object the sender pretty-printed.
pub type RawJson<'a> = Cow<'a, str>;

/// Makes a raw value compact (only arrays and objects can hold whitespace: raw values of
/// scalars never start or end with it). Removing whitespace outside strings keeps valid JSON
/// valid.
pub(super) fn compact_raw(raw: &str) -> RawJson<'_> {
    if !matches!(raw.as_bytes().first(), Some(b'[' | b'{')) {
        return Cow::Borrowed(raw);
    }
    compact_json(raw)
}

/// An attribute map kept in input order with values untouched.
#[derive(Debug, Default)]
pub enum Attributes<'a> {
    /// Absent or `null`.
    #[default]
    Absent,
    Map(Vec<(Cow<'a, str>, RawJson<'a>)>),
    /// Present but not an object (its compact JSON, kept so nothing is lost).
    Other(RawJson<'a>),
    /// An object of more than [`MAX_ATTRIBUTES`] keys (how many): the event is rejected.
    TooMany(usize),
}

impl<'a> Attributes<'a> {
    pub fn entries(&self) -> &[(Cow<'a, str>, RawJson<'a>)] {
        match self {
            Attributes::Map(v) => v,
            _ => &[],
        }
    }

    /// The first value whose key equals `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &**v)
    }

    /// The value for `key` as text, when it is a string or number and not empty.
    pub fn get_text(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).and_then(raw_scalar_text)
    }
}

/// A raw JSON scalar as text: strings unescaped, numbers rendered; `None` for other kinds
/// and for empty strings.
pub fn raw_scalar_text(raw: &str) -> Option<Cow<'_, str>> {
    // A raw value is one valid JSON value already: no deserializer needed.
    let out = match Text::from_raw(raw).ok()? {
        Text::Str(Cow::Borrowed(s)) => Cow::Borrowed(s.trim()),
        Text::Str(Cow::Owned(s)) => Cow::Owned(s.trim().to_owned()),
        Text::Num(s) => s,
        Text::Bool(_) | Text::Unusable(_) => return None,
    };
    (!out.is_empty()).then_some(out)
}

impl<'de: 'a, 'a> Deserialize<'de> for Attributes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AttributesVisitor)
    }
}

/// Reads an attribute map: an object (its values kept as raw JSON), or anything else kept
/// whole as compact JSON ([`Attributes::Other`]); `null` is [`Attributes::Absent`].
struct AttributesVisitor;

impl<'de> Visitor<'de> for AttributesVisitor {
    type Value = Attributes<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attribute map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(k) = map.next_key::<KeyText<'de>>()? {
            if out.len() == MAX_ATTRIBUTES {
                let mut count = out.len() + 1;
                map.next_value::<IgnoredAny>()?;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    count += 1;
                }
                return Ok(Attributes::TooMany(count));
            }
            let v: &'de RawValue = map.next_value()?;
            out.push((k.0, compact_raw(v.get())));
        }
        Ok(Attributes::Map(out))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Attributes::Absent)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Attributes::Absent)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        other(serde_json::to_string(v).map_err(E::custom)?)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        other(serde_json::to_string(v).map_err(E::custom)?)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        other(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        other(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        other(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        other(serde_json::to_string(&v).map_err(E::custom)?)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Kept as compact JSON text, never as a tree (a `Value` per element costs
        // 16 times the bytes of `[1,1,1,…]`).
        let mut text = String::from("[");
        while let Some(v) = seq.next_element::<&'de RawValue>()? {
            if text.len() > 1 {
                text.push(',');
            }
            text.push_str(&compact_raw(v.get()));
        }
        text.push(']');
        other(text)
    }
}

/// `json` is valid JSON: written by serde_json, or compact elements in brackets.
fn other<'a, E: de::Error>(json: String) -> Result<Attributes<'a>, E> {
    Ok(Attributes::Other(Cow::Owned(json)))
}
