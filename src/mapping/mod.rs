//! Mapping: one MoEngage event → one Segment `track` message (serialized JSON).
//!
//! Names come from the [`catalog::Catalog`], property renames from the
//! [`properties::PropertyTable`]; both are data. Attribute values pass through verbatim
//! (borrowed raw JSON, made compact), so numbers, arrays and nested objects reach Segment
//! exactly as MoEngage sent them, whatever the sender's formatting. A value is never dropped
//! silently: when its key is taken by a different value it moves to `moe_<key>`.
//!
//! The steps, one file each: `event` (name, identity, time, properties, traits), `fields`
//! (placing values by key, nothing lost on a clash), `message` (the message's parts),
//! `truncate` (the 32 KB limit), `ids` (message ids), `repeats` (events sharing a uuid),
//! `identify` (per-user identify calls), `keys` (the per-request key cache); the data:
//! [`catalog`], [`properties`], the customer's [`options`]; [`time`] and [`mod@write`] (JSON)
//! helpers.

pub mod catalog;
pub mod options;
pub mod properties;
pub mod time;
pub mod write;

mod event;
mod fields;
mod identify;
mod ids;
mod keys;
mod message;
mod repeats;
pub mod single;
#[cfg(test)]
mod tests;
mod truncate;

pub use ids::{cap_request_text, content_id, is_usable_uuid, message_id, sha256_hex};
pub use keys::KeyCache;

use std::borrow::Cow;

use serde::Serialize;

use crate::decode::{self, DecodeError, Event, Opened, StreamStop, StreamsRequest, Text};

use event::{IdRule, Unsent, map_event};
use identify::Users;
use ids::{salvage_uuid, short_uuid, text, uuid_of};
use options::{Identify, MappingOptions};
use repeats::separate_repeated_uuids;

/// Segment refuses messages over 32 KB; stay a little under it.
pub const MAX_MESSAGE_BYTES: usize = 32_000;
/// Segment's limit on `messageId` length.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;
/// Namespace of every `messageId` this product emits (Segment dedups across sources).
pub const MESSAGE_ID_PREFIX: &str = "moe-";
/// Namespace of the hashed `messageId`s, inside [`MESSAGE_ID_PREFIX`].
pub const HASHED_ID_PREFIX: &str = "moe-h-";
/// Namespace of the `identify` messages' ids, inside [`MESSAGE_ID_PREFIX`].
pub const IDENTIFY_ID_PREFIX: &str = "moe-id-";
/// Most bytes of Segment messages one request may map to (a 6 MB body of ordinary events
/// maps to about its own size): bounds the memory of one invocation.
pub const MAX_MAPPED_BYTES: usize = 16 * 1024 * 1024;
/// Request-level strings copied into every message (`moe_request_id`, `app_name`) are cut
/// to this many characters ([`cap_request_text`]).
pub const MAX_REQUEST_TEXT_CHARS: usize = 256;
pub const LIBRARY_NAME: &str = "moengage-segment";
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why an event can never be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The event is not a JSON object, or its JSON could not be read.
    InvalidEvent,
    /// Neither `event_code` nor `event_name`: a track without `event` is dropped by Segment.
    NoEventName,
    /// No `uid`, `moengage_user_id` or `moengage_device_id`: Segment would drop it silently.
    NoIdentity,
    /// Over 32 KB even after dropping every non-spec attribute value.
    TooLarge,
    /// An attribute map with more than [`decode::MAX_ATTRIBUTES`] keys.
    TooManyAttributes,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidEvent => "invalid_event",
            RejectReason::NoEventName => "no_event_name",
            RejectReason::NoIdentity => "no_identity",
            RejectReason::TooLarge => "too_large",
            RejectReason::TooManyAttributes => "too_many_attributes",
        }
    }
}

/// An event that will not be sent, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rejected {
    pub event_uuid: Option<String>,
    pub reason: RejectReason,
    /// Position of the event in the request's `events` array.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A Segment message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub index: usize,
    pub event_uuid: Option<String>,
    pub message_id: String,
    /// The message as compact JSON (≤ [`MAX_MESSAGE_BYTES`]).
    pub json: String,
}

/// The result of mapping one Streams request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MapOutput {
    pub received: usize,
    pub moe_request_id: Option<String>,
    pub messages: Vec<Mapped>,
    pub rejected: Vec<Rejected>,
    /// Messages whose `event_uuid` another, different event of the request also carries:
    /// they get content-derived `messageId`s so Segment keeps each of them.
    pub duplicate_uuids: usize,
    /// Events the mapping options skip (`skip_events`, `only_events`): not sent, not
    /// rejected.
    pub filtered: usize,
    /// `identify` messages among `messages` (after every track), one per user with traits
    /// when the options ask for them.
    pub identifies: usize,
    /// `identify` messages left out because the request's messages reached
    /// [`Limits::max_mapped_bytes`] (the tracks carry the same traits).
    pub identifies_skipped: usize,
}

/// Bounds on one request's work and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// More events: [`DecodeError::TooManyEvents`].
    pub max_events: usize,
    /// More bytes of messages in all: [`MapError::MappedTooLarge`].
    pub max_mapped_bytes: usize,
}

impl Limits {
    /// A webhook request (the Lambda): fits a 128 MB function.
    pub const REQUEST: Limits = Limits {
        max_events: decode::MAX_EVENTS,
        max_mapped_bytes: MAX_MAPPED_BYTES,
    };
    /// No bound on a request as a whole (`moe2seg map` on a file of the user's own): the
    /// per-event bounds (32 KB messages, [`decode::MAX_ATTRIBUTES`]) still hold.
    pub const NONE: Limits = Limits {
        max_events: usize::MAX,
        max_mapped_bytes: usize::MAX,
    };
}

/// Why a body cannot be mapped at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("the request maps to more than {limit} bytes of Segment messages")]
    MappedTooLarge { limit: usize },
}

/// Request-level values every message carries.
#[derive(Debug, Clone, Copy)]
pub struct MapContext<'r> {
    /// Cut to [`MAX_REQUEST_TEXT_CHARS`].
    pub app_name: Option<&'r str>,
    /// Cut to [`MAX_REQUEST_TEXT_CHARS`].
    pub moe_request_id: Option<&'r str>,
    /// When the request was received (epoch ms): the timestamp of events without a usable
    /// `event_time`, and the reference for a plausible one.
    pub received_at_ms: i64,
    pub keys: &'r KeyCache,
    pub options: &'r MappingOptions,
    /// Where each message is written before it is copied out at its exact size: one buffer
    /// for the request, warm in the cache, and messages that waste no heap.
    pub scratch: &'r std::cell::RefCell<String>,
}

/// Decodes and maps a whole Streams body within `limits`, without mapping options.
pub fn map_body(body: &str, received_at_ms: i64, limits: Limits) -> Result<MapOutput, MapError> {
    map_body_with(body, received_at_ms, limits, &MappingOptions::default())
}

/// Decodes and maps a whole Streams body within `limits`, shaped by `options`.
pub fn map_body_with(
    body: &str,
    received_at_ms: i64,
    limits: Limits,
    options: &MappingOptions,
) -> Result<MapOutput, MapError> {
    let req = match decode::open_request(body, limits.max_events)? {
        Opened::Whole(req) => req,
        Opened::Stream(stream) => {
            let header = stream.header();
            match map_events(&header, stream, received_at_ms, limits, options) {
                Ok(out) => return Ok(out),
                Err(Halt::Source(StreamStop::Invalid(e))) => return Err(e.into()),
                // Decoded whole, the body gets the answer it always got (which of its
                // problems is reported first included).
                Err(Halt::Source(StreamStop::Restart) | Halt::TooLarge) => {
                    decode::decode_request(body, limits.max_events)?
                }
            }
        }
    };
    map_request(&req, received_at_ms, limits, options)
}

/// Maps every event of a decoded request, within `limits.max_mapped_bytes`.
pub fn map_request(
    req: &StreamsRequest<'_>,
    received_at_ms: i64,
    limits: Limits,
    options: &MappingOptions,
) -> Result<MapOutput, MapError> {
    let header = req.header();
    let source = Whole {
        req,
        next: 0,
        checked: false,
    };
    map_events(&header, source, received_at_ms, limits, options).map_err(|halt| match halt {
        Halt::Source(e) => MapError::Decode(e),
        // Events after this one may not have been read: a body that is not JSON says so.
        Halt::TooLarge => match req.check() {
            Err(e) => MapError::Decode(e),
            Ok(()) => MapError::MappedTooLarge {
                limit: limits.max_mapped_bytes,
            },
        },
    })
}

/// Where [`map_events`] takes the events from, one by one, and then the request.
trait Source<'a> {
    type Stop;
    type Req: std::borrow::Borrow<StreamsRequest<'a>>;
    #[allow(clippy::type_complexity)]
    fn next_event(
        &mut self,
    ) -> Result<Option<(&'a str, Result<Event<'a>, decode::EventError>)>, Self::Stop>;
    fn finish(self) -> Result<Self::Req, Self::Stop>;
}

/// The events of a request decoded whole.
struct Whole<'r, 'a> {
    req: &'r StreamsRequest<'a>,
    next: usize,
    checked: bool,
}

impl<'r, 'a> Source<'a> for Whole<'r, 'a> {
    type Stop = DecodeError;
    type Req = &'r StreamsRequest<'a>;
    fn next_event(
        &mut self,
    ) -> Result<Option<(&'a str, Result<Event<'a>, decode::EventError>)>, DecodeError> {
        let Some(&raw) = self.req.events.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        Ok(Some((raw, self.req.event(raw, &mut self.checked)?)))
    }
    fn finish(self) -> Result<Self::Req, DecodeError> {
        Ok(self.req)
    }
}

impl<'a> Source<'a> for decode::EventStream<'a> {
    type Stop = StreamStop;
    type Req = StreamsRequest<'a>;
    fn next_event(
        &mut self,
    ) -> Result<Option<(&'a str, Result<Event<'a>, decode::EventError>)>, StreamStop> {
        decode::EventStream::next_event(self)
    }
    fn finish(self) -> Result<Self::Req, StreamStop> {
        decode::EventStream::finish(self)
    }
}

/// Why [`map_events`] stops: its source stops, or the messages pass
/// [`Limits::max_mapped_bytes`].
enum Halt<E> {
    Source(E),
    TooLarge,
}

/// Maps the events of `source`, whose request has `header` (its `app_name` and
/// `moe_request_id`), within `limits.max_mapped_bytes`.
fn map_events<'a, S: Source<'a>>(
    header: &(Option<Text<'_>>, Option<Text<'_>>),
    mut source: S,
    received_at_ms: i64,
    limits: Limits,
    options: &MappingOptions,
) -> Result<MapOutput, Halt<S::Stop>> {
    use std::borrow::Borrow;
    let mapping = Mapping::new(header);
    let ctx = mapping.ctx(received_at_ms, options);
    let mut out = MapOutput {
        moe_request_id: ctx.moe_request_id.map(str::to_owned),
        ..MapOutput::default()
    };
    let mut users = (options.identify == Identify::PerUser).then(Users::default);
    map_loop(&mut source, &ctx, limits, &mut out, users.as_mut())?;
    let req = source.finish().map_err(Halt::Source)?;
    let req: &StreamsRequest<'a> = req.borrow();
    complete(&mut out, users, req, &ctx, limits).map_err(|TooLarge| Halt::TooLarge)?;
    Ok(out)
}

/// What each message of a request is mapped with ([`MapContext`] borrows it).
struct Mapping<'h> {
    keys: KeyCache,
    scratch: std::cell::RefCell<String>,
    app_name: Option<Cow<'h, str>>,
    moe_request_id: Option<Cow<'h, str>>,
}

impl<'h> Mapping<'h> {
    fn new(header: &'h (Option<Text<'_>>, Option<Text<'_>>)) -> Self {
        Mapping {
            keys: KeyCache::default(),
            scratch: std::cell::RefCell::new(String::new()),
            app_name: text(&header.0).map(cap_request_text),
            moe_request_id: text(&header.1).map(cap_request_text),
        }
    }

    fn ctx<'r>(&'r self, received_at_ms: i64, options: &'r MappingOptions) -> MapContext<'r> {
        MapContext {
            keys: &self.keys,
            scratch: &self.scratch,
            app_name: self.app_name.as_deref(),
            moe_request_id: self.moe_request_id.as_deref(),
            received_at_ms,
            options,
        }
    }
}

/// Maps each event of `source` into `out`, numbered on from `out.received`, within
/// `limits.max_mapped_bytes` (for the messages of this call).
fn map_loop<'a, S: Source<'a>>(
    source: &mut S,
    ctx: &MapContext<'_>,
    limits: Limits,
    out: &mut MapOutput,
    mut users: Option<&mut Users>,
) -> Result<(), Halt<S::Stop>> {
    let mut mapped_bytes = 0usize;
    loop {
        let Some((raw, event)) = source.next_event().map_err(Halt::Source)? else {
            return Ok(());
        };
        let index = out.received;
        out.received += 1;
        match map_one(index, raw, event, ctx, IdRule::Uuid, users.as_deref_mut()) {
            Ok(mut m) => {
                // What the message really holds on the heap is what counts.
                m.json.shrink_to_fit();
                mapped_bytes = mapped_bytes.saturating_add(m.json.capacity());
                if mapped_bytes > limits.max_mapped_bytes {
                    return Err(Halt::TooLarge);
                }
                out.messages.push(m);
            }
            Err(Unmapped::Rejected(r)) => out.rejected.push(r),
            Err(Unmapped::Filtered) => out.filtered += 1,
        }
    }
}

/// The messages passed [`Limits::max_mapped_bytes`].
struct TooLarge;

/// Why an event gives no message.
#[derive(Debug)]
pub enum Unmapped {
    Rejected(Rejected),
    /// The mapping options skip it.
    Filtered,
}

/// Maps the event at `index` (`raw`, read as `event`); notes its user in `users` (when
/// identify calls are made).
#[inline(never)] // one copy for both event sources of a request, and for single events
fn map_one(
    index: usize,
    raw: &str,
    event: Result<Event<'_>, decode::EventError>,
    ctx: &MapContext<'_>,
    rule: IdRule,
    users: Option<&mut Users>,
) -> Result<Mapped, Unmapped> {
    match event {
        Ok(event) => {
            if let Some(users) = users {
                users.note(index, &event, ctx);
            }
            match map_event(&event, raw, ctx, rule) {
                Ok((message_id, json)) => Ok(Mapped {
                    index,
                    event_uuid: uuid_of(&event),
                    message_id,
                    json,
                }),
                Err(Unsent::Rejected(reason)) => Err(Unmapped::Rejected(Rejected {
                    event_uuid: text(&event.event_uuid).map(short_uuid),
                    reason,
                    index,
                    detail: None,
                })),
                Err(Unsent::Filtered) => Err(Unmapped::Filtered),
            }
        }
        Err(e) => Err(Unmapped::Rejected(Rejected {
            event_uuid: salvage_uuid(raw),
            reason: RejectReason::InvalidEvent,
            index,
            detail: Some(e.0),
        })),
    }
}

/// After every event of `req` was mapped into `out`: ids for repeated uuids, then the
/// identify calls. Kept out of line: [`map_events`] has a copy per event source, this part
/// needs only one.
#[inline(never)]
fn complete(
    out: &mut MapOutput,
    users: Option<Users>,
    req: &StreamsRequest<'_>,
    ctx: &MapContext<'_>,
    limits: Limits,
) -> Result<(), TooLarge> {
    separate_repeated_uuids(out, req, ctx);
    // Content ids may make re-mapped messages a little longer.
    let mut total = out.messages.iter().map(|m| m.json.len()).sum::<usize>();
    if total > limits.max_mapped_bytes {
        return Err(TooLarge);
    }
    // Identify calls take what is left of the limit: one that does not fit is skipped and
    // counted, never a reason to refuse the tracks (they carry the same traits).
    if let Some(users) = users {
        for (index, mut m) in users.identifies(req, ctx) {
            m.json.shrink_to_fit();
            if total.saturating_add(m.json.capacity()) > limits.max_mapped_bytes {
                out.identifies_skipped += 1;
                continue;
            }
            total += m.json.capacity();
            m.index = index;
            out.messages.push(m);
            out.identifies += 1;
        }
    }
    Ok(())
}
