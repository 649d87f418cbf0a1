//! `moe2seg invoke EVENT_FILE`: runs the real handler in-process on an API Gateway (REST v1,
//! HTTP v2) or Function URL event, the files `cargo lambda invoke --data-file` and
//! `sam local invoke -e` take, and renders the HTTP answer as
//! `{"statusCode", "headers", "body"}`.

use base64::Engine;
use lambda_http::{Body, Context, Request, RequestExt, Response};
use serde_json::{Value, json};

/// Why an event file cannot be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum EventFileError {
    #[error("the event is not JSON: {0}")]
    NotJson(String),
    #[error("the event's body is marked isBase64Encoded but is not valid base64")]
    BadBase64,
    #[error("not an API Gateway or Function URL event: {0}")]
    NotHttpEvent(String),
}

/// Parses an event JSON into a request, without the panic `lambda_http` has on bad base64.
pub fn request_from_event(text: &str) -> Result<Request, EventFileError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| EventFileError::NotJson(e.to_string()))?;
    if v.get("isBase64Encoded").and_then(Value::as_bool) == Some(true)
        && let Some(body) = v.get("body").and_then(Value::as_str)
        && base64::engine::general_purpose::STANDARD
            .decode(body)
            .is_err()
    {
        return Err(EventFileError::BadBase64);
    }
    // lambda_http 1.3 also panics (unwrap/expect) while building the URI from a host, path,
    // query or scheme that is not a valid URI (found by tests/props.rs and the fuzzer):
    // contain that too, so a bad event file is an error, not a crash.
    match std::panic::catch_unwind(|| lambda_http::request::from_str(text)) {
        Ok(parsed) => parsed.map_err(|e| EventFileError::NotHttpEvent(e.to_string())),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            Err(EventFileError::NotHttpEvent(format!(
                "cannot build an HTTP request from it (invalid host, path, query or scheme): {why}"
            )))
        }
    }
}

/// Attaches a Lambda context whose deadline is `budget_ms` from now.
pub fn with_deadline(req: Request, budget_ms: u64) -> Request {
    let mut ctx = Context::default();
    ctx.request_id = "local-invoke".into();
    ctx.deadline = crate::time::now_millis().max(0) as u64 + budget_ms;
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
