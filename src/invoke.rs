//! `moe2seg invoke EVENT_FILE`: runs the real handler in-process on the event files
//! `cargo lambda invoke --data-file` and `sam local invoke -e` take: an API Gateway (REST v1,
//! HTTP v2) or Function URL event, rendering the HTTP answer as
//! `{"statusCode", "headers", "body"}`; or an SQS event from the parked queue, rendering the
//! redelivery's partial batch response `{"batchItemFailures": [...]}`.

use lambda_http::{Body, Context, Request, RequestExt, Response};
use serde_json::{Value, json};

use crate::lambda_adapter::{self, Incoming, InvalidEvent};
use crate::redeliver::SqsEvent;

/// Why an event file cannot be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum EventFileError {
    #[error("the event is not JSON: {0}")]
    NotJson(String),
    #[error("not an API Gateway, Function URL or SQS event: {0}")]
    NotHttpEvent(String),
    /// The event has the right shape but lambda_http cannot convert it (the Lambda answers
    /// such an event with 400 `invalid_request_event`).
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
}

/// An event file's invocation.
#[derive(Debug)]
pub enum Invocation {
    Http(Box<Request>),
    Sqs(SqsEvent),
}

/// Parses an event JSON as the Lambda does ([`Incoming`]): an SQS event, or an HTTP event
/// converted by [`request_from_event`]'s rules.
pub fn event_from_str(text: &str) -> Result<Invocation, EventFileError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| EventFileError::NotJson(e.to_string()))?;
    match Incoming::from_value(value).map_err(|e| EventFileError::NotHttpEvent(e.to_string()))? {
        Incoming::Sqs(event) => Ok(Invocation::Sqs(event)),
        Incoming::Http(event) => Ok(Invocation::Http(Box::new(lambda_adapter::to_request(
            *event,
        )?))),
    }
}

/// Parses an HTTP event JSON into a request, as [`event_from_str`] does (the Lambda's own
/// recognition and conversion, [`lambda_adapter::to_request`]): an invalid base64 body or a
/// host, path, query or scheme that is not a valid URI is an error, not a panic.
pub fn request_from_event(text: &str) -> Result<Request, EventFileError> {
    match event_from_str(text)? {
        Invocation::Http(req) => Ok(*req),
        Invocation::Sqs(_) => Err(EventFileError::NotHttpEvent(
            "an SQS event, not an HTTP request".into(),
        )),
    }
}

/// The Lambda deadline (epoch ms) of an invocation with `budget_ms` from now.
pub fn deadline_ms(budget_ms: u64) -> u64 {
    (crate::time::now_millis().max(0) as u64).saturating_add(budget_ms)
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
