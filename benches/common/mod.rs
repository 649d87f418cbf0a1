//! What both benchmarks build: bodies of `n` events and a handler wired to a local Segment
//! stand-in.

use std::time::Duration;

use base64::Engine;
use moengage_segment::delivery::forward::Forwarder;
use moengage_segment::delivery::outcome::Queues;
use moengage_segment::delivery::segment::{RetryPolicy, SegmentClient};
use moengage_segment::settings::config::{Endpoints, Settings};
use moengage_segment::settings::secret::{SettingsCache, StaticSource};
use moengage_segment::webhook::Webhook;
use serde_json::Value;

/// A body of `n` events made from the realistic 100-event fixture, with unique uuids.
pub fn body_of(n: usize) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/batch_100.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let base = v["events"].as_array().unwrap().clone();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = base[i % base.len()].clone();
            e["event_uuid"] = Value::String(format!("evt-bench-{i:07}"));
            e
        })
        .collect();
    // The request fields before the events, as MoEngage sends them (and as the fixture has
    // them): `Value` would sort them after `events`, which reads the body whole.
    let mut out = String::from("{");
    for key in ["app_name", "source", "moe_request_id"] {
        if let Some(val) = v.get(key) {
            out.push_str(&format!("{}:{val},", Value::from(key)));
        }
    }
    out.push_str(&format!("\"events\":{}}}", Value::Array(events)));
    out
}

/// The webhook handler as the Lambda builds it, sending to `segment_url`, and the
/// `Authorization` header it accepts.
pub fn local_handler(segment_url: &str) -> (Webhook<StaticSource>, String) {
    let settings = Settings::from_parts(
        Some("bench-key".into()),
        Some("us".into()),
        Some("moengage".into()),
        Some("pw".into()),
        None,
    );
    let h = Webhook::new(
        Forwarder::live(
            SettingsCache::new(StaticSource(settings), Duration::MAX),
            SegmentClient::new(RetryPolicy::default()).unwrap(),
            Endpoints {
                us: segment_url.to_owned(),
                eu: segment_url.to_owned(),
            },
            Queues::default(),
        ),
        6 << 20,
    );
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("moengage:pw")
    );
    (h, auth)
}

/// A webhook request carrying `body`.
pub fn post(body: &str, auth: &str) -> lambda_http::Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/moengage")
        .header("authorization", auth)
        .body(lambda_http::Body::from(body.to_owned()))
        .unwrap()
}
