//! The handler end to end in-process, against the local Segment stand-in: routing, chunking,
//! every retry class, Retry-After, resets, deadlines, 401 → secret refresh, inbound auth,
//! body encodings and limits, and every sample event in `events/`.

mod segment_stub;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use lambda_http::http::{self, StatusCode};
use lambda_http::{Body, Request, Response};
use moengage_segment::cli::invoke;
use moengage_segment::delivery::forward::Forwarder;
use moengage_segment::delivery::outcome::Queues;
use moengage_segment::delivery::redeliver::Redelivery;
use moengage_segment::delivery::segment::{
    ChunkOutcome, DeliveryReport, RetryPolicy, SegmentClient, Target,
};
use moengage_segment::settings::config::Endpoints;
use moengage_segment::settings::secret::{SecretSource, SettingsCache, SettingsError};
use moengage_segment::telemetry::metrics::MetricsSink;
use moengage_segment::webhook::Webhook;
use segment_stub::{Reply, SegmentStub};
use serde_json::{Value, json};

const KEY: &str = "test-write-key-1";
const USER: &str = "moengage";
const PASS: &str = "local-password";
const TOKEN: &str = "local-token";

/// A secret source answering from a script (the last answer repeats).
struct Scripted {
    answers: Mutex<Vec<Result<String, SettingsError>>>,
    calls: AtomicUsize,
}

/// A handle on a shared script (the trait is foreign, so it needs a local type).
#[derive(Clone)]
struct Src(Arc<Scripted>);

impl std::ops::Deref for Src {
    type Target = Scripted;
    fn deref(&self) -> &Scripted {
        &self.0
    }
}

impl SecretSource for Src {
    async fn fetch(&self) -> Result<String, SettingsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut a = self.answers.lock().unwrap();
        if a.len() > 1 {
            a.remove(0)
        } else {
            a[0].clone()
        }
    }
}

fn secret_json(key: &str, region: &str) -> String {
    json!({"segment_write_key": key, "segment_region": region, "webhook_username": USER,
           "webhook_password": PASS, "webhook_token": TOKEN})
    .to_string()
}

fn scripted(answers: Vec<Result<String, SettingsError>>) -> Src {
    Src(Arc::new(Scripted {
        answers: Mutex::new(answers),
        calls: AtomicUsize::new(0),
    }))
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(300),
        attempt_timeout: Duration::from_secs(2),
        concurrency: 4,
    }
}

type TestHandler = Webhook<Src>;

/// A live forwarder: `source` for settings, the stand-ins for Segment, fast retries.
fn forwarder(source: Src, us: &SegmentStub, eu: &SegmentStub) -> Forwarder<Src> {
    Forwarder::live(
        SettingsCache::new(source, Duration::from_secs(300)),
        SegmentClient::new(fast_policy()).unwrap(),
        Endpoints {
            us: us.url.clone(),
            eu: eu.url.clone(),
        },
        Queues::default(),
    )
}

fn handler_with(source: Src, us: &SegmentStub, eu: &SegmentStub, budget: Duration) -> TestHandler {
    let mut h = Webhook::new(forwarder(source, us, eu), 6 * 1024 * 1024);
    h.budget.default = budget;
    h.budget.margin = Duration::from_millis(200);
    h
}

async fn setup(region: &str) -> (TestHandler, SegmentStub, SegmentStub, Src) {
    setup_with_budget(region, Duration::from_secs(10)).await
}

/// As `setup`, with this time budget per invocation.
async fn setup_with_budget(
    region: &str,
    budget: Duration,
) -> (TestHandler, SegmentStub, SegmentStub, Src) {
    let us = SegmentStub::start(&[KEY]).await;
    let eu = SegmentStub::start(&[KEY]).await;
    let src = scripted(vec![Ok(secret_json(KEY, region))]);
    let h = handler_with(src.clone(), &us, &eu, budget);
    (h, us, eu, src)
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    )
}

fn post(body: impl Into<Body>) -> Request {
    request("POST", &[("authorization", &basic())], body)
}

/// A request with exactly these headers.
fn request(method: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Request {
    let mut b = http::Request::builder()
        .method(method)
        .uri("https://example.execute-api.us-east-1.amazonaws.com/moengage");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

/// A Streams body with `n` events, ids `evt-<tag>-<i>`.
fn streams_body(tag: &str, n: usize, pad: usize) -> String {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"event_name": "Email Sent", "event_code": "MOE_EMAIL_SENT",
                   "event_uuid": format!("evt-{tag}-{i:05}"), "event_time": 1_764_331_200 + i,
                   "uid": format!("user-{i}"), "email_id": format!("u{i}@example.com"),
                   "event_attributes": {"campaign_id": "c1", "note": "x".repeat(pad)},
                   "user_attributes": {"moengage_user_id": format!("mu-{i}")}})
        })
        .collect();
    json!({"app_name": "Test", "source": "MOENGAGE", "moe_request_id": format!("req-{tag}"),
           "events": events})
    .to_string()
}

fn ids(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("moe-evt-{tag}-{i:05}")).collect()
}

async fn body_json(resp: &Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}

fn assert_exactly_once(stub: &SegmentStub, expected: &[String]) {
    let accepted = stub.accepted();
    for id in expected {
        assert!(
            accepted.get(id).copied().unwrap_or(0) >= 1,
            "{id} never accepted"
        );
    }
    assert_eq!(accepted.len(), expected.len(), "unexpected ids accepted");
    assert!(stub.violations().is_empty(), "{:?}", stub.violations());
}

#[tokio::test]
async fn us_region_goes_to_us_host_only() {
    let (h, us, eu, _) = setup("us").await;
    let resp = h.handle(post(streams_body("us", 10, 10))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let b = body_json(&resp).await;
    assert_eq!(
        (b["received"].as_u64(), b["forwarded"].as_u64()),
        (Some(10), Some(10))
    );
    assert_exactly_once(&us, &ids("us", 10));
    assert!(eu.requests().is_empty());
    let r = &us.requests()[0];
    assert_eq!(r.write_key.as_deref(), Some(KEY));
    assert_eq!(r.retry_count, Some(0));
    assert_eq!(r.path, "/v1/batch");
}

#[tokio::test]
async fn eu_region_goes_to_eu_host_only() {
    let (h, us, eu, _) = setup("eu").await;
    let resp = h.handle(post(streams_body("eu", 5, 10))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_exactly_once(&eu, &ids("eu", 5));
    assert!(us.requests().is_empty());
}

#[tokio::test]
async fn large_requests_are_chunked_under_segment_limits() {
    let (h, us, _, _) = setup("us").await;
    // 300 events of ~10 KB: ~3 MB, must be at least 7 requests of ≤ 475 KB.
    let resp = h.handle(post(streams_body("big", 300, 10_000))).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{:?}",
        body_json(&resp).await
    );
    let reqs = us.requests();
    assert!(reqs.len() >= 7, "{}", reqs.len());
    assert!(
        reqs.iter()
            .all(|r| r.body_len <= 475_000 && r.status == Some(200))
    );
    assert_exactly_once(&us, &ids("big", 300));
    // 6,000 tiny events: ≤ 2,500 per request.
    let (h, us, _, _) = setup("us").await;
    let resp = h.handle(post(streams_body("many", 6000, 0))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(us.requests().iter().all(|r| r.message_ids.len() <= 2500));
    assert_exactly_once(&us, &ids("many", 6000));
}

#[tokio::test]
async fn each_retryable_status_is_retried() {
    for status in [408, 410, 429, 460, 500, 502, 503, 504] {
        let (h, us, _, _) = setup("us").await;
        us.script([Reply::Status(status), Reply::Status(status)]);
        let resp = h.handle(post(streams_body("r", 3, 0))).await;
        assert_eq!(resp.status(), StatusCode::OK, "status {status}");
        let reqs = us.requests();
        assert_eq!(reqs.len(), 3, "status {status}");
        let counts: Vec<Option<u32>> = reqs.iter().map(|r| r.retry_count).collect();
        assert_eq!(counts, vec![Some(0), Some(1), Some(2)]);
        assert_exactly_once(&us, &ids("r", 3));
        assert_eq!(body_json(&resp).await["forwarded"], 3);
    }
}

#[tokio::test]
async fn other_4xx_and_501_505_are_never_retried() {
    for status in [404, 409, 422, 501, 505] {
        let (h, us, _, _) = setup("us").await;
        us.script([Reply::Status(status)]);
        let resp = h.handle(post(streams_body("n", 3, 0))).await;
        assert_eq!(us.requests().len(), 1, "status {status}");
        assert!(!resp.status().is_success(), "status {status}");
        let b = body_json(&resp).await;
        assert_eq!(b["forwarded"], 0);
        assert_eq!(b["undelivered"], 3);
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY, "status {status}");
        assert_eq!(b["error"], "segment_refused");
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (h, us, _, _) = setup("us").await;
    us.script([Reply::RetryAfter(429, "1".into())]);
    let resp = h.handle(post(streams_body("ra", 2, 0))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let reqs = us.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at.duration_since(reqs[0].at);
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    assert_exactly_once(&us, &ids("ra", 2));
}

#[tokio::test]
async fn retry_after_beyond_the_deadline_gives_up_with_503() {
    let (h, us, _, _) = setup_with_budget("us", Duration::from_secs(2)).await;
    us.script([Reply::RetryAfter(503, "60".into())]);
    let started = Instant::now();
    let resp = h.handle(post(streams_body("late", 2, 0))).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(us.requests().len(), 1);
    assert_eq!(body_json(&resp).await["error"], "segment_unavailable");
}

#[tokio::test]
async fn reset_connections_are_retried() {
    let (h, us, _, _) = setup("us").await;
    us.script([Reply::Reset, Reply::Reset]);
    let resp = h.handle(post(streams_body("rst", 4, 0))).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{:?}",
        body_json(&resp).await
    );
    assert_eq!(us.requests().len(), 3);
    assert_exactly_once(&us, &ids("rst", 4));
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let (h, us, _, _) = setup("us").await;
    us.script([Reply::Delay(Duration::from_secs(3))]);
    let resp = h.handle(post(streams_body("slow", 2, 0))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The slow first answer may still have been accepted by the stand-in after the client
    // gave up: that is exactly the double delivery deterministic messageIds make harmless.
    // Let the stand-in finish the slow answer before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let accepted = us.accepted();
    for id in ids("slow", 2) {
        assert!(accepted.contains_key(&id));
    }
    let reqs = us.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs.iter().filter_map(|r| r.retry_count).max(), Some(1));
}

#[tokio::test]
async fn persistent_failure_ends_in_503_inside_the_deadline() {
    let (h, us, _, _) = setup_with_budget("us", Duration::from_secs(2)).await;
    us.script(std::iter::repeat_n(Reply::Status(500), 1000));
    let started = Instant::now();
    let resp = h.handle(post(streams_body("down", 3, 0))).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_millis(1900), "{took:?}");
    let b = body_json(&resp).await;
    assert_eq!(b["undelivered"], 3);
    assert_eq!(b["forwarded"], 0);
    assert!(us.requests().len() >= 3, "kept retrying within the budget");
    assert!(us.accepted().is_empty());
}

#[tokio::test]
async fn a_401_rereads_the_secret_and_delivers_with_the_new_key() {
    let us = SegmentStub::start(&["new-key"]).await;
    let eu = SegmentStub::start(&[]).await;
    let src = scripted(vec![
        Ok(secret_json("old-key", "us")),
        Ok(secret_json("new-key", "us")),
    ]);
    let h = handler_with(src.clone(), &us, &eu, Duration::from_secs(10));
    let resp = h.handle(post(streams_body("rot", 3, 0))).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{:?}",
        body_json(&resp).await
    );
    assert_eq!(src.calls.load(Ordering::SeqCst), 2);
    let keys: Vec<_> = us
        .requests()
        .iter()
        .map(|r| r.write_key.clone().unwrap())
        .collect();
    assert_eq!(keys, vec!["old-key", "new-key"]);
    assert_exactly_once(&us, &ids("rot", 3));
    // The next request uses the new key straight away.
    h.handle(post(streams_body("rot2", 1, 0))).await;
    assert_eq!(
        us.requests().last().unwrap().write_key.as_deref(),
        Some("new-key")
    );
    assert_eq!(src.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_401_with_an_unchanged_key_answers_503_without_looping() {
    let us = SegmentStub::start(&[]).await;
    let eu = SegmentStub::start(&[]).await;
    let src = scripted(vec![Ok(secret_json("bad-key", "us"))]);
    let h = handler_with(src.clone(), &us, &eu, Duration::from_secs(10));
    let resp = h.handle(post(streams_body("bad", 3, 0))).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_json(&resp).await["error"], "segment_unauthorized");
    assert_eq!(us.requests().len(), 1);
    assert_eq!(src.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn wrong_or_missing_credentials_forward_nothing() {
    let (h, us, eu, _) = setup("us").await;
    let bad_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("moengage:nope")
    );
    for auth in [
        Some(bad_basic.as_str()),
        Some("Bearer nope"),
        Some("Basic"),
        None,
    ] {
        let mut b = http::Request::builder().method("POST").uri("/moengage");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let resp = h
            .handle(b.body(Body::from(streams_body("x", 2, 0))).unwrap())
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
    }
    let resp = h
        .handle(request(
            "POST",
            &[("x-api-key", "nope")],
            streams_body("x", 2, 0),
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(us.requests().is_empty() && eu.requests().is_empty());
}

#[tokio::test]
async fn token_auth_as_bearer_and_api_key() {
    let (h, us, _, _) = setup("us").await;
    for (k, v) in [
        ("authorization", format!("Bearer {TOKEN}")),
        ("x-api-key", TOKEN.to_owned()),
    ] {
        let resp = h
            .handle(request("POST", &[(k, &v)], streams_body("tok", 1, 0)))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(us.requests().len(), 2);
}

#[tokio::test]
async fn invalid_secret_fails_closed_with_500() {
    let us = SegmentStub::start(&[KEY]).await;
    let eu = SegmentStub::start(&[KEY]).await;
    for bad in [
        r#"{"segment_write_key":"k","webhook_token":"t"}"#,
        r#"{"segment_write_key":"k","segment_region":"mars","webhook_token":"t"}"#,
        r#"{"segment_write_key":"k","segment_region":"us"}"#,
        "not json",
    ] {
        let h = handler_with(
            scripted(vec![Ok(bad.into())]),
            &us,
            &eu,
            Duration::from_secs(5),
        );
        let resp = h.handle(post(streams_body("cfg", 1, 0))).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{bad}");
        let text = String::from_utf8_lossy(resp.body().as_ref()).to_string();
        assert!(!text.contains("\"k\"") && !text.contains("mars"), "{text}");
    }
    assert!(us.requests().is_empty());
}

#[tokio::test]
async fn unreadable_secret_answers_503() {
    let us = SegmentStub::start(&[KEY]).await;
    let src = scripted(vec![Err(SettingsError::Unavailable(
        "connection refused".into(),
    ))]);
    let h = handler_with(src, &us, &us, Duration::from_secs(5));
    let resp = h.handle(post(streams_body("down", 1, 0))).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_json(&resp).await["error"], "settings_unavailable");
    assert!(us.requests().is_empty());
}

#[tokio::test]
async fn methods_other_than_post_get_405() {
    let (h, us, _, _) = setup("us").await;
    for m in ["GET", "PUT", "DELETE", "HEAD"] {
        let resp = h
            .handle(request(m, &[("authorization", &basic())], Body::Empty))
            .await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(resp.headers()["allow"], "POST");
    }
    assert!(us.requests().is_empty());
}

#[tokio::test]
async fn bodies_not_streams_get_400_and_forward_nothing() {
    let (h, us, _, _) = setup("us").await;
    for body in [
        "",
        "hello",
        "[]",
        "{}",
        r#"{"events": {}}"#,
        r#"{"events": [1,"#,
    ] {
        let resp = h.handle(post(body)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(body_json(&resp).await["error"], "not_streams_request");
    }
    assert!(us.requests().is_empty());
}

#[tokio::test]
async fn rejected_events_are_reported_and_the_rest_delivered() {
    let (h, us, _, _) = setup("us").await;
    let body = json!({"moe_request_id": "req-mixed", "events": [
        {"event_name": "Email Sent", "event_uuid": "ok-1", "uid": "u1"},
        {"event_name": "Email Sent", "event_uuid": "anon-1"},
        "junk",
        {"event_name": "Email Sent", "event_uuid": "ok-2", "uid": "u2"}]});
    let resp = h.handle(post(body.to_string())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let b = body_json(&resp).await;
    assert_eq!(b["received"], 4);
    assert_eq!(b["forwarded"], 2);
    assert_eq!(b["rejected"][0]["event_uuid"], "anon-1");
    assert_eq!(b["rejected"][0]["reason"], "no_identity");
    assert_eq!(b["rejected"][1]["reason"], "invalid_event");
    assert_exactly_once(&us, &["moe-ok-1".to_owned(), "moe-ok-2".to_owned()]);
}

#[tokio::test]
async fn one_uuid_on_different_events_delivers_each_of_them() {
    // MoEngage's doc samples put one placeholder uuid on every event: each different event
    // must reach Segment under its own messageId (Segment dedups on it).
    let (h, us, _, _) = setup("us").await;
    let uuid = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
    let body = json!({"moe_request_id": uuid, "events": [
        {"event_name": "Email Sent", "event_uuid": uuid, "uid": "u1", "event_time": 1_764_331_000},
        {"event_name": "Email Opened", "event_uuid": uuid, "uid": "u1", "event_time": 1_764_331_100},
        {"event_name": "Email Clicked", "event_uuid": uuid, "uid": "u1", "event_time": 1_764_331_200}]})
    .to_string();
    let resp = h.handle(post(body.clone())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let b = body_json(&resp).await;
    assert_eq!(
        (b["forwarded"].as_u64(), b["duplicate_uuids"].as_u64()),
        (Some(3), Some(3))
    );
    let accepted = us.accepted();
    assert_eq!(accepted.len(), 3, "{accepted:?}");
    assert!(accepted.keys().all(|id| id.starts_with("moe-h-")));
    // A re-send yields the same three ids (Segment deduplicates the re-send).
    h.handle(post(body)).await;
    assert_eq!(us.accepted().len(), 3);
    assert!(us.accepted().values().all(|n| *n == 2));
}

#[tokio::test]
async fn empty_event_list_is_200_with_no_segment_call() {
    let (h, us, _, _) = setup("us").await;
    let resp = h
        .handle(post(r#"{"moe_request_id":"r","events":[]}"#))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_json(&resp).await["received"], 0);
    assert!(us.requests().is_empty());
}

#[tokio::test]
async fn gzip_bodies_with_or_without_header() {
    use std::io::Write;
    let (h, us, _, _) = setup("us").await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(streams_body("gz", 3, 0).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    for with_header in [true, false] {
        let mut b = http::Request::builder()
            .method("POST")
            .uri("/")
            .header("authorization", basic());
        if with_header {
            b = b.header("content-encoding", "gzip");
        }
        let resp = h.handle(b.body(Body::from(gz.clone())).unwrap()).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(us.accepted().len(), 3);
    let auth = basic();
    let resp = h
        .handle(request(
            "POST",
            &[("authorization", &auth), ("content-encoding", "gzip")],
            &b"not gzip"[..],
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = h
        .handle(request(
            "POST",
            &[("authorization", &auth), ("content-encoding", "br")],
            &b"x"[..],
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    use std::io::Write;
    let (mut h, us, _, _) = setup("us").await;
    h.max_body_bytes = 10_000;
    let resp = h.handle(post(streams_body("big", 100, 100))).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A gzip bomb: small compressed, huge expanded.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 1_000_000]).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 10_000);
    let resp = h.handle(post(gz)).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(us.requests().is_empty());
}

#[tokio::test]
async fn every_sample_event_gets_its_documented_status() {
    let (h, us, eu, src) = setup("us").await;
    let expected = [
        ("apigw-v2.json", 200, 6),
        ("apigw-v2-base64.json", 200, 6),
        ("apigw-v2-gzip.json", 200, 6),
        ("apigw-rest-v1.json", 200, 6),
        ("function-url.json", 200, 6),
        ("apigw-v2-100.json", 200, 100),
        ("bad-credentials.json", 401, 0),
        ("bad-body.json", 400, 0),
        ("get-method.json", 405, 0),
        // No OAuth client in these settings; tests/oauth.rs gets a token with it.
        ("oauth-token.json", 401, 0),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    // Beside these: sqs-parked.json (below) and backfill-items.json (tests/backfill.rs).
    assert_eq!(
        on_disk,
        expected.len() + 2,
        "a sample event without an expectation here"
    );
    for (file, status, forwarded) in expected {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let req = invoke::with_deadline(invoke::request_from_event(&text).unwrap(), 10_000);
        let resp = h.handle(req).await;
        assert_eq!(resp.status().as_u16(), status, "{file}");
        if status == 200 {
            assert_eq!(body_json(&resp).await["forwarded"], forwarded, "{file}");
        }
    }
    // The SQS event of the parked queue: redelivered, no batch item failures, the parcels'
    // own messageIds.
    let text = std::fs::read_to_string(dir.join("sqs-parked.json")).unwrap();
    let invoke::Invocation::Sqs(event) = invoke::event_from_str(&text).unwrap() else {
        panic!("sqs-parked.json is not recognised as an SQS event");
    };
    let before = us.accepted();
    let redelivery = Redelivery::new(forwarder(src, &us, &eu));
    let answer = redelivery.redeliver(event, None).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    let after = us.accepted();
    let more: Vec<&String> = after
        .iter()
        .filter(|(id, n)| before.get(*id).copied().unwrap_or(0) + 1 == **n)
        .map(|(id, _)| id)
        .collect();
    let mut more: Vec<&str> = more.into_iter().map(String::as_str).collect();
    more.sort_unstable();
    assert_eq!(
        more,
        [
            "moe-evt-apigw-0001",
            "moe-evt-apigw-0002",
            "moe-evt-apigw-0003"
        ]
    );
    assert!(us.violations().is_empty(), "{:?}", us.violations());
}

#[tokio::test]
async fn hundred_events_exactly_once_under_injected_faults() {
    let (h, us, _, _) = setup("us").await;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/batch_100.json"),
    )
    .unwrap();
    us.script([
        Reply::Status(500),
        Reply::RetryAfter(429, "1".into()),
        Reply::Reset,
        Reply::Status(503),
    ]);
    let resp = h.handle(post(text.clone())).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{:?}",
        body_json(&resp).await
    );
    let b = body_json(&resp).await;
    assert_eq!(
        (b["received"].as_u64(), b["forwarded"].as_u64()),
        (Some(100), Some(100))
    );
    let accepted = us.accepted();
    assert_eq!(accepted.len(), 100);
    assert!(
        accepted.values().all(|n| *n == 1),
        "a messageId accepted twice in one invocation"
    );
    // MoEngage re-sends the same batch: the same messageIds arrive again (Segment dedups).
    let first: std::collections::BTreeSet<_> = accepted.keys().cloned().collect();
    h.handle(post(text)).await;
    let second: std::collections::BTreeSet<_> = us.accepted().keys().cloned().collect();
    assert_eq!(first, second);
    assert!(us.violations().is_empty());
}

#[tokio::test]
async fn emf_metrics_line_per_invocation() {
    let (mut h, _us, _, _) = setup("us").await;
    let lines = Arc::new(Mutex::new(Vec::new()));
    h.metrics = MetricsSink::Capture(lines.clone());
    h.handle(post(streams_body("m", 4, 0))).await;
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 1);
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["Received"], 4);
    assert_eq!(v["Forwarded"], 4);
    assert_eq!(v["Rejected"], 0);
    assert_eq!(v["moe_request_id"], "req-m");
}

#[tokio::test]
async fn one_poisoned_message_does_not_sink_its_batch() {
    let (h, us, _, _) = setup("us").await;
    us.poison("moe-evt-p-00003");
    us.poison("moe-evt-p-00071");
    let resp = h.handle(post(streams_body("p", 100, 0))).await;
    // Without a dead-letter queue the two refused events make the answer non-2xx, so
    // MoEngage re-sends; the 98 good ones are already in Segment (deduplicated on re-send).
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let b = body_json(&resp).await;
    assert_eq!(
        (b["forwarded"].as_u64(), b["undelivered"].as_u64()),
        (Some(98), Some(2))
    );
    let accepted = us.accepted();
    assert_eq!(accepted.len(), 98);
    assert!(!accepted.contains_key("moe-evt-p-00003") && !accepted.contains_key("moe-evt-p-00071"));
    // Bisection costs O(log n) requests per bad message, not one per message.
    assert!(
        us.requests().len() <= 30,
        "{} requests",
        us.requests().len()
    );
}

#[tokio::test]
async fn a_whole_batch_refused_with_400_is_split_down_to_single_messages() {
    let (h, us, _, _) = setup("us").await;
    us.script([Reply::Status(400)]);
    let resp = h.handle(post(streams_body("s", 4, 0))).await;
    // The scripted 400 hit the 4-message batch once; the halves then went through.
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{:?}",
        body_json(&resp).await
    );
    assert_eq!(us.accepted().len(), 4);
    assert_eq!(us.requests().len(), 3);
}

/// Load: many concurrent 100-event invocations through one handler (as a Lambda environment
/// with managed concurrency, or a burst of MoEngage re-sends), with faults injected. Bounded in
/// count (40 × 100 events) and time (each invocation's own deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_lose_nothing() {
    let (h, us, _, _) = setup("us").await;
    let faults = (0..30).map(|i| match i % 3 {
        0 => Reply::Status(500),
        1 => Reply::RetryAfter(429, "0".into()),
        _ => Reply::Reset,
    });
    us.script(faults);
    let h = Arc::new(h);
    let started = Instant::now();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                h.handle(post(streams_body(&format!("load{i:02}"), 100, 50)))
                    .await
            })
        })
        .collect();
    for t in tasks {
        let resp = t.await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{:?}",
            body_json(&resp).await
        );
    }
    let accepted = us.accepted();
    assert_eq!(accepted.len(), 4000, "lost events");
    for i in 0..40 {
        for id in ids(&format!("load{i:02}"), 100) {
            assert!(accepted.contains_key(&id), "{id} lost");
        }
    }
    assert!(us.violations().is_empty());
    println!(
        "40 × 100 events with 30 injected faults: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redirects_are_not_followed_and_count_as_undelivered() {
    for status in [301, 302] {
        let (h, us, _, _) = setup_with_budget("us", Duration::from_secs(2)).await;
        // A redirect (absolute, then relative) to a path that answers 200 to anything: a
        // client following it would re-send as a GET without the batch and count it delivered.
        let to = if status == 301 {
            format!("{}{}", us.url, segment_stub::OK_PATH)
        } else {
            segment_stub::OK_PATH.to_owned()
        };
        us.script(std::iter::repeat_n(Reply::Redirect(status, to), 1000));
        let resp = h.handle(post(streams_body("moved", 3, 0))).await;
        let b = body_json(&resp).await;
        assert_eq!(
            resp.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{status}: {b}"
        );
        assert_eq!(b["error"], "segment_unavailable");
        assert_eq!(
            (b["forwarded"].as_u64(), b["undelivered"].as_u64()),
            (Some(0), Some(3)),
            "{status}"
        );
        // The answer carries a stable code; what Segment said is for the logs, and in the
        // delivery report.
        let report = deliver_directly(&us, "moved-report").await;
        let ChunkOutcome::GaveUp { last_error } = &report.chunks[0].outcome else {
            panic!("{report:?}");
        };
        assert!(
            last_error.contains(&format!("HTTP {status}: redirect (not followed) to "))
                && last_error.contains(segment_stub::OK_PATH),
            "{last_error}"
        );
        let reqs = us.requests();
        assert!(
            reqs.iter().all(|r| r.path == "/v1/batch"),
            "a redirect was followed: {:?}",
            reqs.iter().map(|r| &r.path).collect::<Vec<_>>()
        );
        assert!(reqs.len() >= 2, "a redirect is retried like a 5xx");
        assert!(us.accepted().is_empty());
    }
}

#[tokio::test]
async fn a_redirect_is_retried_then_delivered() {
    let (h, us, _, _) = setup("us").await;
    us.script([Reply::Redirect(307, segment_stub::OK_PATH.to_owned())]);
    let resp = h.handle(post(streams_body("moved1", 3, 0))).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", body_json(&resp).await);
    assert_eq!(body_json(&resp).await["forwarded"], 3);
    let reqs = us.requests();
    let seen: Vec<(&str, Option<u32>)> = reqs
        .iter()
        .map(|r| (r.path.as_str(), r.retry_count))
        .collect();
    assert_eq!(seen, vec![("/v1/batch", Some(0)), ("/v1/batch", Some(1))]);
    assert_exactly_once(&us, &ids("moved1", 3));
}

/// Three messages sent by the Segment client itself (no handler), for what the answer
/// leaves out: the outcome's detail.
async fn deliver_directly(us: &SegmentStub, tag: &str) -> DeliveryReport {
    let out = moengage_segment::mapping::map_body(
        &streams_body(tag, 3, 0),
        1_764_331_200_000,
        moengage_segment::mapping::Limits::REQUEST,
    )
    .unwrap();
    let key = moengage_segment::settings::config::Secret::new(KEY);
    let target = Target {
        base_url: &us.url,
        write_key: &key,
    };
    SegmentClient::new(fast_policy())
        .unwrap()
        .deliver(
            target,
            &out.messages,
            Instant::now() + Duration::from_secs(1),
        )
        .await
}

/// Waits until the stand-in finished `n` big answers (it stops when the client hangs up).
async fn streamed(us: &SegmentStub, n: usize) -> Vec<usize> {
    for _ in 0..200 {
        let s = us.streamed();
        if s.len() >= n {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    us.streamed()
}

#[tokio::test]
async fn huge_answer_bodies_are_read_only_up_to_a_cap() {
    const BIG: usize = 50_000_000;
    // A refusal with a 50 MB body: the excerpt in the answer stays short.
    let (h, us, _, _) = setup("us").await;
    us.script([Reply::BigBody(422, BIG)]);
    let resp = h.handle(post(streams_body("huge4xx", 3, 0))).await;
    let b = body_json(&resp).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY, "{b}");
    assert_eq!(b["error"], "segment_refused");
    assert!(b.to_string().len() < 1_024, "{b}");
    // The client hung up long before the end of the body.
    let sent = streamed(&us, 1).await;
    assert!(sent.len() == 1 && sent[0] < BIG, "{sent:?}");
    // The excerpt kept for the logs and the dead-letter parcel is bounded.
    us.script([Reply::BigBody(422, BIG)]);
    let report = deliver_directly(&us, "huge4xx-report").await;
    let ChunkOutcome::Refused {
        status: 422,
        detail,
    } = &report.chunks[0].outcome
    else {
        panic!("{report:?}");
    };
    assert_eq!(detail.strip_suffix('…'), Some("x".repeat(300).as_str()));

    // A 2xx with a 50 MB body is delivered without reading it all.
    let (h, us, _, _) = setup("us").await;
    us.script([Reply::BigBody(200, BIG)]);
    let resp = h.handle(post(streams_body("huge2xx", 3, 0))).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", body_json(&resp).await);
    assert_eq!(body_json(&resp).await["forwarded"], 3);
    assert_eq!(us.requests().len(), 1);
    let sent = streamed(&us, 1).await;
    assert!(sent.len() == 1 && sent[0] < BIG, "{sent:?}");

    // A 5xx with a 50 MB body is retried on a new connection, then delivered.
    let (h, us, _, _) = setup("us").await;
    us.script([Reply::BigBody(503, BIG)]);
    let resp = h.handle(post(streams_body("huge5xx", 3, 0))).await;
    assert_eq!(resp.status(), StatusCode::OK, "{}", body_json(&resp).await);
    assert_exactly_once(&us, &ids("huge5xx", 3));
    assert_eq!(us.requests().len(), 2);
}
