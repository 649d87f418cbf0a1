//! End to end through the binary: `moe2seg invoke` (the Lambda's handler and wiring) with
//! `SECRET_ID` read from a real Secrets Manager API (moto, via the standard
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`) and `SEGMENT_ENDPOINT_*` pointing at the local
//! Segment stand-in. Also the newcomer's dry run with no configuration at all.

mod moto;
mod segment_stub;

use std::process::{Command, Output};

use moto::MotoServer;
use segment_stub::{Reply, SegmentStub};
use serde_json::{Value, json};

const KEY: &str = "e2e-write-key";

fn moe2seg() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moe2seg"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    for var in [
        "SECRET_ID",
        "SEGMENT_WRITE_KEY",
        "SEGMENT_REGION",
        "SEGMENT_ENDPOINT_US",
        "SEGMENT_ENDPOINT_EU",
        "WEBHOOK_USERNAME",
        "WEBHOOK_PASSWORD",
        "WEBHOOK_TOKEN",
        "OAUTH_CLIENT_ID",
        "OAUTH_CLIENT_SECRET",
    ] {
        c.env_remove(var);
    }
    c
}

async fn run(mut cmd: Command) -> (Value, String) {
    let out: Output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "moe2seg failed: {stderr}");
    let resp: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stderr}"));
    (resp, stderr)
}

fn body(resp: &Value) -> Value {
    serde_json::from_str(resp["body"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_from_moto_and_delivery_to_the_right_region_under_faults() {
    let moto = MotoServer::start();
    let us = SegmentStub::start(&[KEY]).await;
    let eu = SegmentStub::start(&[KEY]).await;
    let secret = json!({"segment_write_key": KEY, "segment_region": "eu",
        "webhook_username": "moengage", "webhook_password": "local-password",
        "webhook_token": "local-token"});
    let arn = moto
        .create_secret("moengage-segment/e2e", &secret.to_string())
        .await;
    eu.script([
        Reply::Status(500),
        Reply::RetryAfter(429, "1".into()),
        Reply::Reset,
    ]);
    let invoke = |file: &str| {
        let mut c = moe2seg();
        moto.apply_env(&mut c);
        c.env("SECRET_ID", &arn)
            .env("SEGMENT_ENDPOINT_US", &us.url)
            .env("SEGMENT_ENDPOINT_EU", &eu.url)
            .args(["invoke", file]);
        c
    };
    let (resp, stderr) = run(invoke("events/apigw-v2-100.json")).await;
    assert_eq!(resp["statusCode"], 200, "{stderr}");
    let b = body(&resp);
    assert_eq!(
        (b["received"].as_u64(), b["forwarded"].as_u64()),
        (Some(100), Some(100))
    );
    let accepted = eu.accepted();
    assert_eq!(accepted.len(), 100);
    assert!(accepted.values().all(|n| *n == 1));
    assert!(eu.violations().is_empty(), "{:?}", eu.violations());
    assert!(us.requests().is_empty(), "EU data went to the US host");
    assert_eq!(eu.requests().len(), 4, "3 injected faults, then the batch");
    assert!(
        !stderr.contains(KEY) && !stderr.contains("local-password"),
        "secret in logs"
    );

    // Wrong credentials forward nothing.
    let before = eu.requests().len();
    let (resp, _) = run(invoke("events/bad-credentials.json")).await;
    assert_eq!(resp["statusCode"], 401);
    assert_eq!(eu.requests().len(), before);

    // A REST API v1 event with the stage in the path, and a Function URL event.
    for f in [
        "events/apigw-rest-v1.json",
        "events/function-url.json",
        "events/apigw-v2-gzip.json",
    ] {
        let (resp, stderr) = run(invoke(f)).await;
        assert_eq!(resp["statusCode"], 200, "{f}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_secret_answers_503_and_forwards_nothing() {
    let moto = MotoServer::start();
    let us = SegmentStub::start(&[KEY]).await;
    let mut c = moe2seg();
    moto.apply_env(&mut c);
    c.env("SECRET_ID", "does-not-exist")
        .env("SEGMENT_ENDPOINT_US", &us.url)
        .args(["invoke", "events/apigw-v2.json"]);
    let (resp, _) = run(c).await;
    assert_eq!(resp["statusCode"], 503);
    assert_eq!(body(&resp)["error"], "settings_unavailable");
    assert!(us.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_configuration_runs_dry_with_a_warning() {
    let mut c = moe2seg();
    c.args(["invoke", "events/apigw-v2.json"]);
    let (resp, stderr) = run(c).await;
    assert_eq!(resp["statusCode"], 200);
    assert_eq!(body(&resp)["forwarded"], 6);
    assert!(stderr.contains("DRY RUN"), "{stderr}");
    assert!(
        stderr.contains("POST https://api.segment.io/v1/batch (6 messages"),
        "{stderr}"
    );
    // The plan is the exact batch body that would be sent.
    let plan_start = stderr.find("\n{").unwrap();
    let plan: Value = serde_json::Deserializer::from_str(&stderr[plan_start..])
        .into_iter::<Value>()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(plan["batch"].as_array().unwrap().len(), 6);
    assert!(plan["sentAt"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn env_settings_and_forced_dry_run() {
    let us = SegmentStub::start(&["env-key"]).await;
    let env_cmd = |dry: bool| {
        let mut c = moe2seg();
        c.env("SEGMENT_WRITE_KEY", "env-key")
            .env("SEGMENT_REGION", "us")
            .env("WEBHOOK_USERNAME", "moengage")
            .env("WEBHOOK_PASSWORD", "local-password")
            .env("WEBHOOK_TOKEN", "local-token")
            .env("SEGMENT_ENDPOINT_US", &us.url)
            .arg("invoke");
        if dry {
            c.arg("--dry-run");
        }
        c.arg("events/apigw-v2-base64.json");
        c
    };
    let (resp, _) = run(env_cmd(true)).await;
    assert_eq!(resp["statusCode"], 200);
    assert!(us.requests().is_empty(), "--dry-run sent something");
    let (resp, _) = run(env_cmd(false)).await;
    assert_eq!(resp["statusCode"], 200);
    assert_eq!(us.accepted().len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oauth_token_from_the_sample_event_opens_the_webhook() {
    let us = SegmentStub::start(&["env-key"]).await;
    let env_cmd = |file: &str| {
        let mut c = moe2seg();
        c.env("SEGMENT_WRITE_KEY", "env-key")
            .env("SEGMENT_REGION", "us")
            .env("OAUTH_CLIENT_ID", "moengage")
            .env("OAUTH_CLIENT_SECRET", "local-client-secret")
            .env("SEGMENT_ENDPOINT_US", &us.url)
            .arg("invoke")
            .arg(file);
        c
    };
    let (resp, stderr) = run(env_cmd("events/oauth-token.json")).await;
    assert_eq!(resp["statusCode"], 200, "{stderr}");
    assert_eq!(resp["headers"]["cache-control"], "no-store");
    assert_eq!(resp["headers"]["pragma"], "no-cache");
    let b = body(&resp);
    assert_eq!(
        (&b["token_type"], &b["expires_in"]),
        (&json!("Bearer"), &json!(3600))
    );
    let token = b["access_token"].as_str().unwrap().to_owned();
    assert!(!stderr.contains("local-client-secret") && !stderr.contains(&token));
    assert!(us.requests().is_empty());

    // Tokens are stateless: another process (a cold start) accepts it on the webhook.
    let dir = std::env::temp_dir().join(format!("moe2seg-e2e-oauth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let with_token = dir.join("apigw-v2-oauth.json");
    let mut ev: Value =
        serde_json::from_str(&std::fs::read_to_string("events/apigw-v2.json").unwrap()).unwrap();
    ev["headers"]["authorization"] = json!(format!("Bearer {token}"));
    std::fs::write(&with_token, ev.to_string()).unwrap();
    let (resp, stderr) = run(env_cmd(with_token.to_str().unwrap())).await;
    assert_eq!(resp["statusCode"], 200, "{stderr}");
    assert_eq!(us.accepted().len(), 6);
    std::fs::remove_dir_all(&dir).ok();

    // Without OAuth settings (a dry run): invalid_client, as the events README says.
    let mut c = moe2seg();
    c.args(["invoke", "events/oauth-token.json"]);
    let (resp, _) = run(c).await;
    assert_eq!(resp["statusCode"], 401);
    assert_eq!(body(&resp)["error"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_event_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("moe2seg-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_b64 = dir.join("bad-b64.json");
    let mut ev: Value =
        serde_json::from_str(&std::fs::read_to_string("events/apigw-v2-base64.json").unwrap())
            .unwrap();
    ev["body"] = json!("%%% not base64 %%%");
    std::fs::write(&bad_b64, ev.to_string()).unwrap();
    let not_json = dir.join("not.json");
    std::fs::write(&not_json, "nope").unwrap();
    for (f, needle) in [(&bad_b64, "base64"), (&not_json, "not JSON")] {
        let out = moe2seg().arg("invoke").arg(f).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sqs_event_file_runs_the_redelivery_handler() {
    // Dry run (no configuration): the parcels' messages are printed, no record fails.
    let mut c = moe2seg();
    c.args(["invoke", "events/sqs-parked.json"]);
    let (resp, stderr) = run(c).await;
    assert_eq!(resp, json!({"batchItemFailures": []}), "{stderr}");
    assert!(stderr.contains("moe-evt-apigw-0003"), "{stderr}");
    assert!(stderr.contains("redelivery summary"), "{stderr}");

    // For real, with Segment failing: every record is reported by its SQS messageId.
    let us = SegmentStub::start(&[KEY]).await;
    us.script(std::iter::repeat_n(Reply::Status(503), 10_000));
    let mut c = moe2seg();
    c.env("SEGMENT_WRITE_KEY", KEY)
        .env("SEGMENT_REGION", "us")
        .env("WEBHOOK_TOKEN", "local-token")
        .env("SEGMENT_ENDPOINT_US", &us.url)
        .args(["invoke", "events/sqs-parked.json", "--timeout", "3"]);
    let (resp, stderr) = run(c).await;
    let failures = resp["batchItemFailures"].as_array().unwrap();
    assert_eq!(failures.len(), 3, "{stderr}");
    assert_eq!(
        failures[0]["itemIdentifier"],
        "9a1b2c3d-0000-4000-8000-000000000001"
    );
    assert!(!us.requests().is_empty());
    assert!(us.accepted().is_empty());
}
