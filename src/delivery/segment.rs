//! Delivery to Segment's HTTP Tracking API: `POST {base}/v1/batch`.
//!
//! Messages are cut into batches of at most [`MAX_BATCH_BYTES`] and [`MAX_BATCH_MESSAGES`]
//! (Segment refuses bodies over 500 KB with 400 and silently drops past 2,500 messages),
//! sent concurrently (bounded), and retried like Segment's official SDKs: 408, 410, 429, 460
//! and 5xx except 501/505, connection errors and timeouts; `Retry-After` honoured (capped at
//! 300 s); exponential backoff from 0.5 s with jitter; `X-Retry-Count` on every attempt; all
//! within the caller's deadline. Other 4xx are never retried.
//!
//! Redirects are never followed (a 301/302 would be re-sent as a GET without the batch, and
//! its 200 would count as delivered): a 3xx answer is a failure, retried like a 5xx. Segment's
//! answer body is read only up to [`MAX_RESPONSE_BYTES`], for the error excerpt.
//!
//! The transport is `reqwest` (HTTP/1.1, a pool of keep-alive connections, rustls with
//! aws-lc-rs, as the AWS SDK uses, and the platform's certificate verifier; no proxy
//! variables read). `http://` base URLs are allowed (local stand-ins).

use std::io::Write;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use crate::delivery::pacer::Pacer;
use crate::mapping::Mapped;
use crate::mapping::time;
use crate::settings::config::Secret;

/// Body size cap per request, leaving room under Segment's 500 KB limit.
pub const MAX_BATCH_BYTES: usize = 475_000;
/// Segment's message-count limit per batch.
pub const MAX_BATCH_MESSAGES: usize = 2_500;
/// `{"batch":[` + `],"sentAt":"2024-01-01T00:00:00.000Z"}`.
pub const ENVELOPE_BYTES: usize = 10 + 40;
/// How much of Segment's answer body is read (the rest is not: the connection is dropped).
pub const MAX_RESPONSE_BYTES: usize = 4096;
/// Bytes of Segment's answer body kept in errors.
pub const MAX_EXCERPT_BYTES: usize = 300;
/// Bytes of a redirect's `Location` kept in errors.
const MAX_LOCATION_BYTES: usize = 100;
/// Sent on every request.
const USER_AGENT_VALUE: &str = concat!("moengage-segment/", env!("CARGO_PKG_VERSION"));
/// Bound on setting up a connection: TCP connect and TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pooled connections unused for this long are not used again.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle time before the first TCP keep-alive probe.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// How full one request's batch is, counted as messages are added: Segment's limits in one
/// place, for [`chunk`] and for the backfill's reader, which cuts batches as it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFill {
    /// The body's bytes so far: the envelope, the messages and their commas.
    bytes: usize,
    messages: usize,
}

impl Default for BatchFill {
    fn default() -> Self {
        BatchFill {
            bytes: ENVELOPE_BYTES,
            messages: 0,
        }
    }
}

impl BatchFill {
    /// Whether a message of `len` bytes still fits ([`MAX_BATCH_BYTES`],
    /// [`MAX_BATCH_MESSAGES`]); an empty batch takes any message.
    pub fn fits(&self, len: usize) -> bool {
        let with_comma = self.bytes + 1 + len;
        self.messages == 0 || (self.messages < MAX_BATCH_MESSAGES && with_comma <= MAX_BATCH_BYTES)
    }

    /// Counts a message of `len` bytes in.
    pub fn add(&mut self, len: usize) {
        self.bytes += len + usize::from(self.messages > 0);
        self.messages += 1;
    }
}

/// Splits messages into request-sized ranges, keeping input order.
pub fn chunk(messages: &[Mapped]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut fill = BatchFill::default();
    for (i, m) in messages.iter().enumerate() {
        if !fill.fits(m.json.len()) {
            out.push(start..i);
            start = i;
            fill = BatchFill::default();
        }
        fill.add(m.json.len());
    }
    if start < messages.len() {
        out.push(start..messages.len());
    }
    out
}

/// The JSON body of one batch request.
pub fn batch_body(messages: &[Mapped], sent_at: &str) -> Vec<u8> {
    let len: usize = messages.iter().map(|m| m.json.len() + 1).sum();
    let mut body = Vec::with_capacity(len + ENVELOPE_BYTES + 8);
    body.extend_from_slice(b"{\"batch\":[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(m.json.as_bytes());
    }
    body.extend_from_slice(b"],\"sentAt\":\"");
    body.extend_from_slice(sent_at.as_bytes());
    body.extend_from_slice(b"\"}");
    body
}

/// Where to send and with which key.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub base_url: &'a str,
    pub write_key: &'a Secret,
}

impl Target<'_> {
    pub fn batch_url(&self) -> String {
        format!("{}/v1/batch", self.base_url.trim_end_matches('/'))
    }
}

/// How one batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkOutcome {
    Delivered,
    /// 401/403: the write key is wrong or was rotated.
    Unauthorized(u16),
    /// Another 4xx: Segment will never take this batch as it is.
    Refused {
        status: u16,
        detail: String,
    },
    /// Still failing when the deadline came.
    GaveUp {
        last_error: String,
    },
}

impl ChunkOutcome {
    /// For a batch that failed: why in one word (a parcel's `reason`) and what Segment said
    /// (its `detail`, also logged); `None` when delivered.
    pub fn failure(&self) -> Option<(&'static str, String)> {
        match self {
            ChunkOutcome::Delivered => None,
            ChunkOutcome::Refused { status, detail } => {
                Some(("segment_refused", format!("HTTP {status}: {detail}")))
            }
            ChunkOutcome::Unauthorized(s) => Some(("segment_unauthorized", format!("HTTP {s}"))),
            ChunkOutcome::GaveUp { last_error } => {
                Some(("segment_unavailable", last_error.clone()))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkResult {
    pub range: Range<usize>,
    pub outcome: ChunkOutcome,
    pub attempts: u32,
}

/// The result of delivering one request's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub chunks: Vec<ChunkResult>,
    /// Attempts beyond the first, over all batches.
    pub retries: u32,
    /// Requests spent on batches Segment refused with 400/413 and that were split in two to
    /// find the bad messages (not counted in `chunks`).
    pub split_requests: u32,
    /// Wall time spent delivering.
    pub latency: Duration,
}

impl DeliveryReport {
    pub fn undelivered(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| c.outcome != ChunkOutcome::Delivered)
            .map(|c| c.range.len())
            .sum()
    }
    pub fn requests(&self) -> u32 {
        self.chunks.iter().map(|c| c.attempts).sum::<u32>() + self.split_requests
    }
}

/// Retry and concurrency settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_retry_after: Duration,
    /// Upper bound on one HTTP attempt (also bounded by the deadline).
    pub attempt_timeout: Duration,
    /// Batches in flight at once.
    pub concurrency: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(10),
            concurrency: 4,
        }
    }
}

/// Segment's HTTP client (one per process, connections reused across invocations; a clone
/// shares the pool).
#[derive(Debug, Clone)]
pub struct SegmentClient {
    http: reqwest::Client,
    policy: RetryPolicy,
    /// A ceiling on requests per second, shared by every request (the backfill's `--rate`).
    pacer: Option<Arc<Pacer>>,
}

/// Why [`SegmentClient::new`] failed (the TLS set-up).
pub type ClientError = reqwest::Error;

/// What [`SegmentClient::send`] read of an answer.
struct Answer {
    status: u16,
    headers: HeaderMap,
    /// At most the cap given.
    body: Vec<u8>,
}

/// Whether Segment's official SDKs retry this status.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 410 | 429 | 460)
        || (500..600).contains(&status) && status != 501 && status != 505
}

/// Parses `X-RateLimit-Reset` into the time left: epoch milliseconds, epoch seconds, or
/// seconds from now, by its size (APIs differ; Segment's is not documented for the
/// tracking API).
pub fn parse_rate_limit_reset(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let n: u64 = value.trim().parse().ok()?;
    let since_epoch = now.duration_since(std::time::UNIX_EPOCH).ok()?;
    let at = match n {
        n if n >= 100_000_000_000 => Duration::from_millis(n),
        n if n >= 1_000_000_000 => Duration::from_secs(n),
        n => return Some(Duration::from_secs(n)),
    };
    Some(at.saturating_sub(since_epoch))
}

/// Parses `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(1e6)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

enum Attempt {
    Done,
    Unauthorized(u16),
    Refused(u16, String),
    Retry {
        error: String,
        retry_after: Option<Wait>,
        /// 429: Segment's rate limit (the pacer holds every request back).
        throttled: bool,
    },
}

/// How long Segment asked a retry to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// `Retry-After`: what Segment said (capped).
    Exactly(Duration),
    /// `X-RateLimit-Reset` on a 429: when the window resets, but never sooner than the
    /// backoff (a reset now or past, or clock skew, must not make retries back to back).
    AtLeast(Duration),
}

impl Attempt {
    /// What an answer means for its batch.
    fn of(answer: &Answer) -> Attempt {
        let status = answer.status;
        let header = |name: &str| answer.headers.get(name).and_then(|v| v.to_str().ok());
        let now = std::time::SystemTime::now();
        let retry_after = header(RETRY_AFTER.as_str())
            .and_then(|v| parse_retry_after(v, now))
            .map(Wait::Exactly)
            .or_else(|| {
                (status == 429)
                    .then(|| header("x-ratelimit-reset"))
                    .flatten()
                    .and_then(|v| parse_rate_limit_reset(v, now))
                    .map(Wait::AtLeast)
            });
        let location = (300..400)
            .contains(&status)
            .then(|| {
                answer
                    .headers
                    .get("location")
                    .map(|v| location_excerpt(v.as_bytes()))
            })
            .flatten();
        let excerpt = excerpt(&answer.body);
        match status {
            200..=299 => Attempt::Done,
            300..=399 => Attempt::Retry {
                error: match location {
                    Some(to) => format!("HTTP {status}: redirect (not followed) to {to}"),
                    None => format!("HTTP {status}: redirect (not followed)"),
                },
                retry_after,
                throttled: false,
            },
            401 | 403 => Attempt::Unauthorized(status),
            s if is_retryable_status(s) => Attempt::Retry {
                error: format!("HTTP {s}: {excerpt}"),
                retry_after,
                throttled: s == 429,
            },
            s => Attempt::Refused(s, excerpt),
        }
    }
}

impl SegmentClient {
    /// The production client: pooled keep-alive connections, a 3 s connect timeout (TCP and
    /// TLS), certificates checked by the platform's verifier, no redirects followed and no
    /// proxy.
    pub fn new(policy: RetryPolicy) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_keepalive(TCP_KEEPALIVE)
            .user_agent(USER_AGENT_VALUE)
            .build()?;
        Ok(SegmentClient {
            http,
            policy,
            pacer: None,
        })
    }

    /// Every request (retries and splits included) waits for `pacer` first; a 429 holds it.
    pub fn with_pacer(mut self, pacer: Arc<Pacer>) -> Self {
        self.pacer = Some(pacer);
        self
    }

    /// Opens (and pools) a connection to `base_url` so the first invocation pays no TCP/TLS
    /// handshake. Any HTTP answer counts; errors are returned for logging only.
    pub async fn warm(&self, base_url: &str, timeout: Duration) -> Result<u16, String> {
        let url = format!("{}/v1/batch", base_url.trim_end_matches('/'));
        // The answer to a HEAD has no body: the connection goes back to the pool.
        let req = self.http.head(&url).header(ACCEPT, "*/*");
        self.send(req, 0, timeout).await.map(|a| a.status)
    }

    /// Sends one request: the answer's head and at most `body_cap` bytes of its body, all
    /// within `timeout`; errors as text (the URL and the cause, never a header). Once the head
    /// is in, the status decides: a body that breaks off or outlasts `timeout` leaves what was
    /// read. An answer read to its end leaves its connection in the pool; one cut short (too
    /// long, broken, late) drops it.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        body_cap: usize,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let req = req.build().map_err(|e| error_chain(&e))?;
        let url = req.url().to_string();
        let by = tokio::time::Instant::now() + timeout;
        let mut resp = match tokio::time::timeout_at(by, self.http.execute(req)).await {
            Ok(resp) => resp.map_err(|e| error_chain(&e))?,
            Err(_) => {
                return Err(format!(
                    "error sending request for url ({url}): timed out after {timeout:?}"
                ));
            }
        };
        let mut answer = Answer {
            status: resp.status().as_u16(),
            headers: std::mem::take(resp.headers_mut()),
            body: Vec::new(),
        };
        let read = read_capped(&mut resp, &mut answer.body, body_cap);
        if let Ok(Err(e)) = tokio::time::timeout_at(by, read).await {
            tracing::debug!(status = answer.status, error = %error_chain(&e), "Segment's answer broke off");
        }
        Ok(answer)
    }

    async fn attempt(
        &self,
        target: Target<'_>,
        body: Vec<u8>,
        retry: u32,
        timeout: Duration,
    ) -> Attempt {
        let req = self
            .http
            .post(target.batch_url())
            .header(ACCEPT, "*/*")
            .header(CONTENT_TYPE, "application/json")
            .basic_auth(target.write_key.expose(), None::<&str>)
            .header("x-retry-count", retry)
            .body(body);
        // One timeout for the whole exchange, the body read included.
        let answer = match self.send(req, MAX_RESPONSE_BYTES, timeout).await {
            Ok(a) => a,
            Err(error) => {
                return Attempt::Retry {
                    error,
                    retry_after: None,
                    throttled: false,
                };
            }
        };
        Attempt::of(&answer)
    }

    /// Waits for the pacer (if any), unless `deadline` comes first.
    async fn paced(&self, deadline: Instant) -> Result<(), ChunkOutcome> {
        let Some(pacer) = &self.pacer else {
            return Ok(());
        };
        let by = deadline - Duration::from_millis(50);
        match tokio::time::timeout_at(by.into(), pacer.ready()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(ChunkOutcome::GaveUp {
                last_error: "deadline reached waiting for the rate limit".into(),
            }),
        }
    }

    /// Sends one batch until Segment takes or refuses it, or `deadline` comes; retries as
    /// the module docs say.
    async fn send_chunk(
        &self,
        target: Target<'_>,
        messages: &[Mapped],
        range: Range<usize>,
        deadline: Instant,
    ) -> ChunkResult {
        let msgs = &messages[range.clone()];
        let mut attempts = 0u32;
        let outcome = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Duration::from_millis(50) {
                break ChunkOutcome::GaveUp {
                    last_error: "deadline reached before the first attempt".into(),
                };
            }
            if let Err(gave_up) = self.paced(deadline).await {
                break gave_up;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let body = batch_body(msgs, &time::format_millis(time::now_millis()));
            let timeout = remaining.min(self.policy.attempt_timeout);
            let attempt = self.attempt(target, body, attempts, timeout).await;
            attempts += 1;
            let (error, retry_after, throttled) = match attempt {
                Attempt::Done => break ChunkOutcome::Delivered,
                Attempt::Unauthorized(s) => break ChunkOutcome::Unauthorized(s),
                Attempt::Refused(status, detail) => break ChunkOutcome::Refused { status, detail },
                Attempt::Retry {
                    error,
                    retry_after,
                    throttled,
                } => (error, retry_after, throttled),
            };
            let delay = self.delay(retry_after, attempts - 1);
            if let (true, Some(pacer)) = (throttled, &self.pacer) {
                pacer.hold(Instant::now() + delay);
            }
            if Instant::now() + delay + Duration::from_millis(50) >= deadline {
                break ChunkOutcome::GaveUp { last_error: error };
            }
            tracing::debug!(retry = attempts, delay_ms = delay.as_millis() as u64, error = %error, "retrying Segment batch");
            tokio::time::sleep(delay).await;
        };
        ChunkResult {
            range,
            outcome,
            attempts,
        }
    }

    /// How long to wait before retry number `retry + 1`: what Segment asked for (capped), or
    /// the backoff.
    fn delay(&self, asked: Option<Wait>, retry: u32) -> Duration {
        match asked {
            Some(Wait::Exactly(d)) => d.min(self.policy.max_retry_after),
            Some(Wait::AtLeast(d)) => d.min(self.policy.max_retry_after).max(self.backoff(retry)),
            None => self.backoff(retry),
        }
    }

    /// Exponential backoff with jitter: a random delay in [d/2, d], d = base·2^retry ≤ max.
    fn backoff(&self, retry: u32) -> Duration {
        let d = self
            .policy
            .base_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(self.policy.max_delay);
        d.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// The first [`MAX_EXCERPT_BYTES`] bytes of an answer body (lossy UTF-8, printable).
fn excerpt(body: &[u8]) -> String {
    crate::excerpt::excerpt(&String::from_utf8_lossy(body), MAX_EXCERPT_BYTES)
}

/// A `Location` header for an error message: lossy UTF-8, printable, at most
/// [`MAX_LOCATION_BYTES`] bytes.
fn location_excerpt(value: &[u8]) -> String {
    crate::excerpt::excerpt(&String::from_utf8_lossy(value), MAX_LOCATION_BYTES)
}

/// Reads `resp`'s body into `body`, up to `cap` bytes (the rest is left unread).
async fn read_capped(
    resp: &mut reqwest::Response,
    body: &mut Vec<u8>,
    cap: usize,
) -> Result<(), reqwest::Error> {
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            break;
        }
    }
    Ok(())
}

/// `e` and its sources, joined with `: `.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl SegmentClient {
    /// Sends a range; when Segment refuses a multi-message batch as invalid (400) or too big
    /// (413), splits it in halves until the good messages are delivered and only the bad ones
    /// remain refused (Segment refuses a whole batch for one bad message).
    async fn send_range(
        &self,
        target: Target<'_>,
        messages: &[Mapped],
        range: Range<usize>,
        deadline: Instant,
    ) -> (Vec<ChunkResult>, u32) {
        let mut pending = vec![range];
        let mut done = Vec::new();
        let mut split_requests = 0;
        while let Some(r) = pending.pop() {
            let res = self.send_chunk(target, messages, r.clone(), deadline).await;
            match &res.outcome {
                ChunkOutcome::Refused {
                    status: 400 | 413, ..
                } if r.len() > 1 => {
                    split_requests += res.attempts;
                    let mid = r.start + r.len() / 2;
                    tracing::warn!(
                        messages = r.len(),
                        "Segment refused a batch; splitting it to isolate the bad messages"
                    );
                    pending.push(mid..r.end);
                    pending.push(r.start..mid);
                }
                _ => done.push(res),
            }
        }
        (done, split_requests)
    }
}

impl SegmentClient {
    /// Sends `messages` in batches (at most [`RetryPolicy::concurrency`] at once), retrying
    /// each until `deadline`; a batch Segment refuses as invalid is split to isolate the bad
    /// messages.
    pub async fn deliver(
        &self,
        target: Target<'_>,
        messages: &[Mapped],
        deadline: Instant,
    ) -> DeliveryReport {
        let started = Instant::now();
        let ranges = chunk(messages);
        let results: Vec<(Vec<ChunkResult>, u32)> = stream::iter(ranges)
            .map(|r| self.send_range(target, messages, r, deadline))
            .buffer_unordered(self.policy.concurrency.max(1))
            .collect()
            .await;
        let split_requests = results.iter().map(|(_, n)| n).sum();
        let mut chunks: Vec<ChunkResult> = results.into_iter().flat_map(|(c, _)| c).collect();
        chunks.sort_by_key(|c| c.range.start);
        let retries = chunks.iter().map(|c| c.attempts.saturating_sub(1)).sum();
        DeliveryReport {
            chunks,
            retries,
            split_requests,
            latency: started.elapsed(),
        }
    }
}

/// Prints the requests it would send instead of sending them (for `moe2seg invoke`).
pub struct DryRun {
    out: Mutex<Box<dyn Write + Send>>,
}

impl DryRun {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        DryRun {
            out: Mutex::new(out),
        }
    }
}

impl DryRun {
    /// Prints the requests and reports every batch delivered.
    pub async fn deliver(
        &self,
        target: Target<'_>,
        messages: &[Mapped],
        _deadline: Instant,
    ) -> DeliveryReport {
        let ranges = chunk(messages);
        let sent_at = time::format_millis(time::now_millis());
        if let Ok(mut out) = self.out.lock() {
            for (i, r) in ranges.iter().enumerate() {
                let body = batch_body(&messages[r.clone()], &sent_at);
                let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "--- dry run: request {} of {}: POST {} ({} messages, {} bytes, Basic auth with the write key)",
                    i + 1,
                    ranges.len(),
                    target.batch_url(),
                    r.len(),
                    body.len()
                );
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&parsed).unwrap_or_default()
                );
            }
        }
        DeliveryReport {
            chunks: ranges
                .into_iter()
                .map(|range| ChunkResult {
                    range,
                    outcome: ChunkOutcome::Delivered,
                    attempts: 0,
                })
                .collect(),
            retries: 0,
            split_requests: 0,
            latency: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize, size: usize) -> Mapped {
        let pad = "x".repeat(size.saturating_sub(20));
        Mapped {
            index: i,
            event_uuid: None,
            message_id: format!("moe-{i}"),
            json: format!("{{\"i\":{i:>6},\"p\":\"{pad}\"}}"),
        }
    }

    #[test]
    fn chunks_respect_bytes_and_counts() {
        let msgs: Vec<Mapped> = (0..6000).map(|i| msg(i, 100)).collect();
        let ranges = chunk(&msgs);
        assert!(ranges.iter().all(|r| r.len() <= MAX_BATCH_MESSAGES));
        assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 6000);
        let msgs: Vec<Mapped> = (0..100).map(|i| msg(i, 31_000)).collect();
        let ranges = chunk(&msgs);
        for r in &ranges {
            let body = batch_body(&msgs[r.clone()], "2024-01-01T00:00:00.000Z");
            assert!(body.len() <= MAX_BATCH_BYTES, "{}", body.len());
            // Full: one more message would not have fit.
            if r.end < msgs.len() {
                let more = batch_body(&msgs[r.start..r.end + 1], "2024-01-01T00:00:00.000Z");
                assert!(more.len() > MAX_BATCH_BYTES || r.len() == MAX_BATCH_MESSAGES);
            }
        }
        assert_eq!(ranges.len(), 7); // 15 × 31 KB per 475 KB
        assert!(chunk(&[]).is_empty());
    }

    #[test]
    fn batch_body_is_valid_json() {
        let msgs: Vec<Mapped> = (0..3).map(|i| msg(i, 50)).collect();
        let body = batch_body(&msgs, "2024-01-01T00:00:00.000Z");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["batch"].as_array().unwrap().len(), 3);
        assert_eq!(v["sentAt"], "2024-01-01T00:00:00.000Z");
    }

    #[test]
    fn retry_classes() {
        for s in [408, 410, 429, 460, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 413, 422, 501, 505] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon", now), None);
        // X-RateLimit-Reset: epoch ms, epoch s, or seconds from now.
        let ms = 1_000_000_000_000u64 + 2_500;
        assert_eq!(
            parse_rate_limit_reset(&ms.to_string(), now),
            Some(Duration::from_millis(2_500))
        );
        assert_eq!(
            parse_rate_limit_reset("1000000004", now),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            parse_rate_limit_reset("3", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_rate_limit_reset("999999999999", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_rate_limit_reset("-1", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn excerpts_are_bounded_and_lossy() {
        assert_eq!(excerpt(b"{}"), "{}");
        let long = "é".repeat(2000);
        let e = excerpt(long.as_bytes());
        // 150 two-byte characters, then the mark.
        assert_eq!(e.chars().count(), MAX_EXCERPT_BYTES / 2 + 1);
        assert!(e.len() <= MAX_EXCERPT_BYTES + '…'.len_utf8() && e.ends_with('…'));
        // Cut inside a character: lossy, never a panic.
        let e = excerpt(&long.as_bytes()[..5]);
        assert_eq!(e, "éé\u{fffd}");
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn locations_are_cut_and_cleaned() {
        assert_eq!(location_excerpt(b"/ok"), "/ok");
        let long = format!("https://example.com/{}", "a".repeat(500));
        let l = location_excerpt(long.as_bytes());
        assert_eq!(l.chars().count(), MAX_LOCATION_BYTES + 1);
        assert!(l.ends_with('…'));
        assert_eq!(location_excerpt(b"/a\r\nb\xff"), "/a??b\u{fffd}");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let answer: &[u8] = if buf[..n].starts_with(b"HEAD /elsewhere") {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    } else {
                        b"HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    };
                    let _ = sock.write_all(answer).await;
                });
            }
        });
        let c = SegmentClient::new(RetryPolicy::default()).unwrap();
        let url = format!("http://{addr}");
        assert_eq!(c.warm(&url, Duration::from_secs(2)).await, Ok(302));
    }

    #[tokio::test]
    async fn transport_errors_are_readable() {
        use tokio::io::AsyncReadExt;
        let c = SegmentClient::new(RetryPolicy::default()).unwrap();
        // Nobody listening.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let e = c.warm(&url, Duration::from_secs(2)).await.unwrap_err();
        assert!(
            e.starts_with(&format!("error sending request for url ({url}/v1/batch): "))
                && e.to_lowercase().contains("connection refused"),
            "{e}"
        );
        // A server that takes the request and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = silent.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while sock.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                });
            }
        });
        let e = c
            .warm(&format!("http://{addr}"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.ends_with("timed out after 200ms"), "{e}");
        // https:// is TLS: a plain-HTTP server fails the handshake.
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = plain.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut sock, _)) = plain.accept().await {
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let e = c
            .warm(&format!("https://{addr}"), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(e.contains(": client error (Connect): "), "{e}");
    }

    /// A keep-alive HTTP/1.1 server answering each request `200` with a body of the length
    /// given by its path (`/10`); the first connection it accepts answers its first request
    /// `400` as soon as the head is in, never reading the body. Counts connections.
    async fn keep_alive_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 65536];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        if n == 0 && head.contains("/early") {
                            let early = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
                            let _ = sock.write_all(early).await;
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < end + 4 + len {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        }
                        buf.drain(..end + 4 + len);
                        let path = head.split(' ').nth(1).unwrap_or("/0");
                        let size: usize = path.trim_start_matches('/').parse().unwrap_or(0);
                        let body = if head.starts_with("head ") { 0 } else { size };
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n{}",
                            "x".repeat(body)
                        );
                        if sock.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn connections_are_reused_unless_an_answer_is_cut() {
        use std::sync::atomic::Ordering;
        let (url, accepted) = keep_alive_server().await;
        let c = SegmentClient::new(RetryPolicy::default()).unwrap();
        let timeout = Duration::from_secs(3);
        // Init's warm-up opens the connection the first batch then uses.
        assert_eq!(c.warm(&url, timeout).await, Ok(200));
        let short = c.http.post(format!("{url}/10")).body("{}");
        assert_eq!(c.send(short, 4096, timeout).await.unwrap().body.len(), 10);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // An answer longer than the cap is cut: its connection is not reused.
        let long = c.http.post(format!("{url}/100000")).body("{}");
        assert_eq!(c.send(long, 4096, timeout).await.unwrap().body.len(), 4096);
        let again = c.http.post(format!("{url}/0")).body("{}");
        assert_eq!(c.send(again, 4096, timeout).await.unwrap().status, 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_early_answer_does_not_hold_up_the_next_request() {
        // The server answers 400 after the request head and never reads the 32 MB body:
        // that connection is not reused, and the next request is served at once.
        let (url, _) = keep_alive_server().await;
        let c = SegmentClient::new(RetryPolicy::default()).unwrap();
        let timeout = Duration::from_secs(3);
        let big = c
            .http
            .post(format!("{url}/early"))
            .body(vec![b'x'; 32 << 20]);
        assert_eq!(c.send(big, 4096, timeout).await.unwrap().status, 400);
        // Waiting on the first connection would run into the timeout.
        let next = c.http.post(format!("{url}/0")).body("{}");
        assert_eq!(c.send(next, 4096, timeout).await.unwrap().status, 200);
    }

    fn answer(status: u16, headers: &[(&'static str, &str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Answer {
            status,
            headers: map,
            body: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_rate_limit_reset_never_waits_less_than_the_backoff() {
        let c = SegmentClient::new(RetryPolicy::default()).unwrap();
        // A reset now (or past, or 0 s): without a floor, retries would go back to back.
        let now = std::time::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_secs()
            .to_string();
        for reset in ["0", now.as_str()] {
            let Attempt::Retry {
                retry_after,
                throttled: true,
                ..
            } = Attempt::of(&answer(429, &[("x-ratelimit-reset", reset)]))
            else {
                panic!("a 429 is a throttled retry")
            };
            assert!(
                matches!(retry_after, Some(Wait::AtLeast(_))),
                "{retry_after:?}"
            );
            for retry in 0..4 {
                assert!(c.delay(retry_after, retry) >= Duration::from_millis(250 << retry));
            }
        }
        // A later reset is waited for; Retry-After is taken as said, even 0.
        let later = Attempt::of(&answer(429, &[("x-ratelimit-reset", "20")]));
        let Attempt::Retry { retry_after, .. } = later else {
            panic!()
        };
        assert_eq!(c.delay(retry_after, 0), Duration::from_secs(20));
        let said = Attempt::of(&answer(
            429,
            &[("retry-after", "0"), ("x-ratelimit-reset", "20")],
        ));
        let Attempt::Retry { retry_after, .. } = said else {
            panic!()
        };
        assert_eq!(c.delay(retry_after, 0), Duration::ZERO);
    }

    /// A server that sends `head` and `body_start` and then, by `close`, hangs up or stalls.
    async fn broken_body_server(head: &'static str, close: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let _ = sock.write_all(head.as_bytes()).await;
                    if !close {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn the_status_decides_when_the_body_breaks_off() {
        let c = SegmentClient::new(RetryPolicy::default()).unwrap();
        let timeout = Duration::from_millis(500);
        // A 400 whose body is cut by a hang-up is still a refusal, not a retry.
        let head = "HTTP/1.1 400 Bad Request\r\ncontent-length: 100\r\n\r\n{\"error\":\"bad";
        let url = broken_body_server(head, true).await;
        let a = c
            .send(c.http.post(&url).body("{}"), 4096, timeout)
            .await
            .unwrap();
        assert_eq!(
            (a.status, a.body.as_slice()),
            (400, &b"{\"error\":\"bad"[..])
        );
        assert!(matches!(Attempt::of(&a), Attempt::Refused(400, _)));
        // A 200 whose body never comes is a delivery, answered within the timeout.
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{";
        let url = broken_body_server(head, false).await;
        let started = Instant::now();
        let a = c
            .send(c.http.post(&url).body("{}"), 4096, timeout)
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(Attempt::of(&a), Attempt::Done));
        // No head at all within the timeout is an error.
        let url = broken_body_server("", false).await;
        match c.send(c.http.post(&url).body("{}"), 4096, timeout).await {
            Err(e) => assert!(e.ends_with("timed out after 500ms"), "{e}"),
            Ok(a) => panic!("HTTP {} without a head", a.status),
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        let c = SegmentClient::new(RetryPolicy::default()).unwrap();
        for _ in 0..50 {
            let d0 = c.backoff(0);
            assert!(d0 >= Duration::from_millis(250) && d0 <= Duration::from_millis(500));
            let d3 = c.backoff(3);
            assert!(d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4));
            assert!(c.backoff(30) <= Duration::from_secs(8));
        }
    }
}
