//! One event: its fields read leniently, by the scanner when it is sure of the text, else by
//! serde_json.

use std::borrow::Cow;

use serde::Deserialize;

use super::MAX_ATTRIBUTES;
use super::envelope::{fast_text, plain};
use super::json::compact_spaced;
use super::scan::{Scanner, Unsure};
use super::text::{Attributes, RawJson, Text};

/// One MoEngage event. Every field is optional; the mapper decides what is required.
#[derive(Debug, Default, Deserialize)]
pub struct Event<'a> {
    #[serde(default, borrow)]
    pub event_name: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub event_code: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub event_uuid: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub event_time: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub event_type: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub event_source: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub uid: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub email_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub mobile_number: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub push_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub event_attributes: Attributes<'a>,
    #[serde(default, borrow)]
    pub user_attributes: Attributes<'a>,
    #[serde(default, borrow)]
    pub device_attributes: Attributes<'a>,
}

/// Why one event could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

/// Decodes one raw event (valid JSON text: one [`super::StreamsRequest::event`] has read). A
/// non-object (string, null, array, number) is an error.
pub fn decode_event(raw: &str) -> Result<Event<'_>, EventError> {
    fast_event(raw).or_else(|Unsure| serde_event(raw))
}

/// [`decode_event`] by serde_json alone (for the text the scanner is not sure of).
pub(super) fn serde_event(raw: &str) -> Result<Event<'_>, EventError> {
    if !raw.starts_with('{') {
        return Err(EventError(format!(
            "event is not a JSON object (found {})",
            json_kind(raw)
        )));
    }
    serde_json::from_str(raw).map_err(|e| EventError(e.to_string()))
}

/// [`Event`]'s derived `Deserialize` on the scanner: the same event, or [`Unsure`] (also for
/// a repeated field, which serde_json words as the event's error).
pub(super) fn fast_event(raw: &str) -> Result<Event<'_>, Unsure> {
    let mut s = Scanner::new(raw);
    let e = fast_event_at(&mut s)?;
    if !s.at_end() {
        return Err(Unsure);
    }
    Ok(e)
}

/// [`fast_event`] on the object at the scanner's place, which it moves past it.
#[inline(never)] // one copy for the stream and for events read alone
pub(super) fn fast_event_at<'a>(s: &mut Scanner<'a>) -> Result<Event<'a>, Unsure> {
    let mut e = Event::default();
    let mut seen = 0u16;
    s.object(|s, key| {
        let field = match plain(key)? {
            "event_name" => 0,
            "event_code" => 1,
            "event_uuid" => 2,
            "event_time" => 3,
            "event_type" => 4,
            "event_source" => 5,
            "uid" => 6,
            "email_id" => 7,
            "mobile_number" => 8,
            "push_id" => 9,
            "event_attributes" => 10,
            "user_attributes" => 11,
            "device_attributes" => 12,
            _ => return s.value().map(drop),
        };
        if seen & (1 << field) != 0 {
            return Err(Unsure);
        }
        seen |= 1 << field;
        let text = match field {
            0 => &mut e.event_name,
            1 => &mut e.event_code,
            2 => &mut e.event_uuid,
            3 => &mut e.event_time,
            4 => &mut e.event_type,
            5 => &mut e.event_source,
            6 => &mut e.uid,
            7 => &mut e.email_id,
            8 => &mut e.mobile_number,
            9 => &mut e.push_id,
            10 => return fast_attributes(s).map(|a| e.event_attributes = a),
            11 => return fast_attributes(s).map(|a| e.user_attributes = a),
            _ => return fast_attributes(s).map(|a| e.device_attributes = a),
        };
        *text = fast_text(s)?;
        Ok(())
    })?;
    Ok(e)
}

/// [`Attributes`]' `Deserialize` on the scanner, for the kinds it reads the same way; a
/// number or an escaped string in place of a map is left to serde_json.
pub(super) fn fast_attributes<'a>(s: &mut Scanner<'a>) -> Result<Attributes<'a>, Unsure> {
    if s.peek() != Some(b'{') {
        let (raw, spaced) = s.value_spaced()?;
        return match raw.as_bytes()[0] {
            b'n' => Ok(Attributes::Absent),
            b't' | b'f' => Ok(Attributes::Other(Cow::Borrowed(raw))),
            b'[' => Ok(Attributes::Other(compact_if(raw, spaced))),
            b'"' if !raw.contains('\\') => Ok(Attributes::Other(Cow::Borrowed(raw))),
            _ => Err(Unsure),
        };
    }
    let mut out = Vec::with_capacity(16);
    let mut count = 0usize;
    s.object(|s, key| {
        count += 1;
        // serde_json reads the keys past the limit too (a lone surrogate in one is an error).
        if count > MAX_ATTRIBUTES && key.escaped {
            return Err(Unsure);
        }
        let (value, spaced) = s.value_spaced()?;
        if count <= MAX_ATTRIBUTES {
            let key = match key.escaped {
                false => Cow::Borrowed(key.inner),
                true => Cow::Owned(unescape(key.inner)?),
            };
            out.push((key, compact_if(value, spaced)));
        }
        Ok(())
    })?;
    Ok(if count > MAX_ATTRIBUTES {
        Attributes::TooMany(count)
    } else {
        Attributes::Map(out)
    })
}

/// A scanned value made compact: only one the scanner saw whitespace in needs copying.
pub(super) fn compact_if(raw: &str, spaced: bool) -> RawJson<'_> {
    match spaced {
        true => compact_spaced(raw),
        false => Cow::Borrowed(raw),
    }
}

/// The text of a string's escaped content (as between its quotes), as serde_json reads it.
pub(super) fn unescape(inner: &str) -> Result<String, Unsure> {
    serde_json::from_str::<String>(&format!("\"{inner}\"")).map_err(|_| Unsure)
}

pub(super) fn json_kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}
