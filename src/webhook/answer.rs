//! What the webhook answers: a typed error ([`HttpError`]: status, stable code, a message that
//! tells a stranger nothing), or the summary of a forwarded request ([`respond`]), as JSON.

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::decode::DecodeError;
use crate::delivery::outcome::{Fate, Forwarded};
use crate::delivery::segment::ChunkOutcome;
use crate::mapping::{MapError, MapOutput, Rejected};
use crate::settings::secret::SettingsError;

/// A header value or error as an answer or log line may echo it.
pub(crate) fn excerpt(s: &str) -> String {
    crate::excerpt::excerpt(s, 40)
}

/// Errors answered before anything is delivered.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("method {0} is not allowed: MoEngage Streams sends POST")]
    MethodNotAllowed(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// Too many events, or too many bytes of messages ([`MapError`] says which).
    #[error(transparent)]
    OverLimit(MapError),
    #[error("unsupported Content-Encoding {0:?} (gzip or none)")]
    UnsupportedEncoding(String),
    #[error("the body is not valid gzip: {0}")]
    BadGzip(String),
    #[error("not a MoEngage Streams request: {0}")]
    NotStreams(DecodeError),
    #[error("configuration error: {0}")]
    Misconfigured(String),
    #[error("settings unavailable: {0}")]
    SettingsUnavailable(String),
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            HttpError::TooLarge(_) | HttpError::OverLimit(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::BadGzip(_) | HttpError::NotStreams(_) => StatusCode::BAD_REQUEST,
            HttpError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::SettingsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            HttpError::MethodNotAllowed(_) => "method_not_allowed",
            HttpError::Unauthorized => "unauthorized",
            HttpError::TooLarge(_) => "payload_too_large",
            HttpError::OverLimit(MapError::MappedTooLarge { .. }) => "mapped_too_large",
            HttpError::OverLimit(MapError::Decode(_)) => "too_many_events",
            HttpError::UnsupportedEncoding(_) => "unsupported_encoding",
            HttpError::BadGzip(_) => "bad_gzip",
            HttpError::NotStreams(_) => "not_streams_request",
            HttpError::Misconfigured(_) => "misconfigured",
            HttpError::SettingsUnavailable(_) => "settings_unavailable",
        }
    }

    /// What the caller is told: the error for a 4xx (about their request, bounded), a fixed
    /// sentence for a 5xx (the details, which can name ARNs, accounts or secret fields, are
    /// logged only).
    pub fn public_message(&self) -> String {
        match self {
            HttpError::Misconfigured(_) => {
                "the function is misconfigured; its logs say why".to_owned()
            }
            HttpError::SettingsUnavailable(_) => {
                "the function's settings cannot be read right now; retry later".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl From<MapError> for HttpError {
    fn from(e: MapError) -> Self {
        match e {
            MapError::Decode(e @ DecodeError::TooManyEvents { .. }) => {
                HttpError::OverLimit(MapError::Decode(e))
            }
            MapError::Decode(e) => HttpError::NotStreams(e),
            e @ MapError::MappedTooLarge { .. } => HttpError::OverLimit(e),
        }
    }
}

impl From<SettingsError> for HttpError {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::Unavailable(m) => HttpError::SettingsUnavailable(m),
            SettingsError::Invalid(c) => HttpError::Misconfigured(c.to_string()),
        }
    }
}

/// Rejections an answer lists (the rest are counted in `rejected_count`).
pub const MAX_LISTED_REJECTIONS: usize = 100;
/// The JSON answer: an error code and message, a summary of the request, or both.
#[derive(Debug, Serialize)]
pub struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(flatten)]
    summary: Option<Summary<'a>>,
}

impl Answer<'_> {
    pub fn error(e: &HttpError) -> Answer<'static> {
        Answer {
            error: Some(e.code()),
            message: Some(e.public_message()),
            summary: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Plain strings and numbers: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// What became of a mapped request's events.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    received: usize,
    forwarded: usize,
    /// In the parked queue, redelivered automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    parked: Option<usize>,
    /// In the refused queue: Segment refused them for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<usize>,
    /// Neither delivered nor parked (the answer is non-2xx).
    #[serde(skip_serializing_if = "Option::is_none")]
    undelivered: Option<usize>,
    /// The first [`MAX_LISTED_REJECTIONS`].
    rejected: Vec<RejectedView<'a>>,
    rejected_count: usize,
    /// Events the mapping options skip (not sent, not rejected).
    filtered: usize,
    /// `identify` messages among the forwarded ones (`identify: per_user`).
    identifies: usize,
    /// `identify` messages left out: the request's messages reached the size limit.
    #[serde(skip_serializing_if = "is_zero")]
    identifies_skipped: usize,
    duplicate_uuids: usize,
    moe_request_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct RejectedView<'a> {
    event_uuid: Option<&'a str>,
    reason: &'static str,
    index: usize,
}

impl<'a> Summary<'a> {
    /// The summary of a forwarded request: counts of a 2xx answer, `undelivered` otherwise.
    fn of(out: &'a MapOutput, forwarded: &Forwarded) -> Self {
        let stays = forwarded.count(Fate::Stays);
        let (parked, refused, undelivered) = if stays == 0 {
            (
                Some(forwarded.count(Fate::Parked)),
                Some(forwarded.count(Fate::SetAside)),
                None,
            )
        } else {
            (None, None, Some(stays))
        };
        Summary {
            received: out.received,
            forwarded: forwarded.count(Fate::Delivered),
            parked,
            refused,
            undelivered,
            rejected: out
                .rejected
                .iter()
                .take(MAX_LISTED_REJECTIONS)
                .map(|r: &Rejected| RejectedView {
                    event_uuid: r.event_uuid.as_deref(),
                    reason: r.reason.as_str(),
                    index: r.index,
                })
                .collect(),
            rejected_count: out.rejected.len(),
            filtered: out.filtered,
            identifies: out.identifies,
            identifies_skipped: out.identifies_skipped,
            duplicate_uuids: out.duplicate_uuids,
            moe_request_id: out.moe_request_id.as_deref(),
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The answer for a request whose body was mapped: 200 when every deliverable event is in
/// Segment or in a queue, else the failure that kept events out.
pub fn respond<'a>(out: &'a MapOutput, forwarded: &Forwarded) -> (StatusCode, Answer<'a>) {
    let summary = Summary::of(out, forwarded);
    if forwarded.count(Fate::Stays) == 0 {
        let answer = Answer {
            error: None,
            message: None,
            summary: Some(summary),
        };
        return (StatusCode::OK, answer);
    }
    let failed: Vec<&ChunkOutcome> = forwarded.failed_outcomes().collect();
    let (status, code, message) = if forwarded.park_error.is_some() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "parking_failed",
            "events Segment did not take could not be parked either; MoEngage will re-send",
        )
    } else if failed
        .iter()
        .all(|o| matches!(o, ChunkOutcome::Refused { .. }))
    {
        (
            StatusCode::BAD_GATEWAY,
            "segment_refused",
            "Segment refused events for good; they were not delivered (the function's logs say why)",
        )
    } else if failed
        .iter()
        .any(|o| matches!(o, ChunkOutcome::Unauthorized(_)))
    {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "segment_unauthorized",
            "Segment refused the write key; update the secret",
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "segment_unavailable",
            "Segment did not take every event before the deadline; MoEngage will re-send",
        )
    };
    let answer = Answer {
        error: Some(code),
        message: Some(message.to_owned()),
        summary: Some(summary),
    };
    (status, answer)
}

/// The HTTP response: `status` and a JSON body (with `Allow` on a 405 and
/// `WWW-Authenticate` on a 401).
pub fn json_response(status: StatusCode, body: String) -> Response<Body> {
    json_response_with(status, body, &[])
}

/// As [`json_response`], with `extra` headers after `Content-Type` (the token route's
/// `Cache-Control` and `Pragma`).
pub fn json_response_with(
    status: StatusCode,
    body: String,
    extra: &[(header::HeaderName, &'static str)],
) -> Response<Body> {
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in extra {
        resp = resp.header(name, *value);
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp = resp.header(header::ALLOW, "POST");
    }
    if status == StatusCode::UNAUTHORIZED {
        resp = resp.header(header::WWW_AUTHENTICATE, "Basic realm=\"moengage-segment\"");
    }
    resp.body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}
