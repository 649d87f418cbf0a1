//! Mapping options end to end: read from a real Secrets Manager API (moto), applied by the
//! webhook, delivered to the Segment stand-in; the last-good rule when the options turn
//! invalid, and 500 `misconfigured` when there never were good ones.

mod moto;
mod segment_stub;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use lambda_http::http::{self, StatusCode};
use lambda_http::{Body, Request, Response};
use moengage_segment::delivery::forward::Forwarder;
use moengage_segment::delivery::outcome::Queues;
use moengage_segment::delivery::segment::{RetryPolicy, SegmentClient};
use moengage_segment::settings::config::Endpoints;
use moengage_segment::settings::secret::{AwsSecretSource, SettingsCache};
use moengage_segment::telemetry::metrics::MetricsSink;
use moengage_segment::webhook::Webhook;
use moto::MotoServer;
use segment_stub::SegmentStub;
use serde_json::{Value, json};

const KEY: &str = "options-write-key";
const USER: &str = "moengage";
const PASSWORD: &str = "options-password";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/options/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn secret(mapping: Option<Value>) -> String {
    let mut s = json!({"segment_write_key": KEY, "segment_region": "us",
                       "webhook_username": USER, "webhook_password": PASSWORD});
    if let Some(m) = mapping {
        s["mapping"] = m;
    }
    s.to_string()
}

struct Setup {
    moto: MotoServer,
    segment: SegmentStub,
    handler: Webhook<AwsSecretSource>,
    metrics: Arc<Mutex<Vec<String>>>,
}

/// A handler reading `secret_id` on every request (TTL 0), so a changed secret is seen at
/// once.
async fn setup(secret_text: &str) -> Setup {
    let moto = MotoServer::start();
    moto.create_secret("moe2seg/options", secret_text).await;
    let segment = SegmentStub::start(&[KEY]).await;
    let handler = handler_for(&moto, &segment).await;
    let metrics = match &handler.metrics {
        MetricsSink::Capture(m) => m.clone(),
        _ => unreachable!(),
    };
    Setup {
        moto,
        segment,
        handler,
        metrics,
    }
}

async fn handler_for(moto: &MotoServer, segment: &SegmentStub) -> Webhook<AwsSecretSource> {
    let source = AwsSecretSource::new(moto.client().await, "moe2seg/options");
    let mut h = Webhook::new(
        Forwarder::live(
            SettingsCache::new(source, Duration::ZERO),
            SegmentClient::new(RetryPolicy::default()).unwrap(),
            Endpoints {
                us: segment.url.clone(),
                eu: segment.url.clone(),
            },
            Queues::default(),
        ),
        6 << 20,
    );
    h.metrics = MetricsSink::Capture(Arc::default());
    h.budget.default = Duration::from_secs(20);
    h
}

fn post(body: &str, password: &str) -> Request {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    http::Request::builder()
        .method("POST")
        .uri("/moengage")
        .header("authorization", format!("Basic {auth}"))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn answer(resp: &Response<Body>) -> (StatusCode, Value) {
    (
        resp.status(),
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
    )
}

/// The last EMF line's metrics.
fn last_metrics(metrics: &Mutex<Vec<String>>) -> Value {
    serde_json::from_str(metrics.lock().unwrap().last().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn options_in_the_secret_shape_what_segment_receives() {
    let options: Value = serde_json::from_str(&fixture("issue_example.options.json")).unwrap();
    let s = setup(&secret(Some(options["mapping"].clone()))).await;
    let resp = s
        .handler
        .handle(post(&fixture("issue_example.json"), PASSWORD))
        .await;
    let (status, a) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(
        (
            &a["received"],
            &a["filtered"],
            &a["identifies"],
            &a["forwarded"],
            &a["rejected_count"]
        ),
        (&json!(5), &json!(2), &json!(2), &json!(5), &json!(0)),
        "{a}"
    );
    // Segment got exactly the golden fixture's messages (3 tracks, 2 identifies; the
    // fixture shows their content: renamed, dropped, hashed).
    let expected: Value = serde_json::from_str(&fixture("issue_example.expected.json")).unwrap();
    let want: BTreeSet<String> = expected["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_owned())
        .collect();
    let got: BTreeSet<String> = s.segment.accepted().into_keys().collect();
    assert_eq!(got, want);
    assert!(
        s.segment.violations().is_empty(),
        "{:?}",
        s.segment.violations()
    );
    let m = last_metrics(&s.metrics);
    assert_eq!(
        (
            &m["Filtered"],
            &m["Identifies"],
            &m["MappingOptionsInvalid"]
        ),
        (&json!(2), &json!(2), &json!(0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_options_keep_the_last_good_ones_serving() {
    let s = setup(&secret(Some(json!({"skip_events": ["Email Opened"]})))).await;
    let body = fixture("skip_events.json");
    let (status, a) = answer(&s.handler.handle(post(&body, PASSWORD)).await);
    assert_eq!((status, &a["filtered"]), (StatusCode::OK, &json!(1)), "{a}");
    assert_eq!(last_metrics(&s.metrics)["MappingOptionsInvalid"], 0);

    // A bad edit: the last good options keep serving, and the error is counted.
    s.moto
        .put_secret(
            "moe2seg/options",
            &secret(Some(
                json!({"skip_events": ["Email Opened"], "identify": "sometimes"}),
            )),
        )
        .await;
    let (status, a) = answer(&s.handler.handle(post(&body, PASSWORD)).await);
    assert_eq!((status, &a["filtered"]), (StatusCode::OK, &json!(1)), "{a}");
    assert_eq!(a["identifies"], 0);
    assert_eq!(last_metrics(&s.metrics)["MappingOptionsInvalid"], 1);

    // Other settings still follow the secret: a rotated password is used at once.
    s.moto
        .put_secret(
            "moe2seg/options",
            &secret(Some(json!({"identify": 3}))).replace(PASSWORD, "rotated-password"),
        )
        .await;
    let (status, _) = answer(&s.handler.handle(post(&body, PASSWORD)).await);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, a) = answer(&s.handler.handle(post(&body, "rotated-password")).await);
    assert_eq!((status, &a["filtered"]), (StatusCode::OK, &json!(1)), "{a}");

    // Fixed: the new options apply and the count goes back to 0.
    s.moto
        .put_secret(
            "moe2seg/options",
            &secret(Some(json!({"identify": "per_user"}))),
        )
        .await;
    let (status, a) = answer(&s.handler.handle(post(&body, PASSWORD)).await);
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!((&a["filtered"], &a["identifies"]), (&json!(0), &json!(2)));
    assert_eq!(last_metrics(&s.metrics)["MappingOptionsInvalid"], 0);
    assert!(s.segment.violations().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_options_with_no_good_ones_answer_500_misconfigured() {
    let s = setup(&secret(Some(json!({"skip_events": "Email Opened"})))).await;
    let body = fixture("skip_events.json");
    let resp = s.handler.handle(post(&body, PASSWORD)).await;
    let (status, a) = answer(&resp);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a["error"], "misconfigured");
    // The caller learns nothing about the secret: no field names.
    let text = String::from_utf8_lossy(resp.body().as_ref()).to_string();
    assert!(
        !text.contains("skip_events") && !text.contains("mapping"),
        "{text}"
    );
    assert_eq!(last_metrics(&s.metrics)["MappingOptionsInvalid"], 1);
    assert!(s.segment.requests().is_empty(), "nothing is forwarded");
    // Without valid credentials: 401, as always, before anything else.
    let (status, _) = answer(&s.handler.handle(post(&body, "wrong")).await);
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Fixed in the secret: served at once (TTL 0 here; SECRET_TTL_SECONDS in a stack).
    s.moto
        .put_secret(
            "moe2seg/options",
            &secret(Some(json!({"skip_events": ["Email Opened"]}))),
        )
        .await;
    let (status, a) = answer(&s.handler.handle(post(&body, PASSWORD)).await);
    assert_eq!(
        (status, &a["filtered"], &a["forwarded"]),
        (StatusCode::OK, &json!(1), &json!(4)),
        "{a}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_environment_reads_the_options_too() {
    // Two environments of one stack: options set after the first started reach both.
    let s = setup(&secret(None)).await;
    let body = fixture("only_events.json");
    let (_, a) = answer(&s.handler.handle(post(&body, PASSWORD)).await);
    assert_eq!(a["filtered"], 0);
    s.moto
        .put_secret(
            "moe2seg/options",
            &secret(Some(
                json!({"only_events": ["added to cart", "moe_email_sent"]}),
            )),
        )
        .await;
    let cold = handler_for(&s.moto, &s.segment).await;
    for h in [&s.handler, &cold] {
        let (status, a) = answer(&h.handle(post(&body, PASSWORD)).await);
        assert_eq!(
            (status, &a["filtered"], &a["forwarded"]),
            (StatusCode::OK, &json!(3), &json!(2))
        );
    }
}
