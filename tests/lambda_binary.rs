//! The real Lambda binaries (`webhook`, `redeliver`) under a fake Runtime API: Init reads the
//! secret from moto and warms the Segment connection, invocations are answered in API
//! Gateway's format (or as a partial batch response), EMF metrics and JSON logs go to stdout,
//! and a misconfigured function answers 500 instead of crashing.

mod fake_runtime;
mod moto;
mod segment_stub;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fake_runtime::FakeRuntime;
use moto::MotoServer;
use segment_stub::SegmentStub;
use serde_json::{Value, json};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The webhook function's binary.
fn lambda(runtime: &FakeRuntime) -> Command {
    function(env!("CARGO_BIN_EXE_webhook"), runtime)
}

/// A function's binary (`CARGO_BIN_EXE_<name>`) with a clean environment and the Runtime API.
fn function(binary: &str, runtime: &FakeRuntime) -> Command {
    let mut c = Command::new(binary);
    for var in [
        "SECRET_ID",
        "SEGMENT_WRITE_KEY",
        "SEGMENT_REGION",
        "WEBHOOK_USERNAME",
        "WEBHOOK_PASSWORD",
        "WEBHOOK_TOKEN",
        "SEGMENT_ENDPOINT_US",
        "SEGMENT_ENDPOINT_EU",
    ] {
        c.env_remove(var);
    }
    c.env("AWS_LAMBDA_RUNTIME_API", &runtime.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "moengage-segment-test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn event(file: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
}

fn output(child: Running) -> String {
    let mut child = child;
    let _ = child.0.kill();
    let mut out = String::new();
    use std::io::Read;
    if let Some(mut s) = child.0.stdout.take() {
        s.read_to_string(&mut out).ok();
    }
    if let Some(mut s) = child.0.stderr.take() {
        s.read_to_string(&mut out).ok();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_invocations_with_secret_from_moto() {
    let moto = MotoServer::start();
    let us = SegmentStub::start(&["lambda-key"]).await;
    let secret = json!({"segment_write_key": "lambda-key", "segment_region": "us",
        "webhook_username": "moengage", "webhook_password": "local-password"});
    let arn = moto
        .create_secret("moengage-segment/lambda", &secret.to_string())
        .await;
    let runtime = FakeRuntime::start().await;
    let mut cmd = lambda(&runtime);
    moto.apply_env(&mut cmd);
    cmd.env("SECRET_ID", &arn)
        .env("SEGMENT_ENDPOINT_US", &us.url);
    let child = Running(cmd.spawn().unwrap());

    runtime.push(
        "req-1",
        event("events/apigw-v2.json"),
        Duration::from_secs(20),
    );
    runtime.push(
        "req-2",
        event("events/apigw-rest-v1.json"),
        Duration::from_secs(20),
    );
    runtime.push(
        "req-3",
        event("events/bad-credentials.json"),
        Duration::from_secs(20),
    );
    runtime.wait_for(3, Duration::from_secs(30)).await;
    let responses = runtime.responses();
    let status = |id: &str| {
        responses
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, v)| v["statusCode"].clone())
            .unwrap()
    };
    assert_eq!(status("req-1"), 200);
    assert_eq!(status("req-2"), 200);
    assert_eq!(status("req-3"), 401);
    let body: Value = serde_json::from_str(responses[0].1["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["forwarded"], 6);
    // Init warmed the connection with one request before any invocation, then 2 batches.
    let reqs = us.requests();
    assert_eq!(reqs.iter().filter(|r| r.method == "POST").count(), 2);
    assert!(
        reqs.iter().any(|r| r.method == "HEAD"),
        "no warm-up request during Init"
    );
    assert!(runtime.errors().is_empty(), "{:?}", runtime.errors());

    let out = output(child);
    let emf: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 3, "{out}");
    assert_eq!(emf[0]["FunctionName"], "moengage-segment-test");
    assert_eq!(emf[0]["Forwarded"], 6);
    let summaries: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.to_string().contains("invocation summary"))
        .collect();
    assert_eq!(
        summaries.len(),
        3,
        "one JSON summary line per invocation: {out}"
    );
    for secret_value in [
        "lambda-key",
        "local-password",
        "bW9lbmdhZ2U6bG9jYWwtcGFzc3dvcmQ",
    ] {
        assert!(
            !out.contains(secret_value),
            "{secret_value} leaked into logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_configuration_it_answers_500_and_keeps_running() {
    let runtime = FakeRuntime::start().await;
    let child = Running(lambda(&runtime).spawn().unwrap());
    runtime.push("a", event("events/apigw-v2.json"), Duration::from_secs(10));
    runtime.push("b", event("events/apigw-v2.json"), Duration::from_secs(10));
    runtime.wait_for(2, Duration::from_secs(20)).await;
    for (_, v) in runtime.responses() {
        assert_eq!(v["statusCode"], 500);
        // A stable code for the caller; what is wrong goes to the logs only.
        let body: serde_json::Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"], "misconfigured");
        assert!(!v["body"].as_str().unwrap().contains("SECRET_ID"), "{body}");
    }
    let out = output(child);
    assert!(out.contains("SECRET_ID"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_lambda_http_cannot_convert_fail_their_invocation_and_the_next_is_served() {
    // lambda_http 1.3 panics converting an event whose body is marked base64 but is not, or
    // whose host does not make a valid URI (API Gateway sends neither). lambda_runtime
    // reports the invocation as failed (API Gateway would answer 5xx, MoEngage re-send) and
    // the environment keeps serving.
    let runtime = FakeRuntime::start().await;
    let mut cmd = lambda(&runtime);
    cmd.env("SEGMENT_WRITE_KEY", "k")
        .env("SEGMENT_REGION", "us")
        .env("WEBHOOK_TOKEN", "local-token")
        .env("SEGMENT_ENDPOINT_US", "http://127.0.0.1:1");
    let child = Running(cmd.spawn().unwrap());
    let mut bad_base64: Value =
        serde_json::from_str(&event("events/apigw-v2-base64.json")).unwrap();
    bad_base64["body"] = json!("%%% not base64 %%%");
    let mut bad_host: Value = serde_json::from_str(&event("events/apigw-v2.json")).unwrap();
    bad_host["headers"]["host"] = json!("bad host.example");
    runtime.push(
        "bad-base64",
        bad_base64.to_string(),
        Duration::from_secs(10),
    );
    runtime.push("bad-host", bad_host.to_string(), Duration::from_secs(10));
    runtime.push(
        "next",
        event("events/get-method.json"),
        Duration::from_secs(10),
    );
    runtime.wait_for(3, Duration::from_secs(20)).await;
    let failed: Vec<String> = runtime.errors().into_iter().map(|(id, _)| id).collect();
    assert_eq!(failed, ["bad-base64", "bad-host"]);
    let responses = runtime.responses();
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0].0, "next");
    assert_eq!(responses[0].1["statusCode"], 405);
    drop(child);
}

/// Cold-start figures for docs/performance.md (prints, asserts nothing about time):
/// `cargo test --release --test lambda_binary -- --ignored cold_start_figures --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn cold_start_figures() {
    let moto = MotoServer::start();
    let us = SegmentStub::start(&["lambda-key"]).await;
    let secret = json!({"segment_write_key": "lambda-key", "segment_region": "us",
        "webhook_username": "moengage", "webhook_password": "local-password"});
    let arn = moto
        .create_secret("moengage-segment/cold", &secret.to_string())
        .await;
    // moto's first call loads its Secrets Manager backend: keep that out of the figure.
    moto.client()
        .await
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    for round in 0..5 {
        let runtime = FakeRuntime::start().await;
        let mut cmd = lambda(&runtime);
        moto.apply_env(&mut cmd);
        cmd.env("SECRET_ID", &arn)
            .env("SEGMENT_ENDPOINT_US", &us.url);
        let spawned = std::time::Instant::now();
        let child = Running(cmd.spawn().unwrap());
        runtime.push(
            "first",
            event("events/apigw-v2-100.json"),
            Duration::from_secs(20),
        );
        runtime.push(
            "second",
            event("events/apigw-v2-100.json"),
            Duration::from_secs(20),
        );
        runtime.wait_for(2, Duration::from_secs(30)).await;
        let init = runtime.first_next_at().unwrap().duration_since(spawned);
        let t = runtime.timings();
        let inv = |id: &str| {
            let (_, s, a) = t.iter().find(|(i, _, _)| i == id).unwrap();
            a.duration_since(*s)
        };
        println!(
            "round {round}: init (spawn → first /next, incl. secret read + Segment warm-up) {:.1} ms, \
             first 100-event invocation {:.1} ms, second {:.1} ms",
            init.as_secs_f64() * 1e3,
            inv("first").as_secs_f64() * 1e3,
            inv("second").as_secs_f64() * 1e3
        );
        drop(child);
    }
}

/// Every answer path of the real binary, with known secret values: none of them (nor the
/// Basic credentials as sent on the wire) may appear in logs, metrics or responses.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_appear_in_output_or_answers() {
    const WRITE_KEY: &str = "WK-d41d8cd98f00b204-SECRET";
    const PASSWORD: &str = "PW-5eb63bbbe01eeed0-SECRET";
    const TOKEN: &str = "TK-7215ee9c7d9dc229-SECRET";
    let moto = MotoServer::start();
    let us = SegmentStub::start(&[WRITE_KEY]).await;
    let secret = json!({"segment_write_key": WRITE_KEY, "segment_region": "us",
        "webhook_username": "moengage", "webhook_password": PASSWORD, "webhook_token": TOKEN});
    let arn = moto
        .create_secret("moengage-segment/leak", &secret.to_string())
        .await;
    let runtime = FakeRuntime::start().await;
    let mut cmd = lambda(&runtime);
    moto.apply_env(&mut cmd);
    cmd.env("SECRET_ID", &arn)
        .env("SEGMENT_ENDPOINT_US", &us.url)
        .env("RUST_LOG", "debug");
    let child = Running(cmd.spawn().unwrap());

    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("moengage:{PASSWORD}"),
    );
    let with_auth = |file: &str, header: (&str, String)| {
        let mut v: Value = serde_json::from_str(&event(file)).unwrap();
        v["headers"] = json!({header.0: header.1});
        v.to_string()
    };
    let budget = Duration::from_secs(4);
    runtime.push(
        "ok-basic",
        with_auth(
            "events/apigw-v2.json",
            ("authorization", format!("Basic {basic}")),
        ),
        budget,
    );
    runtime.push(
        "ok-bearer",
        with_auth(
            "events/apigw-v2.json",
            ("authorization", format!("Bearer {TOKEN}")),
        ),
        budget,
    );
    runtime.push(
        "ok-key",
        with_auth("events/apigw-v2.json", ("x-api-key", TOKEN.to_owned())),
        budget,
    );
    runtime.push("bad-creds", event("events/bad-credentials.json"), budget);
    runtime.push(
        "bad-body",
        with_auth(
            "events/bad-body.json",
            ("authorization", format!("Bearer {TOKEN}")),
        ),
        budget,
    );
    runtime.push("get", event("events/get-method.json"), budget);
    runtime.wait_for(6, Duration::from_secs(30)).await;
    // Segment down until the deadline, then Segment refusing the key.
    us.script(std::iter::repeat_n(segment_stub::Reply::Status(500), 200));
    runtime.push(
        "outage",
        with_auth(
            "events/apigw-v2.json",
            ("authorization", format!("Bearer {TOKEN}")),
        ),
        budget,
    );
    runtime.wait_for(7, Duration::from_secs(30)).await;
    // Segment now refuses the write key: the function re-reads the secret, then gives up.
    us.clear_keys();
    runtime.push(
        "segment-401",
        with_auth("events/apigw-v2.json", ("x-api-key", TOKEN.to_owned())),
        budget,
    );
    runtime.wait_for(8, Duration::from_secs(30)).await;

    let responses = runtime.responses();
    let status = |id: &str| {
        responses
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, v)| v["statusCode"].as_u64())
            .unwrap()
    };
    assert_eq!(status("ok-basic"), Some(200));
    assert_eq!(status("ok-bearer"), Some(200));
    assert_eq!(status("ok-key"), Some(200));
    assert_eq!(status("bad-creds"), Some(401));
    assert_eq!(status("bad-body"), Some(400));
    assert_eq!(status("get"), Some(405));
    assert_eq!(status("outage"), Some(503));
    assert_eq!(status("segment-401"), Some(503));
    let answers = serde_json::to_string(&responses).unwrap();
    let out = output(child);
    for (what, text) in [("answers", &answers), ("logs and metrics", &out)] {
        for needle in [WRITE_KEY, PASSWORD, TOKEN, basic.as_str()] {
            assert!(!text.contains(needle), "{needle} appears in the {what}");
        }
    }
    assert!(out.contains("invocation summary"), "expected logs: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redelivery_binary_answers_sqs_events_with_partial_batch_responses() {
    let us = SegmentStub::start(&["lambda-key"]).await;
    let settings = |cmd: &mut Command| {
        cmd.env("SEGMENT_WRITE_KEY", "lambda-key")
            .env("SEGMENT_REGION", "us")
            .env("WEBHOOK_USERNAME", "moengage")
            .env("WEBHOOK_PASSWORD", "local-password")
            .env("SEGMENT_ENDPOINT_US", &us.url);
    };
    let runtime = FakeRuntime::start().await;
    let mut cmd = function(env!("CARGO_BIN_EXE_redeliver"), &runtime);
    settings(&mut cmd);
    let child = Running(cmd.spawn().unwrap());
    runtime.push(
        "sqs-1",
        event("events/sqs-parked.json"),
        Duration::from_secs(20),
    );
    // A webhook event is not an SQS event: that invocation fails, the next is served.
    runtime.push(
        "http-1",
        event("events/apigw-v2.json"),
        Duration::from_secs(20),
    );
    runtime.push(
        "sqs-2",
        event("events/sqs-parked.json"),
        Duration::from_secs(20),
    );
    runtime.wait_for(3, Duration::from_secs(30)).await;
    let responses = runtime.responses();
    let ids: Vec<&str> = responses.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["sqs-1", "sqs-2"]);
    for (_, answer) in &responses {
        assert_eq!(answer, &json!({"batchItemFailures": []}));
    }
    let failed: Vec<String> = runtime.errors().into_iter().map(|(id, _)| id).collect();
    assert_eq!(failed, ["http-1"]);
    // The webhook binary sends the same events with the same messageIds (Segment
    // deduplicates them).
    let webhook_runtime = FakeRuntime::start().await;
    let mut cmd = lambda(&webhook_runtime);
    settings(&mut cmd);
    let _webhook = Running(cmd.spawn().unwrap());
    webhook_runtime.push(
        "http-2",
        event("events/apigw-v2.json"),
        Duration::from_secs(20),
    );
    webhook_runtime.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(webhook_runtime.responses()[0].1["statusCode"], 200);
    let accepted = us.accepted();
    for id in [
        "moe-evt-apigw-0001",
        "moe-evt-apigw-0002",
        "moe-evt-apigw-0003",
    ] {
        // Twice redelivered, once more from the webhook event.
        assert_eq!(accepted.get(id), Some(&3), "{id}: {accepted:?}");
    }

    let out = output(child);
    assert!(out.contains("redelivery summary"), "{out}");
    let emf: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf[0]["Redelivered"], 3, "{out}");
    assert_eq!(emf[1]["Redelivered"], 3, "{out}");

    // Segment down: every record is reported failed (the SQS message ids), none lost.
    let down = SegmentStub::start(&["lambda-key"]).await;
    down.script(std::iter::repeat_n(
        segment_stub::Reply::Status(503),
        10_000,
    ));
    let runtime = FakeRuntime::start().await;
    let mut cmd = function(env!("CARGO_BIN_EXE_redeliver"), &runtime);
    cmd.env("SEGMENT_WRITE_KEY", "lambda-key")
        .env("SEGMENT_REGION", "us")
        .env("WEBHOOK_TOKEN", "t")
        .env("SEGMENT_ENDPOINT_US", &down.url);
    let _child = Running(cmd.spawn().unwrap());
    runtime.push(
        "sqs-3",
        event("events/sqs-parked.json"),
        Duration::from_secs(3),
    );
    runtime.wait_for(1, Duration::from_secs(30)).await;
    let failures: Vec<Value> = runtime.responses()[0].1["batchItemFailures"]
        .as_array()
        .unwrap()
        .clone();
    let sqs_ids: Vec<Value> = serde_json::from_str::<Value>(&event("events/sqs-parked.json"))
        .unwrap()["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"itemIdentifier": r["messageId"]}))
        .collect();
    assert_eq!(failures, sqs_ids);
}
