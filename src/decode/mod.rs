//! Decoding of a MoEngage Streams request body.
//!
//! Tolerant by design: unknown fields are ignored, scalar fields accept strings, numbers and
//! booleans (numbers keep their exact digits), attribute maps keep any JSON value (borrowed
//! as raw JSON text, made compact when the sender pretty-printed it: see
//! [`compact_json`](crate::decode::json::compact_json)),
//! invalid UTF-8 is replaced rather than rejected ([`lossy_utf8`]). A body that is not a Streams
//! request is a [`DecodeError`]; one event that cannot be read never sinks the others: it is
//! returned as an error for that event alone.
//!
//! Two decoders give the same results: a fast one on [`crate::decode::scan`] for the text it is sure
//! of (the usual case), and serde_json for everything else, which also words every error.

pub mod json;
pub mod scan;

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::decode::json::{KeyText, compact_json, compact_spaced};
use crate::decode::scan::{Scanner, Str, Unsure};

/// Why a body is not a Streams request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is JSON but not an object (a Streams request is {{\"events\": [...], ...}})")]
    NotObject,
    #[error("the body has no \"events\" field")]
    NoEvents,
    #[error("\"events\" is not an array")]
    EventsNotArray,
    #[error("the request has {count} events; at most {limit} are accepted per request")]
    TooManyEvents { count: usize, limit: usize },
}

/// Most events one request may hold (MoEngage sends about 100): bounds the work and memory
/// of one invocation.
pub const MAX_EVENTS: usize = 10_000;

/// Most keys one attribute map may hold: a bound on the work and memory of one event (each key
/// costs about 200 bytes while the event is mapped). Real events have tens; a map this large
/// is truncated to fit Segment's 32 KB anyway (`"k":0,` is 6 bytes).
pub const MAX_ATTRIBUTES: usize = 10_000;

/// Turns request bytes into text, replacing invalid UTF-8 sequences with U+FFFD.
/// Borrows when the bytes are valid UTF-8 (the usual case).
pub fn lossy_utf8(bytes: &[u8]) -> Cow<'_, str> {
    // `from_utf8` validates much faster than the lossy chunk iterator; fall back to the
    // lossy conversion only for the rare body with invalid bytes.
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// A Streams request: the envelope, with each event still raw.
#[derive(Debug)]
pub struct StreamsRequest<'a> {
    pub app_name: Option<Text<'a>>,
    pub source: Option<Text<'a>>,
    pub moe_request_id: Option<Text<'a>>,
    /// Each event's JSON text, as sent. Read each with [`StreamsRequest::event`] (as
    /// [`crate::mapping::map_request`] does): when the body was skimmed, that is what checks it;
    /// [`decode_event`] alone does not.
    pub events: Vec<&'a str>,
    /// The whole body.
    body: &'a str,
    /// Whether the events that are objects were only skimmed ([`Scanner::skim`]): their text
    /// is valid JSON once [`StreamsRequest::event`] has read each of them.
    skimmed: bool,
}

/// The envelope's fields, read by [`EnvelopeSeed`].
#[derive(Debug, Default)]
struct Envelope<'a> {
    app_name: Option<Text<'a>>,
    source: Option<Text<'a>>,
    moe_request_id: Option<Text<'a>>,
    events: Option<EventList<'a>>,
}

impl<'a> Envelope<'a> {
    /// The request field (other than `events`) that `key` names: its place among the three
    /// (for telling a repeated one) and its slot.
    fn field(&mut self, key: &str) -> Option<(usize, &mut Option<Text<'a>>)> {
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
enum EventList<'a> {
    Array(Vec<&'a str>),
    TooMany(usize),
    NotArray,
}

/// Reads the envelope keeping at most `max_events` events (a derived `Deserialize` could
/// not take the limit).
struct EnvelopeSeed {
    max_events: usize,
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
struct EventListSeed {
    max_events: usize,
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

/// Decodes the envelope of a Streams body in one pass, keeping at most `max_events` events
/// (more: [`DecodeError::TooManyEvents`]); each event stays raw.
pub fn decode_request(body: &str, max_events: usize) -> Result<StreamsRequest<'_>, DecodeError> {
    let body = object_body(body)?;
    let (env, skimmed) = match fast_envelope(body, max_events) {
        Ok(env) if !matches!(env.events, Some(EventList::TooMany(_))) => (env, true),
        // Unsure, or too many events: then whether the body is JSON at all decides the
        // answer, and the events are not read one by one.
        _ => (serde_envelope(body, max_events)?, false),
    };
    match env.events {
        None => Err(DecodeError::NoEvents),
        Some(EventList::NotArray) => Err(DecodeError::EventsNotArray),
        Some(EventList::TooMany(count)) => Err(DecodeError::TooManyEvents {
            count,
            limit: max_events,
        }),
        Some(EventList::Array(events)) => Ok(StreamsRequest {
            app_name: env.app_name,
            source: env.source,
            moe_request_id: env.moe_request_id,
            events,
            body,
            skimmed,
        }),
    }
}

/// The body without a byte-order mark, when it is (or may be) a JSON object; else why not.
fn object_body(body: &str) -> Result<&str, DecodeError> {
    let body = body.trim_start_matches('\u{feff}');
    let first = body.bytes().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(DecodeError::Empty),
        Some(b'{') => Ok(body),
        Some(_) => {
            // Valid JSON that is not an object, or not JSON at all: say which.
            Err(match serde_json::from_str::<IgnoredAny>(body) {
                Ok(_) => DecodeError::NotObject,
                Err(e) => DecodeError::NotJson(e.to_string()),
            })
        }
    }
}

/// A body opened for mapping: as a stream of events read one by one in a single pass (the
/// usual case), or decoded whole ([`decode_request`]) when it cannot be streamed.
pub enum Opened<'a> {
    Stream(EventStream<'a>),
    Whole(StreamsRequest<'a>),
}

/// Why a stream of events stops before its end.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamStop {
    /// The body is not a Streams request (as [`decode_request`] says).
    Invalid(DecodeError),
    /// The body is one to decode whole instead ([`decode_request`]): a request field after
    /// `events`, more events than the limit, or text the scanner is not sure of where
    /// serde_json reads it. What was read so far is to be thrown away.
    Restart,
}

/// Opens a body: when its request fields come before `events` and that is an array (as
/// MoEngage sends it), as a stream whose events are read, and checked, once each
/// ([`EventStream::next_event`]); otherwise decoded whole.
pub fn open_request(body: &str, max_events: usize) -> Result<Opened<'_>, DecodeError> {
    let body = object_body(body)?;
    let mut stream = EventStream {
        body,
        scanner: Scanner::new(body),
        env: Envelope::default(),
        events: Vec::new(),
        max_events,
        checked: false,
        first: true,
        done: false,
    };
    match stream.open() {
        Ok(true) => Ok(Opened::Stream(stream)),
        Ok(false) | Err(Unsure) => decode_request(body, max_events).map(Opened::Whole),
    }
}

/// The events of a body, read in one pass: the request fields first, then each event in
/// full as it is asked for, then the rest of the body ([`EventStream::finish`]).
pub struct EventStream<'a> {
    body: &'a str,
    scanner: Scanner<'a>,
    /// The request fields read before `events` (its own `events` stays `None`).
    env: Envelope<'a>,
    /// The text of each event read so far.
    events: Vec<&'a str>,
    max_events: usize,
    /// Whether serde_json found the whole body valid (asked once, when the scanner was
    /// unsure of an event).
    checked: bool,
    first: bool,
    done: bool,
}

impl<'a> EventStream<'a> {
    /// The request's `app_name` and `moe_request_id` (what every message carries).
    pub fn header(&self) -> (Option<Text<'a>>, Option<Text<'a>>) {
        (self.env.app_name.clone(), self.env.moe_request_id.clone())
    }

    /// Reads the request fields up to `events`: `Ok(true)` when it is an array, and the
    /// scanner is inside it.
    fn open(&mut self) -> Result<bool, Unsure> {
        let s = &mut self.scanner;
        s.expect(b'{')?;
        if s.eat(b'}') {
            return Ok(false);
        }
        let mut seen = [false; 3];
        loop {
            let key = s.string()?;
            s.expect(b':')?;
            let key = plain(key)?;
            if key == "events" {
                return Ok(s.eat(b'['));
            }
            match self.env.field(key) {
                Some((i, slot)) => {
                    if std::mem::replace(&mut seen[i], true) {
                        return Err(Unsure);
                    }
                    *slot = fast_text(s)?;
                }
                None => {
                    s.value()?;
                }
            }
            if !s.eat(b',') {
                return Ok(false);
            }
        }
    }

    /// When the scanner cannot go on: the body is invalid, or one to decode whole.
    fn stop(&self) -> StreamStop {
        match check_body(self.body) {
            Err(e) => StreamStop::Invalid(e),
            Ok(()) => StreamStop::Restart,
        }
    }

    /// The next event: its text, and the event read from it (or why it could not be). An
    /// event the scanner is not sure of has the whole body checked by serde_json first.
    #[allow(clippy::type_complexity)]
    pub fn next_event(
        &mut self,
    ) -> Result<Option<(&'a str, Result<Event<'a>, EventError>)>, StreamStop> {
        if self.done {
            return Ok(None);
        }
        let s = &mut self.scanner;
        let end = if std::mem::replace(&mut self.first, false) {
            s.eat(b']')
        } else if s.eat(b',') {
            false
        } else if s.eat(b']') {
            true
        } else {
            return Err(self.stop());
        };
        if end {
            self.done = true;
            return Ok(None);
        }
        if self.events.len() == self.max_events {
            // Too many: decoded whole, the answer is the one it always was.
            return Err(StreamStop::Restart);
        }
        let start = s.mark();
        if s.peek() == Some(b'{') {
            if let Ok(event) = fast_event_at(s) {
                let raw = s.since(start);
                self.events.push(raw);
                return Ok(Some((raw, Ok(event))));
            }
            s.reset(start);
        }
        // Not an object (checked by the scanner), or one it is unsure of: only skimmed, so
        // the whole body is checked (once) before serde_json reads the event.
        let skimmed = s.peek() == Some(b'{');
        let Ok(raw) = (if skimmed { s.skim() } else { s.value() }) else {
            return Err(self.stop());
        };
        if skimmed && !std::mem::replace(&mut self.checked, true) {
            check_body(self.body).map_err(StreamStop::Invalid)?;
        }
        self.events.push(raw);
        Ok(Some((raw, serde_event(raw))))
    }

    /// After the last event: reads the rest of the body and gives the request, every event
    /// in it read and valid.
    pub fn finish(mut self) -> Result<StreamsRequest<'a>, StreamStop> {
        while self.next_event()?.is_some() {}
        if self.rest().is_err() {
            return Err(self.stop());
        }
        let Envelope {
            app_name,
            source,
            moe_request_id,
            ..
        } = self.env;
        Ok(StreamsRequest {
            app_name,
            source,
            moe_request_id,
            events: self.events,
            body: self.body,
            skimmed: false,
        })
    }

    /// The members after `events`, to the end of the body. A request field there would
    /// change every message already read: such a body is left to be decoded whole.
    fn rest(&mut self) -> Result<(), Unsure> {
        let s = &mut self.scanner;
        while s.eat(b',') {
            let key = plain(s.string()?)?;
            s.expect(b':')?;
            if key == "events" || self.env.field(key).is_some() {
                return Err(Unsure);
            }
            s.value()?;
        }
        s.expect(b'}')?;
        if s.at_end() { Ok(()) } else { Err(Unsure) }
    }
}

/// Whether serde_json reads the whole body as a Streams envelope (else why it is not JSON).
fn check_body(body: &str) -> Result<(), DecodeError> {
    serde_envelope(body, usize::MAX).map(drop)
}

/// The envelope as serde_json reads it, or why the body is not JSON.
fn serde_envelope(body: &str, max_events: usize) -> Result<Envelope<'_>, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(body);
    EnvelopeSeed { max_events }
        .deserialize(&mut de)
        .and_then(|env| de.end().map(|()| env))
        .map_err(|e| DecodeError::NotJson(e.to_string()))
}

impl<'a> StreamsRequest<'a> {
    /// Whether the body is JSON (a skimmed body is checked by serde_json; any other was
    /// checked while decoding): what a caller that stops before reading every event asks.
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.skimmed {
            check_body(self.body)?;
        }
        Ok(())
    }

    /// The request's `app_name` and `moe_request_id` (what every message carries).
    pub fn header(&self) -> (Option<Text<'a>>, Option<Text<'a>>) {
        (self.app_name.clone(), self.moe_request_id.clone())
    }

    /// Reads the event `raw` (one of [`StreamsRequest::events`]), for the first time. An
    /// object the scanner is not sure of, in a skimmed body, has the whole body checked first
    /// (once: `checked` remembers): a body that is not JSON is an error whichever event
    /// shows it. After every event was read this way, each is valid JSON and
    /// [`decode_event`] reads it again.
    pub fn event(
        &self,
        raw: &'a str,
        checked: &mut bool,
    ) -> Result<Result<Event<'a>, EventError>, DecodeError> {
        if let Ok(event) = fast_event(raw) {
            return Ok(Ok(event));
        }
        // Only objects were skimmed: any other event was checked by the scanner.
        if self.skimmed && raw.starts_with('{') && !*checked {
            check_body(self.body)?;
            *checked = true;
        }
        Ok(serde_event(raw))
    }
}

/// [`EnvelopeSeed`] on the scanner: the same envelope, or [`Unsure`] (also for a repeated
/// field or an escaped key, which serde_json then reads or words as an error).
fn fast_envelope(body: &str, max_events: usize) -> Result<Envelope<'_>, Unsure> {
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
/// and so checked, when they are mapped: [`StreamsRequest::event`]).
fn fast_event_list<'a>(
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
fn plain(key: Str<'_>) -> Result<&str, Unsure> {
    if key.escaped {
        Err(Unsure)
    } else {
        Ok(key.inner)
    }
}

/// An optional scalar field ([`Text`]) on the scanner: `null` is `None`, as serde's.
fn fast_text<'a>(s: &mut Scanner<'a>) -> Result<Option<Text<'a>>, Unsure> {
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

/// Decodes one raw event (valid JSON text: one [`StreamsRequest::event`] has read). A
/// non-object (string, null, array, number) is an error.
pub fn decode_event(raw: &str) -> Result<Event<'_>, EventError> {
    fast_event(raw).or_else(|Unsure| serde_event(raw))
}

/// [`decode_event`] by serde_json alone (for the text the scanner is not sure of).
fn serde_event(raw: &str) -> Result<Event<'_>, EventError> {
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
fn fast_event(raw: &str) -> Result<Event<'_>, Unsure> {
    let mut s = Scanner::new(raw);
    let e = fast_event_at(&mut s)?;
    if !s.at_end() {
        return Err(Unsure);
    }
    Ok(e)
}

/// [`fast_event`] on the object at the scanner's place, which it moves past it.
#[inline(never)] // one copy for the stream and for events read alone
fn fast_event_at<'a>(s: &mut Scanner<'a>) -> Result<Event<'a>, Unsure> {
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
fn fast_attributes<'a>(s: &mut Scanner<'a>) -> Result<Attributes<'a>, Unsure> {
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
fn compact_if(raw: &str, spaced: bool) -> RawJson<'_> {
    match spaced {
        true => compact_spaced(raw),
        false => Cow::Borrowed(raw),
    }
}

/// The text of a string's escaped content (as between its quotes), as serde_json reads it.
fn unescape(inner: &str) -> Result<String, Unsure> {
    serde_json::from_str::<String>(&format!("\"{inner}\"")).map_err(|_| Unsure)
}

fn json_kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

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
fn compact_raw(raw: &str) -> RawJson<'_> {
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
        struct V;
        impl<'de> Visitor<'de> for V {
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
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` as an event to decode, once both decoders are seen to read it the same (when the
    /// scanner is sure of it).
    fn checked(text: &str) -> Result<&str, serde_json::Error> {
        serde_json::from_str::<IgnoredAny>(text)?;
        if let Ok(fast) = fast_event(text) {
            let slow: Event<'_> = serde_json::from_str(text)?;
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text}");
        }
        Ok(text)
    }

    #[test]
    fn envelope_and_events() {
        let body = r#"{"app_name":"Shop","source":"MOENGAGE","moe_request_id":"r1",
            "events":[{"event_name":"A"}, "junk", null],"extra":{"x":1}}"#;
        let req = decode_request(body, MAX_EVENTS).unwrap();
        assert_eq!(req.app_name.unwrap().as_str(), Some("Shop"));
        assert_eq!(req.moe_request_id.unwrap().as_str(), Some("r1"));
        assert_eq!(req.events.len(), 3);
        assert!(decode_event(req.events[0]).is_ok());
        let err = decode_event(req.events[1]).unwrap_err();
        assert!(err.0.contains("a string"), "{err}");
        assert!(decode_event(req.events[2]).unwrap_err().0.contains("null"));
    }

    #[test]
    fn not_streams_bodies_are_errors() {
        assert_eq!(
            decode_request("", MAX_EVENTS).unwrap_err(),
            DecodeError::Empty
        );
        assert_eq!(
            decode_request("  \n", MAX_EVENTS).unwrap_err(),
            DecodeError::Empty
        );
        assert!(matches!(
            decode_request("hello", MAX_EVENTS).unwrap_err(),
            DecodeError::NotJson(_)
        ));
        assert!(matches!(
            decode_request(r#"{"events":[1,2"#, MAX_EVENTS).unwrap_err(),
            DecodeError::NotJson(_)
        ));
        assert_eq!(
            decode_request("[]", MAX_EVENTS).unwrap_err(),
            DecodeError::NotObject
        );
        assert_eq!(
            decode_request("{}", MAX_EVENTS).unwrap_err(),
            DecodeError::NoEvents
        );
        assert_eq!(
            decode_request(r#"{"events":null}"#, MAX_EVENTS).unwrap_err(),
            DecodeError::NoEvents
        );
        assert_eq!(
            decode_request(r#"{"events":{}}"#, MAX_EVENTS).unwrap_err(),
            DecodeError::EventsNotArray
        );
    }

    #[test]
    fn envelope_fields_are_read_as_a_derived_struct_would() {
        let req = decode_request(
            r#"{"moe_request_id":12,"x":{"events":1},"app_name":null,"events":[]}"#,
            MAX_EVENTS,
        )
        .unwrap();
        assert_eq!(req.moe_request_id.unwrap().as_str(), Some("12"));
        assert!(req.app_name.is_none() && req.events.is_empty());
        for bad in [
            r#"{"events":[],"events":[]}"#,
            r#"{"app_name":"a","app_name":"b","events":[]}"#,
            r#"{"events":[]} x"#,
            r#"{"events":[],}"#,
        ] {
            assert!(
                matches!(
                    decode_request(bad, MAX_EVENTS),
                    Err(DecodeError::NotJson(_))
                ),
                "{bad}"
            );
        }
        // The limit is the caller's.
        assert_eq!(
            decode_request(r#"{"events":[1,2,3]}"#, 2).unwrap_err(),
            DecodeError::TooManyEvents { count: 3, limit: 2 }
        );
    }

    #[test]
    fn event_count_is_bounded() {
        let body = |n: usize| format!("{{\"events\":[{}]}}", vec!["1"; n].join(","));
        assert_eq!(
            decode_request(&body(MAX_EVENTS), MAX_EVENTS)
                .unwrap()
                .events
                .len(),
            MAX_EVENTS
        );
        assert_eq!(
            decode_request(&body(MAX_EVENTS + 5), MAX_EVENTS).unwrap_err(),
            DecodeError::TooManyEvents {
                count: MAX_EVENTS + 5,
                limit: MAX_EVENTS
            }
        );
        // The rest of the body is still read: a syntax error after the limit is reported.
        let broken = format!("{{\"events\":[{},]}}", vec!["1"; MAX_EVENTS + 1].join(","));
        assert!(matches!(
            decode_request(&broken, MAX_EVENTS).unwrap_err(),
            DecodeError::NotJson(_)
        ));
    }

    #[test]
    fn attribute_maps_are_bounded_and_never_trees() {
        let map = |n: usize| {
            let entries: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
            format!("{{\"event_attributes\":{{{}}}}}", entries.join(","))
        };
        let ok = map(MAX_ATTRIBUTES);
        let e = decode_event(checked(&ok).unwrap()).unwrap();
        assert_eq!(e.event_attributes.entries().len(), MAX_ATTRIBUTES);
        let over = map(MAX_ATTRIBUTES + 2);
        let e = decode_event(checked(&over).unwrap()).unwrap();
        assert!(matches!(e.event_attributes, Attributes::TooMany(n) if n == MAX_ATTRIBUTES + 2));
        let e = decode_event(
            checked(r#"{"event_attributes":[ 1, {"a" : [2, 3]}, "x y" ],"user_attributes":1.50}"#)
                .unwrap(),
        )
        .unwrap();
        assert!(
            matches!(&e.event_attributes, Attributes::Other(v) if v.as_ref() == r#"[1,{"a":[2,3]},"x y"]"#)
        );
        assert!(matches!(&e.user_attributes, Attributes::Other(v) if v.as_ref() == "1.5"));
    }

    #[test]
    fn lenient_scalars() {
        let e = decode_event(
            checked(
                r#"{"uid": 4000052183.0, "event_time": 1700000000, "event_uuid": "a\"b",
                    "event_name": {"x": 1}, "event_code": true, "push_id": [1]}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(e.uid.unwrap().as_str(), Some("4000052183"));
        assert_eq!(e.event_time.unwrap(), Text::Num("1700000000".into()));
        assert_eq!(e.event_uuid.unwrap().as_str(), Some("a\"b"));
        assert_eq!(e.event_name.unwrap(), Text::Unusable(r#"{"x": 1}"#));
        assert_eq!(e.event_code.unwrap().as_str(), Some("true"));
        assert_eq!(e.push_id.unwrap().as_str(), None);
    }

    #[test]
    fn attributes_keep_order_and_raw_values() {
        let e = decode_event(
            checked(
                r#"{"event_attributes": {"b": [1, 2], "a": {"n": null}, "c\u0041": 1.50},
                    "user_attributes": "oops", "device_attributes": null}"#,
            )
            .unwrap(),
        )
        .unwrap();
        let ea = e.event_attributes.entries();
        assert_eq!(ea.len(), 3);
        assert_eq!(ea[0].0, "b");
        // Compact, whatever the sender's formatting; numbers verbatim.
        assert_eq!(ea[0].1.as_ref(), "[1,2]");
        assert!(matches!(ea[0].1, Cow::Owned(_)));
        assert_eq!(ea[1].1.as_ref(), r#"{"n":null}"#);
        assert_eq!(ea[2].0, "cA");
        assert_eq!(ea[2].1.as_ref(), "1.50");
        assert!(matches!(&e.user_attributes, Attributes::Other(v) if v.as_ref() == "\"oops\""));
        assert!(matches!(e.device_attributes, Attributes::Absent));
    }

    #[test]
    fn lossy_utf8_replaces_invalid_bytes() {
        let bytes = b"{\"events\":[{\"event_name\":\"caf\xff\"}]}";
        let text = lossy_utf8(bytes);
        let req = decode_request(&text, MAX_EVENTS).unwrap();
        let e = decode_event(req.events[0]).unwrap();
        assert_eq!(e.event_name.unwrap().as_str(), Some("caf\u{fffd}"));
    }

    #[test]
    fn numbers_keep_their_digits() {
        let e = decode_event(
            checked(
                r#"{"uid": 123456789012345678901234567890, "push_id": 123456789012345678901234567891,
                    "email_id": -0.0, "mobile_number": 919876543210}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            e.uid.unwrap().as_str(),
            Some("123456789012345678901234567890")
        );
        assert_eq!(
            e.push_id.unwrap().as_str(),
            Some("123456789012345678901234567891")
        );
        assert_eq!(e.email_id.unwrap().as_str(), Some("0"));
        assert_eq!(e.mobile_number.unwrap().as_str(), Some("919876543210"));
    }

    #[test]
    fn exact_number_text() {
        let t = number_text_exact;
        assert_eq!(t("4000052183.0").as_deref(), Some("4000052183"));
        assert_eq!(t("4000052183.000").as_deref(), Some("4000052183"));
        assert_eq!(t("1.50").as_deref(), Some("1.5"));
        assert_eq!(t("-12.0").as_deref(), Some("-12"));
        assert_eq!(t("-0").as_deref(), Some("0"));
        assert_eq!(t("0.10").as_deref(), Some("0.1"));
        assert_eq!(
            t("123456789012345678901234567890.25").as_deref(),
            Some("123456789012345678901234567890.25")
        );
        assert_eq!(t("1e3").as_deref(), Some("1000"));
        assert_eq!(t("1.5E-7").as_deref(), Some("0.00000015"));
        assert_eq!(t("1e400"), None);
        // Already as written: borrowed, not copied.
        for n in ["1764351178", "-12", "1.5", "0", "0.25", "-0.5"] {
            assert!(matches!(t(n), Some(Cow::Borrowed(b)) if b == n), "{n}");
        }
        for (n, want) in [("1.0", "1"), ("-0.0", "0"), ("2.50", "2.5"), ("1.", "1")] {
            assert!(matches!(t(n), Some(Cow::Owned(o)) if o == want), "{n}");
        }
        assert_eq!(t("-"), None);
        assert_eq!(t("1.x"), None);
    }

    #[test]
    fn text_from_raw_kinds() {
        assert_eq!(Text::from_raw(r#""a""#).unwrap(), Text::Str("a".into()));
        assert!(matches!(
            Text::from_raw(r#""a\"b""#).unwrap(),
            Text::Str(Cow::Owned(s)) if s == "a\"b"
        ));
        assert_eq!(Text::from_raw("true").unwrap(), Text::Bool(true));
        assert_eq!(Text::from_raw("[ ]").unwrap(), Text::Unusable("[ ]"));
        assert_eq!(Text::from_raw("null").unwrap(), Text::Unusable("null"));
        assert!(Text::from_raw(r#""\ud800""#).is_err());
    }

    #[test]
    fn number_text_renders_integral_floats_plainly() {
        assert_eq!(number_text(123.0), "123");
        assert_eq!(number_text(1.5), "1.5");
        assert_eq!(number_text(-0.0), "0");
    }

    /// Where the scanner is sure, it reads what serde_json reads; it is never sure of what
    /// serde_json refuses (a skimmed body: once it is sure of every event in it). Checked on
    /// every fixture body and on 10,000 mutations of them.
    #[test]
    fn the_scanner_agrees_with_serde_json() {
        let mut bodies = Vec::new();
        for dir in ["tests/fixtures", "tests/fixtures/options"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.to_string_lossy().into_owned();
                if name.ends_with(".json")
                    && !name.contains(".expected")
                    && !name.contains(".options")
                {
                    bodies.push(std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        assert!(bodies.len() > 20);
        let (mut sure, mut events_sure) = (0, 0);
        let mut check = |body: &str| {
            for max in [MAX_EVENTS, 2] {
                let fast = fast_envelope(body, max);
                let slow = serde_envelope(body, max);
                if let Ok(fast) = &fast
                    && !matches!(fast.events, Some(EventList::TooMany(_)))
                    && match &fast.events {
                        Some(EventList::Array(events)) => events
                            .iter()
                            .all(|raw| !raw.starts_with('{') || fast_event(raw).is_ok()),
                        _ => true,
                    }
                {
                    sure += 1;
                    let slow = slow
                        .as_ref()
                        .unwrap_or_else(|e| panic!("serde refuses: {e}\n{body}"));
                    assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{body}");
                }
            }
            let Ok(env) = serde_envelope(body, MAX_EVENTS) else {
                return;
            };
            let Some(EventList::Array(events)) = env.events else {
                return;
            };
            for raw in events {
                if let Ok(fast) = fast_event(raw) {
                    events_sure += 1;
                    let slow: Event<'_> = serde_json::from_str(raw)
                        .unwrap_or_else(|e| panic!("serde refuses: {e}\n{raw}"));
                    assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{raw}");
                }
            }
        };
        for body in &bodies {
            check(body);
        }
        // Mutations: bytes that matter to the grammar, put anywhere.
        let alphabet = b"{}[]\":,\\ \n\t0123456789-+.eEtrufalsn\x01\x7fu/abcd";
        let mut rng = fastrand::Rng::with_seed(13);
        for _ in 0..10_000 {
            let mut bytes = bodies[rng.usize(..bodies.len())].clone().into_bytes();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..bytes.len());
                let b = alphabet[rng.usize(..alphabet.len())];
                match rng.u8(..3) {
                    0 => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            if let Ok(body) = String::from_utf8(bytes) {
                check(&body);
            }
        }
        assert!(sure > 5_000 && events_sure > 20_000, "{sure} {events_sure}");
    }
}
