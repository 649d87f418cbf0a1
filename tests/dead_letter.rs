//! Dead-letter parking and replay against a real SQS API (moto) and the Segment stand-in:
//! a Segment outage loses nothing (events parked, answer 200), `moe2seg replay` delivers them
//! afterwards with the same messageIds and empties the queue; a poisoned message is parked
//! alone; a failed park answers 503.

mod moto;
mod parking;
mod segment_stub;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use lambda_http::Body;
use lambda_http::http::StatusCode;
use moengage_segment::delivery::outcome::Queues;
use moengage_segment::delivery::park::SqsQueue;
use moengage_segment::settings::config::Settings;
use moengage_segment::settings::secret::StaticSource;
use moengage_segment::webhook::Webhook;
use moto::MotoServer;
use parking::{body_of, post, sqs_client};
use segment_stub::{Reply, SegmentStub};
use serde_json::{Value, json};

const KEY: &str = "dlq-write-key";

async fn queue(moto: &MotoServer, name: &str) -> (aws_sdk_sqs::Client, String) {
    let client = sqs_client(&moto.endpoint);
    let url = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (client, url)
}

/// Up to 10 messages, left visible (visibility timeout 0).
async fn all_messages(client: &aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    let got = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    got.messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

async fn visible_count(client: &aws_sdk_sqs::Client, url: &str) -> i64 {
    let attrs = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .unwrap();
    let a = attrs.attributes().unwrap();
    let n = |k| a.get(&k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        + n(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

fn handler(us: &SegmentStub, park: Option<SqsQueue>, budget: Duration) -> Webhook<StaticSource> {
    let settings = Settings::from_parts(
        Some(KEY.into()),
        Some("us".into()),
        Some(parking::USER.into()),
        Some(parking::PASSWORD.into()),
        None,
    );
    let queues = Queues {
        parked: park,
        refused: None,
    };
    parking::live_handler(StaticSource(settings), &us.url, queues, budget)
}

fn resp_json(resp: &lambda_http::Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_parks_everything_and_replay_delivers_it_once() {
    let moto = MotoServer::start();
    let (client, url) = queue(&moto, "dlq-outage").await;
    let us = SegmentStub::start(&[KEY]).await;
    us.script(std::iter::repeat_n(Reply::Status(503), 10_000));
    let h = handler(
        &us,
        Some(SqsQueue::new(client.clone(), url.clone())),
        Duration::from_secs(2),
    );

    let resp = h.handle(post(body_of("out", 25))).await;
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp_json(&resp));
    let b = resp_json(&resp);
    assert_eq!(
        (b["forwarded"].as_u64(), b["parked"].as_u64()),
        (Some(0), Some(25))
    );
    assert!(us.accepted().is_empty());
    assert_eq!(visible_count(&client, &url).await, 25);
    let parcels = all_messages(&client, &url).await;
    let p = &parcels[0];
    assert_eq!(p["reason"], "segment_unavailable");
    assert_eq!(p["moe_request_id"], "req-out");
    assert!(p["attempts"].as_u64().unwrap() >= 2);
    assert_eq!(p["message"]["messageId"], p["message_id"]);
    assert_eq!(p["message"]["type"], "track");

    // Segment recovers; an operator replays (first dry, which deletes nothing).
    let healthy = SegmentStub::start(&[KEY]).await;
    let replay = |dry: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_moe2seg"));
        moto.apply_env(&mut c);
        c.env("AWS_ENDPOINT_URL_SQS", &moto.endpoint)
            .env_remove("SECRET_ID")
            .env("SEGMENT_WRITE_KEY", KEY)
            .env("SEGMENT_REGION", "us")
            .env("WEBHOOK_TOKEN", "unused")
            .env("SEGMENT_ENDPOINT_US", &healthy.url)
            .args(["replay", "--queue", &url]);
        if dry {
            c.arg("--dry-run");
        }
        c
    };
    let run = |mut c: Command| async move {
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    };
    let out = run(replay(true)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["deleted"], 0);
    assert!(healthy.requests().is_empty(), "a dry run sent something");
    // The dry run hid the messages for the visibility timeout; make them visible again.
    let hidden = client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert!(
        hidden.messages().is_empty(),
        "dry-run receipts should still hide them"
    );
    client.purge_queue().queue_url(&url).send().await.ok();
    // Re-park the same events (a fresh outage) so the real replay has work.
    let resp = h.handle(post(body_of("out", 25))).await;
    assert_eq!(resp_json(&resp)["parked"], 25);

    let out = run(replay(false)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["received"], 25);
    assert_eq!(report["delivered"], 25);
    assert_eq!(report["deleted"], 25);
    let accepted = healthy.accepted();
    assert_eq!(accepted.len(), 25);
    for i in 0..25 {
        assert_eq!(accepted.get(&format!("moe-evt-out-{i:04}")), Some(&1));
    }
    assert!(healthy.violations().is_empty());
    assert_eq!(visible_count(&client, &url).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poisoned_message_is_parked_alone() {
    let moto = MotoServer::start();
    let (client, url) = queue(&moto, "dlq-poison").await;
    let us = SegmentStub::start(&[KEY]).await;
    us.poison("moe-evt-poison-0042");
    let h = handler(
        &us,
        Some(SqsQueue::new(client.clone(), url.clone())),
        Duration::from_secs(5),
    );
    let resp = h.handle(post(body_of("poison", 100))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let b = resp_json(&resp);
    assert_eq!(
        (b["forwarded"].as_u64(), b["parked"].as_u64()),
        (Some(99), Some(1))
    );
    assert_eq!(us.accepted().len(), 99);
    let parcels = all_messages(&client, &url).await;
    assert_eq!(parcels.len(), 1);
    assert_eq!(parcels[0]["reason"], "segment_refused");
    assert_eq!(parcels[0]["message_id"], "moe-evt-poison-0042");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_park_answers_503() {
    let moto = MotoServer::start();
    let us = SegmentStub::start(&[KEY]).await;
    us.script(std::iter::repeat_n(Reply::Status(500), 10_000));
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let h = handler(
        &us,
        Some(SqsQueue::new(sqs_client(&moto.endpoint), missing)),
        Duration::from_secs(2),
    );
    let resp = h.handle(post(body_of("nopark", 3))).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp_json(&resp)["error"], "parking_failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_queue_an_outage_is_still_503() {
    let us = SegmentStub::start(&[KEY]).await;
    us.script(std::iter::repeat_n(Reply::Status(500), 10_000));
    let h = handler(&us, None, Duration::from_secs(2));
    let resp = h.handle(post(body_of("noq", 3))).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp_json(&resp)["error"], "segment_unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_parking_delivers_every_parcel_once() {
    let moto = MotoServer::start();
    let (client, url) = queue(&moto, "dlq-many").await;
    let n = 230;
    let bodies: Vec<String> = (0..n)
        .map(|i| json!({"parcel": i, "pad": "x".repeat(i * 7)}).to_string())
        .collect();
    SqsQueue::new(client.clone(), url.clone())
        .park(
            "the parked queue",
            &bodies,
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            break;
        }
        got.extend(out.messages().iter().map(|m| m.body().unwrap().to_owned()));
    }
    assert_eq!(got.len(), n, "a parcel lost or parked twice");
    let got: BTreeSet<String> = got.into_iter().collect();
    assert_eq!(got, bodies.into_iter().collect::<BTreeSet<_>>());
}
