//! `moe2seg invoke EVENT_FILE`: runs the functions' handlers in-process on the event files
//! `cargo lambda invoke --data-file` and `sam local invoke -e` take: an SQS event from the
//! parked queue (the redelivery handler: its partial batch response
//! `{"batchItemFailures": [...]}`), a batch of S3 objects from the backfill state machine
//! (the backfill handler: its summary, or its error), or an API Gateway (REST v1, HTTP v2) or
//! Function URL event, converted by lambda_http's own `request::from_str` (the webhook
//! handler: the HTTP answer as `{"statusCode", "headers", "body"}`).

use std::cell::Cell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::Once;

use aws_lambda_events::sqs::SqsEvent;
use lambda_http::{Body, Context, Request, RequestExt, Response};
use serde_json::{Value, json};

use crate::app::DryRunWhen;
use crate::backfill::lambda::BatchEvent;
use crate::settings::config::SettingsSource;

use super::env_and_app;

/// Why an event file cannot be invoked.
#[derive(Debug, thiserror::Error)]
pub enum EventFileError {
    #[error("the event is not JSON: {0}")]
    NotJson(String),
    #[error("not an API Gateway, Function URL or SQS event: {0}")]
    NotAnEvent(String),
    /// lambda_http cannot turn the event into a request (it panics on a body marked
    /// `isBase64Encoded` that is not base64, or a host, path or query that makes no valid URI).
    /// API Gateway never sends such an event; on Lambda the invocation fails and the
    /// environment serves the next one.
    #[error(
        "lambda_http cannot convert the event into a request ({0}); API Gateway never sends such an event"
    )]
    Unconvertible(String),
}

/// An event file's invocation.
#[derive(Debug)]
pub enum Invocation {
    Http(Box<Request>),
    Sqs(SqsEvent),
    Backfill(BatchEvent),
}

/// Reads an event: `{"Records": [{"eventSource": "aws:sqs", …}]}` is an SQS event,
/// `{"Items": […], "BatchInput": {…}}` a backfill batch; anything else must be one
/// lambda_http converts ([`request_from_event`]).
pub fn event_from_str(text: &str) -> Result<Invocation, EventFileError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| EventFileError::NotJson(e.to_string()))?;
    let sqs = value
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs");
    if sqs {
        return serde_json::from_value(value)
            .map(Invocation::Sqs)
            .map_err(|e| EventFileError::NotAnEvent(e.to_string()));
    }
    if value.get("Items").is_some() && value.get("BatchInput").is_some() {
        return serde_json::from_value(value)
            .map(Invocation::Backfill)
            .map_err(|e| EventFileError::NotAnEvent(e.to_string()));
    }
    request_from_event(text).map(|r| Invocation::Http(Box::new(r)))
}

thread_local! {
    /// Set while this thread runs lambda_http's conversion: its panic is reported as an
    /// error, so the panic hook stays quiet about it.
    static CONVERTING: Cell<bool> = const { Cell::new(false) };
}

/// An HTTP event as the webhook function gets it: lambda_http's `request::from_str`. Its
/// panics (events API Gateway never sends) become [`EventFileError::Unconvertible`], with no
/// panic message on stderr.
pub fn request_from_event(text: &str) -> Result<Request, EventFileError> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CONVERTING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    CONVERTING.with(|c| c.set(true));
    let converted = panic::catch_unwind(AssertUnwindSafe(|| lambda_http::request::from_str(text)));
    CONVERTING.with(|c| c.set(false));
    match converted {
        Ok(Ok(req)) => Ok(req),
        Ok(Err(e)) => Err(EventFileError::NotAnEvent(e.to_string())),
        Err(payload) => {
            let why = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(EventFileError::Unconvertible(crate::excerpt::excerpt(
                why, 200,
            )))
        }
    }
}

/// The Lambda deadline (epoch ms) of an invocation with `budget_ms` from now.
pub fn deadline_ms(budget_ms: u64) -> u64 {
    (crate::mapping::time::now_millis().max(0) as u64).saturating_add(budget_ms)
}

/// Attaches a Lambda context whose deadline is `budget_ms` from now.
pub fn with_deadline(req: Request, budget_ms: u64) -> Request {
    let mut ctx = Context::default();
    ctx.request_id = "local-invoke".into();
    ctx.deadline = deadline_ms(budget_ms);
    req.with_lambda_context(ctx)
}

/// Renders a response as the Lambda proxy integration does.
pub fn response_json(resp: &Response<Body>) -> Value {
    let headers: serde_json::Map<String, Value> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or(""))))
        .collect();
    let body = match resp.body() {
        Body::Empty => String::new(),
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    json!({"statusCode": resp.status().as_u16(), "headers": headers, "body": body})
}

/// Runs the handler of the invocation's function, with `budget_ms` to answer; its answer as
/// the function returns it (an error as Lambda reports it).
async fn answer(app: crate::app::App, invocation: Invocation, budget_ms: u64) -> Value {
    match invocation {
        Invocation::Http(req) => {
            let resp = app.webhook().handle(with_deadline(*req, budget_ms)).await;
            response_json(&resp)
        }
        Invocation::Sqs(event) => {
            let deadline = Some(deadline_ms(budget_ms));
            let answer = app.redelivery().redeliver(event, deadline).await;
            serde_json::to_value(&answer).unwrap_or_default()
        }
        Invocation::Backfill(event) => {
            let deadline = Some(deadline_ms(budget_ms));
            match app.backfill().await.handle(event, deadline).await {
                Ok(a) => serde_json::to_value(&a).unwrap_or_default(),
                Err(e) => {
                    let d = lambda_runtime::Diagnostic::from(e);
                    json!({"errorType": d.error_type, "errorMessage": d.error_message})
                }
            }
        }
    }
}

/// The command: runs the handler of `event_file`'s function on it and prints its answer.
pub async fn invoke(event_file: String, dry_run: bool, timeout: u64) -> ExitCode {
    crate::telemetry::logging::init(io::stderr);
    let text = match std::fs::read(&event_file) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!("moe2seg: cannot read {event_file}: {e}");
            return ExitCode::from(2);
        }
    };
    let invocation = match event_from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("moe2seg: {event_file}: {e}");
            return ExitCode::from(2);
        }
    };
    let when = if dry_run {
        DryRunWhen::Always
    } else {
        DryRunWhen::NoSettings
    };
    let (env, app) = match env_and_app(when, true).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    if matches!(env.source, SettingsSource::None) {
        eprintln!(
            "moe2seg: WARNING: neither SECRET_ID nor SEGMENT_WRITE_KEY is set: DRY RUN. \
             Inbound auth is skipped and nothing is sent to Segment; the requests that \
             would be sent are printed below."
        );
    } else if dry_run {
        eprintln!(
            "moe2seg: --dry-run: nothing is sent to Segment; the requests are printed below."
        );
    }
    let out = answer(app, invocation, timeout.saturating_mul(1000)).await;
    super::print_json(&out, true);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(file: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("events")
            .join(file);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn every_sample_event_converts() {
        for file in [
            "apigw-v2.json",
            "apigw-v2-base64.json",
            "apigw-v2-gzip.json",
            "apigw-rest-v1.json",
            "function-url.json",
            "get-method.json",
            "oauth-token.json",
        ] {
            let v = sample(file);
            assert!(
                matches!(event_from_str(&v.to_string()), Ok(Invocation::Http(_))),
                "{file}"
            );
        }
        let sqs = sample("sqs-parked.json").to_string();
        assert!(matches!(event_from_str(&sqs), Ok(Invocation::Sqs(_))));
        let batch = sample("backfill-items.json").to_string();
        assert!(matches!(
            event_from_str(&batch),
            Ok(Invocation::Backfill(_))
        ));
    }

    #[test]
    fn events_lambda_http_cannot_convert_are_errors_not_panics() {
        let mut bad_base64 = sample("apigw-v2-base64.json");
        bad_base64["body"] = json!("%%% not base64 %%%");
        let mut host = sample("apigw-v2.json");
        host["headers"]["host"] = json!("a b");
        let mut port = sample("apigw-v2.json");
        port["rawPath"] = json!(":99999");
        let mut long = sample("apigw-rest-v1.json");
        long["path"] = json!(format!("/{}", "a".repeat(70_000)));
        for v in [bad_base64, host, port, long] {
            match event_from_str(&v.to_string()) {
                Err(e @ EventFileError::Unconvertible(_)) => {
                    let text = e.to_string();
                    assert!(!text.contains('\n') && text.len() < 400, "{text}");
                }
                other => panic!("expected Unconvertible, got {other:?}"),
            }
        }
        assert!(matches!(
            event_from_str("{\"hello\": 1}"),
            Err(EventFileError::NotAnEvent(_))
        ));
        assert!(matches!(
            event_from_str("not json"),
            Err(EventFileError::NotJson(_))
        ));
    }
}
