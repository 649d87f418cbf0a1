//! Events mapped one at a time, outside a Streams request: the lines of an S3 export.
//!
//! An event gets exactly the message it gets in a Streams body with the same `app_name` and
//! no `moe_request_id` (an export carries none), so an event both streamed live and
//! backfilled has one `messageId` and Segment keeps one. What a Streams request adds over
//! its events does not apply: there are no identify calls per user (old traits would
//! overwrite current profiles), and events that share a uuid keep it (a request's repeated
//! uuids get content ids; lines are not a request).

use std::borrow::Cow;
use std::cell::RefCell;

use crate::decode::{Event, EventError};

use super::event::{EventTime, IdRule};
use super::keys::KeyCache;
use super::options::MappingOptions;
use super::{MapContext, Mapped, Unmapped, cap_request_text, map_one};

/// Maps events one by one, keeping its key cache and write buffer from one to the next.
pub struct Mapper<'o> {
    keys: KeyCache,
    scratch: RefCell<String>,
    options: &'o MappingOptions,
}

impl<'o> Mapper<'o> {
    pub fn new(options: &'o MappingOptions) -> Self {
        Mapper {
            keys: KeyCache::default(),
            scratch: RefCell::new(String::new()),
            options,
        }
    }

    /// Maps the event `raw` (read as `event`), numbered `index`, of an app `app_name`;
    /// `reference_ms` stands where a request's receive time stands (the `timestamp` of an
    /// event without a usable `event_time`, and the bound of a plausible one).
    pub fn map(
        &self,
        index: usize,
        raw: &str,
        event: Result<Event<'_>, EventError>,
        app_name: Option<&str>,
        reference_ms: i64,
    ) -> Result<Mapped, Unmapped> {
        let app_name = app_name.map(cap_request_text);
        let ctx = MapContext {
            app_name: app_name.as_ref().map(Cow::as_ref),
            moe_request_id: None,
            received_at_ms: reference_ms,
            keys: &self.keys,
            options: self.options,
            scratch: &self.scratch,
        };
        map_one(index, raw, event, &ctx, IdRule::Uuid, None)
    }
}

/// When the event happened as its message's `timestamp` will say: its `event_time` when
/// usable, else `reference_ms` (see [`Mapper::map`]).
pub fn event_millis(event: &Event<'_>, reference_ms: i64) -> i64 {
    match EventTime::read(event.event_time.as_ref(), reference_ms) {
        EventTime::At(ms) => ms,
        EventTime::Missing | EventTime::Invalid(_) => reference_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_event;
    use crate::mapping::{Limits, RejectReason, map_body_with};
    use serde_json::{Value, json};

    const NOW: i64 = 1_764_331_200_000;

    /// Every event of the fixtures, mapped alone, is the message a Streams body without a
    /// `moe_request_id` gives it, byte for byte.
    #[test]
    fn an_event_alone_is_mapped_as_in_a_streams_body() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let options = MappingOptions::from_json(
            r#"{"rename_events": {"Email Sent": "Mail Sent"}, "drop_traits": ["phone"], "hash_traits": ["email"]}"#,
        )
        .unwrap();
        let mut compared = 0;
        for name in [
            "batch_100.json",
            "email.json",
            "push_android.json",
            "custom.json",
            "quirks_types.json",
        ] {
            let body: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
            let mapper = Mapper::new(&options);
            for (i, event) in body["events"].as_array().unwrap().iter().enumerate() {
                // Unique uuids: a body's repeated uuids get content ids, lines do not.
                let mut event = event.clone();
                if event.get("event_uuid").is_some() {
                    event["event_uuid"] = json!(format!("u-{name}-{i}"));
                }
                let raw = event.to_string();
                let alone = mapper.map(i, &raw, decode_event(&raw), Some("Acme"), NOW);
                let wrapped = json!({"app_name": "Acme", "events": [event]}).to_string();
                let out = map_body_with(&wrapped, NOW, Limits::REQUEST, &options).unwrap();
                match (alone, out.messages.first(), out.rejected.first()) {
                    (Ok(m), Some(w), None) => {
                        assert_eq!(m.json, w.json, "{name} #{i}");
                        assert_eq!(m.message_id, w.message_id);
                        compared += 1;
                    }
                    (Err(Unmapped::Rejected(r)), None, Some(w)) => assert_eq!(r.reason, w.reason),
                    (Err(Unmapped::Filtered), None, None) => assert_eq!(out.filtered, 1),
                    other => panic!("{name} #{i}: {other:?}"),
                }
            }
        }
        assert!(compared > 100, "{compared}");
    }

    #[test]
    fn an_unreadable_event_is_rejected_with_its_uuid() {
        let options = MappingOptions::default();
        let mapper = Mapper::new(&options);
        let raw = r#"{"event_uuid": "e-1", "uid": "a", "uid": "b"}"#;
        match mapper.map(7, raw, decode_event(raw), None, NOW) {
            Err(Unmapped::Rejected(r)) => {
                assert_eq!((r.reason, r.index), (RejectReason::InvalidEvent, 7));
                assert_eq!(r.event_uuid.as_deref(), Some("e-1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn event_millis_is_the_messages_timestamp() {
        let at = |t: Value| {
            let raw = json!({"event_time": t}).to_string();
            event_millis(&decode_event(&raw).unwrap(), NOW)
        };
        assert_eq!(at(json!(1_700_000_000)), 1_700_000_000_000);
        assert_eq!(at(json!("2024-01-31T12:00:00Z")), 1_706_702_400_000);
        // Missing, unusable or implausible: the reference time.
        assert_eq!(at(json!(null)), NOW);
        assert_eq!(at(json!(123)), NOW);
        assert_eq!(at(json!("soon")), NOW);
    }
}
