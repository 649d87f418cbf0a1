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

mod envelope;
mod event;
pub mod export;
mod stream;
#[cfg(test)]
mod tests;
mod text;

pub use event::{Event, EventError, decode_event};
pub use stream::EventStream;
pub use text::{Attributes, RawJson, Text, number_text, number_text_exact, raw_scalar_text};

use envelope::{Envelope, EnvelopeSeed, EventList, fast_envelope};
use event::{fast_event, serde_event};

use std::borrow::Cow;

use serde::de::{DeserializeSeed, IgnoredAny};

use crate::decode::scan::{Scanner, Unsure};

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
    /// the mapping's `map_request` does): when the body was skimmed, that is what checks it;
    /// [`decode_event`] alone does not.
    pub events: Vec<&'a str>,
    /// The whole body.
    body: &'a str,
    /// Whether the events that are objects were only skimmed ([`Scanner::skim`]): their text
    /// is valid JSON once [`StreamsRequest::event`] has read each of them.
    skimmed: bool,
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
