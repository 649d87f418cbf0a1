//! Export line bytes → `lossy_utf8` → `decode_export_line` → the export hour's reference time
//! → `Mapper::map`, as the backfill reads a line: never panics, and a message keeps the output
//! invariants (a JSON object of at most `MAX_MESSAGE_BYTES` with a `moe-` messageId of at most
//! `MAX_MESSAGE_ID_CHARS`, whose `timestamp` is the time the window was checked against).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moengage_segment::backfill::file::export_reference_ms;
use moengage_segment::decode::export::decode_export_line;
use moengage_segment::decode::lossy_utf8;
use moengage_segment::mapping::options::MappingOptions;
use moengage_segment::mapping::single::{Mapper, event_millis};
use moengage_segment::mapping::time::format_millis;
use moengage_segment::mapping::{MAX_MESSAGE_BYTES, MAX_MESSAGE_ID_CHARS, MESSAGE_ID_PREFIX};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The fields checked; the rest skipped.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Msg {
    #[serde(rename = "messageId")]
    message_id: String,
    timestamp: String,
    properties: IgnoredAny,
}

fuzz_target!(|data: &[u8]| {
    let text = lossy_utf8(data);
    let Ok(line) = decode_export_line(&text) else {
        return;
    };
    let reference = export_reference_ms(line.export_day.as_ref(), line.export_hour.as_ref())
        .unwrap_or(1_764_331_300_000);
    let at = line.event.as_ref().ok().map(|e| event_millis(e, reference));
    let app_name = line.app_name.as_ref().and_then(|t| t.non_empty());
    let options = MappingOptions::default();
    let mapper = Mapper::new(&options);
    let Ok(m) = mapper.map(1, line.event_raw, line.event, app_name, reference) else {
        return;
    };
    assert!(m.json.len() <= MAX_MESSAGE_BYTES, "{} bytes", m.json.len());
    assert!(m.message_id.starts_with(MESSAGE_ID_PREFIX));
    assert!(m.message_id.chars().count() <= MAX_MESSAGE_ID_CHARS);
    let msg: Msg = serde_json::from_str(&m.json).expect("a message is a JSON object");
    assert_eq!(msg.message_id, m.message_id);
    let at = at.expect("a mapped event was read");
    assert_eq!(msg.timestamp, format_millis(at), "the window saw another time");
});
