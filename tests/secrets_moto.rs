//! `AwsSecretSource` + `SettingsCache` against a real Secrets Manager API: a `moto_server`
//! started per test on 127.0.0.1 (see `tests/moto/mod.rs`). Nothing contacts AWS.

mod moto;

use std::time::{Duration, Instant};

use moengage_segment::settings::config::{ConfigError, Region};
use moengage_segment::settings::secret::{AwsSecretSource, SettingsCache, SettingsError};
use moto::MotoServer;

const TTL: Duration = Duration::from_secs(300);

/// Secret JSON with recognisable values, so tests can check that errors never echo them.
fn secret_json(write_key: &str, region: &str) -> String {
    serde_json::json!({
        "segment_write_key": write_key,
        "segment_region": region,
        "webhook_username": "USER-VALUE-1",
        "webhook_password": "PASSWORD-VALUE-1",
        "webhook_token": "TOKEN-VALUE-1",
    })
    .to_string()
}

async fn cache(
    moto: &MotoServer,
    secret_id: &str,
    ttl: Duration,
) -> SettingsCache<AwsSecretSource> {
    SettingsCache::new(AwsSecretSource::new(moto.client().await, secret_id), ttl)
}

fn assert_no_values(msg: &str) {
    for v in [
        "WRITE-KEY",
        "USER-VALUE-1",
        "PASSWORD-VALUE-1",
        "TOKEN-VALUE-1",
        // SigV4 material of the request.
        "Credential=",
        "Signature=",
        "Authorization",
    ] {
        assert!(!msg.contains(v), "error message leaks {v:?}: {msg}");
    }
}

#[tokio::test]
async fn valid_secret_is_read_by_name_and_by_arn() {
    let moto = MotoServer::start();
    let eu_arn = moto
        .create_secret("moe2seg/eu", &secret_json("WRITE-KEY-EU", "eu"))
        .await;
    let us_token_only = serde_json::json!({
        "segment_write_key": " WRITE-KEY-US ",
        "segment_region": "US",
        "webhook_token": "TOKEN-VALUE-1",
    })
    .to_string();
    let us_arn = moto.create_secret("moe2seg/us", &us_token_only).await;
    assert!(
        eu_arn.starts_with("arn:aws:secretsmanager:us-east-1:"),
        "{eu_arn}"
    );
    assert_ne!(eu_arn, us_arn);

    for id in ["moe2seg/eu", eu_arn.as_str()] {
        let c = cache(&moto, id, TTL).await;
        let s = c.get().await.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(s.write_key.expose(), "WRITE-KEY-EU", "{id}");
        assert_eq!(s.region, Region::Eu, "{id}");
        let (user, password) = s.webhook.basic.as_ref().expect("basic credentials");
        assert_eq!(
            (user.expose(), password.expose()),
            ("USER-VALUE-1", "PASSWORD-VALUE-1")
        );
        assert_eq!(
            s.webhook.token.as_ref().map(|t| t.expose()),
            Some("TOKEN-VALUE-1")
        );
        assert_eq!(c.fetch_count(), 1);
    }

    for id in ["moe2seg/us", us_arn.as_str()] {
        let c = cache(&moto, id, TTL).await;
        let s = c.get().await.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            s.write_key.expose(),
            "WRITE-KEY-US",
            "write key is trimmed ({id})"
        );
        assert_eq!(s.region, Region::Us, "{id}");
        assert!(s.webhook.basic.is_none(), "{id}");
        assert!(s.webhook.token.is_some(), "{id}");
    }
}

#[tokio::test]
async fn one_get_secret_value_per_ttl() {
    let moto = MotoServer::start();
    moto.create_secret("moe2seg/ttl", &secret_json("WRITE-KEY-1", "us"))
        .await;
    let c = cache(&moto, "moe2seg/ttl", TTL).await;
    for _ in 0..10 {
        assert_eq!(c.get().await.unwrap().write_key.expose(), "WRITE-KEY-1");
    }
    assert_eq!(c.fetch_count(), 1);
}

#[tokio::test]
async fn rotation_is_seen_by_refresh_and_after_the_ttl() {
    let moto = MotoServer::start();
    let name = "moe2seg/rotate";
    moto.create_secret(name, &secret_json("WRITE-KEY-1", "us"))
        .await;

    // Long TTL: the cached key is served until refresh() (what the 401 path does).
    let long = cache(&moto, name, TTL).await;
    assert_eq!(long.get().await.unwrap().write_key.expose(), "WRITE-KEY-1");
    moto.put_secret(name, &secret_json("WRITE-KEY-2", "us"))
        .await;
    assert_eq!(long.get().await.unwrap().write_key.expose(), "WRITE-KEY-1");
    assert_eq!(
        long.refresh().await.unwrap().write_key.expose(),
        "WRITE-KEY-2"
    );
    assert_eq!(long.get().await.unwrap().write_key.expose(), "WRITE-KEY-2");
    assert_eq!(long.fetch_count(), 2);

    // TTL 0: every get() re-reads, so it sees a rotation without refresh().
    let zero = cache(&moto, name, Duration::ZERO).await;
    assert_eq!(zero.get().await.unwrap().write_key.expose(), "WRITE-KEY-2");
    moto.put_secret(name, &secret_json("WRITE-KEY-3", "eu"))
        .await;
    let s = zero.get().await.unwrap();
    assert_eq!(s.write_key.expose(), "WRITE-KEY-3");
    assert_eq!(s.region, Region::Eu);
    assert_eq!(zero.fetch_count(), 2);
}

#[tokio::test]
async fn rotation_to_invalid_content_fails_closed() {
    let moto = MotoServer::start();
    let name = "moe2seg/rotate-bad";
    moto.create_secret(name, &secret_json("WRITE-KEY-1", "us"))
        .await;
    let c = cache(&moto, name, TTL).await;
    assert_eq!(c.get().await.unwrap().write_key.expose(), "WRITE-KEY-1");
    moto.put_secret(name, r#"{"segment_write_key":"WRITE-KEY-2","segment_region":"mars","webhook_token":"TOKEN-VALUE-1"}"#)
        .await;
    // Unlike an outage, a bad secret is not papered over with the last good settings.
    assert_eq!(
        c.refresh().await.unwrap_err(),
        SettingsError::Invalid(ConfigError::BadRegion)
    );
    assert_eq!(
        c.get().await.unwrap_err(),
        SettingsError::Invalid(ConfigError::BadRegion)
    );
    moto.put_secret(name, &secret_json("WRITE-KEY-3", "us"))
        .await;
    assert_eq!(c.get().await.unwrap().write_key.expose(), "WRITE-KEY-3");
}

#[tokio::test]
async fn missing_secret_is_unavailable_and_names_the_id() {
    let moto = MotoServer::start();
    // Another secret exists, so a leak of its values would be visible.
    moto.create_secret("moe2seg/present", &secret_json("WRITE-KEY-1", "us"))
        .await;
    let id = "moe2seg/no-such-secret";
    let err = cache(&moto, id, TTL).await.get().await.unwrap_err();
    let SettingsError::Unavailable(msg) = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(msg.contains(id), "{msg}");
    assert!(msg.contains("ResourceNotFoundException"), "{msg}");
    assert_no_values(msg);
    assert_no_values(&err.to_string());
}

#[tokio::test]
async fn invalid_secret_content_is_invalid() {
    let moto = MotoServer::start();
    let cases: [(&str, String, ConfigError); 5] = [
        ("not-json", "WRITE-KEY-1 is not json".to_owned(), ConfigError::NotJson(String::new())),
        (
            "no-region",
            r#"{"segment_write_key":"WRITE-KEY-1","webhook_token":"TOKEN-VALUE-1"}"#.to_owned(),
            ConfigError::Missing("segment_region"),
        ),
        (
            "mars",
            r#"{"segment_write_key":"WRITE-KEY-1","segment_region":"mars","webhook_token":"TOKEN-VALUE-1"}"#
                .to_owned(),
            ConfigError::BadRegion,
        ),
        (
            "no-webhook-credentials",
            r#"{"segment_write_key":"WRITE-KEY-1","segment_region":"us"}"#.to_owned(),
            ConfigError::NoWebhookCredentials,
        ),
        (
            "half-basic",
            r#"{"segment_write_key":"WRITE-KEY-1","segment_region":"eu","webhook_username":"USER-VALUE-1"}"#
                .to_owned(),
            ConfigError::HalfBasicPair("webhook_username", "webhook_password"),
        ),
    ];
    for (name, content, expected) in cases {
        let arn = moto.create_secret(name, &content).await;
        let c = cache(&moto, &arn, TTL).await;
        let err = c.get().await.unwrap_err();
        match (&err, &expected) {
            (SettingsError::Invalid(ConfigError::NotJson(_)), ConfigError::NotJson(_)) => {}
            (SettingsError::Invalid(got), want) => assert_eq!(got, want, "{name}"),
            _ => panic!("{name}: expected Invalid({expected:?}), got {err:?}"),
        }
        assert_no_values(&err.to_string());
        assert!(!err.to_string().contains("mars"), "{err}");
        // Invalid is not cached: the next get() asks again (and fails again).
        assert!(
            matches!(c.get().await, Err(SettingsError::Invalid(_))),
            "{name}"
        );
        assert_eq!(c.fetch_count(), 2, "{name}");
    }

    // A binary secret has no SecretString.
    moto.create_binary_secret("binary", b"WRITE-KEY-1").await;
    let err = cache(&moto, "binary", TTL).await.get().await.unwrap_err();
    assert!(
        matches!(&err, SettingsError::Invalid(ConfigError::NotJson(m)) if m.contains("binary")),
        "{err:?}"
    );
}

#[tokio::test]
async fn outage_after_a_good_read_keeps_the_last_settings() {
    let mut moto = MotoServer::start();
    let name = "moe2seg/outage";
    moto.create_secret(name, &secret_json("WRITE-KEY-1", "eu"))
        .await;
    // TTL 0 so that every get() goes to Secrets Manager.
    let c = cache(&moto, name, Duration::ZERO).await;
    assert_eq!(c.get().await.unwrap().write_key.expose(), "WRITE-KEY-1");

    moto.kill();
    let started = Instant::now();
    for _ in 0..3 {
        let s = c
            .get()
            .await
            .expect("last good settings while Secrets Manager is down");
        assert_eq!(s.write_key.expose(), "WRITE-KEY-1");
        assert_eq!(s.region, Region::Eu);
    }
    let s = c
        .refresh()
        .await
        .expect("refresh keeps the last good settings");
    assert_eq!(s.write_key.expose(), "WRITE-KEY-1");
    assert_eq!(c.fetch_count(), 5, "each call tried Secrets Manager again");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn outage_before_any_read_is_unavailable_and_fast() {
    let mut moto = MotoServer::start();
    let name = "moe2seg/never-read";
    moto.create_secret(name, &secret_json("WRITE-KEY-1", "us"))
        .await;
    let dead = moto.endpoint.clone();
    moto.kill();

    for endpoint in [dead, moto::closed_endpoint()] {
        let c = SettingsCache::new(AwsSecretSource::new(moto::client_for(&endpoint), name), TTL);
        let started = Instant::now();
        let err = c.get().await.unwrap_err();
        let SettingsError::Unavailable(msg) = &err else {
            panic!("{endpoint}: expected Unavailable, got {err:?}");
        };
        assert!(msg.contains(name), "{msg}");
        assert_no_values(msg);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Still nothing cached: a later get() tries again.
        assert!(matches!(c.get().await, Err(SettingsError::Unavailable(_))));
        assert_eq!(c.fetch_count(), 2);
    }
}

const CHILD_HELPER: &str = "from_env_child_helper";
const CHILD_SECRET_ID: &str = "MOTO_CHILD_SECRET_ID";
const CHILD_WRITE_KEY: &str = "MOTO_CHILD_EXPECT_WRITE_KEY";

/// `AwsSecretSource::from_env` reads the standard AWS environment. Setting env vars in this
/// process would be unsafe and racy, so a child process (this test binary, filtered to the
/// ignored helper below) gets the moto environment instead.
#[tokio::test]
async fn from_env_honours_aws_endpoint_url_secrets_manager() {
    let moto = MotoServer::start();
    let name = "moe2seg/from-env";
    moto.create_secret(name, &secret_json("WRITE-KEY-FROM-ENV", "eu"))
        .await;

    let mut cmd = std::process::Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--ignored",
        "--exact",
        CHILD_HELPER,
        "--nocapture",
        "--test-threads=1",
    ]);
    moto.apply_env(&mut cmd)
        .env(CHILD_SECRET_ID, name)
        .env(CHILD_WRITE_KEY, "WRITE-KEY-FROM-ENV");
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("child test binary timed out")
        .expect("run child test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed") && stdout.contains("FROM-ENV-OK"),
        "child failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// Run only by `from_env_honours_aws_endpoint_url_secrets_manager` in a child process.
#[tokio::test]
#[ignore = "helper: run in a child process by from_env_honours_aws_endpoint_url_secrets_manager"]
async fn from_env_child_helper() {
    let (Ok(secret_id), Ok(expected)) = (
        std::env::var(CHILD_SECRET_ID),
        std::env::var(CHILD_WRITE_KEY),
    ) else {
        // Run directly (e.g. `cargo test -- --include-ignored`): do nothing, and in particular
        // do not let the SDK go looking for real AWS.
        eprintln!("{CHILD_HELPER}: not started by its parent test; skipping");
        return;
    };
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "not a moto endpoint: {endpoint:?}"
    );

    let source = AwsSecretSource::from_env(secret_id.as_str()).await;
    let c = SettingsCache::new(source, TTL);
    let s = c
        .get()
        .await
        .unwrap_or_else(|e| panic!("from_env read failed: {e}"));
    assert_eq!(s.write_key.expose(), expected);
    assert_eq!(s.region, Region::Eu);
    println!("FROM-ENV-OK");
}
