//! Parking in SQS is bounded: SendMessageBatch requests go out concurrently (at most
//! `SEND_CONCURRENCY` in flight), entries SQS reports as failed are sent once more, and the
//! whole operation ends at the caller's deadline even when SQS never answers. Against a fake
//! SQS JSON endpoint on 127.0.0.1 (SendMessageBatch only), scripted per test.

#[path = "segment_stub/wire.rs"]
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use moengage_segment::delivery::park::{SEND_CONCURRENCY, SqsQueue};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How the fake answers.
#[derive(Clone, Copy, Default, PartialEq)]
enum Mode {
    /// Every entry succeeds.
    #[default]
    Ok,
    /// Each entry is reported failed the first time it is seen, then succeeds.
    FailOnce,
    /// Every entry is reported failed.
    FailAlways,
    /// Everything succeeds, plus a failure for an id that was never sent.
    UnknownFailedId,
}

#[derive(Default)]
struct State {
    mode: Mode,
    delay: Duration,
    in_flight: usize,
    max_in_flight: usize,
    requests: usize,
    /// Entry id → message bodies received under it.
    seen: HashMap<String, Vec<String>>,
}

#[derive(Clone)]
struct FakeSqs {
    endpoint: String,
    state: Arc<Mutex<State>>,
}

impl FakeSqs {
    async fn start(mode: Mode, delay: Duration) -> FakeSqs {
        let state = Arc::new(Mutex::new(State {
            mode,
            delay,
            ..State::default()
        }));
        let addr = wire::listen(state.clone(), serve).await;
        FakeSqs {
            endpoint: format!("http://{addr}"),
            state,
        }
    }

    fn queue(&self) -> SqsQueue {
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .build();
        SqsQueue::new(
            aws_sdk_sqs::Client::from_conf(conf),
            format!("{}/123456789012/parked", self.endpoint),
        )
    }

    fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    fn seen(&self) -> HashMap<String, Vec<String>> {
        self.state.lock().unwrap().seen.clone()
    }
}

async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = wire::read_request(&mut sock, &mut buf).await? {
        let (mode, delay) = {
            let mut st = state.lock().unwrap();
            st.in_flight += 1;
            st.requests += 1;
            st.max_in_flight = st.max_in_flight.max(st.in_flight);
            (st.mode, st.delay)
        };
        tokio::time::sleep(delay).await;
        let parsed: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let mut successful = Vec::new();
        let mut failed = Vec::new();
        {
            let mut st = state.lock().unwrap();
            for e in parsed["Entries"].as_array().into_iter().flatten() {
                let id = e["Id"].as_str().unwrap_or("").to_owned();
                let body = e["MessageBody"].as_str().unwrap_or("").to_owned();
                let seen = st.seen.entry(id.clone()).or_default();
                seen.push(body);
                let fail = match mode {
                    Mode::Ok | Mode::UnknownFailedId => false,
                    Mode::FailOnce => seen.len() == 1,
                    Mode::FailAlways => true,
                };
                if fail {
                    failed.push(json!({"Id": id, "SenderFault": false, "Code": "InternalError"}));
                } else {
                    successful.push(json!({"Id": id, "MessageId": format!("msg-{id}"),
                                           "MD5OfMessageBody": "0"}));
                }
            }
            if mode == Mode::UnknownFailedId {
                failed.push(json!({"Id": "m99999999", "SenderFault": false, "Code": "X"}));
            }
            st.in_flight -= 1;
        }
        let body = json!({"Successful": successful, "Failed": failed}).to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(resp.as_bytes()).await?;
    }
    Ok(())
}

fn bodies(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{\"parcel\":{i}}}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parking_ends_at_the_deadline_when_sqs_hangs() {
    let sqs = FakeSqs::start(Mode::Ok, Duration::from_secs(60)).await;
    let started = Instant::now();
    let result = sqs
        .queue()
        .park(
            "the parked queue",
            &bodies(2000),
            started + Duration::from_secs(1),
        )
        .await;
    let took = started.elapsed();
    let err = result.expect_err("SQS never answered, yet parking succeeded");
    assert!(err.to_string().contains("deadline"), "{err}");
    // Only catches unbounded waits (sequentially this is 200 × 60 s), not a benchmark.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(sqs.max_in_flight() <= SEND_CONCURRENCY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_go_out_concurrently_within_the_bound() {
    let sqs = FakeSqs::start(Mode::Ok, Duration::from_millis(30)).await;
    let n = 1000;
    sqs.queue()
        .park(
            "the parked queue",
            &bodies(n),
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .unwrap();
    let max = sqs.max_in_flight();
    assert!(max <= SEND_CONCURRENCY, "{max} requests in flight");
    assert!(max > 1, "batches were sent one after another");
    assert_eq!(sqs.requests(), n / 10);
    let seen = sqs.seen();
    assert_eq!(seen.len(), n);
    for (i, body) in bodies(n).iter().enumerate() {
        assert_eq!(
            seen.get(&format!("m{i}")),
            Some(&vec![body.clone()]),
            "m{i}"
        );
    }
}

#[tokio::test]
async fn entries_reported_failed_are_sent_once_more() {
    let sqs = FakeSqs::start(Mode::FailOnce, Duration::ZERO).await;
    let n = 95;
    sqs.queue()
        .park(
            "the parked queue",
            &bodies(n),
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap();
    let seen = sqs.seen();
    assert_eq!(seen.len(), n);
    assert!(seen.values().all(|b| b.len() == 2), "each entry sent twice");
    assert_eq!(sqs.requests(), 2 * n.div_ceil(10));

    let sqs = FakeSqs::start(Mode::FailAlways, Duration::ZERO).await;
    let err = sqs
        .queue()
        .park(
            "the parked queue",
            &bodies(25),
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SQS refused"), "{err}");
    assert!(
        sqs.seen().values().all(|b| b.len() <= 2),
        "sent at most twice"
    );
}

#[tokio::test]
async fn a_failure_for_an_id_never_sent_fails_without_panicking() {
    let sqs = FakeSqs::start(Mode::UnknownFailedId, Duration::ZERO).await;
    let err = sqs
        .queue()
        .park(
            "the parked queue",
            &bodies(5),
            Instant::now() + Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("SQS refused"), "{err}");
    // The whole group was sent again, not an index SQS made up.
    assert_eq!(sqs.seen().len(), 5);
    assert!(sqs.seen().values().all(|b| b.len() == 2));
}
