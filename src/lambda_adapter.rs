//! The Lambda's event adapter. The function receives two kinds of event ([`Incoming`]):
//!
//! - API Gateway / Function URL events (the webhook): what `lambda_http::run` does (event →
//!   [`Request`] carrying the Lambda context; [`Response`] → the response shape of the
//!   event's origin), except that an event `lambda_http` cannot convert is answered
//!   `400 {"error": "invalid_request_event", "message"}` instead of failing the invocation;
//! - SQS events from the parked queue (redelivery): handed to the redelivery handler, whose
//!   partial batch response is the answer.
//!
//! `lambda_http` 1.3 panics (`unwrap`/`expect`) while converting an event whose body is marked
//! `isBase64Encoded` but is not valid base64, or whose host, path, query or scheme do not make a
//! valid URI. [`to_request`] decodes the base64 body itself and contains the URI panics; it is
//! the one event → request conversion, shared by the Lambda ([`HttpAdapter`], [`run`]) and
//! `moe2seg invoke` ([`crate::invoke`]).

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context as TaskContext, Poll};

use base64::Engine;
use lambda_http::http::{StatusCode, header};
use lambda_http::request::LambdaRequest;
use lambda_http::{
    Adapter, Body, Context, Error, IntoResponse, LambdaEvent, Request, RequestExt, Response,
    Service, TransformResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::redeliver::{BatchResponse, SqsEvent};

/// What the function is invoked with: a webhook request, or parked events to redeliver.
#[derive(Debug)]
pub enum Incoming {
    Http(Box<LambdaRequest>),
    Sqs(SqsEvent),
}

impl Incoming {
    /// Recognises the event by its shape: `{"Records": [{"eventSource": "aws:sqs", …}]}` is
    /// an SQS event; anything else must be an API Gateway / Function URL event.
    pub fn from_value(v: Value) -> Result<Incoming, serde_json::Error> {
        let sqs = v
            .get("Records")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .and_then(|r| r.get("eventSource"))
            .and_then(Value::as_str)
            == Some("aws:sqs");
        if sqs {
            serde_json::from_value(v).map(Incoming::Sqs)
        } else {
            serde_json::from_value(v).map(|r| Incoming::Http(Box::new(r)))
        }
    }
}

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Incoming::from_value(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Why an event cannot become a request. The text is short and stable, and never echoes the
/// event: it is the `message` of the 400 answer.
#[derive(Debug, thiserror::Error)]
pub enum InvalidEvent {
    #[error("the event's body is marked isBase64Encoded but is not valid base64")]
    BadBase64,
    /// `detail` is lambda_http's panic message (e.g. a `url::ParseError` name), for the log.
    #[error("the event's host, path, query or scheme do not make a valid URI")]
    BadUri { detail: String },
}

impl InvalidEvent {
    /// The `error` code of the 400 answer.
    pub const CODE: &'static str = "invalid_request_event";

    /// What the log line adds to the message (never the input itself).
    pub fn detail(&self) -> Option<&str> {
        match self {
            InvalidEvent::BadBase64 => None,
            InvalidEvent::BadUri { detail } => Some(detail),
        }
    }
}

/// Converts an event as `lambda_http` does, without its panics: the base64 body is decoded
/// here (once), and a panic while building the URI is caught and returned as
/// [`InvalidEvent::BadUri`] (without the default panic message on stderr).
pub fn to_request(mut event: LambdaRequest) -> Result<Request, InvalidEvent> {
    let base64_body = match &mut event {
        LambdaRequest::ApiGatewayV1(e) => take_base64_body(&mut e.is_base64_encoded, &mut e.body),
        LambdaRequest::ApiGatewayV2(e) => take_base64_body(&mut e.is_base64_encoded, &mut e.body),
        // Shapes this build does not enable: lambda_http decodes them (a panic is caught).
        _ => None,
    };
    let decoded = match base64_body {
        Some(text) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| InvalidEvent::BadBase64)?,
        ),
        None => None,
    };
    let mut req = convert_quietly(event)?;
    if let Some(bytes) = decoded {
        // What lambda_http's `Body::from_maybe_encoded(true, …)` gives.
        *req.body_mut() = Body::from(bytes);
    }
    Ok(req)
}

/// Takes a base64 body out of the event (leaving it without a body, marked plain), so that
/// lambda_http has nothing to decode.
fn take_base64_body(is_base64: &mut bool, body: &mut Option<String>) -> Option<String> {
    if !*is_base64 {
        return None;
    }
    *is_base64 = false;
    Some(body.take().unwrap_or_default())
}

thread_local! {
    /// Set while this thread runs lambda_http's conversion: its panics are reported by
    /// [`to_request`], so the panic hook stays quiet about them.
    static CONVERTING: Cell<bool> = const { Cell::new(false) };
}

/// `Request::from(event)` with its panics caught.
fn convert_quietly(event: LambdaRequest) -> Result<Request, InvalidEvent> {
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
    let converted = panic::catch_unwind(AssertUnwindSafe(|| Request::from(event)));
    CONVERTING.with(|c| c.set(false));
    converted.map_err(|payload| {
        let detail = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        InvalidEvent::BadUri {
            detail: crate::excerpt::excerpt(detail, 200),
        }
    })
}

/// The 400 answer for an event that cannot become a request.
pub fn invalid_event_response(e: &InvalidEvent) -> Response<Body> {
    let body = json!({"error": InvalidEvent::CODE, "message": e.to_string()});
    let mut resp = Response::new(Body::Text(body.to_string()));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// What `lambda_http::run` wraps a handler in, with [`to_request`] as the conversion: a
/// `Service<LambdaEvent<LambdaRequest>>` for `lambda_runtime::run`. Valid events reach the
/// handler with the Lambda context attached; invalid ones are answered 400, logged once at
/// warn, and never reach it. Either answer takes the response shape of the event's origin
/// (lambda_http's own `TransformResponse` does that part).
pub struct HttpAdapter<'a, S> {
    handler: S,
    _future: PhantomData<&'a ()>,
}

impl<S> HttpAdapter<'_, S> {
    pub fn new(handler: S) -> Self {
        HttpAdapter {
            handler,
            _future: PhantomData,
        }
    }
}

impl<'a, S, R, E> Service<LambdaEvent<LambdaRequest>> for HttpAdapter<'a, S>
where
    S: Service<Request, Response = R, Error = E>,
    S::Future: Send + 'a,
    R: IntoResponse,
{
    /// lambda_http's `LambdaResponse` (not nameable outside it; `Adapter` produces the same).
    type Response = <Adapter<'a, R, S> as Service<LambdaEvent<LambdaRequest>>>::Response;
    type Error = E;
    type Future = TransformResponse<'a, R, E>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), E>> {
        self.handler.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<LambdaRequest>) -> Self::Future {
        let LambdaEvent { payload, context } = event;
        let origin = payload.request_origin();
        match to_request(payload) {
            Ok(mut req) => {
                // As lambda_http does: the X-Ray trace id as a header.
                if let Some(id) = context.xray_trace_id.as_deref()
                    && let Ok(value) = header::HeaderValue::from_str(id)
                {
                    req.headers_mut().insert("x-amzn-trace-id", value);
                }
                TransformResponse::Request(
                    origin,
                    Box::pin(self.handler.call(req.with_lambda_context(context))),
                )
            }
            Err(e) => {
                // The runtime's span carries the request id.
                tracing::warn!(
                    error = %e,
                    detail = e.detail(),
                    "invalid request event; answered 400"
                );
                let resp = invalid_event_response(&e);
                TransformResponse::Response(origin, Box::pin(std::future::ready(resp)))
            }
        }
    }
}

/// The function's answer: the HTTP response in its origin's shape, or the partial batch
/// response of an SQS event.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Reply<H> {
    Http(H),
    Sqs(BatchResponse),
}

/// The HTTP answer type of [`HttpAdapter`] (lambda_http's `LambdaResponse`).
type HttpReply<'a, H, R> = <Adapter<'a, R, H> as Service<LambdaEvent<LambdaRequest>>>::Response;

/// Routes each [`Incoming`] event: HTTP events through [`HttpAdapter`] to `http`, SQS events
/// to `sqs` (the redelivery handler, given the Lambda context).
pub struct Dispatch<'a, H, Q> {
    http: HttpAdapter<'a, H>,
    sqs: Q,
}

impl<'a, H, Q> Dispatch<'a, H, Q> {
    pub fn new(http: H, sqs: Q) -> Self {
        Dispatch {
            http: HttpAdapter::new(http),
            sqs,
        }
    }
}

impl<'a, H, R, E, Q, QF> Service<LambdaEvent<Incoming>> for Dispatch<'a, H, Q>
where
    H: Service<Request, Response = R, Error = E>,
    H::Future: Send + 'a,
    R: IntoResponse + 'a,
    E: 'a,
    Q: FnMut(SqsEvent, Context) -> QF,
    QF: Future<Output = BatchResponse> + Send + 'a,
{
    type Response = Reply<HttpReply<'a, H, R>>;
    type Error = E;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, E>> + Send + 'a>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), E>> {
        self.http.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<Incoming>) -> Self::Future {
        let LambdaEvent { payload, context } = event;
        match payload {
            Incoming::Http(req) => {
                let answer = self.http.call(LambdaEvent::new(*req, context));
                Box::pin(async move { answer.await.map(Reply::Http) })
            }
            Incoming::Sqs(records) => {
                let answer = (self.sqs)(records, context);
                Box::pin(async move { Ok(Reply::Sqs(answer.await)) })
            }
        }
    }
}

/// Runs the function (in place of `lambda_http::run`): HTTP events go to `http`, SQS events
/// to `sqs`.
pub async fn run<H, R, E, Q, QF>(http: H, sqs: Q) -> Result<(), Error>
where
    H: Service<Request, Response = R, Error = E>,
    H::Future: Send,
    R: IntoResponse,
    E: std::fmt::Debug + Into<lambda_http::lambda_runtime::Diagnostic>,
    Q: FnMut(SqsEvent, Context) -> QF,
    QF: Future<Output = BatchResponse> + Send,
{
    lambda_http::lambda_runtime::run(Dispatch::new(http, sqs)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::{Context, service_fn};
    use serde_json::Value;
    use std::convert::Infallible;

    fn sample(file: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("events")
            .join(file);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn lambda_request(v: &Value) -> LambdaRequest {
        serde_json::from_value(v.clone()).unwrap()
    }

    /// Runs the adapter on `event` with a handler that echoes what it got; returns the
    /// serialized Lambda response and whether the handler ran.
    async fn answer(event: &Value) -> (Value, bool) {
        let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = called.clone();
        let mut adapter = HttpAdapter::new(service_fn(move |req: Request| {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            async move {
                let body = json!({
                    "request_id": req.lambda_context_ref().map(|c| c.request_id.clone()),
                    "trace": req.headers().get("x-amzn-trace-id").map(|v| v.to_str().unwrap_or("")),
                    "uri": req.uri().to_string(),
                    "body": String::from_utf8_lossy(req.body()),
                });
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Body::Text(body.to_string()))
                        .unwrap(),
                )
            }
        }));
        let mut context = Context::default();
        context.request_id = "req-42".into();
        context.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793".into());
        let resp = adapter
            .call(LambdaEvent::new(lambda_request(event), context))
            .await
            .unwrap();
        (
            serde_json::to_value(&resp).unwrap(),
            called.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    fn body_of(resp: &Value) -> Value {
        serde_json::from_str(resp["body"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn base64_bodies_decode_as_lambda_http_does() {
        for file in ["apigw-v2-base64.json", "apigw-v2-gzip.json"] {
            let v = sample(file);
            let ours = to_request(lambda_request(&v)).unwrap();
            let theirs = lambda_http::request::from_str(&v.to_string()).unwrap();
            assert_eq!(ours.body(), theirs.body(), "{file}");
            assert!(matches!(ours.body(), Body::Binary(_)), "{file}");
            assert_eq!(ours.uri(), theirs.uri());
            assert_eq!(ours.headers(), theirs.headers());
            assert_eq!(ours.method(), theirs.method());
        }
        let mut empty = sample("apigw-v2-base64.json");
        empty["body"] = json!("");
        let req = to_request(lambda_request(&empty)).unwrap();
        assert_eq!(req.body(), &Body::Binary(Vec::new()));
    }

    #[test]
    fn plain_bodies_are_untouched() {
        for file in [
            "apigw-v2.json",
            "apigw-rest-v1.json",
            "function-url.json",
            "get-method.json",
        ] {
            let v = sample(file);
            let ours = to_request(lambda_request(&v)).unwrap();
            let theirs = lambda_http::request::from_str(&v.to_string()).unwrap();
            assert_eq!(ours.body(), theirs.body(), "{file}");
            assert_eq!(ours.uri(), theirs.uri(), "{file}");
        }
    }

    #[test]
    fn invalid_base64_is_an_error() {
        for file in ["apigw-v2-base64.json", "apigw-rest-v1.json"] {
            let mut v = sample(file);
            v["isBase64Encoded"] = json!(true);
            v["body"] = json!("%%% not base64 %%%");
            assert!(matches!(
                to_request(lambda_request(&v)),
                Err(InvalidEvent::BadBase64)
            ));
        }
    }

    #[test]
    fn uri_panics_are_errors() {
        let mut host = sample("apigw-v2.json");
        host["headers"]["host"] = json!("a b");
        let mut port = sample("apigw-v2.json");
        port["rawPath"] = json!(":99999");
        let mut scheme = sample("apigw-v2.json");
        scheme["headers"]["x-forwarded-proto"] = json!("1");
        let mut query = sample("apigw-v2.json");
        query["rawQueryString"] = json!("a b");
        let mut long = sample("apigw-rest-v1.json");
        long["path"] = json!(format!("/{}", "a".repeat(70_000)));
        for v in [host, port, scheme, query, long] {
            match to_request(lambda_request(&v)) {
                Err(InvalidEvent::BadUri { detail }) => assert!(!detail.is_empty()),
                other => panic!("expected BadUri, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn valid_events_reach_the_handler_with_the_lambda_context() {
        let (resp, called) = answer(&sample("apigw-v2-base64.json")).await;
        assert!(called);
        assert_eq!(resp["statusCode"], 200);
        let body = body_of(&resp);
        assert_eq!(body["request_id"], "req-42");
        assert_eq!(body["trace"], "Root=1-5759e988-bd862e3fe1be46a994272793");
        assert!(body["body"].as_str().unwrap().starts_with('{'));
        // HTTP API (v2) shape: `cookies`, headers in `headers`.
        assert!(resp.get("cookies").is_some(), "{resp}");
        assert_eq!(resp["headers"]["content-type"], "application/json");
    }

    #[tokio::test]
    async fn invalid_events_answer_400_in_the_origins_shape() {
        let mut v2 = sample("apigw-v2-base64.json");
        v2["body"] = json!("%%% not base64 %%%");
        let mut v1 = sample("apigw-rest-v1.json");
        v1["headers"]["Host"] = json!("a b");
        v1["multiValueHeaders"]["Host"] = json!(["a b"]);
        for (event, v1_shape) in [(v2, false), (v1, true)] {
            let (resp, called) = answer(&event).await;
            assert!(!called, "the handler must not run");
            assert_eq!(resp["statusCode"], 400, "{resp}");
            let body = body_of(&resp);
            assert_eq!(body["error"], "invalid_request_event");
            let message = body["message"].as_str().unwrap();
            assert!(
                !message.contains("%%%") && !message.contains("a b"),
                "{message}"
            );
            // HTTP API (v2) answers carry `cookies`; REST (v1) answers put every header in
            // `multiValueHeaders`.
            assert_eq!(resp.get("cookies").is_none(), v1_shape, "{resp}");
            let content_type = if v1_shape {
                &resp["multiValueHeaders"]["content-type"][0]
            } else {
                &resp["headers"]["content-type"]
            };
            assert_eq!(content_type, "application/json", "{resp}");
        }
    }
}
