//! The request fields around `events` (`app_name`, `source`, `moe_request_id`), read by
//! serde_json or by the scanner.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::json::KeyText;
use super::scan::{Scanner, Str, Unsure};
use super::text::Text;

/// The envelope's fields, read by [`EnvelopeSeed`].
#[derive(Debug, Default)]
pub(super) struct Envelope<'a> {
    pub(super) app_name: Option<Text<'a>>,
    pub(super) source: Option<Text<'a>>,
    pub(super) moe_request_id: Option<Text<'a>>,
    pub(super) events: Option<EventList<'a>>,
}

impl<'a> Envelope<'a> {
    /// The request field (other than `events`) that `key` names: its place among the three
    /// (for telling a repeated one) and its slot.
    pub(super) fn field(&mut self, key: &str) -> Option<(usize, &mut Option<Text<'a>>)> {
        match key {
            "app_name" => Some((0, &mut self.app_name)),
            "source" => Some((1, &mut self.source)),
            "moe_request_id" => Some((2, &mut self.moe_request_id)),
            _ => None,
        }
    }
}

/// The `events` field: an array of raw events, or a marker that it was something else or
/// longer than the limit.
#[derive(Debug)]
pub(super) enum EventList<'a> {
    Array(Vec<&'a str>),
    TooMany(usize),
    NotArray,
}

/// Reads the envelope keeping at most `max_events` events (a derived `Deserialize` could
/// not take the limit).
pub(super) struct EnvelopeSeed {
    pub(super) max_events: usize,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed {
    type Value = Envelope<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed {
    type Value = Envelope<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a MoEngage Streams request object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        /// As a derived Deserialize: a repeated field makes the body invalid.
        fn once<E: de::Error>(seen: &mut bool, name: &'static str) -> Result<(), E> {
            if std::mem::replace(seen, true) {
                return Err(E::duplicate_field(name));
            }
            Ok(())
        }
        let mut env = Envelope::default();
        let [
            mut seen_app_name,
            mut seen_source,
            mut seen_request_id,
            mut seen_events,
        ] = [false; 4];
        while let Some(key) = map.next_key::<KeyText<'de>>()? {
            match key.0.as_ref() {
                "app_name" => {
                    once(&mut seen_app_name, "app_name")?;
                    env.app_name = map.next_value()?;
                }
                "source" => {
                    once(&mut seen_source, "source")?;
                    env.source = map.next_value()?;
                }
                "moe_request_id" => {
                    once(&mut seen_request_id, "moe_request_id")?;
                    env.moe_request_id = map.next_value()?;
                }
                "events" => {
                    once(&mut seen_events, "events")?;
                    env.events = map.next_value_seed(EventListSeed {
                        max_events: self.max_events,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(env)
    }
}

/// Reads `events`: `None` for `null`, else an [`EventList`].
pub(super) struct EventListSeed {
    pub(super) max_events: usize,
}

impl<'de> DeserializeSeed<'de> for EventListSeed {
    type Value = Option<EventList<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EventListSeed {
    type Value = Option<EventList<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of events")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let cap = seq
            .size_hint()
            .unwrap_or(128)
            .min(self.max_events)
            .min(4096);
        let mut v = Vec::with_capacity(cap);
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if v.len() == self.max_events {
                // Count the rest without keeping them.
                let mut count = v.len() + 1;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    count += 1;
                }
                return Ok(Some(EventList::TooMany(count)));
            }
            v.push(raw.get());
        }
        Ok(Some(EventList::Array(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Some(EventList::NotArray))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(EventList::NotArray))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(EventList::NotArray))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(EventList::NotArray))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(EventList::NotArray))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(EventList::NotArray))
    }
}

/// [`EnvelopeSeed`] on the scanner: the same envelope, or [`Unsure`] (also for a repeated
/// field or an escaped key, which serde_json then reads or words as an error).
pub(super) fn fast_envelope(body: &str, max_events: usize) -> Result<Envelope<'_>, Unsure> {
    let mut env = Envelope::default();
    let mut seen = [false; 4];
    let mut s = Scanner::new(body);
    s.object(|s, key| {
        let key = plain(key)?;
        let (i, slot) = match env.field(key) {
            Some((i, slot)) => (i, Some(slot)),
            None if key == "events" => (3, None),
            None => return s.value().map(drop),
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(Unsure);
        }
        match slot {
            Some(slot) => *slot = fast_text(s)?,
            None => env.events = fast_event_list(s, max_events)?,
        }
        Ok(())
    })?;
    if !s.at_end() {
        return Err(Unsure);
    }
    Ok(env)
}

/// [`EventListSeed`] on the scanner; events that are objects are only skimmed (read in full,
/// and so checked, when they are mapped: [`super::StreamsRequest::event`]).
pub(super) fn fast_event_list<'a>(
    s: &mut Scanner<'a>,
    max_events: usize,
) -> Result<Option<EventList<'a>>, Unsure> {
    if s.peek() != Some(b'[') {
        // Anything but `null` is left to serde_json: it reads the value to the end, and a
        // number out of range or a lone surrogate in it makes the body not JSON.
        return match s.value()? {
            "null" => Ok(None),
            _ => Err(Unsure),
        };
    }
    let mut events = Vec::with_capacity(128);
    let mut count = 0usize;
    s.array(|s| {
        let raw = match s.peek() {
            Some(b'{') => s.skim()?,
            _ => s.value()?,
        };
        count += 1;
        if count <= max_events {
            events.push(raw);
        }
        Ok(())
    })?;
    Ok(Some(if count > max_events {
        EventList::TooMany(count)
    } else {
        EventList::Array(events)
    }))
}

/// A key without escapes (an escaped one is left to serde_json, which unescapes it).
pub(super) fn plain(key: Str<'_>) -> Result<&str, Unsure> {
    if key.escaped {
        Err(Unsure)
    } else {
        Ok(key.inner)
    }
}

/// An optional scalar field ([`Text`]) on the scanner: `null` is `None`, as serde's.
pub(super) fn fast_text<'a>(s: &mut Scanner<'a>) -> Result<Option<Text<'a>>, Unsure> {
    // A string without escapes, the usual case, is borrowed as it is (as `Text::from_raw`
    // would, without looking for escapes again).
    if s.peek() == Some(b'"') {
        let mark = s.mark();
        let text = s.string()?;
        if !text.escaped {
            return Ok(Some(Text::Str(Cow::Borrowed(text.inner))));
        }
        s.reset(mark);
    }
    match s.value()? {
        "null" => Ok(None),
        raw => Text::from_raw(raw).map(Some).map_err(|_| Unsure),
    }
}
