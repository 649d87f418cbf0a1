//! The OAuth 2.0 token route through the real [`Webhook`]: tokens issued from form, HTTP
//! Basic and JSON credentials, on the paths API Gateway (HTTP and REST) and Function URLs
//! give, then used on the webhook against the Segment stand-in; and every refusal: expired,
//! forged and revoked tokens, wrong credentials, wrong or missing grant types, settings that
//! cannot be read or are invalid, a dry run. No answer and no log line holds the client
//! secret.

mod segment_stub;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::{self, StatusCode, header};
use lambda_http::{Body, Request, Response};
use moengage_segment::cli::invoke;
use moengage_segment::delivery::forward::{Forwarder, Mode};
use moengage_segment::delivery::outcome::Queues;
use moengage_segment::delivery::segment::{DryRun, RetryPolicy, SegmentClient};
use moengage_segment::settings::config::{Endpoints, OAuthClient, Region, Secret, Settings};
use moengage_segment::settings::secret::{
    SecretSource, SettingsCache, SettingsError, StaticSource,
};
use moengage_segment::telemetry::metrics::MetricsSink;
use moengage_segment::webhook::Webhook;
use moengage_segment::webhook::oauth;
use segment_stub::SegmentStub;
use serde_json::{Value, json};

const KEY: &str = "oauth-write-key";
const CLIENT_ID: &str = "moengage";
/// With `+`, `/`, `=` and `%`: form-encoding matters.
const CLIENT_SECRET: &str = "Cl1ent+S3cret/=%x";
/// [`CLIENT_SECRET`] form-urlencoded.
const CLIENT_SECRET_FORM: &str = "Cl1ent%2BS3cret%2F%3D%25x";

fn secret_json(client_secret: &str) -> String {
    json!({"segment_write_key": KEY, "segment_region": "us",
           "oauth_client_id": CLIENT_ID, "oauth_client_secret": client_secret})
    .to_string()
}

fn settings() -> Settings {
    Settings::from_secret_json(&secret_json(CLIENT_SECRET)).unwrap()
}

fn handler<S: SecretSource>(source: S, segment: &SegmentStub, ttl: Duration) -> Webhook<S> {
    let policy = RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    let mut h = Webhook::new(
        Forwarder::live(
            SettingsCache::new(source, ttl),
            SegmentClient::new(policy).unwrap(),
            Endpoints {
                us: segment.url.clone(),
                eu: segment.url.clone(),
            },
            Queues::default(),
        ),
        6 << 20,
    );
    h.budget.default = Duration::from_secs(10);
    h
}

async fn setup() -> (Webhook<StaticSource>, SegmentStub) {
    let segment = SegmentStub::start(&[KEY]).await;
    let h = handler(
        StaticSource(Ok(settings())),
        &segment,
        Duration::from_secs(300),
    );
    (h, segment)
}

/// A request to `uri` with these headers and body.
fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const TOKEN_URL: &str = "https://k3xampl3id.execute-api.us-east-1.amazonaws.com/oauth/token";

/// `POST /oauth/token` with a form body.
fn token_form(body: &str) -> Request {
    request("POST", TOKEN_URL, &[FORM], body)
}

fn form_credentials() -> String {
    format!(
        "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET_FORM}"
    )
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Status, headers and JSON body of an answer.
fn answer(resp: &Response<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let v = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
    (resp.status(), resp.headers().clone(), v)
}

/// The token of a 200 answer, after checking the answer's shape (RFC 6749 §5.1).
fn token_of(resp: &Response<Body>) -> String {
    let (status, headers, v) = answer(resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::PRAGMA], "no-cache");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], oauth::TOKEN_TTL_SECS);
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    let token = v["access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mseg1."), "{token}");
    token
}

/// The error code of an OAuth error answer, after checking its shape (RFC 6749 §5.2).
fn error_of(resp: &Response<Body>, status: StatusCode) -> String {
    let (got, headers, v) = answer(resp);
    assert_eq!(got, status, "{v}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::PRAGMA], "no-cache");
    assert!(v["error_description"].is_string(), "{v}");
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Basic realm=\"moengage-segment\""
        );
    }
    v["error"].as_str().unwrap().to_owned()
}

/// A Streams body of `n` events, uuids `evt-<tag>-<i>`.
fn streams(tag: &str, n: usize) -> String {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"event_name": "Email Sent", "event_code": "MOE_EMAIL_SENT",
                   "event_uuid": format!("evt-{tag}-{i}"), "event_time": 1_764_331_200 + i,
                   "uid": format!("u{i}")})
        })
        .collect();
    json!({"moe_request_id": format!("req-{tag}"), "events": events}).to_string()
}

/// `POST /moengage` with `Authorization: Bearer <token>`.
fn webhook(token: &str, tag: &str) -> Request {
    request(
        "POST",
        "https://k3xampl3id.execute-api.us-east-1.amazonaws.com/moengage",
        &[("authorization", &format!("Bearer {token}"))],
        &streams(tag, 2),
    )
}

fn accepted_of(segment: &SegmentStub, tag: &str) -> usize {
    segment
        .accepted()
        .keys()
        .filter(|id| id.starts_with(&format!("moe-evt-{tag}-")))
        .count()
}

#[tokio::test]
async fn a_token_from_a_form_body_opens_the_webhook() {
    let (h, segment) = setup().await;
    let token = token_of(&h.handle(token_form(&form_credentials())).await);
    assert!(
        segment.requests().is_empty(),
        "the token route sent something"
    );

    let resp = h.handle(webhook(&token, "form")).await;
    let (status, _, v) = answer(&resp);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["forwarded"], 2);
    assert_eq!(accepted_of(&segment, "form"), 2);
}

#[tokio::test]
async fn basic_and_json_credentials_get_tokens_too() {
    let (h, segment) = setup().await;
    let grant = "grant_type=client_credentials";
    // RFC 6749 §2.3.1: form-encoded, then base64; and clients that send them as they are.
    for auth in [
        basic(CLIENT_ID, CLIENT_SECRET_FORM),
        basic(CLIENT_ID, CLIENT_SECRET),
    ] {
        let resp = h
            .handle(request(
                "POST",
                TOKEN_URL,
                &[FORM, ("authorization", &auth)],
                grant,
            ))
            .await;
        let token = token_of(&resp);
        let resp = h.handle(webhook(&token, "basic")).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let body = json!({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                      "client_secret": CLIENT_SECRET, "scope": "streams"})
    .to_string();
    let resp = h
        .handle(request(
            "POST",
            TOKEN_URL,
            &[("content-type", "application/json")],
            &body,
        ))
        .await;
    let token = token_of(&resp);
    let resp = h.handle(webhook(&token, "json")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(accepted_of(&segment, "basic"), 2);
    assert_eq!(accepted_of(&segment, "json"), 2);
}

/// An event file of the repository, changed by `edit`, as the Lambda converts it.
fn event_file(name: &str, edit: impl FnOnce(&mut Value)) -> Request {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    let mut ev: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut ev);
    invoke::with_deadline(invoke::request_from_event(&ev.to_string()).unwrap(), 10_000)
}

#[tokio::test]
async fn http_api_rest_api_and_function_url_paths() {
    let (h, segment) = setup().await;
    let form = form_credentials();
    // HTTP API: the sample event, with this test's client secret.
    let http_api = event_file("oauth-token.json", |ev| ev["body"] = json!(form));
    let token = token_of(&h.handle(http_api).await);

    // REST API: the stage in the path, the credentials as Basic.
    let auth = basic(CLIENT_ID, CLIENT_SECRET_FORM);
    let rest = event_file("apigw-rest-v1.json", |ev| {
        ev["resource"] = json!("/oauth/token");
        ev["path"] = json!("/prod/oauth/token");
        ev["requestContext"]["resourcePath"] = json!("/oauth/token");
        ev["requestContext"]["path"] = json!("/prod/oauth/token");
        for (name, value) in [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ] {
            ev["headers"][name] = json!(value);
            ev["multiValueHeaders"][name] = json!([value]);
        }
        ev["body"] = json!("grant_type=client_credentials");
    });
    assert_eq!(rest.uri().path(), "/prod/oauth/token");
    token_of(&h.handle(rest).await);

    // Function URL: a base64 body, as Function URLs may send forms.
    let fn_url = event_file("function-url.json", |ev| {
        ev["rawPath"] = json!("/oauth/token");
        ev["requestContext"]["http"]["path"] = json!("/oauth/token");
        ev["headers"]
            .as_object_mut()
            .unwrap()
            .remove("authorization");
        ev["headers"]["content-type"] = json!("application/x-www-form-urlencoded");
        ev["body"] = json!(STANDARD.encode(&form));
        ev["isBase64Encoded"] = json!(true);
    });
    token_of(&h.handle(fn_url).await);

    // The token works on the sample webhook events of every shape.
    for file in ["apigw-v2.json", "apigw-rest-v1.json", "function-url.json"] {
        let req = event_file(file, |ev| {
            let bearer = json!(format!("Bearer {token}"));
            if ev["multiValueHeaders"].is_object() {
                ev["headers"]["Authorization"] = bearer.clone();
                ev["multiValueHeaders"]["Authorization"] = json!([bearer]);
            } else {
                ev["headers"]["authorization"] = bearer;
            }
        });
        let resp = h.handle(req).await;
        let (status, _, v) = answer(&resp);
        assert_eq!(status, StatusCode::OK, "{file}: {v}");
        assert_eq!(v["forwarded"], 6, "{file}");
    }
    assert!(segment.violations().is_empty());
}

#[tokio::test]
async fn expired_forged_and_foreign_tokens_get_401() {
    let (h, segment) = setup().await;
    let client = OAuthClient {
        id: Secret::new(CLIENT_ID),
        secret: Secret::new(CLIENT_SECRET),
    };
    let now = oauth::now_secs();
    let expired = oauth::mint(&client, now - oauth::TOKEN_TTL_SECS - 1).unwrap();
    let from_the_future = oauth::mint(&client, now + 24 * 3600).unwrap();
    let good = oauth::mint(&client, now).unwrap();
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = format!(
        "{head}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0u8; 32])
    );
    let foreign = oauth::mint(
        &OAuthClient {
            id: Secret::new(CLIENT_ID),
            secret: Secret::new("another secret"),
        },
        now,
    )
    .unwrap();
    for (what, token) in [
        ("expired", expired.as_str()),
        ("from the future", &from_the_future),
        ("forged", &forged),
        ("another secret's", &foreign),
        ("not a token", "mseg1.x.y"),
    ] {
        let resp = h.handle(webhook(token, "refused")).await;
        let (status, headers, v) = answer(&resp);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {v}");
        assert_eq!(v["error"], "unauthorized", "{what}");
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    }
    assert!(segment.requests().is_empty());
    // The pub mint at the current time is accepted: the refusals above are the tokens'.
    assert_eq!(
        h.handle(webhook(&good, "good")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn refusals_at_the_token_route() {
    let (h, segment) = setup().await;
    let unauthorized = StatusCode::UNAUTHORIZED;
    let bad = StatusCode::BAD_REQUEST;
    let wrong = format!("grant_type=client_credentials&client_id={CLIENT_ID}&client_secret=wrong");
    let resp = h.handle(token_form(&wrong)).await;
    assert_eq!(error_of(&resp, unauthorized), "invalid_client");
    let wrong_basic = basic(CLIENT_ID, "wrong");
    let resp = h
        .handle(request(
            "POST",
            TOKEN_URL,
            &[FORM, ("authorization", &wrong_basic)],
            "grant_type=client_credentials",
        ))
        .await;
    assert_eq!(error_of(&resp, unauthorized), "invalid_client");
    let resp = h.handle(token_form("grant_type=client_credentials")).await;
    assert_eq!(error_of(&resp, unauthorized), "invalid_client");

    let creds = format!("client_id={CLIENT_ID}&client_secret={CLIENT_SECRET_FORM}");
    let resp = h
        .handle(token_form(&format!("grant_type=password&{creds}")))
        .await;
    assert_eq!(error_of(&resp, bad), "unsupported_grant_type");
    let resp = h.handle(token_form(&creds)).await;
    assert_eq!(error_of(&resp, bad), "invalid_request");
    let resp = h
        .handle(token_form(&format!("{}&scope=a", form_credentials())))
        .await;
    token_of(&resp);
    let resp = h
        .handle(token_form(&format!(
            "{}&grant_type=client_credentials",
            form_credentials()
        )))
        .await;
    assert_eq!(error_of(&resp, bad), "invalid_request");
    let both = basic(CLIENT_ID, CLIENT_SECRET_FORM);
    let resp = h
        .handle(request(
            "POST",
            TOKEN_URL,
            &[FORM, ("authorization", &both)],
            &form_credentials(),
        ))
        .await;
    assert_eq!(error_of(&resp, bad), "invalid_request");
    let big = format!("{}&pad={}", form_credentials(), "x".repeat(9000));
    let resp = h.handle(token_form(&big)).await;
    assert_eq!(
        error_of(&resp, StatusCode::PAYLOAD_TOO_LARGE),
        "invalid_request"
    );

    let resp = h.handle(request("GET", TOKEN_URL, &[], "")).await;
    let (status, headers, _) = answer(&resp);
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "POST");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(segment.requests().is_empty());
}

#[tokio::test]
async fn without_oauth_in_the_secret_the_route_answers_invalid_client() {
    let segment = SegmentStub::start(&[KEY]).await;
    let token_only = Settings::from_parts(
        Some(KEY.into()),
        Some("us".into()),
        None,
        None,
        Some("static-token".into()),
    )
    .unwrap();
    let h = handler(
        StaticSource(Ok(token_only)),
        &segment,
        Duration::from_secs(300),
    );
    let resp = h.handle(token_form(&form_credentials())).await;
    let (status, _, v) = answer(&resp);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The same answer as for wrong credentials: nothing about the configuration.
    let (h2, _) = setup().await;
    let wrong = format!("grant_type=client_credentials&client_id={CLIENT_ID}&client_secret=x");
    let (_, _, v2) = answer(&h2.handle(token_form(&wrong)).await);
    assert_eq!(v, v2);
}

/// A source that counts its reads and answers what it is given.
struct Counting {
    reads: Arc<AtomicUsize>,
    answer: Result<String, SettingsError>,
}

impl SecretSource for Counting {
    async fn fetch(&self) -> Result<String, SettingsError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.answer.clone()
    }
}

#[tokio::test]
async fn unreadable_or_invalid_settings_get_fixed_answers() {
    let segment = SegmentStub::start(&[KEY]).await;
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:moengage-AbCdEf";
    for (answer_of_source, status, code) in [
        (
            Err(SettingsError::Unavailable(format!(
                "GetSecretValue {arn}: AccessDeniedException"
            ))),
            StatusCode::SERVICE_UNAVAILABLE,
            "settings_unavailable",
        ),
        (
            Ok(
                json!({"segment_write_key": KEY, "oauth_client_id": CLIENT_ID,
                      "oauth_client_secret": CLIENT_SECRET})
                .to_string(),
            ),
            StatusCode::INTERNAL_SERVER_ERROR,
            "misconfigured",
        ),
    ] {
        let reads = Arc::new(AtomicUsize::new(0));
        let h = handler(
            Counting {
                reads: reads.clone(),
                answer: answer_of_source,
            },
            &segment,
            Duration::ZERO,
        );
        // No credentials at all: invalid_client, and the secret is not even read.
        let resp = h.handle(token_form("grant_type=client_credentials")).await;
        assert_eq!(error_of(&resp, StatusCode::UNAUTHORIZED), "invalid_client");
        assert_eq!(reads.load(Ordering::SeqCst), 0);
        // With credentials: the webhook's fixed 5xx answer.
        let resp = h.handle(token_form(&form_credentials())).await;
        assert_eq!(error_of(&resp, status), code);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        let text = String::from_utf8_lossy(resp.body().as_ref()).into_owned();
        for leak in [
            "arn:",
            "123456789012",
            "AccessDenied",
            "segment_region",
            CLIENT_SECRET,
        ] {
            assert!(!text.contains(leak), "{text}");
        }
    }
}

#[tokio::test]
async fn a_dry_run_without_settings_issues_no_token() {
    let h: Webhook<StaticSource> = Webhook::new(
        Forwarder {
            mode: Mode::DryRun {
                settings: None,
                region: Region::Us,
                printer: DryRun::new(Box::new(std::io::sink())),
            },
            endpoints: Endpoints::default(),
        },
        6 << 20,
    );
    let resp = h.handle(token_form(&form_credentials())).await;
    assert_eq!(error_of(&resp, StatusCode::UNAUTHORIZED), "invalid_client");
    // An unconfigured function fails closed, as the webhook does.
    let h: Webhook<StaticSource> = Webhook::new(
        Forwarder {
            mode: Mode::Unconfigured("SECRET_ID is not set".into()),
            endpoints: Endpoints::default(),
        },
        6 << 20,
    );
    let resp = h.handle(token_form(&form_credentials())).await;
    assert_eq!(
        error_of(&resp, StatusCode::INTERNAL_SERVER_ERROR),
        "misconfigured"
    );
}

/// A secret that says what the test last put in it.
#[derive(Clone)]
struct Mutable(Arc<Mutex<String>>);

impl SecretSource for Mutable {
    async fn fetch(&self) -> Result<String, SettingsError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

#[tokio::test]
async fn a_rotated_client_secret_revokes_every_token() {
    let segment = SegmentStub::start(&[KEY]).await;
    let secret = Mutable(Arc::new(Mutex::new(secret_json(CLIENT_SECRET))));
    // TTL zero: every request reads the secret, as a warm function does after its TTL.
    let h = handler(secret.clone(), &segment, Duration::ZERO);
    let old = token_of(&h.handle(token_form(&form_credentials())).await);
    assert_eq!(
        h.handle(webhook(&old, "before")).await.status(),
        StatusCode::OK
    );

    *secret.0.lock().unwrap() = secret_json("rotated-client-secret");
    let resp = h.handle(webhook(&old, "after")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(accepted_of(&segment, "after"), 0);
    // The old credentials no longer get a token; the new ones do, and it works.
    let resp = h.handle(token_form(&form_credentials())).await;
    assert_eq!(error_of(&resp, StatusCode::UNAUTHORIZED), "invalid_client");
    let rotated = format!(
        "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret=rotated-client-secret"
    );
    let new = token_of(&h.handle(token_form(&rotated)).await);
    assert_ne!(new, old);
    assert_eq!(
        h.handle(webhook(&new, "after")).await.status(),
        StatusCode::OK
    );
    assert_eq!(accepted_of(&segment, "after"), 2);
}

#[tokio::test]
async fn the_token_route_emits_no_event_metrics() {
    let (mut h, _segment) = setup().await;
    let captured = Arc::new(Mutex::new(Vec::new()));
    h.metrics = MetricsSink::Capture(captured.clone());
    token_of(&h.handle(token_form(&form_credentials())).await);
    let resp = h.handle(token_form("grant_type=client_credentials")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(captured.lock().unwrap().is_empty());
}

// --- Logs ------------------------------------------------------------------------------------

/// Every event and span field logged on a capturing thread, as text. It is the process's
/// global subscriber (installed once): a scoped (`set_default`) one misses events when another
/// test's thread registers a callsite first and caches its interest. Only threads that turn
/// capturing on ([`Logs::capture`]) are recorded, so parallel tests do not mix in.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<String>>);

thread_local! {
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Logs {
    /// The global subscriber, capturing on this thread from now on (the test's runtime is
    /// current-thread, so the handler logs here), emptied.
    fn capture() -> Logs {
        static GLOBAL: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
        let logs = GLOBAL
            .get_or_init(|| {
                let logs = Logs::default();
                tracing::subscriber::set_global_default(logs.clone())
                    .expect("no other global subscriber in this test binary");
                logs
            })
            .clone();
        logs.0.lock().unwrap().clear();
        CAPTURING.with(|c| c.set(true));
        logs
    }

    fn record(&self, f: impl FnOnce(&mut String)) {
        if CAPTURING.with(|c| c.get()) {
            f(&mut self.0.lock().unwrap());
        }
    }
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Logs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.record(|logs| span.record(&mut Fields(logs)));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.record(|logs| values.record(&mut Fields(logs)));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        self.record(|logs| {
            event.record(&mut Fields(logs));
            logs.push('\n');
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn no_answer_or_log_holds_the_client_secret() {
    let logs = Logs::capture();
    let (h, _segment) = setup().await;
    let mut answers = Vec::new();
    let mut tokens = Vec::new();
    let json_body = json!({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                           "client_secret": CLIENT_SECRET})
    .to_string();
    let wrong = format!(
        "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET_FORM}x"
    );
    let basic_auth = basic(CLIENT_ID, CLIENT_SECRET_FORM);
    let requests = [
        token_form(&form_credentials()),
        token_form(&wrong),
        token_form(&format!("{}&client_secret=again", form_credentials())),
        request(
            "POST",
            TOKEN_URL,
            &[FORM, ("authorization", &basic_auth)],
            "grant_type=client_credentials",
        ),
        request(
            "POST",
            TOKEN_URL,
            &[("content-type", "application/json")],
            &json_body,
        ),
        request(
            "POST",
            TOKEN_URL,
            &[("content-type", "text/plain")],
            &json_body,
        ),
    ];
    for req in requests {
        let resp = h.handle(req).await;
        let (status, _, v) = answer(&resp);
        if status == StatusCode::OK {
            tokens.push(v["access_token"].as_str().unwrap().to_owned());
        }
        answers.push(String::from_utf8_lossy(resp.body().as_ref()).into_owned());
    }
    assert_eq!(tokens.len(), 3);
    for token in &tokens {
        let resp = h.handle(webhook(token, "logs")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        answers.push(String::from_utf8_lossy(resp.body().as_ref()).into_owned());
    }
    let logs = logs.0.lock().unwrap().clone();
    assert_eq!(
        logs.matches("token request summary").count(),
        6,
        "one summary line per token request:\n{logs}"
    );
    assert!(logs.contains("invalid_client"), "{logs}");
    for needle in [CLIENT_SECRET, CLIENT_SECRET_FORM, basic_auth.as_str()] {
        assert!(!logs.contains(needle), "{needle} in the logs:\n{logs}");
        for a in &answers {
            assert!(!a.contains(needle), "{needle} in an answer: {a}");
        }
    }
    for token in &tokens {
        assert!(
            !logs.contains(token.as_str()),
            "a token in the logs:\n{logs}"
        );
    }
}
