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
//! Every answer is bounded (at most [`super::answer::MAX_LISTED_REJECTIONS`] rejections are listed, with
//! `rejected_count`), and every 5xx body is a stable code with a fixed message: details
//! (secret ARNs, SDK errors, Segment's answers) go to the logs only. A request without any
//! credential is answered 401 before the secret is even read.
//!
//! A request whose path ends with `/oauth/token` goes to the OAuth token route instead
//! ([`crate::webhook::oauth`]).

use std::sync::Arc;
use std::time::Instant;

use lambda_http::http::{HeaderMap, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::decode;
use crate::delivery::budget::Budget;
use crate::delivery::forward::{Access, Forwarder};
use crate::delivery::outcome::{Plan, Provenance};
use crate::delivery::tally::{Tally, log_failures};
use crate::mapping::options::MappingOptions;
use crate::mapping::{self, Rejected, time};
use crate::settings::config::Settings;
use crate::settings::secret::SecretSource;
use crate::telemetry::metrics::MetricsSink;
use crate::webhook::answer::{Answer, HttpError, excerpt, json_response, respond};
use crate::webhook::body::read_body;
use crate::webhook::{auth, oauth};

/// Rejections logged one line each (the rest are counted in the summary line).
pub const MAX_LOGGED_REJECTIONS: usize = 10;

/// The webhook function's handler: one request in, one answer out, forwarding through the
/// [`Forwarder`] built once per Lambda environment.
pub struct Webhook<S> {
    pub forwarder: Forwarder<S>,
    pub max_body_bytes: usize,
    pub budget: Budget,
    pub metrics: MetricsSink,
    /// The mapping options of a dry run without settings (`MAPPING_OPTIONS`).
    pub open_mapping: Arc<MappingOptions>,
}

impl<S: SecretSource> Webhook<S> {
    pub fn new(forwarder: Forwarder<S>, max_body_bytes: usize) -> Self {
        Webhook {
            forwarder,
            max_body_bytes,
            budget: Budget::default(),
            metrics: MetricsSink::Off,
            open_mapping: MappingOptions::none(),
        }
    }

    /// Handles one request. Never fails: every outcome is an HTTP answer.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let deadline = self
            .budget
            .deadline(req.lambda_context_ref().map(|c| c.deadline));
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
        json_response(status, body)
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
        let body = read_body(req.headers(), req.body().as_ref(), self.max_body_bytes)?;
        let text = decode::lossy_utf8(&body);
        let out = mapping::map_body_with(
            &text,
            time::now_millis(),
            mapping::Limits::REQUEST,
            &options,
        )?;
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
    /// invalid: counted), or, without settings, [`Webhook::open_mapping`]. With no good
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
        mapping
            .in_force()
            .map_err(|e| HttpError::Misconfigured(e.to_string()))
    }
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
