//! Hostile and faulty input, one test per case: what an attacker holding valid webhook
//! credentials, or a broken sender, can send, and what the function answers. Every request
//! here is answered with a bounded answer, a clear code and nothing lost without a trace.
//!
//! Memory and time of the same cases are measured by `benches/hostile.py` (peak RSS of the
//! release `moe2seg invoke`), never asserted here. Cases tested elsewhere:
//! - Segment answering 3xx, or with a huge body: `tests/handler_delivery.rs`;
//! - SQS itself while parking (concurrency, failed entries): `tests/park_deadline.rs`;
//! - events lambda_http cannot convert, and `cargo lambda watch`: `tests/lambda_binary.rs`
//!   and `scripts/emulator-check` (run by CI).

mod parking;
mod segment_stub;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lambda_http::http::{self, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use moengage_segment::decode::{MAX_ATTRIBUTES, MAX_EVENTS};
use moengage_segment::delivery::forward::{Forwarder, Mode};
use moengage_segment::delivery::outcome::Queues;
use moengage_segment::delivery::segment::{RetryPolicy, SegmentClient};
use moengage_segment::mapping::{
    self, MAX_MAPPED_BYTES, MAX_MESSAGE_BYTES, MAX_REQUEST_TEXT_CHARS,
};
use moengage_segment::settings::config::{Endpoints, Settings};
use moengage_segment::settings::secret::{
    SecretSource, SettingsCache, SettingsError, StaticSource,
};
use moengage_segment::webhook::Webhook;
use moengage_segment::webhook::answer::MAX_LISTED_REJECTIONS;
use segment_stub::{Reply, SegmentStub};
use serde_json::{Value, json};

const KEY: &str = "hostile-write-key";
const TOKEN: &str = "hostile-token";
const BODY_LIMIT: usize = 6 * 1024 * 1024;
/// The contract: no answer is larger, whatever the input.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const NOW: i64 = 1_764_331_200;

fn settings(token: &str) -> Settings {
    Settings::from_parts(
        Some(KEY.into()),
        Some("us".into()),
        None,
        None,
        Some(token.into()),
    )
    .unwrap()
}

fn handler<S: SecretSource>(source: S, segment: &SegmentStub) -> Webhook<S> {
    let policy = RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        attempt_timeout: Duration::from_secs(5),
        ..RetryPolicy::default()
    };
    let mut h = Webhook::new(
        Forwarder::live(
            SettingsCache::new(source, Duration::from_secs(300)),
            SegmentClient::new(policy).unwrap(),
            Endpoints {
                us: segment.url.clone(),
                eu: segment.url.clone(),
            },
            Queues::default(),
        ),
        BODY_LIMIT,
    );
    h.budget.default = Duration::from_secs(20);
    h
}

async fn setup() -> (Webhook<StaticSource>, SegmentStub) {
    let segment = SegmentStub::start(&[KEY]).await;
    let h = handler(StaticSource(Ok(settings(TOKEN))), &segment);
    (h, segment)
}

fn request(headers: &[(&str, &str)], body: Vec<u8>) -> Request {
    let mut b = http::Request::builder()
        .method("POST")
        .uri("https://example.execute-api.us-east-1.amazonaws.com/moengage");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::Binary(body)).unwrap()
}

fn post(body: impl Into<Vec<u8>>) -> Request {
    request(
        &[("authorization", &format!("Bearer {TOKEN}"))],
        body.into(),
    )
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).unwrap();
    enc.finish().unwrap()
}

fn post_gzip(body: &[u8]) -> Request {
    request(
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("content-encoding", "gzip"),
        ],
        gzip(body),
    )
}

/// Status, parsed body, and body size; every answer is checked against the size bound.
fn answer(resp: &Response<Body>) -> (StatusCode, Value, usize) {
    let bytes: &[u8] = match resp.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    assert!(
        bytes.len() <= MAX_ANSWER_BYTES,
        "answer of {} bytes",
        bytes.len()
    );
    let v = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    (resp.status(), v, bytes.len())
}

fn event(i: usize) -> Value {
    json!({"event_name": "Email Sent", "event_code": "MOE_EMAIL_SENT",
           "event_uuid": format!("evt-{i:06}"), "event_time": NOW, "uid": format!("user-{i}")})
}

fn body_of(events: Vec<Value>, request_id: &str) -> Vec<u8> {
    json!({"app_name": "Hostile", "moe_request_id": request_id, "events": events})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn a_small_gzip_body_of_too_many_events_is_refused_whole() {
    // 2.8 KB of gzip: 20,000 events sharing a 30 KB moe_request_id.
    let (h, segment) = setup().await;
    let events = vec![json!({"event_name": "X", "uid": "u"}); 20_000];
    let body = body_of(events, &"r".repeat(30_000));
    let resp = h.handle(post_gzip(&body)).await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"], "too_many_events");
    assert!(v["message"].as_str().unwrap().contains("20000"), "{v}");
    assert!(segment.requests().is_empty());
}

#[tokio::test]
async fn a_body_of_millions_of_scalars_is_refused_whole() {
    // 6 MB of `{"events":[1,1,1,…]}`: three million events.
    let (h, segment) = setup().await;
    let mut body = String::from("{\"events\":[1");
    while body.len() < BODY_LIMIT - 4 {
        body.push_str(",1");
    }
    body.push_str("]}");
    let resp = h.handle(post(body)).await;
    let (status, v, size) = answer(&resp);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"], "too_many_events");
    assert!(size < 512);
    assert!(segment.requests().is_empty());
}

#[tokio::test]
async fn the_event_limit_itself_is_accepted() {
    let (h, segment) = setup().await;
    let body = body_of((0..MAX_EVENTS).map(event).collect(), "req-limit");
    let resp = h.handle(post(body)).await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["forwarded"], MAX_EVENTS);
    assert_eq!(segment.accepted().len(), MAX_EVENTS);
}

#[tokio::test]
async fn ten_thousand_invalid_events_make_a_bounded_answer() {
    // 330 KB of `{}` events used to make an answer over Lambda's 6 MB response limit.
    let (h, segment) = setup().await;
    let mut events = vec![json!({}); MAX_EVENTS - 1];
    events.push(event(1));
    let resp = h.handle(post(body_of(events, "req-empty"))).await;
    let (status, v, size) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["received"], MAX_EVENTS);
    assert_eq!(v["forwarded"], 1);
    assert_eq!(v["rejected_count"], MAX_EVENTS - 1);
    let listed = v["rejected"].as_array().unwrap();
    assert_eq!(listed.len(), MAX_LISTED_REJECTIONS);
    assert_eq!(listed[0]["index"], 0);
    assert_eq!(listed[0]["reason"], "no_event_name");
    assert!(size < 16 * 1024, "{size}");
    assert_eq!(segment.accepted().len(), 1);
}

#[tokio::test]
async fn long_uuids_of_rejected_events_are_cut_in_the_answer() {
    let (h, _segment) = setup().await;
    let events: Vec<Value> = (0..200)
        .map(|i| json!({"event_uuid": format!("{i}-{}", "u".repeat(30_000)), "uid": "u"}))
        .collect();
    let resp = h.handle(post(body_of(events, "req-uuids"))).await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["rejected_count"], 200);
    let uuid = v["rejected"][0]["event_uuid"].as_str().unwrap();
    assert!(
        uuid.starts_with("0-uuu") && uuid.chars().count() <= 101,
        "{uuid}"
    );
}

#[tokio::test]
async fn long_request_ids_and_app_names_are_cut_in_every_message() {
    let long = "r".repeat(30_000);
    let other = format!("{}x", "r".repeat(29_999));
    let body = json!({"app_name": long, "moe_request_id": long, "events": [event(1), event(2)]});
    let out = mapping::map_body(&body.to_string(), NOW * 1000, mapping::Limits::REQUEST).unwrap();
    assert_eq!(out.messages.len(), 2);
    for m in &out.messages {
        assert!(m.json.len() < 2_000, "{}", m.json.len());
        let v: Value = serde_json::from_str(&m.json).unwrap();
        for key in ["moe_request_id", "app_name"] {
            let s = v["properties"][key].as_str().unwrap();
            assert!(s.chars().count() <= MAX_REQUEST_TEXT_CHARS, "{s}");
            assert!(s.starts_with("rrrr") && s.contains("…(sha256:"), "{s}");
        }
    }
    // Two long ids that differ only past the cut stay distinct.
    let id = |rid: &str| {
        let body = json!({"moe_request_id": rid, "events": [event(1)]}).to_string();
        mapping::map_body(&body, NOW * 1000, mapping::Limits::REQUEST)
            .unwrap()
            .moe_request_id
    };
    assert_ne!(id(&long), id(&other));
    // Short ones are untouched.
    assert_eq!(id("req-1").as_deref(), Some("req-1"));
    // Through the handler: the answer carries the cut id too.
    let (h, segment) = setup().await;
    let events: Vec<Value> = (0..1_000).map(event).collect();
    let resp = h.handle(post_gzip(&body_of(events, &long))).await;
    let (status, v, size) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["forwarded"], 1_000);
    assert!(size < 1_024, "{size}");
    assert_eq!(segment.accepted().len(), 1_000);
}

#[tokio::test]
async fn an_event_with_too_many_attributes_is_rejected_alone() {
    let (h, segment) = setup().await;
    let attrs: serde_json::Map<String, Value> = (0..=MAX_ATTRIBUTES)
        .map(|i| (format!("a{i}"), json!(1)))
        .collect();
    let mut wide = event(1);
    wide["event_attributes"] = Value::Object(attrs);
    let resp = h
        .handle(post(body_of(vec![wide, event(2)], "req-wide")))
        .await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["forwarded"], 1);
    assert_eq!(v["rejected"][0]["reason"], "too_many_attributes");
    assert_eq!(v["rejected"][0]["event_uuid"], "evt-000001");
    assert_eq!(segment.accepted().len(), 1);
}

/// The message of a one-event body, parsed.
fn only_message(body: &Value) -> Value {
    let out = mapping::map_body(&body.to_string(), NOW * 1000, mapping::Limits::REQUEST).unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert!(out.messages[0].json.len() <= MAX_MESSAGE_BYTES);
    serde_json::from_str(&out.messages[0].json).unwrap()
}

#[test]
fn thousands_of_attributes_are_truncated_in_one_pass_with_a_bounded_record() {
    let n = MAX_ATTRIBUTES;
    let attrs: serde_json::Map<String, Value> = (0..n)
        .map(|i| (format!("attribute_{i:05}"), json!(format!("value-{i}"))))
        .collect();
    let mut e = event(1);
    e["event_attributes"] = Value::Object(attrs);
    let m = only_message(&json!({"events": [e]}));
    let props = m["properties"].as_object().unwrap();
    let listed = props["moe_truncated"].as_array().unwrap();
    let count = props["moe_truncated_count"].as_u64().unwrap() as usize;
    assert_eq!(listed.len(), 10);
    let kept = props.keys().filter(|k| k.starts_with("attribute_")).count();
    // Nothing vanishes without a trace: every attribute is kept or counted.
    assert_eq!(kept + count, n);
    assert!(kept > 0);
}

#[test]
fn thousands_of_small_traits_fit_after_truncation() {
    // 3,000 small traits (50 KB): each dropped path used to add more than it removed.
    let traits: serde_json::Map<String, Value> =
        (0..3_000).map(|i| (format!("t{i}"), json!(i))).collect();
    let mut e = event(1);
    e["user_attributes"] = Value::Object(traits);
    let m = only_message(&json!({"events": [e]}));
    let kept = m["context"]["traits"].as_object().unwrap().len();
    let count = m["properties"]["moe_truncated_count"].as_u64().unwrap() as usize;
    assert_eq!(kept + count, 3_000);
    assert!(
        m["properties"]["moe_truncated"][0]
            .as_str()
            .unwrap()
            .starts_with("context.traits.t")
    );
}

#[test]
fn long_keys_are_cut_in_the_truncation_record() {
    let mut e = event(1);
    e["event_attributes"] = json!({ "k".repeat(40_000): 1 });
    let m = only_message(&json!({"events": [e]}));
    let path = m["properties"]["moe_truncated"][0].as_str().unwrap();
    assert!(path.starts_with("properties.kkk") && path.ends_with('…'));
    assert_eq!(path.len(), "properties.".len() + 100 + '…'.len_utf8());
    assert_eq!(m["properties"]["moe_truncated_count"], 1);
}

#[tokio::test]
async fn a_gzip_bomb_is_held_to_the_body_limit() {
    // 52 KB of gzip expanding past the body limit: events without event_uuid.
    let (h, segment) = setup().await;
    let events = vec![json!({"event_name": "X", "uid": "u", "event_time": NOW}); 9_000];
    let mut body = body_of(events, "req-bomb");
    // Pad with whitespace (valid JSON) past the limit.
    body.splice(1..1, std::iter::repeat_n(b' ', BODY_LIMIT));
    let resp = h.handle(post_gzip(&body)).await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"], "payload_too_large");
    assert!(segment.requests().is_empty());
}

#[tokio::test]
async fn events_without_uuids_get_content_ids() {
    let (h, segment) = setup().await;
    let events: Vec<Value> = (0..5_000)
        .map(|i| {
            json!({"event_name": "X", "uid": format!("u{}", i % 50), "event_time": NOW,
                        "event_attributes": {"n": i % 100}})
        })
        .collect();
    let resp = h.handle(post_gzip(&body_of(events, "req-nouuid"))).await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["forwarded"], 5_000);
    // Identical events share their content id: 100 distinct (uid, n) pairs.
    let ids = segment.accepted();
    assert_eq!(ids.len(), 100);
    assert!(ids.keys().all(|id| id.starts_with("moe-h-")));
}

/// `n` keys that all hash alike under FxHash v1 ([`fx_v1`], a fixed multiplicative hash as
/// fixed lookup tables use): 16 bytes each, the second word chosen to cancel the first.
fn fx_colliding_keys(n: usize) -> Vec<String> {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut keys = Vec::with_capacity(n);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while keys.len() < n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let w1 = state & 0x3f3f_3f3f_3f3f_3f3f | 0x4040_4040_4040_4040;
        let w2 = w1.wrapping_mul(SEED).rotate_left(5) ^ 0x4141_4141_4141_4141;
        // Printable ASCII only, so the key is plain JSON text.
        let bytes: Vec<u8> = [w1.to_le_bytes(), w2.to_le_bytes()].concat();
        if bytes
            .iter()
            .all(|b| (0x21..0x7f).contains(b) && *b != b'"' && *b != b'\\')
        {
            keys.push(String::from_utf8(bytes).unwrap());
        }
    }
    keys
}

/// FxHash as rustc used it before rustc-hash 2 (and as this crate's tables did): each 8-byte
/// word folded in with a rotate, xor and multiply; the bytes then `0xff` (`str`'s `Hash`).
fn fx_v1(key: &str) -> u64 {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let add = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(SEED);
    let mut words = key.as_bytes().chunks(8).map(|c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    });
    let h = words.by_ref().fold(0, add);
    add(h, 0xff)
}

#[test]
fn the_crafted_keys_do_collide_under_a_fixed_multiplicative_hash() {
    // The hostile input is real: all these keys have one FxHash (v1) value.
    let keys = fx_colliding_keys(64);
    let first = fx_v1(&keys[0]);
    assert!(keys.iter().all(|k| fx_v1(k) == first));
}

#[tokio::test]
async fn keys_crafted_to_collide_are_mapped_like_any_others() {
    let (h, segment) = setup().await;
    let keys = fx_colliding_keys(8_192);
    let events: Vec<Value> = (0..20)
        .map(|i| {
            let attrs: serde_json::Map<String, Value> =
                keys.iter().map(|k| (k.clone(), json!(i))).collect();
            let mut e = event(i);
            e["event_attributes"] = Value::Object(attrs);
            e
        })
        .collect();
    let resp = h.handle(post(body_of(events, "req-collide"))).await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["forwarded"], 20);
    assert_eq!(segment.accepted().len(), 20);
}

#[tokio::test]
async fn a_stored_token_with_surrounding_whitespace_still_matches() {
    let segment = SegmentStub::start(&[KEY]).await;
    let h = handler(StaticSource(Ok(settings(" tok \n"))), &segment);
    for (header, value) in [("authorization", "Bearer tok"), ("x-api-key", " tok")] {
        let req = request(&[(header, value)], body_of(vec![event(1)], "req-ws"));
        let (status, v, _) = answer(&h.handle(req).await);
        assert_eq!(status, StatusCode::OK, "{header}: {v}");
    }
}

/// A secret source that fails like the AWS SDK does, with details a stranger must not see.
struct Unreadable {
    calls: Arc<AtomicUsize>,
}

const LEAKY: &str = "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/moe-role/fn is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:moe-AbCdEf";

impl SecretSource for Unreadable {
    async fn fetch(&self) -> Result<String, SettingsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(SettingsError::Unavailable(LEAKY.into()))
    }
}

fn assert_tells_nothing(v: &Value) {
    let text = v.to_string();
    for secret in [
        "arn:",
        "123456789012",
        "moe-role",
        "AccessDenied",
        "secretsmanager",
        "segment_write_key",
        "webhook_",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn strangers_learn_nothing_when_the_secret_is_unreadable() {
    let segment = SegmentStub::start(&[KEY]).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let h = handler(
        Unreadable {
            calls: calls.clone(),
        },
        &segment,
    );
    // No credential at all: 401 before the secret is read.
    let req = request(&[], body_of(vec![event(1)], "r"));
    let (status, v, _) = answer(&h.handle(req).await);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_tells_nothing(&v);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // A wrong credential: the secret is needed to tell, and it cannot be read.
    let req = request(
        &[("authorization", "Bearer guess")],
        body_of(vec![event(1)], "r"),
    );
    let (status, v, _) = answer(&h.handle(req).await);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"], "settings_unavailable");
    assert_tells_nothing(&v);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_invalid_secret_answers_500_without_naming_its_fields() {
    struct Invalid;
    impl SecretSource for Invalid {
        async fn fetch(&self) -> Result<String, SettingsError> {
            Ok(json!({"segment_region": "us", "webhook_token": TOKEN}).to_string())
        }
    }
    let segment = SegmentStub::start(&[KEY]).await;
    let h = handler(Invalid, &segment);
    let (status, v, _) = answer(&h.handle(post(body_of(vec![event(1)], "r"))).await);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["error"], "misconfigured");
    assert_tells_nothing(&v);
}

#[tokio::test]
async fn an_emulator_deadline_falls_back_to_the_default_budget() {
    // `cargo lambda watch` sends `Lambda-Runtime-Deadline-Ms: 600000`: a duration.
    let (h, segment) = setup().await;
    let mut ctx = lambda_http::Context::default();
    ctx.deadline = 600_000;
    let req = post(body_of(vec![event(1), event(2)], "req-emu")).with_lambda_context(ctx);
    let (status, v, _) = answer(&h.handle(req).await);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["forwarded"], 2);
    assert_eq!(segment.accepted().len(), 2);
}

#[tokio::test]
async fn a_long_content_encoding_is_not_echoed() {
    let (h, _segment) = setup().await;
    let encoding = "x".repeat(8_000);
    let req = request(
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("content-encoding", &encoding),
        ],
        b"{}".to_vec(),
    );
    let (status, v, size) = answer(&h.handle(req).await);
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(v["error"], "unsupported_encoding");
    assert!(size < 256, "{size}");
}

#[test]
fn an_absurd_body_limit_is_a_clear_startup_error() {
    // 2^61 used to overflow `limit + 1` and make every gzip body decode as empty.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moe2seg"))
        .args(["invoke", "events/apigw-v2.json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MAX_BODY_BYTES", "2305843009213693952")
        .env_remove("SECRET_ID")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MAX_BODY_BYTES") && stderr.contains("6291456"),
        "{stderr}"
    );
}

#[tokio::test]
async fn control_characters_cannot_inflate_the_answer() {
    // Each control character is 6 bytes as a JSON escape: the listed uuids are cut by bytes
    // and made printable, so 100 of them stay far under the bound.
    let (h, _segment) = setup().await;
    let events: Vec<Value> = (0..150)
        .map(|i| json!({"event_uuid": format!("{i}{}", "\u{1}".repeat(1_000)), "uid": "u"}))
        .collect();
    let odd = "\u{1}".repeat(256);
    let body = json!({"app_name": odd, "moe_request_id": odd, "events": events});
    let resp = h.handle(post(body.to_string())).await;
    let (status, v, size) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["rejected_count"], 150);
    let uuid = v["rejected"][0]["event_uuid"].as_str().unwrap();
    assert!(uuid.starts_with("0???") && uuid.len() <= 104, "{uuid}");
    // 100 listed rejections of about 170 bytes each.
    assert!(size < 24 * 1024, "{size}");
}

#[tokio::test]
async fn a_body_mapping_to_too_many_bytes_is_refused_whole() {
    // Each value of `os` and `app_version` is copied into context as well, and every
    // message carries the request's (cut) id and app name: 6 MB of events can map to more
    // than the bound.
    let (h, segment) = setup().await;
    let long = "r".repeat(300);
    let mut events = Vec::new();
    let mut size = 0;
    while size < BODY_LIMIT - 8_000 && events.len() < MAX_EVENTS {
        let mut e = event(events.len());
        e["event_attributes"] = json!({"os": "A".repeat(250), "app_version": "9".repeat(250)});
        size += e.to_string().len() + 1;
        events.push(e);
    }
    let body = json!({"app_name": long, "moe_request_id": long, "events": events}).to_string();
    assert!(body.len() <= BODY_LIMIT);
    let resp = h.handle(post(body)).await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"], "mapped_too_large");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains(&MAX_MAPPED_BYTES.to_string())
    );
    assert!(segment.requests().is_empty());
}

/// A queue whose SQS endpoint accepts connections and never answers.
#[tokio::test]
async fn a_hanging_sqs_is_answered_503_before_the_deadline() {
    // Segment down, SQS never answering: delivery stops early enough to leave parking its
    // slice, and parking gives up at the deadline, so the answer comes before Lambda would
    // kill the invocation.
    let segment = SegmentStub::start(&[KEY]).await;
    segment.script(std::iter::repeat_n(Reply::Status(503), 10_000));
    let mut h = handler(StaticSource(Ok(settings(TOKEN))), &segment);
    h.budget.default = Duration::from_secs(3);
    h.budget.margin = Duration::from_millis(200);
    h.forwarder.queues_mut().unwrap().parked = Some(parking::hanging_queue("parked").await);
    let started = Instant::now();
    let resp = h
        .handle(post(body_of((0..100).map(event).collect(), "req-hang")))
        .await;
    let elapsed = started.elapsed();
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"], "parking_failed");
    assert_eq!(v["undelivered"], 100);
    // The deadline is 2.8 s away: a generous bound that only catches a park left unbounded.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    // Delivery stopped at its own deadline, 0.6 s before the invocation's (0.5 s + 1 ms per
    // message, for parking).
    let last = segment.requests().last().map(|r| r.at).unwrap();
    assert!(
        last.duration_since(started) < Duration::from_millis(2_700),
        "{:?}",
        last.duration_since(started)
    );
}

#[tokio::test]
async fn an_unconfigured_function_tells_strangers_nothing() {
    let segment = SegmentStub::start(&[KEY]).await;
    let mut h = handler(StaticSource(Ok(settings(TOKEN))), &segment);
    h.forwarder.mode = Mode::Unconfigured("SECRET_ID is not set".into());
    let (status, v, _) = answer(&h.handle(request(&[], body_of(vec![event(1)], "r"))).await);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let (status, v, _) = answer(&h.handle(post(body_of(vec![event(1)], "r"))).await);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["error"], "misconfigured");
    assert!(!v.to_string().contains("SECRET_ID"), "{v}");
}

/// A handler whose settings carry these mapping options.
async fn setup_with_options(options: Value) -> (Webhook<StaticSource>, SegmentStub) {
    let segment = SegmentStub::start(&[KEY]).await;
    let mut s = settings(TOKEN);
    s.mapping = moengage_segment::mapping::options::Mapping::good(Arc::new(
        moengage_segment::mapping::options::MappingOptions::from_value(&options).unwrap(),
    ));
    (handler(StaticSource(Ok(s)), &segment), segment)
}

#[tokio::test]
async fn identify_for_every_user_at_the_event_limit_is_delivered_whole() {
    // 10,000 users with traits: 20,000 messages, under the same limits as tracks.
    let (h, segment) = setup_with_options(json!({"identify": "per_user"})).await;
    let events = (0..MAX_EVENTS)
        .map(|i| {
            let mut e = event(i);
            e["user_attributes"] = json!({"first_name": format!("N{i}"), "plan": "gold"});
            e
        })
        .collect();
    let resp = h.handle(post(body_of(events, "req-identify"))).await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["received"], &v["identifies"], &v["forwarded"]),
        (
            &json!(MAX_EVENTS),
            &json!(MAX_EVENTS),
            &json!(2 * MAX_EVENTS)
        )
    );
    let accepted = segment.accepted();
    assert_eq!(accepted.len(), 2 * MAX_EVENTS);
    assert!(accepted.values().all(|n| *n == 1));
    assert!(
        segment.violations().is_empty(),
        "{:?}",
        segment.violations()
    );
}

#[tokio::test]
async fn one_user_on_every_event_gets_one_identify_within_32_kb() {
    // 10,000 events of one user, each adding a trait and changing `visits`: one identify,
    // merged from all of them (10,001 keys, about 140 KB) and truncated to fit.
    let options = json!({"identify": "per_user"});
    let (h, segment) = setup_with_options(options.clone()).await;
    let events: Vec<Value> = (0..MAX_EVENTS)
        .map(|i| {
            let mut e = event(i);
            e["uid"] = json!("the-user");
            e["event_time"] = json!(NOW - 10_000 + i as i64);
            e["user_attributes"] = json!({"visits": i, format!("k{i}"): i});
            e
        })
        .collect();
    let body = body_of(events, "req-one-user");
    let out = mapping::map_body_with(
        std::str::from_utf8(&body).unwrap(),
        NOW * 1000,
        mapping::Limits::REQUEST,
        &moengage_segment::mapping::options::MappingOptions::from_value(&options).unwrap(),
    )
    .unwrap();
    assert_eq!(out.identifies, 1);
    let identify = out.messages.last().unwrap();
    assert!(identify.json.len() <= MAX_MESSAGE_BYTES);
    let m: Value = serde_json::from_str(&identify.json).unwrap();
    let traits = m["traits"].as_object().unwrap();
    let dropped = m["context"]["moe_truncated_count"].as_u64().unwrap() as usize;
    assert_eq!(
        traits.len() + dropped,
        MAX_EVENTS + 1,
        "every trait kept or counted"
    );
    assert_eq!(m["context"]["moe_truncated"].as_array().unwrap().len(), 10);
    if let Some(visits) = traits.get("visits") {
        assert_eq!(visits, MAX_EVENTS - 1, "the latest value");
    }

    let resp = h.handle(post(body)).await;
    let (status, v, _) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["identifies"], &v["forwarded"]),
        (&json!(1), &json!(MAX_EVENTS + 1))
    );
    assert!(segment.accepted().contains_key(&identify.message_id));
    assert!(
        segment.violations().is_empty(),
        "{:?}",
        segment.violations()
    );
}
