//! The HTTP face: one MoEngage Streams request in, one answer out.
//!
//! | answer | when |
//! |---|---|
//! | 200 + summary | every deliverable event was accepted by Segment |
//! | 400 | the body is not a Streams request (or not valid gzip) |
//! | 401 | missing or wrong credentials (nothing forwarded) |
//! | 405 | not POST |
//! | 413 | body (or its gzip expansion) over the limit, too many events, or mapped too large |
//! | 415 | a `Content-Encoding` other than gzip/identity |
//! | 500 | the secret is invalid (fail closed, nothing forwarded) |
//! | 502 | Segment permanently refused a batch (4xx other than 401/403) |
//! | 503 | the secret is unreadable, or Segment still failed at the deadline |
//!
//! MoEngage re-sends the whole batch after any non-2xx; `messageId`s are deterministic, so
//! events Segment already took are deduplicated there.
//!
//! Every answer is bounded (at most [`MAX_LISTED_REJECTIONS`] rejections are listed, with
//! `rejected_count`), and every 5xx body is a stable code with a fixed message: details
//! (secret ARNs, SDK errors, Segment's answers) go to the logs only. A request without any
//! credential is answered 401 before the secret is even read.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::http::{HeaderMap, Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use crate::auth;
use crate::config::{Endpoints, Region, Settings};
use crate::decode::{self, DecodeError};
use crate::deliver::{ChunkOutcome, Deliver, DeliveryReport, Target};
use crate::map::{self, MapError, MapOutput, Mapped, Rejected};
use crate::metrics::{InvocationMetrics, MetricsSink};
use crate::park::{NoPark, Parcel, Park, ParkError};
use crate::secrets::{SecretSource, SettingsCache, SettingsError};
use crate::time;

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
/// Time kept for parking, when a dead-letter queue is configured: this much, plus
/// [`PARK_RESERVE_PER_MESSAGE`] for each message (SQS takes 10 per call, 8 calls in flight),
/// and never more than a third of the time left.
pub const PARK_RESERVE_BASE: Duration = Duration::from_millis(500);
pub const PARK_RESERVE_PER_MESSAGE: Duration = Duration::from_millis(1);

/// When delivery must stop so that parking `messages` still fits before `deadline`.
fn deliver_deadline(now: Instant, deadline: Instant, messages: usize) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let per_message =
        PARK_RESERVE_PER_MESSAGE.saturating_mul(u32::try_from(messages).unwrap_or(u32::MAX));
    let reserve = PARK_RESERVE_BASE.saturating_add(per_message).min(left / 3);
    deadline.checked_sub(reserve).unwrap_or(deadline)
}

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
    #[serde(skip_serializing_if = "Option::is_none")]
    parked: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    undelivered: Option<usize>,
    /// The first [`MAX_LISTED_REJECTIONS`].
    rejected: Vec<RejectedView<'a>>,
    rejected_count: usize,
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
    fn of(out: &'a MapOutput, report: &DeliveryReport) -> Self {
        Summary {
            received: out.received,
            forwarded: report.delivered(),
            parked: None,
            undelivered: None,
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
            duplicate_uuids: out.duplicate_uuids,
            moe_request_id: out.moe_request_id.as_deref(),
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

/// Where settings come from.
pub enum SettingsMode<S> {
    Secret(SettingsCache<S>),
    /// No settings: inbound auth is skipped and delivery must be a dry run.
    DryRun {
        region: Region,
    },
    /// The process is misconfigured (e.g. no `SECRET_ID`): every request fails closed with
    /// 500 and this message, instead of the Lambda crashing in a restart loop.
    Unconfigured(String),
}

/// The request handler, shared by every invocation of a Lambda environment.
pub struct Handler<S, D, P = NoPark> {
    pub settings: SettingsMode<S>,
    pub deliver: D,
    pub endpoints: Endpoints,
    pub max_body_bytes: usize,
    /// Time kept back from the Lambda deadline to answer.
    pub deadline_margin: Duration,
    /// The time budget when there is no Lambda context (local runs).
    pub default_budget: Duration,
    pub metrics: MetricsSink,
    /// The dead-letter queue, when configured.
    pub park: Option<P>,
}

/// What happened, for the response, the log line and metrics.
#[derive(Debug, Default)]
struct Tally {
    moe_request_id: Option<String>,
    received: usize,
    forwarded: usize,
    rejected: usize,
    undelivered: usize,
    retries: u32,
    segment_latency: Duration,
    requests: u32,
    parked: usize,
    duplicate_uuids: usize,
}

impl<S: SecretSource, D: Deliver> Handler<S, D, NoPark> {
    pub fn new(
        settings: SettingsMode<S>,
        deliver: D,
        endpoints: Endpoints,
        max_body_bytes: usize,
    ) -> Self {
        Handler {
            settings,
            deliver,
            endpoints,
            max_body_bytes,
            deadline_margin: Duration::from_millis(1500),
            default_budget: Duration::from_secs(25),
            metrics: MetricsSink::Off,
            park: None,
        }
    }

    /// Parks undeliverable events in `park` (when `Some`) instead of answering non-2xx.
    pub fn with_park<P: Park>(self, park: Option<P>) -> Handler<S, D, P> {
        Handler {
            settings: self.settings,
            deliver: self.deliver,
            endpoints: self.endpoints,
            max_body_bytes: self.max_body_bytes,
            deadline_margin: self.deadline_margin,
            default_budget: self.default_budget,
            metrics: self.metrics,
            park,
        }
    }
}

impl<S: SecretSource, D: Deliver, P: Park> Handler<S, D, P> {
    /// Reads the settings now (Lambda Init), so the first request does not wait for them.
    pub async fn prefetch(&self) -> Result<Option<Region>, SettingsError> {
        Ok(self.current_settings().await?.map(|s| s.region))
    }

    /// The current settings (None in a dry run without settings).
    pub async fn current_settings(&self) -> Result<Option<Arc<Settings>>, SettingsError> {
        match &self.settings {
            SettingsMode::Secret(cache) => cache.get().await.map(Some),
            SettingsMode::DryRun { .. } => Ok(None),
            SettingsMode::Unconfigured(m) => Err(SettingsError::Invalid(
                crate::config::ConfigError::BadEnv("configuration", m.clone()),
            )),
        }
    }

    /// The region requests go to: the settings' region, or the dry run's.
    pub fn dry_run_region(&self) -> Option<Region> {
        match &self.settings {
            SettingsMode::DryRun { region } => Some(*region),
            _ => None,
        }
    }

    pub fn settings_cache(&self) -> Option<&SettingsCache<S>> {
        match &self.settings {
            SettingsMode::Secret(c) => Some(c),
            SettingsMode::DryRun { .. } | SettingsMode::Unconfigured(_) => None,
        }
    }

    /// When this invocation must have answered by: the Lambda deadline less the margin. A
    /// deadline that is not a plausible future epoch (in the past, or more than 15 minutes
    /// away: `cargo lambda watch` sends `600000`, a duration) falls back to the default budget.
    fn deadline(&self, req: &Request) -> Instant {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let budget = req
            .lambda_context_ref()
            .and_then(|c| plausible_budget(c.deadline, now_ms))
            .unwrap_or(self.default_budget);
        Instant::now() + budget.saturating_sub(self.deadline_margin)
    }

    /// Handles one request. Never fails: every outcome is an HTTP answer.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let deadline = self.deadline(&req);
        let mut tally = Tally::default();
        let (status, body, error) = match self.process(&req, deadline, &mut tally).await {
            Ok((status, body)) => (status, body, None),
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
                    undelivered = tally.undelivered,
                    retries = tally.retries,
                    segment_requests = tally.requests,
                    parked = tally.parked,
                    duplicate_uuids = tally.duplicate_uuids,
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
            &InvocationMetrics {
                received: tally.received as u64,
                forwarded: tally.forwarded as u64,
                rejected: tally.rejected as u64,
                retried: tally.retries as u64,
                parked: tally.parked as u64,
                segment_latency_ms: tally.segment_latency.as_millis() as u64,
            },
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

    async fn process(
        &self,
        req: &Request,
        deadline: Instant,
        tally: &mut Tally,
    ) -> Result<(StatusCode, String), HttpError> {
        if req.method() != Method::POST {
            return Err(HttpError::MethodNotAllowed(excerpt(req.method().as_str())));
        }
        // A caller without any credential learns nothing, not even whether the secret can be
        // read or the function is configured at all.
        let dry_run = matches!(self.settings, SettingsMode::DryRun { .. });
        if !dry_run && !auth::presents_credentials(req.headers()) {
            return Err(HttpError::Unauthorized);
        }
        let settings: Option<Arc<Settings>> = match &self.settings {
            SettingsMode::Secret(cache) => {
                let s = by_deadline(deadline, cache.get()).await.inspect_err(|e| {
                    tracing::error!(error = %e, "cannot use the configured secret");
                })?;
                if !auth::authorized(req.headers(), &s.webhook) {
                    return Err(HttpError::Unauthorized);
                }
                Some(s)
            }
            SettingsMode::Unconfigured(m) => {
                tracing::error!(error = %m, "the function is not configured");
                return Err(HttpError::Misconfigured(m.clone()));
            }
            SettingsMode::DryRun { .. } => {
                tracing::warn!(
                    "DRY RUN: no SECRET_ID or SEGMENT_WRITE_KEY; inbound auth skipped, nothing is sent to Segment"
                );
                None
            }
        };
        let body = self.body_bytes(req.headers(), req.body().as_ref())?;
        let text = decode::lossy_utf8(&body);
        let out = map::map_body(&text, time::now_millis(), map::Limits::REQUEST)?;
        drop(text);
        drop(body);
        tally.moe_request_id = out.moe_request_id.clone();
        tally.received = out.received;
        tally.rejected = out.rejected.len();
        tally.duplicate_uuids = out.duplicate_uuids;
        if out.duplicate_uuids > 0 {
            tracing::warn!(
                duplicate_uuids = out.duplicate_uuids,
                "events share an event_uuid with a different event; they get content-derived messageIds"
            );
        }
        log_rejections(&out.rejected);
        let region = match (&settings, &self.settings) {
            (Some(s), _) => s.region,
            (None, SettingsMode::DryRun { region }) => *region,
            (None, _) => {
                return Err(HttpError::Misconfigured("no settings".into()));
            }
        };
        // Parking must fit before the deadline too: delivery stops early enough to leave it
        // a slice of the time.
        let deliver_by = match &self.park {
            Some(_) => deliver_deadline(Instant::now(), deadline, out.messages.len()),
            None => deadline,
        };
        let report = self
            .deliver_all(settings, region, &out.messages, deliver_by)
            .await;
        tally.forwarded = report.delivered();
        tally.undelivered = report.undelivered();
        tally.retries = report.retries;
        tally.segment_latency = report.latency;
        tally.requests = report.requests();
        log_failures(&report);
        let mut parked = 0;
        if let (Some(park), true) = (&self.park, report.undelivered() > 0) {
            let result = match parcels(&out, &report) {
                Ok(bodies) => {
                    let n = bodies.len();
                    park.park(bodies, deadline).await.map(|()| n)
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(n) => {
                    parked = n;
                    tally.parked = n;
                    tracing::warn!(
                        parked = n,
                        "undeliverable events parked in the dead-letter queue"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "parking failed; answering 503 so MoEngage re-sends");
                    let answer = Answer {
                        error: Some("parking_failed"),
                        message: Some(
                            "events Segment did not take could not be parked either; MoEngage will re-send"
                                .to_owned(),
                        ),
                        summary: Some(Summary {
                            undelivered: Some(report.undelivered()),
                            ..Summary::of(&out, &report)
                        }),
                    };
                    return Ok((StatusCode::SERVICE_UNAVAILABLE, answer.to_json()));
                }
            }
        }
        let (status, answer) = respond(&out, &report, parked);
        Ok((status, answer.to_json()))
    }

    /// Delivers, re-reading the secret once if Segment says the write key is wrong.
    async fn deliver_all(
        &self,
        settings: Option<Arc<Settings>>,
        region: Region,
        messages: &[Mapped],
        deadline: Instant,
    ) -> DeliveryReport {
        if messages.is_empty() {
            return DeliveryReport::default();
        }
        let dry_key = crate::config::Secret::default();
        let key = settings.as_ref().map(|s| &s.write_key).unwrap_or(&dry_key);
        let target = Target {
            base_url: self.endpoints.base(region),
            write_key: key,
        };
        let mut report = self.deliver.deliver(target, messages, deadline).await;
        let unauthorized: Vec<usize> = report
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.outcome, ChunkOutcome::Unauthorized(_)))
            .map(|(i, _)| i)
            .collect();
        let (Some(cache), Some(old), false) =
            (self.settings_cache(), settings, unauthorized.is_empty())
        else {
            return report;
        };
        tracing::warn!("Segment answered 401/403; re-reading the secret (write key rotation?)");
        let fresh = match by_deadline(deadline, cache.refresh()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "secret re-read after 401 failed");
                return report;
            }
        };
        if fresh.write_key == old.write_key && fresh.region == old.region {
            tracing::error!("Segment refuses the write key in the secret; update the secret");
            return report;
        }
        let target = Target {
            base_url: self.endpoints.base(fresh.region),
            write_key: &fresh.write_key,
        };
        for i in unauthorized {
            let range = report.chunks[i].range.clone();
            let again = self
                .deliver
                .deliver(target, &messages[range.clone()], deadline)
                .await;
            report.retries += again.retries + 1;
            report.latency += again.latency;
            let outcome = again
                .chunks
                .iter()
                .find(|c| c.outcome != ChunkOutcome::Delivered)
                .map(|c| c.outcome.clone())
                .unwrap_or(ChunkOutcome::Delivered);
            let chunk = &mut report.chunks[i];
            chunk.attempts += again.requests();
            chunk.outcome = outcome;
        }
        report
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

/// `read` (the secret), unless `deadline` comes first: then the settings count as unavailable
/// (a stalled Secrets Manager must not keep the invocation from answering).
async fn by_deadline<T>(
    deadline: Instant,
    read: impl std::future::Future<Output = Result<T, SettingsError>>,
) -> Result<T, SettingsError> {
    tokio::time::timeout_at(deadline.into(), read)
        .await
        .unwrap_or_else(|_| {
            Err(SettingsError::Unavailable(
                "reading the secret did not finish before the deadline".into(),
            ))
        })
}

/// Lambda's longest timeout: a deadline further away than this is not a deadline.
const MAX_LAMBDA_BUDGET: Duration = Duration::from_secs(15 * 60);

/// The time left before `deadline_ms` (epoch ms), when that is a plausible Lambda deadline.
fn plausible_budget(deadline_ms: u64, now_ms: u64) -> Option<Duration> {
    let left = Duration::from_millis(deadline_ms.checked_sub(now_ms)?);
    (!left.is_zero() && left <= MAX_LAMBDA_BUDGET).then_some(left)
}

/// The dead-letter records of every undelivered message.
fn parcels(out: &MapOutput, report: &DeliveryReport) -> Result<Vec<String>, ParkError> {
    let parked_at = time::format_millis(time::now_millis());
    let mut bodies = Vec::with_capacity(report.undelivered());
    for chunk in &report.chunks {
        let Some((reason, detail)) = chunk.outcome.failure() else {
            continue;
        };
        for m in &out.messages[chunk.range.clone()] {
            // Every undelivered message gets a parcel, or parking fails as a whole: a
            // parcel silently skipped would be an event lost behind a 200.
            let unparkable = |e: serde_json::Error| {
                ParkError(format!("cannot write the parcel of {}: {e}", m.message_id))
            };
            let message =
                serde_json::value::RawValue::from_string(m.json.clone()).map_err(unparkable)?;
            let parcel = Parcel {
                version: 1,
                reason,
                detail: detail.clone(),
                moe_request_id: out.moe_request_id.as_deref(),
                event_uuid: m.event_uuid.as_deref(),
                message_id: &m.message_id,
                attempts: chunk.attempts,
                parked_at: parked_at.clone(),
                message: &message,
            };
            bodies.push(serde_json::to_string(&parcel).map_err(unparkable)?);
        }
    }
    Ok(bodies)
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
fn log_failures(report: &DeliveryReport) {
    let mut failures = report.chunks.iter().filter_map(|c| c.outcome.failure());
    let Some((reason, detail)) = failures.next() else {
        return;
    };
    tracing::error!(
        failed_batches = 1 + failures.count(),
        undelivered = report.undelivered(),
        reason,
        detail,
        "events not delivered to Segment"
    );
}

/// The answer for a request whose body was mapped: 200 when every deliverable event is in
/// Segment or among the `parked` ones, else the failure that kept events out.
fn respond<'a>(
    out: &'a MapOutput,
    report: &DeliveryReport,
    parked: usize,
) -> (StatusCode, Answer<'a>) {
    let summary = Summary::of(out, report);
    let failed: Vec<&ChunkOutcome> = report
        .chunks
        .iter()
        .map(|c| &c.outcome)
        .filter(|o| **o != ChunkOutcome::Delivered)
        .collect();
    if failed.is_empty() || parked == report.undelivered() {
        let answer = Answer {
            error: None,
            message: None,
            summary: Some(Summary {
                parked: Some(parked),
                ..summary
            }),
        };
        return (StatusCode::OK, answer);
    }
    let refused_only = failed
        .iter()
        .all(|o| matches!(o, ChunkOutcome::Refused { .. }));
    let (status, code, message) = if refused_only {
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
        summary: Some(Summary {
            undelivered: Some(report.undelivered()),
            ..summary
        }),
    };
    (status, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parking_gets_a_slice_that_grows_with_the_messages() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(24);
        let reserve = |n| deadline - deliver_deadline(now, deadline, n);
        assert_eq!(reserve(0), Duration::from_millis(500));
        assert_eq!(reserve(100), Duration::from_millis(600));
        assert_eq!(reserve(5_000), Duration::from_millis(5_500));
        // Never more than a third of what is left.
        let third = reserve(usize::MAX);
        assert_eq!(third, Duration::from_secs(8));
        let soon = now + Duration::from_millis(300);
        assert_eq!(
            soon - deliver_deadline(now, soon, 100),
            Duration::from_millis(100)
        );
    }

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
