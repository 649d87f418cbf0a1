//! Shared by the tests of parking and redelivery (`dead_letter.rs`, `redelivery.rs`,
//! `hostile.rs`): SQS clients for moto, an SQS endpoint that never answers, a live webhook
//! handler with queues, and Streams bodies with Basic-auth requests.
#![allow(dead_code)]

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use base64::Engine;
use lambda_http::Body;
use lambda_http::http;
use moengage_segment::delivery::forward::Forwarder;
use moengage_segment::delivery::outcome::Queues;
use moengage_segment::delivery::park::SqsQueue;
use moengage_segment::delivery::segment::{RetryPolicy, SegmentClient};
use moengage_segment::settings::config::Endpoints;
use moengage_segment::settings::secret::{SecretSource, SettingsCache};
use moengage_segment::webhook::Webhook;
use serde_json::{Value, json};

/// The Basic-auth pair the requests of [`post`] carry.
pub const USER: &str = "moengage";
pub const PASSWORD: &str = "pw";

/// An SQS client for a local endpoint (moto, or a fake), with dummy credentials.
pub fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// A queue named `name` on an endpoint that accepts connections and never answers.
pub async fn hanging_queue(name: &str) -> SqsQueue {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    SqsQueue::new(
        sqs_client(&format!("http://{addr}")),
        format!("http://{addr}/123456789012/{name}"),
    )
}

/// A live webhook handler: `source` for settings, Segment at `segment_url` (both regions),
/// fast retries, these queues, this time budget (0.3 s margin).
pub fn live_handler<S: SecretSource>(
    source: S,
    segment_url: &str,
    queues: Queues,
    budget: Duration,
) -> Webhook<S> {
    let mut h = Webhook::new(
        Forwarder::live(
            SettingsCache::new(source, Duration::from_secs(300)),
            SegmentClient::new(RetryPolicy {
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                ..RetryPolicy::default()
            })
            .unwrap(),
            Endpoints {
                us: segment_url.to_owned(),
                eu: segment_url.to_owned(),
            },
            queues,
        ),
        6 << 20,
    );
    h.budget.default = budget;
    h.budget.margin = Duration::from_millis(300);
    h
}

/// `POST /moengage` with Basic auth ([`USER`], [`PASSWORD`]).
pub fn post(body: String) -> lambda_http::Request {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    http::Request::builder()
        .method("POST")
        .uri("/moengage")
        .header("authorization", format!("Basic {auth}"))
        .body(Body::from(body))
        .unwrap()
}

/// A Streams body of `n` email events, uuids `evt-<tag>-0000`… (messageIds
/// `moe-evt-<tag>-0000`…), request id `req-<tag>`.
pub fn body_of(tag: &str, n: usize) -> String {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"event_name": "Email Sent", "event_code": "MOE_EMAIL_SENT",
            "event_uuid": format!("evt-{tag}-{i:04}"), "event_time": 1_764_331_200 + i,
            "uid": format!("u{i}"), "user_attributes": {"moengage_user_id": format!("mu{i}")}})
        })
        .collect();
    json!({"moe_request_id": format!("req-{tag}"), "events": events}).to_string()
}

/// The JSON answer of a webhook response.
pub fn answer_json(resp: &lambda_http::Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}
