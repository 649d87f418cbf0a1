//! The HTTP face: one MoEngage Streams request in, one answer out.
//!
//! | answer | when |
//! |---|---|
//! | 200 + summary | every deliverable event is in Segment, in the parked queue (redelivered automatically) or in the refused queue |
//! | 400 | the body is not a Streams request (or not valid gzip) |
//! | 401 | missing or wrong credentials (nothing forwarded) |
//! | 405 | not POST |
//! | 413 | body (or its gzip expansion) over the limit, too many events, or mapped too large |
//! | 415 | a `Content-Encoding` other than gzip/identity |
//! | 500 | the secret is invalid, or its mapping options are and no good ones were read before (fail closed, nothing forwarded) |
//! | 502 | without queues: Segment permanently refused a batch (4xx other than 401/403) |
//! | 503 | the secret is unreadable; parking failed; or, without queues, Segment still failed at the deadline |
//!
//! MoEngage re-sends the whole batch after any non-2xx; `messageId`s are deterministic, so
//! events Segment already took are deduplicated there.
//!
//! Every answer is bounded (at most [`MAX_LISTED_REJECTIONS`] rejections are listed, with
//! `rejected_count`), and every 5xx body is a stable code with a fixed message: details
//! (secret ARNs, SDK errors, Segment's answers) go to the logs only. A request without any
//! credential is answered 401 before the secret is even read.
//!
//! A request whose path ends with `/oauth/token` goes to the OAuth token route instead
//! ([`crate::webhook::oauth`]).

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::http::{HeaderMap, Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use crate::decode::{self, DecodeError};
use crate::delivery::forward::{Access, Fate, Forwarded, Forwarder, Plan, Provenance};
use crate::delivery::segment::ChunkOutcome;
use crate::mapping::options::MappingOptions;
use crate::mapping::time;
use crate::mapping::{self as map, MapError, MapOutput, Rejected};
use crate::settings::config::{DEFAULT_REDELIVERY_MAX_AGE_HOURS, Settings};
use crate::settings::secret::{SecretSource, SettingsError};
use crate::telemetry::metrics::{InvocationMetrics, MetricsSink};
use crate::webhook::auth;
use crate::webhook::oauth;

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

/// Rejections an answer lists (the rest are counted in `rejected_count`).
pub const MAX_LISTED_REJECTIONS: usize = 100;
/// Rejections logged one line each (the rest are counted in the summary line).
pub const MAX_LOGGED_REJECTIONS: usize = 10;
/// A header value or error as an answer or log line may echo it.
fn excerpt(s: &str) -> String {
    crate::excerpt::excerpt(s, 40)
}

/// The JSON answer: an error code and message, a summary of the request, or both.
#[derive(Debug, Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(flatten)]
    summary: Option<Summary<'a>>,
}

impl Answer<'_> {
    fn error(e: &HttpError) -> Answer<'static> {
        Answer {
            error: Some(e.code()),
            message: Some(e.public_message()),
            summary: None,
        }
    }

    fn to_json(&self) -> String {
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

impl From<SettingsError> for HttpError {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::Unavailable(m) => HttpError::SettingsUnavailable(m),
            SettingsError::Invalid(c) => HttpError::Misconfigured(c.to_string()),
        }
    }
}

/// The function's handler, shared by every invocation of a Lambda environment: webhook
/// requests ([`Handler::handle`]) and, for SQS events from the parked queue, redelivery
/// ([`Handler::redeliver`](crate::delivery::redeliver)). Both forward through the same [`Forwarder`].
pub struct Handler<S> {
    pub forwarder: Forwarder<S>,
    pub max_body_bytes: usize,
    /// Time kept back from the Lambda deadline to answer.
    pub deadline_margin: Duration,
    /// The time budget when there is no Lambda context (local runs).
    pub default_budget: Duration,
    pub metrics: MetricsSink,
    /// How long a parked event is redelivered before it is set aside.
    pub redelivery_max_age: Duration,
    /// The mapping options of a dry run without settings (`MAPPING_OPTIONS`).
    pub open_mapping: Arc<MappingOptions>,
}

/// What happened, for the log line and metrics.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub moe_request_id: Option<String>,
    pub received: usize,
    pub forwarded: usize,
    pub rejected: usize,
    pub undelivered: usize,
    pub retries: u32,
    pub segment_latency: Duration,
    pub requests: u32,
    pub parked: usize,
    pub refused: usize,
    pub duplicate_uuids: usize,
    pub filtered: usize,
    pub identifies: usize,
    pub identifies_skipped: usize,
    /// The secret's latest mapping options are invalid.
    pub options_invalid: bool,
}

impl Tally {
    /// Adds what a forwarding step did.
    pub fn add(&mut self, f: &Forwarded) {
        self.forwarded += f.count(Fate::Delivered);
        self.parked += f.count(Fate::Parked);
        self.refused += f.count(Fate::SetAside);
        self.undelivered += f.count(Fate::Stays);
        self.retries += f.report.retries;
        self.segment_latency += f.report.latency;
        self.requests += f.report.requests();
    }

    pub fn metrics(&self) -> InvocationMetrics {
        InvocationMetrics {
            received: self.received as u64,
            forwarded: self.forwarded as u64,
            rejected: self.rejected as u64,
            retried: u64::from(self.retries),
            parked: self.parked as u64,
            refused: self.refused as u64,
            redelivered: 0,
            filtered: self.filtered as u64,
            identifies: self.identifies as u64,
            options_invalid: u64::from(self.options_invalid),
            segment_latency_ms: self.segment_latency.as_millis() as u64,
        }
    }
}

impl<S: SecretSource> Handler<S> {
    pub fn new(forwarder: Forwarder<S>, max_body_bytes: usize) -> Self {
        Handler {
            forwarder,
            max_body_bytes,
            deadline_margin: Duration::from_millis(1500),
            default_budget: Duration::from_secs(25),
            metrics: MetricsSink::Off,
            redelivery_max_age: Duration::from_secs(DEFAULT_REDELIVERY_MAX_AGE_HOURS * 3600),
            open_mapping: MappingOptions::none(),
        }
    }

    /// When this invocation must have answered by: the Lambda deadline (epoch ms) less the
    /// margin. A deadline that is not a plausible future epoch (in the past, or more than 15
    /// minutes away: `cargo lambda watch` sends `600000`, a duration) falls back to the
    /// default budget.
    pub fn deadline(&self, lambda_deadline_ms: Option<u64>) -> Instant {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let budget = lambda_deadline_ms
            .and_then(|d| plausible_budget(d, now_ms))
            .unwrap_or(self.default_budget);
        Instant::now() + budget.saturating_sub(self.deadline_margin)
    }

    /// Handles one request. Never fails: every outcome is an HTTP answer.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let deadline = self.deadline(req.lambda_context_ref().map(|c| c.deadline));
        if oauth::is_token_path(req.uri().path()) {
            return oauth::serve(&self.forwarder, &req, deadline).await;
        }
        let mut tally = Tally::default();
        let (status, body, error) = match self.process(&req, deadline, &mut tally).await {
            Ok((status, answer)) => (status, answer, None),
            Err(e) => (e.status(), Answer::error(&e).to_json(), Some(e)),
        };
        let level_error = status.is_server_error();
        macro_rules! summary {
            ($lvl:ident) => {
                tracing::$lvl!(
                    status = status.as_u16(),
                    moe_request_id = tally.moe_request_id.as_deref().unwrap_or(""),
                    received = tally.received,
                    forwarded = tally.forwarded,
                    rejected = tally.rejected,
                    filtered = tally.filtered,
                    identifies = tally.identifies,
                    identifies_skipped = tally.identifies_skipped,
                    undelivered = tally.undelivered,
                    retries = tally.retries,
                    segment_requests = tally.requests,
                    parked = tally.parked,
                    refused = tally.refused,
                    duplicate_uuids = tally.duplicate_uuids,
                    options_invalid = tally.options_invalid,
                    segment_latency_ms = tally.segment_latency.as_millis() as u64,
                    duration_ms = started.elapsed().as_millis() as u64,
                    error = error.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                    "invocation summary"
                )
            };
        }
        if level_error {
            summary!(error);
        } else {
            summary!(info);
        }
        self.metrics.emit(
            &tally.metrics(),
            tally.moe_request_id.as_deref(),
            time::now_millis(),
        );
        let mut resp = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            resp = resp.header(header::ALLOW, "POST");
        }
        if status == StatusCode::UNAUTHORIZED {
            resp = resp.header(header::WWW_AUTHENTICATE, "Basic realm=\"moengage-segment\"");
        }
        resp.body(Body::Text(body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }

    /// The pipeline: authorize → decode → map → forward → answer.
    async fn process(
        &self,
        req: &Request,
        deadline: Instant,
        tally: &mut Tally,
    ) -> Result<(StatusCode, String), HttpError> {
        if req.method() != Method::POST {
            return Err(HttpError::MethodNotAllowed(excerpt(req.method().as_str())));
        }
        let settings = self.authorize(req.headers(), deadline).await?;
        let options = self.mapping_options(settings.as_deref(), tally)?;
        let body = self.body_bytes(req.headers(), req.body().as_ref())?;
        let text = decode::lossy_utf8(&body);
        let out = map::map_body_with(&text, time::now_millis(), map::Limits::REQUEST, &options)?;
        drop(text);
        drop(body);
        tally.moe_request_id = out.moe_request_id.clone();
        tally.received = out.received;
        tally.rejected = out.rejected.len();
        tally.duplicate_uuids = out.duplicate_uuids;
        tally.filtered = out.filtered;
        tally.identifies = out.identifies;
        tally.identifies_skipped = out.identifies_skipped;
        if out.identifies_skipped > 0 {
            tracing::warn!(
                identifies_skipped = out.identifies_skipped,
                "identify calls left out: the request's messages reached the size limit (the tracks carry the same traits)"
            );
        }
        if out.duplicate_uuids > 0 {
            tracing::warn!(
                duplicate_uuids = out.duplicate_uuids,
                "events share an event_uuid with a different event; they get content-derived messageIds"
            );
        }
        log_rejections(&out.rejected);
        let forwarded = self
            .forwarder
            .forward(
                &out.messages,
                Provenance::Request(out.moe_request_id.as_deref()),
                Plan::Webhook,
                deadline,
            )
            .await;
        tally.add(&forwarded);
        log_failures(&forwarded);
        let (status, answer) = respond(&out, &forwarded);
        Ok((status, answer.to_json()))
    }

    /// Checks the caller's credentials; the settings they were checked against (`None`: a
    /// dry run without settings). A caller without any credential learns nothing, not even
    /// whether the secret can be read or the function is configured at all.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        deadline: Instant,
    ) -> Result<Option<Arc<Settings>>, HttpError> {
        let dry_run_without_settings = matches!(
            self.forwarder.mode,
            crate::delivery::forward::Mode::DryRun { settings: None, .. }
        );
        if dry_run_without_settings {
            tracing::warn!(
                "DRY RUN: no SECRET_ID or SEGMENT_WRITE_KEY; inbound auth skipped, nothing is sent to Segment"
            );
            return Ok(None);
        }
        if !auth::presents_credentials(headers) {
            return Err(HttpError::Unauthorized);
        }
        match self.forwarder.access(deadline).await {
            Ok(Access::Check(s)) if auth::authorized(headers, &s.webhook, oauth::now_secs()) => {
                Ok(Some(s))
            }
            Ok(Access::Check(_)) => Err(HttpError::Unauthorized),
            Ok(Access::Open) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "cannot use the configured secret");
                Err(e.into())
            }
        }
    }

    /// The mapping options in force: the settings' (the last good ones when the latest are
    /// invalid: counted), or, without settings, [`Handler::open_mapping`]. With no good
    /// options at all the function is misconfigured.
    fn mapping_options(
        &self,
        settings: Option<&Settings>,
        tally: &mut Tally,
    ) -> Result<Arc<MappingOptions>, HttpError> {
        let Some(settings) = settings else {
            return Ok(self.open_mapping.clone());
        };
        let mapping = &settings.mapping;
        tally.options_invalid = mapping.error.is_some();
        match (&mapping.options, &mapping.error) {
            (Some(options), _) => Ok(options.clone()),
            (None, Some(e)) => Err(HttpError::Misconfigured(e.to_string())),
            (None, None) => Ok(MappingOptions::none()),
        }
    }

    /// The request body, gunzipped when needed, within the size limit.
    fn body_bytes<'b>(
        &self,
        headers: &HeaderMap,
        raw: &'b [u8],
    ) -> Result<Cow<'b, [u8]>, HttpError> {
        if raw.len() > self.max_body_bytes {
            return Err(HttpError::TooLarge(self.max_body_bytes));
        }
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let gzip_magic = raw.starts_with(&[0x1f, 0x8b]);
        match encoding.as_str() {
            "gzip" | "x-gzip" => {}
            "" | "identity" if gzip_magic => {}
            "" | "identity" => return Ok(Cow::Borrowed(raw)),
            other => return Err(HttpError::UnsupportedEncoding(excerpt(other))),
        }
        // The expansion is held to the same limit as the body: a 2 KB gzip bomb must not
        // become gigabytes.
        let limit = self.max_body_bytes;
        let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
        flate2::read::MultiGzDecoder::new(raw)
            .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| HttpError::BadGzip(excerpt(&e.to_string())))?;
        if out.len() > limit {
            return Err(HttpError::TooLarge(limit));
        }
        Ok(Cow::Owned(out))
    }
}

/// Lambda's longest timeout: a deadline further away than this is not a deadline.
const MAX_LAMBDA_BUDGET: Duration = Duration::from_secs(15 * 60);

/// The time left before `deadline_ms` (epoch ms), when that is a plausible Lambda deadline.
fn plausible_budget(deadline_ms: u64, now_ms: u64) -> Option<Duration> {
    let left = Duration::from_millis(deadline_ms.checked_sub(now_ms)?);
    (!left.is_zero() && left <= MAX_LAMBDA_BUDGET).then_some(left)
}

/// Logs the first [`MAX_LOGGED_REJECTIONS`] rejected events one line each (the summary line
/// counts them all).
fn log_rejections(rejected: &[Rejected]) {
    for r in rejected.iter().take(MAX_LOGGED_REJECTIONS) {
        tracing::warn!(
            event_uuid = r.event_uuid.as_deref().unwrap_or(""),
            index = r.index,
            reason = r.reason.as_str(),
            detail = r.detail.as_deref().map(excerpt).unwrap_or_default(),
            "event rejected"
        );
    }
    if rejected.len() > MAX_LOGGED_REJECTIONS {
        tracing::warn!(
            not_logged = rejected.len() - MAX_LOGGED_REJECTIONS,
            "more events rejected; only the first {MAX_LOGGED_REJECTIONS} are logged one by one"
        );
    }
}

/// Logs what kept batches out of Segment (the answer only carries a stable code).
pub(crate) fn log_failures(forwarded: &Forwarded) {
    let report = &forwarded.report;
    let mut failures = report.chunks.iter().filter_map(|c| c.outcome.failure());
    let Some((reason, detail)) = failures.next() else {
        return;
    };
    tracing::error!(
        failed_batches = 1 + failures.count(),
        undelivered = report.undelivered(),
        parked = forwarded.count(Fate::Parked),
        refused = forwarded.count(Fate::SetAside),
        reason,
        detail,
        "events not delivered to Segment"
    );
}

/// The answer for a request whose body was mapped: 200 when every deliverable event is in
/// Segment or in a queue, else the failure that kept events out.
fn respond<'a>(out: &'a MapOutput, forwarded: &Forwarded) -> (StatusCode, Answer<'a>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_deadlines_are_trusted() {
        let now = 1_764_331_200_000;
        assert_eq!(
            plausible_budget(now + 3_000, now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            plausible_budget(now + 900_000, now),
            Some(Duration::from_secs(900))
        );
        // cargo lambda's emulator sends a duration, not an epoch.
        assert_eq!(plausible_budget(600_000, now), None);
        assert_eq!(plausible_budget(now, now), None);
        assert_eq!(plausible_budget(now - 1, now), None);
        assert_eq!(plausible_budget(now + 900_001, now), None);
        assert_eq!(plausible_budget(u64::MAX, now), None);
    }
}
