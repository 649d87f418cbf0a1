//! Request bytes → `lossy_utf8` → `map_body`: never panics, and what it returns keeps the
//! output invariants (every event accounted for once; messages are JSON objects of at most
//! `MAX_MESSAGE_BYTES` with a `moe-` messageId of at most `MAX_MESSAGE_ID_CHARS`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moengage_segment::decode::lossy_utf8;
use moengage_segment::mapping::{
    Limits, MAX_MESSAGE_BYTES, MAX_MESSAGE_ID_CHARS, MESSAGE_ID_PREFIX, map_body,
};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The fields every message has. Unknown fields are skipped (serde's ignore path accepts the
/// lone-surrogate escapes attribute values may carry verbatim).
#[derive(Deserialize)]
#[allow(dead_code)]
struct Msg {
    #[serde(rename = "type")]
    kind: String,
    event: String,
    #[serde(rename = "messageId")]
    message_id: String,
    timestamp: String,
    properties: IgnoredAny,
    context: IgnoredAny,
}

fuzz_target!(|data: &[u8]| {
    let text = lossy_utf8(data);
    let Ok(out) = map_body(&text, 1_764_331_300_000, Limits::REQUEST) else {
        return;
    };
    assert_eq!(out.messages.len() + out.rejected.len(), out.received);
    let mut seen = vec![false; out.received];
    for i in out
        .messages
        .iter()
        .map(|m| m.index)
        .chain(out.rejected.iter().map(|r| r.index))
    {
        assert!(
            !std::mem::replace(&mut seen[i], true),
            "event {i} reported twice"
        );
    }
    for m in &out.messages {
        assert!(m.json.len() <= MAX_MESSAGE_BYTES, "{} bytes", m.json.len());
        assert!(m.message_id.starts_with(MESSAGE_ID_PREFIX));
        assert!(m.message_id.chars().count() <= MAX_MESSAGE_ID_CHARS);
        let msg: Msg = serde_json::from_str(&m.json).expect("a message is a JSON object");
        assert_eq!(msg.kind, "track");
        assert!(!msg.event.trim().is_empty());
        assert_eq!(msg.message_id, m.message_id);
    }
});
