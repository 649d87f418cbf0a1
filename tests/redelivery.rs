//! Automatic redelivery, against a real SQS API (moto) and the Segment stand-in, through the
//! real code paths: the webhook parks during an outage; the redelivery handler gets an SQS
//! event built from what the parked queue really holds (recognised as the Lambda recognises
//! it), and the test then does what Lambda does with the answer (deletes the records not
//! reported as failures). Refusals end in the refused queue; nothing is lost or sent twice.

mod moto;
mod parking;
mod segment_stub;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::SqsBatchResponse;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use lambda_http::http::StatusCode;
use moengage_segment::cli::invoke::{self, Invocation};
use moengage_segment::delivery::outcome::Queues;
use moengage_segment::delivery::park::SqsQueue;
use moengage_segment::delivery::redeliver::Redelivery;
use moengage_segment::delivery::redeliver::visibility_after;
use moengage_segment::delivery::replay::{self, ReplayOptions};
use moengage_segment::settings::config::Settings;
use moengage_segment::settings::secret::{SecretSource, SettingsError, StaticSource};
use moengage_segment::webhook::Webhook;
use moto::MotoServer;
use parking::{answer_json, body_of, hanging_queue, post, sqs_client};
use segment_stub::{Reply, SegmentStub};
use serde_json::{Value, json};

const KEY: &str = "redelivery-write-key";

/// The stack's two queues in one moto server.
struct Stack {
    moto: MotoServer,
    client: aws_sdk_sqs::Client,
    parked: String,
    refused: String,
}

impl Stack {
    async fn start() -> Stack {
        let moto = MotoServer::start();
        let client = sqs_client(&moto.endpoint);
        let mut urls = Vec::new();
        for name in ["stack-parked", "stack-refused"] {
            let out = client.create_queue().queue_name(name).send().await.unwrap();
            urls.push(out.queue_url.unwrap());
        }
        let refused = urls.pop().unwrap();
        let parked = urls.pop().unwrap();
        Stack {
            moto,
            client,
            parked,
            refused,
        }
    }

    fn queues(&self) -> Queues {
        Queues {
            parked: Some(SqsQueue::new(self.client.clone(), self.parked.clone())),
            refused: Some(SqsQueue::new(self.client.clone(), self.refused.clone())),
        }
    }

    /// (visible, in flight) messages of a queue.
    async fn counts(&self, url: &str) -> (i64, i64) {
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let a = attrs.attributes().unwrap();
        let n = |k| a.get(&k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        (
            n(QueueAttributeName::ApproximateNumberOfMessages),
            n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    async fn total(&self, url: &str) -> i64 {
        let (visible, in_flight) = self.counts(url).await;
        visible + in_flight
    }

    /// Receives up to `max` messages of the parked queue (hidden for `visibility` seconds)
    /// and builds the SQS event Lambda's event source mapping would send with them.
    async fn sqs_event(&self, max: usize, visibility: i32) -> (String, Vec<Value>) {
        let mut records = Vec::new();
        while records.len() < max {
            let want = (max - records.len()).min(10) as i32;
            let got = self
                .client
                .receive_message()
                .queue_url(&self.parked)
                .max_number_of_messages(want)
                .visibility_timeout(visibility)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            if got.messages().is_empty() {
                break;
            }
            for m in got.messages() {
                let attributes: BTreeMap<String, String> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(json!({
                    "messageId": m.message_id().unwrap(),
                    "receiptHandle": m.receipt_handle().unwrap(),
                    "body": m.body().unwrap(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body().unwrap_or(""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stack-parked",
                    "awsRegion": "us-east-1",
                }));
            }
        }
        (json!({"Records": records}).to_string(), records)
    }

    /// Runs the redelivery on `event` as the Lambda runs it (the event recognised by shape),
    /// then does what Lambda does with the answer: deletes every record not reported failed.
    async fn redeliver<S: SecretSource>(
        &self,
        h: &Redelivery<S>,
        event: &str,
        records: &[Value],
    ) -> SqsBatchResponse {
        let Invocation::Sqs(parsed) = invoke::event_from_str(event).unwrap() else {
            panic!("not recognised as an SQS event");
        };
        let answer = h.redeliver(parsed, None).await;
        let failed: BTreeSet<&str> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for r in records {
            if !failed.contains(r["messageId"].as_str().unwrap()) {
                self.client
                    .delete_message()
                    .queue_url(&self.parked)
                    .receipt_handle(r["receiptHandle"].as_str().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        answer
    }

    /// Every message body of a queue (left visible).
    async fn bodies(&self, url: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut handles = Vec::new();
        loop {
            let got = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .send()
                .await
                .unwrap();
            if got.messages().is_empty() {
                break;
            }
            for m in got.messages() {
                out.push(serde_json::from_str(m.body().unwrap()).unwrap_or(json!(m.body())));
                handles.push(m.receipt_handle().unwrap().to_owned());
            }
        }
        for h in handles {
            self.client
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(h)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
        out
    }
}

fn settings() -> Settings {
    Settings::from_parts(
        Some(KEY.into()),
        Some("us".into()),
        Some("moengage".into()),
        Some("pw".into()),
        None,
    )
    .unwrap()
}

fn handler_with<S: SecretSource>(
    source: S,
    segment: &SegmentStub,
    queues: Queues,
    budget: Duration,
) -> Webhook<S> {
    parking::live_handler(source, &segment.url, queues, budget)
}

/// The redelivery function's handler over the same kind of forwarder as [`handler_with`].
fn redelivery_with<S: SecretSource>(
    source: S,
    segment: &SegmentStub,
    queues: Queues,
    budget: Duration,
) -> Redelivery<S> {
    let webhook = handler_with(source, segment, queues, budget);
    let mut redelivery = Redelivery::new(webhook.forwarder);
    redelivery.budget = webhook.budget;
    redelivery
}

fn redelivery(segment: &SegmentStub, stack: &Stack, budget: Duration) -> Redelivery<StaticSource> {
    redelivery_with(
        StaticSource(Ok(settings())),
        segment,
        stack.queues(),
        budget,
    )
}

fn handler(segment: &SegmentStub, stack: &Stack, budget: Duration) -> Webhook<StaticSource> {
    handler_with(
        StaticSource(Ok(settings())),
        segment,
        stack.queues(),
        budget,
    )
}

fn ids(tag: &str, n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("moe-evt-{tag}-{i:04}")).collect()
}

/// An answer's (forwarded, parked, refused).
fn fates(v: &Value) -> (u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    (n("forwarded"), n("parked"), n("refused"))
}

/// A Segment that answers 503 to everything.
async fn segment_down() -> SegmentStub {
    let s = SegmentStub::start(&[KEY]).await;
    s.script(std::iter::repeat_n(Reply::Status(503), 100_000));
    s
}

/// The webhook parks `n` events of request `tag` while Segment is down.
async fn park_during_outage(stack: &Stack, tag: &str, n: usize) {
    let down = segment_down().await;
    let h = handler(&down, stack, Duration::from_secs(2));
    let resp = h.handle(post(body_of(tag, n))).await;
    let v = answer_json(&resp);
    assert_eq!(resp.status(), StatusCode::OK, "{v}");
    assert_eq!(
        (v["parked"].as_u64(), v["refused"].as_u64()),
        (Some(n as u64), Some(0))
    );
    assert!(down.accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn after_an_outage_redelivery_sends_every_message_with_its_original_id() {
    let stack = Stack::start().await;
    park_during_outage(&stack, "out", 25).await;
    assert_eq!(stack.total(&stack.parked).await, 25);
    let parked_ids: BTreeSet<String> = stack
        .bodies(&stack.parked)
        .await
        .iter()
        .map(|p| p["message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(parked_ids, ids("out", 25));

    // Segment is back. The event source mapping sends the parked messages (batches of up
    // to 100: here all 25 at once).
    let healthy = SegmentStub::start(&[KEY]).await;
    let h = redelivery(&healthy, &stack, Duration::from_secs(10));
    let (event, records) = stack.sqs_event(100, 300).await;
    assert_eq!(records.len(), 25);
    let answer = stack.redeliver(&h, &event, &records).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");

    let accepted = healthy.accepted();
    assert_eq!(
        accepted.keys().cloned().collect::<BTreeSet<_>>(),
        ids("out", 25)
    );
    assert!(accepted.values().all(|n| *n == 1), "{accepted:?}");
    assert!(
        healthy.violations().is_empty(),
        "{:?}",
        healthy.violations()
    );
    assert_eq!(stack.total(&stack.parked).await, 0);
    assert_eq!(stack.total(&stack.refused).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn while_segment_is_still_down_every_record_fails_and_waits_longer() {
    let stack = Stack::start().await;
    park_during_outage(&stack, "down", 7).await;

    let down = segment_down().await;
    let h = redelivery(&down, &stack, Duration::from_secs(2));
    // Received with a 1 s visibility timeout, as a short queue default would give.
    let (event, records) = stack.sqs_event(100, 1).await;
    assert_eq!(records.len(), 7);
    let answer = stack.redeliver(&h, &event, &records).await;
    let failed: BTreeSet<&str> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let all: BTreeSet<&str> = records
        .iter()
        .map(|r| r["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(failed, all, "every record is a batch item failure");
    assert!(!down.requests().is_empty(), "Segment was tried");

    // Nothing deleted, nothing moved; and the 1 s visibility was extended (to 30 s for a
    // first receive): after 2 s the messages are still hidden.
    assert_eq!(visibility_after(1), Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.counts(&stack.parked).await, (0, 7));
    assert_eq!(stack.total(&stack.refused).await, 0);
    assert!(down.accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poisoned_message_is_set_aside_and_the_others_delivered() {
    let stack = Stack::start().await;
    park_during_outage(&stack, "psn", 12).await;

    // Segment is back but refuses one message for good.
    let healthy = SegmentStub::start(&[KEY]).await;
    healthy.poison("moe-evt-psn-0005");
    let h = redelivery(&healthy, &stack, Duration::from_secs(10));
    let (event, records) = stack.sqs_event(100, 300).await;
    let answer = stack.redeliver(&h, &event, &records).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");

    let mut want = ids("psn", 12);
    want.remove("moe-evt-psn-0005");
    let accepted = healthy.accepted();
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(stack.total(&stack.parked).await, 0);
    let refused = stack.bodies(&stack.refused).await;
    assert_eq!(refused.len(), 1);
    let p = &refused[0];
    assert_eq!(p["message_id"], "moe-evt-psn-0005");
    assert_eq!(p["reason"], "segment_refused");
    assert_eq!(p["moe_request_id"], "req-psn");
    assert!(p["first_parked_at"].is_string(), "{p}");
    assert_eq!(p["message"]["messageId"], "moe-evt-psn-0005");

    // The webhook sets a refused message aside directly (200, counted as refused).
    healthy.poison("moe-evt-hook-0002");
    let webhook = handler(&healthy, &stack, Duration::from_secs(10));
    let resp = webhook.handle(post(body_of("hook", 5))).await;
    let v = answer_json(&resp);
    assert_eq!(resp.status(), StatusCode::OK, "{v}");
    assert_eq!(fates(&v), (4, 0, 1), "{v}");
    assert_eq!(stack.total(&stack.refused).await, 2);
    assert_eq!(stack.total(&stack.parked).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn past_its_redelivery_age_a_failing_message_is_set_aside_not_deleted() {
    let stack = Stack::start().await;
    park_during_outage(&stack, "old", 3).await;
    let down = segment_down().await;
    let mut h = redelivery(&down, &stack, Duration::from_secs(2));
    h.max_age = Duration::ZERO;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (event, records) = stack.sqs_event(100, 300).await;
    let answer = stack.redeliver(&h, &event, &records).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(stack.total(&stack.parked).await, 0);
    let refused = stack.bodies(&stack.refused).await;
    assert_eq!(refused.len(), 3);
    for p in &refused {
        assert_eq!(p["reason"], "redelivery_expired", "{p}");
        assert!(p["attempts"].as_u64().unwrap() >= 2, "{p}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_is_not_a_parcel_is_set_aside_as_it_is() {
    let stack = Stack::start().await;
    stack
        .client
        .send_message()
        .queue_url(&stack.parked)
        .message_body("hello, not a parcel")
        .send()
        .await
        .unwrap();
    let healthy = SegmentStub::start(&[KEY]).await;
    let h = redelivery(&healthy, &stack, Duration::from_secs(5));
    let (event, records) = stack.sqs_event(10, 300).await;
    let answer = stack.redeliver(&h, &event, &records).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(stack.total(&stack.parked).await, 0);
    assert_eq!(
        stack.bodies(&stack.refused).await,
        [json!("hello, not a parcel")]
    );
    assert!(healthy.requests().is_empty());
}

/// A secret that says what the test last put in it.
#[derive(Clone)]
struct Mutable(Arc<Mutex<String>>);

impl SecretSource for Mutable {
    async fn fetch(&self) -> Result<String, SettingsError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

fn secret_json(key: &str) -> String {
    json!({"segment_write_key": key, "segment_region": "us",
           "webhook_username": "moengage", "webhook_password": "pw"})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_is_counted_once_across_webhook_redelivery_and_replay() {
    let stack = Stack::start().await;
    // 1. Outage: the webhook parks request A (20 events).
    park_during_outage(&stack, "a", 20).await;

    // 2. Segment is back, with a new write key the function has not read yet; it refuses
    //    one event of request B for good.
    let segment = SegmentStub::start(&["rotated-key"]).await;
    segment.poison("moe-evt-b-0003");
    let secret = Mutable(Arc::new(Mutex::new(secret_json(KEY))));
    let h = redelivery_with(
        secret.clone(),
        &segment,
        stack.queues(),
        Duration::from_secs(10),
    );
    h.forwarder.prefetch().await.unwrap();
    *secret.0.lock().unwrap() = secret_json("rotated-key");
    // The webhook: 401 → secret re-read → delivered; the poisoned event set aside.
    let webhook = handler_with(
        secret.clone(),
        &segment,
        stack.queues(),
        Duration::from_secs(10),
    );
    let resp = webhook.handle(post(body_of("b", 10))).await;
    let v = answer_json(&resp);
    assert_eq!(resp.status(), StatusCode::OK, "{v}");
    assert_eq!(
        (v["forwarded"].as_u64(), v["refused"].as_u64()),
        (Some(9), Some(1))
    );

    // 3. Redelivery takes 10 of the parked events.
    let (event, records) = stack.sqs_event(10, 300).await;
    assert_eq!(records.len(), 10);
    let answer = stack.redeliver(&h, &event, &records).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(stack.total(&stack.parked).await, 10);

    // 4. An operator replays the rest of the parked queue by hand, with a process of its
    //    own that still has the old key: replay re-reads the secret on Segment's 401.
    *secret.0.lock().unwrap() = secret_json(KEY);
    let replayer = handler_with(
        secret.clone(),
        &segment,
        stack.queues(),
        Duration::from_secs(10),
    );
    replayer.forwarder.prefetch().await.unwrap();
    *secret.0.lock().unwrap() = secret_json("rotated-key");
    let parked_queue = SqsQueue::new(stack.client.clone(), stack.parked.clone());
    let opts = ReplayOptions {
        visibility: Duration::from_secs(30),
        batch_budget: Duration::from_secs(10),
        ..ReplayOptions::default()
    };
    let report = replay::replay(&parked_queue, &replayer.forwarder, &opts)
        .await
        .unwrap();
    assert_eq!(
        (report.received, report.delivered, report.deleted),
        (10, 10, 10)
    );
    assert_eq!(stack.total(&stack.parked).await, 0);

    // 5. The refused event is fixed (Segment takes it now); `moe2seg replay --queue` on the
    //    refused queue delivers it and empties the queue.
    let fixed = SegmentStub::start(&["rotated-key"]).await;
    let out = tokio::task::spawn_blocking({
        let mut c = Command::new(env!("CARGO_BIN_EXE_moe2seg"));
        stack.moto.apply_env(&mut c);
        c.env("AWS_ENDPOINT_URL_SQS", &stack.moto.endpoint)
            .env_remove("SECRET_ID")
            .env("SEGMENT_WRITE_KEY", "rotated-key")
            .env("SEGMENT_REGION", "us")
            .env("WEBHOOK_TOKEN", "unused")
            .env("SEGMENT_ENDPOINT_US", &fixed.url)
            .env("DEAD_LETTER_QUEUE_URL", &stack.parked)
            .env("REFUSED_QUEUE_URL", &stack.refused)
            .args(["replay", "--queue", &stack.refused]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(stack.total(&stack.refused).await, 0);

    // Every event of A and B reached Segment exactly once, over the four paths.
    let mut everything = segment.accepted();
    for (id, n) in fixed.accepted() {
        *everything.entry(id).or_default() += n;
    }
    let mut want = ids("a", 20);
    want.extend(ids("b", 10));
    assert_eq!(everything.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(everything.values().all(|n| *n == 1), "{everything:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_with_quotes_and_backslashes_survive_parking_and_redelivery() {
    let stack = Stack::start().await;
    let body = json!({"moe_request_id": "req-\"quoted\"\\x", "events": [
        {"event_name": "Email Sent", "event_uuid": "evt-\"q\"-\\-1", "event_time": 1_764_331_200,
         "uid": "u1"}]})
    .to_string();
    let down = segment_down().await;
    let resp = handler(&down, &stack, Duration::from_secs(2))
        .handle(post(body))
        .await;
    assert_eq!(answer_json(&resp)["parked"], 1, "{}", answer_json(&resp));

    let healthy = SegmentStub::start(&[KEY]).await;
    let h = redelivery(&healthy, &stack, Duration::from_secs(10));
    let (event, records) = stack.sqs_event(10, 300).await;
    let answer = stack.redeliver(&h, &event, &records).await;
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(healthy.accepted().len(), 1, "redelivered, not set aside");
    assert_eq!(stack.total(&stack.parked).await, 0);
    assert_eq!(stack.total(&stack.refused).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_the_refused_queue_never_moves_a_message_back_into_it() {
    let stack = Stack::start().await;
    // One event refused for good by the webhook.
    let segment = SegmentStub::start(&[KEY]).await;
    segment.poison("moe-evt-r-0000");
    let h = handler(&segment, &stack, Duration::from_secs(10));
    let resp = h.handle(post(body_of("r", 1))).await;
    assert_eq!(answer_json(&resp)["refused"], 1);
    // Replayed while Segment still refuses it, with the queue's URL written another way
    // than REFUSED_QUEUE_URL: it stays, after one try.
    let other_spelling = stack.refused.replace("127.0.0.1", "localhost");
    assert_ne!(other_spelling, stack.refused);
    let before = segment.requests().len();
    let queue = SqsQueue::new(stack.client.clone(), other_spelling);
    let opts = ReplayOptions {
        visibility: Duration::from_secs(30),
        batch_budget: Duration::from_secs(5),
        max_batches: 20,
        ..ReplayOptions::default()
    };
    let report = replay::replay(&queue, &h.forwarder, &opts).await.unwrap();
    assert_eq!(
        (
            report.received,
            report.set_aside,
            report.deleted,
            report.failed
        ),
        (1, 0, 0, 1),
        "{report:?}"
    );
    assert_eq!(segment.requests().len() - before, 1);
    assert_eq!(stack.total(&stack.refused).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_refused_queue_costs_neither_the_deadline_nor_the_other_events() {
    let stack = Stack::start().await;
    park_during_outage(&stack, "hang", 6).await;
    let healthy = SegmentStub::start(&[KEY]).await;
    healthy.poison("moe-evt-hang-0002");
    let queues = Queues {
        refused: Some(hanging_queue("stack-refused").await),
        ..stack.queues()
    };
    let h = redelivery_with(
        StaticSource(Ok(settings())),
        &healthy,
        queues.clone(),
        Duration::from_secs(3),
    );
    let (event, records) = stack.sqs_event(10, 300).await;
    let started = std::time::Instant::now();
    let answer = stack.redeliver(&h, &event, &records).await;
    // The budget is 3 s less the 0.3 s margin: a generous bound that only catches a refused
    // queue left unbounded.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // The refused message could not be set aside: it stays (a batch item failure) and the
    // others are delivered.
    let poisoned = records
        .iter()
        .find(|r| r["body"].as_str().unwrap().contains("moe-evt-hang-0002"))
        .unwrap();
    let failed: Vec<&str> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, [poisoned["messageId"].as_str().unwrap()]);
    assert_eq!(healthy.accepted().len(), 5);
    assert_eq!(stack.total(&stack.parked).await, 1);

    // The webhook: refusals it cannot set aside are parked instead (200, not a 503 that
    // would make MoEngage re-send the whole request).
    healthy.poison("moe-evt-hook-0000");
    let webhook = handler_with(
        StaticSource(Ok(settings())),
        &healthy,
        queues,
        Duration::from_secs(3),
    );
    let resp = webhook.handle(post(body_of("hook", 3))).await;
    let v = answer_json(&resp);
    assert_eq!(resp.status(), StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["forwarded"].as_u64(),
            v["parked"].as_u64(),
            v["refused"].as_u64()
        ),
        (Some(2), Some(1), Some(0)),
        "{v}"
    );
    assert_eq!(stack.total(&stack.parked).await, 2);
}
