//! Mapping: one MoEngage event → one Segment `track` message (serialized JSON).
//!
//! Names come from the [`Catalog`], property renames from the [`PropertyTable`]; both are
//! data. Attribute values pass through verbatim (borrowed [`RawValue`]s), so numbers, arrays
//! and nested objects reach Segment exactly as MoEngage sent them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::decode::{self, Attributes, DecodeError, Event, StreamsRequest};
use crate::properties::{KeyKind, PropertyTable};
use crate::time;

/// Segment refuses messages over 32 KB; stay a little under it.
pub const MAX_MESSAGE_BYTES: usize = 32_000;
/// Segment's limit on `messageId` length.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;
/// Namespace of every `messageId` this product emits (Segment dedups across sources).
pub const MESSAGE_ID_PREFIX: &str = "moe-";
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
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidEvent => "invalid_event",
            RejectReason::NoEventName => "no_event_name",
            RejectReason::NoIdentity => "no_identity",
            RejectReason::TooLarge => "too_large",
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
#[derive(Debug, Default)]
pub struct MapOutput {
    pub received: usize,
    pub moe_request_id: Option<String>,
    pub messages: Vec<Mapped>,
    pub rejected: Vec<Rejected>,
}

/// Remembers what each raw attribute key is, for one request: the same keys recur in every
/// event of a batch, and a hash lookup is cheaper than folding the key each time.
#[derive(Debug, Default)]
pub struct KeyCache(std::cell::RefCell<crate::fasthash::FxHashMap<Box<str>, KeyKind>>);

impl KeyCache {
    /// Bound on remembered keys (a body full of unique keys must not grow it without end).
    const MAX: usize = 4096;

    fn classify(&self, table: &PropertyTable, key: &str) -> KeyKind {
        if let Some(k) = self.0.borrow().get(key) {
            return *k;
        }
        let kind = table.classify(key);
        let mut map = self.0.borrow_mut();
        if map.len() < Self::MAX {
            map.insert(key.into(), kind);
        }
        kind
    }
}

/// Request-level values every message carries.
#[derive(Debug, Clone, Copy)]
pub struct MapContext<'r> {
    pub app_name: Option<&'r str>,
    pub moe_request_id: Option<&'r str>,
    /// When the request was received (epoch ms): the timestamp of events without a usable
    /// `event_time`.
    pub received_at_ms: i64,
    pub keys: &'r KeyCache,
}

/// Decodes and maps a whole Streams body.
pub fn map_body(body: &str, received_at_ms: i64) -> Result<MapOutput, DecodeError> {
    let req = decode::decode_request(body)?;
    Ok(map_request(&req, received_at_ms))
}

/// Maps every event of a decoded request.
pub fn map_request(req: &StreamsRequest<'_>, received_at_ms: i64) -> MapOutput {
    let keys = KeyCache::default();
    let ctx = MapContext {
        keys: &keys,
        app_name: req.app_name.as_ref().and_then(|t| t.non_empty()),
        moe_request_id: req.moe_request_id.as_ref().and_then(|t| t.non_empty()),
        received_at_ms,
    };
    let mut out = MapOutput {
        received: req.events.len(),
        moe_request_id: ctx.moe_request_id.map(str::to_owned),
        messages: Vec::with_capacity(req.events.len()),
        rejected: Vec::new(),
    };
    for (index, raw) in req.events.iter().enumerate() {
        match decode::decode_event(raw) {
            Ok(event) => match map_event(&event, raw, &ctx) {
                Ok((message_id, json)) => out.messages.push(Mapped {
                    index,
                    event_uuid: uuid_of(&event),
                    message_id,
                    json,
                }),
                Err(reason) => out.rejected.push(Rejected {
                    event_uuid: uuid_of(&event),
                    reason,
                    index,
                    detail: None,
                }),
            },
            Err(e) => out.rejected.push(Rejected {
                event_uuid: salvage_uuid(raw),
                reason: RejectReason::InvalidEvent,
                index,
                detail: Some(e.0),
            }),
        }
    }
    out
}

fn uuid_of(event: &Event<'_>) -> Option<String> {
    event
        .event_uuid
        .as_ref()
        .and_then(|t| t.non_empty())
        .map(str::to_owned)
}

/// Best effort: the `event_uuid` of an event whose other fields could not be read.
fn salvage_uuid(raw: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Only {
        event_uuid: Option<serde_json::Value>,
    }
    let only: Only = serde_json::from_str(raw.get()).ok()?;
    match only.event_uuid? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A value in `properties` or `context.traits`.
#[derive(Debug, Clone)]
enum Val<'m> {
    Raw(&'m RawValue),
    Json(&'m serde_json::Value),
    Str(&'m str),
    Bool(bool),
    List(Vec<String>),
}

impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Raw(r) => r.serialize(s),
            Val::Json(v) => v.serialize(s),
            Val::Str(v) => s.serialize_str(v),
            Val::Bool(b) => s.serialize_bool(*b),
            Val::List(l) => l.serialize(s),
        }
    }
}

/// An ordered JSON object; `droppable` marks entries truncation may remove.
#[derive(Debug, Default)]
struct Fields<'m> {
    entries: Vec<(&'m str, Val<'m>, bool)>,
}

impl<'m> Fields<'m> {
    fn push(&mut self, key: &'m str, val: Val<'m>, droppable: bool) {
        self.entries.push((key, val, droppable));
    }
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (k, v, _) in &self.entries {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct Library {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize, Default)]
struct Device<'m> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'m str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'m str>,
}

#[derive(Serialize)]
struct Os<'m> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'m str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'m str>,
}

#[derive(Serialize)]
struct App<'m> {
    version: &'m str,
}

#[derive(Serialize)]
struct Context<'m> {
    library: Library,
    #[serde(skip_serializing_if = "Fields::is_empty")]
    traits: Fields<'m>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<Device<'m>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<Os<'m>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<App<'m>>,
}

#[derive(Serialize)]
struct Integrations {
    #[serde(rename = "MoEngage")]
    moengage: bool,
}

#[derive(Serialize)]
struct Message<'m> {
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'m str,
    #[serde(rename = "userId", skip_serializing_if = "Option::is_none")]
    user_id: Option<&'m str>,
    #[serde(rename = "anonymousId", skip_serializing_if = "Option::is_none")]
    anonymous_id: Option<&'m str>,
    #[serde(rename = "messageId")]
    message_id: &'m str,
    timestamp: &'m str,
    properties: Fields<'m>,
    context: Context<'m>,
    integrations: Integrations,
}

/// Values the mapper needs from an attribute map, found in one pass.
#[derive(Default)]
struct Found<'a> {
    platform: Option<&'a RawValue>,
    app_version: Option<&'a RawValue>,
    os_version: Option<&'a RawValue>,
}

impl<'a> Found<'a> {
    fn note(&mut self, kind: KeyKind, v: &'a RawValue) {
        let slot = match kind {
            KeyKind::Spec("platform") => &mut self.platform,
            KeyKind::Spec("app_version") => &mut self.app_version,
            KeyKind::OsVersion => &mut self.os_version,
            _ => return,
        };
        if slot.is_none() && decode::raw_scalar_text(v).is_some() {
            *slot = Some(v);
        }
    }
}

/// A small set of keys: linear while small, hashed when large.
struct KeySet<'k> {
    small: Vec<&'k str>,
    large: Option<HashSet<&'k str>>,
}

impl<'k> KeySet<'k> {
    fn new() -> Self {
        KeySet {
            small: Vec::with_capacity(32),
            large: None,
        }
    }
    /// Inserts; false when already present.
    fn insert(&mut self, k: &'k str) -> bool {
        if let Some(set) = &mut self.large {
            return set.insert(k);
        }
        if self.small.contains(&k) {
            return false;
        }
        self.small.push(k);
        if self.small.len() > 32 {
            self.large = Some(self.small.drain(..).collect());
        }
        true
    }
}

/// Builds the deterministic `messageId` of an event.
pub fn message_id(event: &Event<'_>, raw: &RawValue) -> String {
    if let Some(uuid) = event.event_uuid.as_ref().and_then(|t| t.non_empty()) {
        if MESSAGE_ID_PREFIX.len() + uuid.len() <= MAX_MESSAGE_ID_CHARS {
            return format!("{MESSAGE_ID_PREFIX}{uuid}");
        }
        return format!("{MESSAGE_ID_PREFIX}h-{}", sha256_hex(uuid.as_bytes(), 40));
    }
    // No event_uuid: hash the event's content, independent of key order and whitespace,
    // so a re-sent batch yields the same id.
    let canonical = serde_json::from_str::<serde_json::Value>(raw.get())
        .map(|v| v.to_string())
        .unwrap_or_else(|_| raw.get().to_owned());
    format!(
        "{MESSAGE_ID_PREFIX}h-{}",
        sha256_hex(canonical.as_bytes(), 40)
    )
}

fn sha256_hex(bytes: &[u8], chars: usize) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s.truncate(chars);
    s
}

/// Maps one decoded event. Returns `(messageId, json)`.
pub fn map_event(
    event: &Event<'_>,
    raw: &RawValue,
    ctx: &MapContext<'_>,
) -> Result<(String, String), RejectReason> {
    let catalog = Catalog::global();
    let table = PropertyTable::global();

    // One pass over each attribute map: renames, and the values context needs.
    let mut found = Found::default();
    let mut renamed: Vec<(&str, &RawValue, bool)> = Vec::new();
    if let Attributes::Map(entries) = &event.event_attributes {
        renamed.reserve(entries.len());
        for (k, v) in entries {
            let kind = ctx.keys.classify(table, k);
            found.note(kind, v);
            match kind {
                KeyKind::Spec(spec) => renamed.push((spec, v, true)),
                _ => renamed.push((k.as_ref(), v, false)),
            }
        }
    }
    let mut device_found = Found::default();
    for (k, v) in event.device_attributes.entries() {
        device_found.note(ctx.keys.classify(table, k), v);
    }
    let text = |a: Option<&'_ RawValue>, b: Option<&'_ RawValue>| {
        a.or(b)
            .and_then(decode::raw_scalar_text)
            .map(Cow::into_owned)
    };
    let platform = text(found.platform, device_found.platform);
    let os_version = text(found.os_version, device_found.os_version);
    let app_version = text(found.app_version, device_found.app_version);
    let code = event.event_code.as_ref().and_then(|t| t.non_empty());
    let name = event.event_name.as_ref().and_then(|t| t.non_empty());
    let (event_name, _how) = catalog
        .resolve(code, name, platform.as_deref())
        .ok_or(RejectReason::NoEventName)?;

    let user_id = event.uid.as_ref().and_then(|t| t.non_empty());
    let anonymous_id = event
        .user_attributes
        .get_text("moengage_user_id")
        .or_else(|| event.device_attributes.get_text("moengage_device_id"));
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(RejectReason::NoIdentity);
    }

    let message_id = message_id(event, raw);
    let raw_time = event.event_time.as_ref().and_then(|t| t.non_empty());
    let (timestamp, bad_time) = match raw_time {
        Some(t) => match time::parse_event_time(t) {
            Some(ms) => (time::format_millis(ms), None),
            None if time::looks_like_iso8601(t) => (t.trim().to_owned(), None),
            None => (time::format_millis(ctx.received_at_ms), Some(t)),
        },
        None => (time::format_millis(ctx.received_at_ms), None),
    };
    let time_missing = raw_time.is_none();

    // properties: request/event extras first (authoritative), then attributes.
    let mut props = Fields::default();
    let mut seen = KeySet::new();
    let event_uuid = event.event_uuid.as_ref().and_then(|t| t.non_empty());
    let extras: [(&str, Option<&str>); 6] = [
        ("event_uuid", event_uuid),
        ("event_code", code),
        (
            "event_type",
            event.event_type.as_ref().and_then(|t| t.non_empty()),
        ),
        (
            "event_source",
            event.event_source.as_ref().and_then(|t| t.non_empty()),
        ),
        ("moe_request_id", ctx.moe_request_id),
        ("app_name", ctx.app_name),
    ];
    for (k, v) in extras {
        if let Some(v) = v {
            props.push(k, Val::Str(v), false);
            seen.insert(k);
        }
    }
    if let Some(t) = bad_time {
        props.push("moe_event_time_invalid", Val::Str(t), false);
        seen.insert("moe_event_time_invalid");
    }
    if time_missing {
        props.push("moe_event_time_missing", Val::Bool(true), false);
        seen.insert("moe_event_time_missing");
    }
    for (key, v, spec) in renamed {
        if seen.insert(key) {
            props.push(key, Val::Raw(v), !spec);
        }
    }
    for (key, attrs) in [
        ("moe_event_attributes", &event.event_attributes),
        ("moe_user_attributes", &event.user_attributes),
        ("moe_device_attributes", &event.device_attributes),
    ] {
        if let Attributes::Other(v) = attrs {
            props.push(key, Val::Json(v), true);
        }
    }

    // context.traits: user attributes, with the event's own contact points.
    let email = event.email_id.as_ref().and_then(|t| t.non_empty());
    let phone = event.mobile_number.as_ref().and_then(|t| t.non_empty());
    let mut traits = Fields::default();
    if let Some(e) = email {
        traits.push("email", Val::Str(e), false);
    }
    if let Some(p) = phone {
        traits.push("phone", Val::Str(p), false);
    }
    let mut seen_traits = KeySet::new();
    if email.is_some() {
        seen_traits.insert("email");
    }
    if phone.is_some() {
        seen_traits.insert("phone");
    }
    for (k, v) in event.user_attributes.entries() {
        if seen_traits.insert(k.as_ref()) {
            traits.push(k, Val::Raw(v), k != "moengage_user_id");
        }
    }

    let device_id = event.device_attributes.get_text("moengage_device_id");
    let push_token = event.push_id.as_ref().and_then(|t| t.non_empty());
    let device = (device_id.is_some() || push_token.is_some()).then_some(Device {
        id: device_id.as_deref(),
        token: push_token,
    });
    let os = (platform.is_some() || os_version.is_some()).then_some(Os {
        name: platform.as_deref(),
        version: os_version.as_deref(),
    });
    let mut message = Message {
        kind: "track",
        event: &event_name,
        user_id,
        anonymous_id: anonymous_id.as_deref(),
        message_id: &message_id,
        timestamp: &timestamp,
        properties: props,
        context: Context {
            library: Library {
                name: LIBRARY_NAME,
                version: LIBRARY_VERSION,
            },
            traits,
            device,
            os,
            app: app_version.as_deref().map(|version| App { version }),
        },
        integrations: Integrations { moengage: false },
    };

    let mut json = to_json(&message, raw.get().len() + 512);
    if json.len() > MAX_MESSAGE_BYTES {
        json = truncate(&mut message, json.len())?;
    }
    drop(message); // it borrows message_id
    Ok((message_id, json))
}

fn to_json<T: Serialize>(value: &T, capacity: usize) -> String {
    let mut buf = Vec::with_capacity(capacity);
    // Serializing these types cannot fail: keys are strings and raw values are valid JSON.
    if serde_json::to_writer(&mut buf, value).is_err() {
        buf.clear();
    }
    // serde_json writes valid UTF-8.
    String::from_utf8(buf).unwrap_or_default()
}

/// Drops the largest droppable attribute values until the message fits, recording them in
/// `properties.moe_truncated`.
fn truncate(message: &mut Message<'_>, mut size: usize) -> Result<String, RejectReason> {
    // (estimated bytes, is_trait, key)
    let mut candidates: Vec<(usize, bool, String)> = Vec::new();
    for (k, v, droppable) in &message.properties.entries {
        if *droppable {
            candidates.push((entry_len(k, v), false, (*k).to_owned()));
        }
    }
    for (k, v, droppable) in &message.context.traits.entries {
        if *droppable {
            candidates.push((entry_len(k, v), true, (*k).to_owned()));
        }
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
    let mut dropped: Vec<String> = Vec::new();
    for (len, is_trait, key) in candidates {
        let fields = if is_trait {
            &mut message.context.traits
        } else {
            &mut message.properties
        };
        if let Some(pos) = fields.entries.iter().position(|(k, _, d)| *d && *k == key) {
            fields.entries.remove(pos);
        }
        let path = if is_trait {
            format!("context.traits.{key}")
        } else {
            format!("properties.{key}")
        };
        size = size.saturating_sub(len);
        size += path.len() + 3;
        dropped.push(path);
        if size + 32 < MAX_MESSAGE_BYTES {
            let json = with_truncated(message, &dropped);
            if json.len() <= MAX_MESSAGE_BYTES {
                return Ok(json);
            }
            size = json.len();
        }
    }
    if dropped.is_empty() {
        return Err(RejectReason::TooLarge);
    }
    let json = with_truncated(message, &dropped);
    if json.len() <= MAX_MESSAGE_BYTES {
        Ok(json)
    } else {
        Err(RejectReason::TooLarge)
    }
}

fn with_truncated(message: &mut Message<'_>, dropped: &[String]) -> String {
    message
        .properties
        .entries
        .retain(|(k, _, _)| *k != "moe_truncated");
    message
        .properties
        .push("moe_truncated", Val::List(dropped.to_vec()), false);
    to_json(message, MAX_MESSAGE_BYTES)
}

/// Bytes an entry takes in the JSON object: `"key":value,`.
fn entry_len(key: &str, val: &Val<'_>) -> usize {
    key.len()
        + 4
        + match val {
            Val::Raw(r) => r.get().len(),
            Val::Json(v) => v.to_string().len(),
            Val::Str(s) => s.len() + 2,
            Val::Bool(_) => 5,
            Val::List(l) => l.iter().map(|s| s.len() + 3).sum::<usize>() + 2,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_700_000_000_000;

    fn map_one(event: Value) -> Result<Value, RejectReason> {
        let body = json!({"app_name": "App", "moe_request_id": "req-1", "events": [event]});
        let out = map_body(&body.to_string(), NOW).unwrap();
        assert_eq!(out.received, 1);
        match (out.messages.first(), out.rejected.first()) {
            (Some(m), None) => Ok(serde_json::from_str(&m.json).unwrap()),
            (None, Some(r)) => Err(r.reason),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn code_wins_over_name() {
        let m = map_one(
            json!({"event_code": "MOE_EMAIL_SPAM", "event_name": "Email Spam Reported",
            "event_uuid": "u1", "uid": "c1", "event_time": 1_700_000_000}),
        )
        .unwrap();
        assert_eq!(m["event"], "Email Complained");
        assert_eq!(m["messageId"], "moe-u1");
        assert_eq!(m["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(m["userId"], "c1");
        assert_eq!(m["properties"]["event_code"], "MOE_EMAIL_SPAM");
        assert_eq!(m["integrations"]["MoEngage"], false);
        assert_eq!(m["context"]["library"]["name"], "moengage-segment");
    }

    #[test]
    fn identity_fallbacks_and_rejection() {
        let m = map_one(
            json!({"event_name": "X", "user_attributes": {"moengage_user_id": "mu1"},
            "device_attributes": {"moengage_device_id": "d1"}}),
        )
        .unwrap();
        assert_eq!(m["anonymousId"], "mu1");
        assert!(m.get("userId").is_none());
        let m = map_one(json!({"event_name": "X", "uid": "", "device_attributes": {"moengage_device_id": "d1"}}))
            .unwrap();
        assert_eq!(m["anonymousId"], "d1");
        assert_eq!(m["context"]["device"]["id"], "d1");
        assert_eq!(
            map_one(
                json!({"event_name": "X", "uid": "", "device_attributes": {"moengage_device_id": ""}})
            ),
            Err(RejectReason::NoIdentity)
        );
        assert_eq!(map_one(json!({"uid": "u"})), Err(RejectReason::NoEventName));
    }

    #[test]
    fn ambiguous_code_uses_name_then_platform() {
        let base = |name: &str, os: &str| {
            json!({"event_code": "NOTIFICATION_RECEIVED_MOE", "event_name": name, "uid": "u",
                   "event_attributes": {"os": os}})
        };
        assert_eq!(
            map_one(base("Notification Received iOS", "ANDROID")).unwrap()["event"],
            "Notification Received iOS"
        );
        assert_eq!(
            map_one(base("Push Received", "iOS")).unwrap()["event"],
            "Notification Received iOS"
        );
        assert_eq!(
            map_one(base("Push Received", "ANDROID")).unwrap()["event"],
            "Notification Received Android"
        );
        assert_eq!(
            map_one(base("", "")).unwrap()["event"],
            "Notification Received Android"
        );
    }

    #[test]
    fn properties_renamed_and_passed_through() {
        let m = map_one(json!({"event_name": "Added to Cart", "uid": 42,
            "event_attributes": {"Campaign ID": 123.0, "appVersion": "1.2", "os": "ANDROID",
                "OS Version": "14", "tags": ["a", "b"], "nested": {"x": null}, "campaign_id": "dup"},
            "user_attributes": {"moengage_user_id": "mu", "first_name": "Ann"},
            "email_id": "a@example.com", "mobile_number": "+15550000", "push_id": "tok"}))
        .unwrap();
        let p = &m["properties"];
        assert_eq!(m["event"], "Added to Cart");
        assert_eq!(m["userId"], "42");
        assert_eq!(p["campaign_id"], json!(123.0));
        assert_eq!(p["app_version"], "1.2");
        assert_eq!(p["platform"], "ANDROID");
        assert_eq!(p["OS Version"], "14");
        assert_eq!(p["tags"], json!(["a", "b"]));
        assert_eq!(p["nested"], json!({"x": null}));
        assert_eq!(p["app_name"], "App");
        assert_eq!(p["moe_request_id"], "req-1");
        let c = &m["context"];
        assert_eq!(c["traits"]["email"], "a@example.com");
        assert_eq!(c["traits"]["phone"], "+15550000");
        assert_eq!(c["traits"]["first_name"], "Ann");
        assert_eq!(c["device"]["token"], "tok");
        assert_eq!(c["os"], json!({"name": "ANDROID", "version": "14"}));
        assert_eq!(c["app"], json!({"version": "1.2"}));
    }

    #[test]
    fn event_time_variants() {
        let t =
            |v: Value| map_one(json!({"event_name": "X", "uid": "u", "event_time": v})).unwrap();
        assert_eq!(
            t(json!(1_700_000_000_123_i64))["timestamp"],
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            t(json!("1700000000"))["timestamp"],
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(
            t(json!("2024-01-02T03:04:05Z"))["timestamp"],
            "2024-01-02T03:04:05Z"
        );
        let bad = t(json!("yesterday"));
        assert_eq!(bad["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(bad["properties"]["moe_event_time_invalid"], "yesterday");
        let missing = map_one(json!({"event_name": "X", "uid": "u"})).unwrap();
        assert_eq!(missing["properties"]["moe_event_time_missing"], true);
    }

    #[test]
    fn message_ids_are_deterministic() {
        let e1 = json!({"event_name": "X", "uid": "u", "event_time": 1, "event_attributes": {"a": 1, "b": 2}});
        let e2 = json!({"event_attributes": {"b": 2, "a": 1}, "event_time": 1, "uid": "u", "event_name": "X"});
        let id1 = map_one(e1.clone()).unwrap()["messageId"].clone();
        assert_eq!(id1, map_one(e1).unwrap()["messageId"]);
        assert_eq!(id1, map_one(e2).unwrap()["messageId"]);
        assert!(id1.as_str().unwrap().starts_with("moe-h-"));
        let long = "x".repeat(150);
        let m = map_one(json!({"event_name": "X", "uid": "u", "event_uuid": long})).unwrap();
        let id = m["messageId"].as_str().unwrap();
        assert!(
            id.len() <= MAX_MESSAGE_ID_CHARS && id.starts_with("moe-h-"),
            "{id}"
        );
    }

    #[test]
    fn oversized_messages_are_truncated_or_rejected() {
        let big = "x".repeat(40_000);
        let m = map_one(json!({"event_name": "X", "uid": "u", "event_attributes":
            {"campaign_id": "c1", "blob": big, "small": 1}}))
        .unwrap();
        assert!(m.to_string().len() <= MAX_MESSAGE_BYTES);
        assert_eq!(m["properties"]["moe_truncated"], json!(["properties.blob"]));
        assert_eq!(m["properties"]["small"], 1);
        assert_eq!(m["properties"]["campaign_id"], "c1");
        // A spec property cannot be dropped.
        assert_eq!(
            map_one(
                json!({"event_name": "X", "uid": "u", "event_attributes": {"campaign_name": big}})
            ),
            Err(RejectReason::TooLarge)
        );
    }
}
