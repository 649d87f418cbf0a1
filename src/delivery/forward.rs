//! The forwarding step, shared by the webhook ([`crate::webhook::handler`]), the redelivery handler
//! ([`crate::delivery::redeliver`]) and `moe2seg replay` ([`crate::delivery::replay`]):
//!
//! 1. **deliver** the messages to Segment, re-reading the secret once if Segment answers
//!    401/403 (a rotated write key);
//! 2. **isolate** what Segment refuses: a batch refused as invalid is split until only the bad
//!    messages are left ([`SegmentClient::deliver`]);
//! 3. **park by reason**: each undelivered message goes where its reason says ([`Plan`]):
//!    transient failures to the parked queue (redelivered automatically), refusals to the
//!    refused queue (kept for a person), or it stays with the caller.
//!
//! The result is one [`Fate`] per message, from which each caller builds its answer: the
//! webhook's HTTP status, the redelivery's batch item failures, replay's deletions.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::delivery::park::{Parcel, ParkError, SqsQueue};
use crate::delivery::segment::{
    ChunkOutcome, ChunkResult, DeliveryReport, DryRun, SegmentClient, Target,
};
use crate::mapping::Mapped;
use crate::mapping::time;
use crate::settings::config::{ConfigError, Endpoints, Region, Secret, Settings};
use crate::settings::secret::{SecretSource, SettingsCache, SettingsError};

/// The queues undelivered events wait in (either may be absent in local runs).
#[derive(Debug, Clone, Default)]
pub struct Queues {
    /// Transient failures, redelivered automatically (`DEAD_LETTER_QUEUE_URL`).
    pub parked: Option<SqsQueue>,
    /// Permanent refusals, kept for a person (`REFUSED_QUEUE_URL`).
    pub refused: Option<SqsQueue>,
}

/// What the process forwards with: one enum instead of flags.
pub enum Mode<S> {
    /// The customer's settings (secret or environment); Segment for real; the queues.
    Live {
        settings: SettingsCache<S>,
        segment: SegmentClient,
        queues: Queues,
    },
    /// Print what would be sent instead of sending it; park nothing. With settings
    /// (`moe2seg invoke --dry-run`) inbound auth is still checked; without, it is skipped.
    DryRun {
        settings: Option<SettingsCache<S>>,
        /// The region requests would go to when there are no settings.
        region: Region,
        printer: DryRun,
    },
    /// The process is misconfigured (e.g. no `SECRET_ID`): everything fails closed with this
    /// reason, instead of the Lambda crashing in a restart loop.
    Unconfigured(String),
}

/// The settings a request is checked against.
pub enum Access {
    /// Check the caller's credentials against these.
    Check(Arc<Settings>),
    /// A dry run without settings: inbound auth is skipped.
    Open,
}

/// Where the messages come from, which decides where the undelivered ones go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// A webhook request: transient failures are parked, refusals set aside (fallback: the
    /// parked queue when there is no refused queue). With no queue they stay (non-2xx).
    Webhook,
    /// Read back from the parked queue (redelivery, replay): transient failures stay there
    /// (tried again later), unless past their redelivery age; those and refusals are set aside.
    FromParked,
    /// Read back from the refused queue (replay): whatever still fails stays there.
    FromRefused,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Segment took it (or, in a dry run, it was printed).
    Delivered,
    /// Sent to the parked queue.
    Parked,
    /// Sent to the refused queue.
    SetAside,
    /// Neither delivered nor moved: the caller keeps it (the webhook answers non-2xx, the
    /// redelivery reports a batch item failure, replay leaves it in its queue).
    Stays,
}

/// Where a message read back from a queue came from (what its new parcel keeps).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub moe_request_id: Option<String>,
    /// Segment requests made for it before.
    pub attempts: u32,
    /// When it was first parked.
    pub parked_at: Option<String>,
    /// Past its redelivery age: set aside if it still fails.
    pub expired: bool,
}

/// Reads a parcel back from a queue: the message to forward and where it came from (not
/// expired: the caller decides that).
pub fn unpack(body: &str) -> Result<(Mapped, Origin), serde_json::Error> {
    let p: Parcel<'_> = serde_json::from_str(body)?;
    let message = Mapped {
        index: 0,
        event_uuid: p.event_uuid.map(Cow::into_owned),
        message_id: p.message_id.into_owned(),
        json: p.message.get().to_owned(),
    };
    let origin = Origin {
        moe_request_id: p.moe_request_id.map(Cow::into_owned),
        attempts: p.attempts,
        parked_at: Some(p.first_parked_at.unwrap_or(p.parked_at)),
        expired: false,
    };
    Ok((message, origin))
}

/// The context of the messages being forwarded, for their parcels.
#[derive(Debug, Clone, Copy)]
pub enum Provenance<'a> {
    /// One MoEngage request (the webhook).
    Request(Option<&'a str>),
    /// Parcels read back from a queue, one [`Origin`] per message.
    Parcels(&'a [Origin]),
}

impl Provenance<'_> {
    fn origin(&self, i: usize) -> (Option<&str>, u32, Option<&str>, bool) {
        match self {
            Provenance::Request(id) => (*id, 0, None, false),
            Provenance::Parcels(o) => o.get(i).map_or((None, 0, None, false), |o| {
                (
                    o.moe_request_id.as_deref(),
                    o.attempts,
                    o.parked_at.as_deref(),
                    o.expired,
                )
            }),
        }
    }
}

/// The outcome of one forwarding step.
#[derive(Debug, Default)]
pub struct Forwarded {
    /// One per message, in order.
    pub fates: Vec<Fate>,
    /// How delivery went (batches, retries, latency).
    pub report: DeliveryReport,
    /// A queue that could not take its messages (they stay).
    pub park_error: Option<ParkError>,
}

impl Forwarded {
    pub fn count(&self, fate: Fate) -> usize {
        self.fates.iter().filter(|f| **f == fate).count()
    }

    /// Indexes of the messages whose fate is `fate`.
    pub fn indexes(&self, fate: Fate) -> impl Iterator<Item = usize> + '_ {
        self.fates
            .iter()
            .enumerate()
            .filter(move |(_, f)| **f == fate)
            .map(|(i, _)| i)
    }

    /// The outcomes of the batches that failed, for a message that stays.
    pub fn failed_outcomes(&self) -> impl Iterator<Item = &ChunkOutcome> {
        self.report
            .chunks
            .iter()
            .filter(|c| {
                c.outcome != ChunkOutcome::Delivered
                    && c.range
                        .clone()
                        .any(|i| self.fates.get(i) == Some(&Fate::Stays))
            })
            .map(|c| &c.outcome)
    }
}

/// Time kept for parking when a queue may be written: this much, plus
/// [`PARK_RESERVE_PER_MESSAGE`] per message (SQS takes 10 per call, 8 calls in flight), never
/// more than a third of the time left.
pub const PARK_RESERVE_BASE: Duration = Duration::from_millis(500);
pub const PARK_RESERVE_PER_MESSAGE: Duration = Duration::from_millis(1);

/// When delivery must stop so that parking `messages` still fits before `deadline`.
pub fn deliver_deadline(now: Instant, deadline: Instant, messages: usize) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let per_message =
        PARK_RESERVE_PER_MESSAGE.saturating_mul(u32::try_from(messages).unwrap_or(u32::MAX));
    let reserve = PARK_RESERVE_BASE.saturating_add(per_message).min(left / 3);
    deadline.checked_sub(reserve).unwrap_or(deadline)
}

/// `read` (the secret), unless `deadline` comes first: then the settings count as
/// unavailable (a stalled Secrets Manager must not keep the invocation from answering).
pub async fn by_deadline<T>(
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

/// Forwards messages to Segment: the one forwarding step (module docs).
pub struct Forwarder<S> {
    pub mode: Mode<S>,
    pub endpoints: Endpoints,
}

impl<S: SecretSource> Forwarder<S> {
    /// Live forwarding with the customer's settings, Segment and the queues.
    pub fn live(
        settings: SettingsCache<S>,
        segment: SegmentClient,
        endpoints: Endpoints,
        queues: Queues,
    ) -> Self {
        Forwarder {
            mode: Mode::Live {
                settings,
                segment,
                queues,
            },
            endpoints,
        }
    }

    /// The queues, when forwarding for real.
    pub fn queues(&self) -> Option<&Queues> {
        match &self.mode {
            Mode::Live { queues, .. } => Some(queues),
            Mode::DryRun { .. } | Mode::Unconfigured(_) => None,
        }
    }

    /// The queues, to change them (tests, local runs).
    pub fn queues_mut(&mut self) -> Option<&mut Queues> {
        match &mut self.mode {
            Mode::Live { queues, .. } => Some(queues),
            Mode::DryRun { .. } | Mode::Unconfigured(_) => None,
        }
    }

    fn settings_cache(&self) -> Option<&SettingsCache<S>> {
        match &self.mode {
            Mode::Live { settings, .. } => Some(settings),
            Mode::DryRun { settings, .. } => settings.as_ref(),
            Mode::Unconfigured(_) => None,
        }
    }

    /// The settings requests are checked against, read before `deadline`.
    pub async fn access(&self, deadline: Instant) -> Result<Access, SettingsError> {
        match (&self.mode, self.settings_cache()) {
            (Mode::Unconfigured(why), _) => Err(SettingsError::Invalid(ConfigError::BadEnv(
                "configuration",
                why.clone(),
            ))),
            (_, Some(cache)) => by_deadline(deadline, cache.get()).await.map(Access::Check),
            (_, None) => Ok(Access::Open),
        }
    }

    /// Reads the settings now (Lambda Init), so the first request does not wait for them;
    /// the region requests go to.
    pub async fn prefetch(&self) -> Result<Option<Region>, SettingsError> {
        match self.settings_cache() {
            Some(cache) => cache.get().await.map(|s| Some(s.region)),
            None => self.access(Instant::now()).await.map(|_| None),
        }
    }

    /// Delivers `messages` and parks the undelivered ones by reason, all before `deadline`.
    pub async fn forward(
        &self,
        messages: &[Mapped],
        provenance: Provenance<'_>,
        plan: Plan,
        deadline: Instant,
    ) -> Forwarded {
        if messages.is_empty() {
            return Forwarded::default();
        }
        // Moving messages must fit before the deadline too: delivery stops early enough to
        // leave it a slice of the time.
        let may_park = self
            .queues()
            .is_some_and(|q| q.parked.is_some() || q.refused.is_some());
        let deliver_by = if may_park && plan != Plan::FromRefused {
            deliver_deadline(Instant::now(), deadline, messages.len())
        } else {
            deadline
        };
        let report = self.deliver(messages, deliver_by).await;
        let mut fates = vec![Fate::Stays; messages.len()];
        for c in &report.chunks {
            if c.outcome == ChunkOutcome::Delivered {
                for f in &mut fates[c.range.clone()] {
                    *f = Fate::Delivered;
                }
            }
        }
        let mut forwarded = Forwarded {
            fates,
            report,
            park_error: None,
        };
        if let Some(queues) = self.queues() {
            settle(queues, messages, provenance, plan, &mut forwarded, deadline).await;
        }
        forwarded
    }

    /// Delivers (or prints, in a dry run).
    async fn deliver(&self, messages: &[Mapped], deadline: Instant) -> DeliveryReport {
        match &self.mode {
            Mode::Unconfigured(why) => {
                not_attempted(messages, &format!("the function is not configured: {why}"))
            }
            Mode::DryRun {
                settings,
                region,
                printer,
            } => {
                let settings = match settings {
                    Some(cache) => by_deadline(deadline, cache.get()).await.ok(),
                    None => None,
                };
                let no_key = Secret::default();
                let target = Target {
                    base_url: self
                        .endpoints
                        .base(settings.as_ref().map_or(*region, |s| s.region)),
                    write_key: settings.as_ref().map_or(&no_key, |s| &s.write_key),
                };
                printer.deliver(target, messages, deadline).await
            }
            Mode::Live {
                settings, segment, ..
            } => {
                self.deliver_live(settings, segment, messages, deadline)
                    .await
            }
        }
    }

    /// Delivers to Segment, re-reading the secret once if Segment says the write key is
    /// wrong, and sending the batches it refused again with the new key.
    async fn deliver_live(
        &self,
        settings: &SettingsCache<S>,
        segment: &SegmentClient,
        messages: &[Mapped],
        deadline: Instant,
    ) -> DeliveryReport {
        let old = match by_deadline(deadline, settings.get()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the secret to deliver");
                return not_attempted(messages, &e.to_string());
            }
        };
        let target = Target {
            base_url: self.endpoints.base(old.region),
            write_key: &old.write_key,
        };
        let mut report = segment.deliver(target, messages, deadline).await;
        let unauthorized: Vec<usize> = report
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.outcome, ChunkOutcome::Unauthorized(_)))
            .map(|(i, _)| i)
            .collect();
        if unauthorized.is_empty() {
            return report;
        }
        tracing::warn!("Segment answered 401/403; re-reading the secret (write key rotation?)");
        let fresh = match by_deadline(deadline, settings.refresh()).await {
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
            let earlier = report.chunks[i].attempts;
            let again = segment
                .deliver(target, &messages[range.clone()], deadline)
                .await;
            report.retries += again.retries + 1;
            report.latency += again.latency;
            report.split_requests += again.split_requests;
            // The batch may have been split: its place is taken by the new batches, so that
            // each message keeps its own outcome.
            let mut again = again.chunks.into_iter().map(|c| ChunkResult {
                range: c.range.start + range.start..c.range.end + range.start,
                attempts: c.attempts + earlier,
                outcome: c.outcome,
            });
            if let Some(first) = again.next() {
                report.chunks[i] = first;
                report.chunks.extend(again);
            }
        }
        report.chunks.sort_by_key(|c| c.range.start);
        report
    }
}

/// A report where no batch was attempted (settings unreadable, not configured).
fn not_attempted(messages: &[Mapped], why: &str) -> DeliveryReport {
    DeliveryReport {
        chunks: vec![ChunkResult {
            range: 0..messages.len(),
            outcome: ChunkOutcome::GaveUp {
                last_error: why.to_owned(),
            },
            attempts: 0,
        }],
        ..DeliveryReport::default()
    }
}

/// Which queue an undelivered message goes to under `plan`, by its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Parked,
    Refused,
    Stay,
}

fn destination(plan: Plan, outcome: &ChunkOutcome, expired: bool, queues: &Queues) -> To {
    let refused = matches!(outcome, ChunkOutcome::Refused { .. });
    let to = match plan {
        Plan::Webhook if refused => To::Refused,
        Plan::Webhook => To::Parked,
        Plan::FromParked if refused || expired => To::Refused,
        Plan::FromParked | Plan::FromRefused => To::Stay,
    };
    match to {
        To::Refused if queues.refused.is_some() => To::Refused,
        // Without a refused queue, the webhook parks refusals (they are redelivered, and
        // refused again, until a refused queue exists or the parked queue's redrive policy
        // moves them); read-back messages stay.
        To::Refused if plan == Plan::Webhook && queues.parked.is_some() => To::Parked,
        To::Parked if queues.parked.is_some() => To::Parked,
        _ => To::Stay,
    }
}

/// Parks each undelivered message by reason; a queue that fails leaves its messages staying.
async fn settle(
    queues: &Queues,
    messages: &[Mapped],
    provenance: Provenance<'_>,
    plan: Plan,
    forwarded: &mut Forwarded,
    deadline: Instant,
) {
    let now = time::format_millis(time::now_millis());
    let mut parked: (Vec<usize>, Vec<String>) = Default::default();
    let mut refused: (Vec<usize>, Vec<String>) = Default::default();
    // Refused or expired messages kept in the parked queue for want of a refused queue.
    let mut stranded = 0usize;
    for chunk in &forwarded.report.chunks {
        let Some((reason, detail)) = chunk.outcome.failure() else {
            continue;
        };
        for i in chunk.range.clone() {
            let (moe_request_id, attempts, first_parked_at, expired) = provenance.origin(i);
            let to = destination(plan, &chunk.outcome, expired, queues);
            let set_aside = expired || matches!(chunk.outcome, ChunkOutcome::Refused { .. });
            if to == To::Stay && plan == Plan::FromParked && set_aside {
                stranded += 1;
            }
            let (list, reason) = match to {
                To::Stay => continue,
                To::Parked => (&mut parked, reason),
                To::Refused if expired && reason != "segment_refused" => {
                    (&mut refused, "redelivery_expired")
                }
                To::Refused => (&mut refused, reason),
            };
            let m = &messages[i];
            match parcel(
                m,
                reason,
                &detail,
                moe_request_id,
                attempts.saturating_add(chunk.attempts),
                &now,
                first_parked_at,
            ) {
                Ok(body) => {
                    list.0.push(i);
                    list.1.push(body);
                }
                Err(e) => {
                    // Every message gets a parcel or stays: a parcel silently skipped would be
                    // an event lost behind a 2xx.
                    tracing::error!(message_id = %m.message_id, error = %e, "cannot write a parcel");
                }
            }
        }
    }
    if stranded > 0 {
        tracing::error!(
            events = stranded,
            "no refused queue (REFUSED_QUEUE_URL): refused or expired events stay in the parked queue, which deletes them when its retention ends; set REFUSED_QUEUE_URL"
        );
    }
    // Both queues at once: a hanging one does not eat the other's time. The webhook gives
    // the refused queue half the time left, so that the fallback below still fits.
    let refused_by = match plan == Plan::Webhook && queues.parked.is_some() {
        true => {
            let now = Instant::now();
            now + deadline.saturating_duration_since(now) / 2
        }
        false => deadline,
    };
    let (to_parked, to_refused) = tokio::join!(
        send(
            queues.parked.as_ref(),
            &parked.1,
            "the parked queue",
            deadline
        ),
        send(
            queues.refused.as_ref(),
            &refused.1,
            "the refused queue",
            refused_by
        ),
    );
    // The webhook must not answer 503 for refusals alone (MoEngage would re-send the whole
    // request and park its transient failures again): when the refused queue fails, they go
    // to the parked queue, from which redelivery sets them aside later.
    let to_refused = match (to_refused, plan, queues.parked.as_ref(), &to_parked) {
        (Some(Err(e)), Plan::Webhook, Some(q), None | Some(Ok(()))) => {
            tracing::error!(error = %e, "setting refusals aside failed; parking them instead");
            let fallback = q.park("the parked queue", &refused.1, deadline).await;
            for i in fallback.is_ok().then_some(&refused.0).into_iter().flatten() {
                forwarded.fates[*i] = Fate::Parked;
            }
            fallback.err().map(Err)
        }
        (other, ..) => other,
    };
    for (result, indexes, fate) in [
        (to_parked, &parked.0, Fate::Parked),
        (to_refused, &refused.0, Fate::SetAside),
    ] {
        match result {
            Some(Ok(())) => {
                for i in indexes {
                    forwarded.fates[*i] = fate;
                }
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, messages = indexes.len(), "parking failed");
                forwarded.park_error.get_or_insert(e);
            }
            None => {}
        }
    }
}

/// Parks `bodies` in `queue`; `None` when there is nothing to send (or no queue).
async fn send(
    queue: Option<&SqsQueue>,
    bodies: &[String],
    name: &'static str,
    deadline: Instant,
) -> Option<Result<(), ParkError>> {
    match queue {
        Some(q) if !bodies.is_empty() => Some(q.park(name, bodies, deadline).await),
        _ => None,
    }
}

/// The queue record of one message.
fn parcel(
    m: &Mapped,
    reason: &str,
    detail: &str,
    moe_request_id: Option<&str>,
    attempts: u32,
    now: &str,
    first_parked_at: Option<&str>,
) -> Result<String, serde_json::Error> {
    let message = RawValue::from_string(m.json.clone())?;
    serde_json::to_string(&Parcel {
        version: 1,
        reason: reason.into(),
        detail: detail.to_owned(),
        moe_request_id: moe_request_id.map(Cow::Borrowed),
        event_uuid: m.event_uuid.as_deref().map(Cow::Borrowed),
        message_id: Cow::Borrowed(&m.message_id),
        attempts,
        parked_at: now.to_owned(),
        first_parked_at: first_parked_at.map(str::to_owned),
        message: &message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(url: &str) -> SqsQueue {
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .build();
        SqsQueue::new(aws_sdk_sqs::Client::from_conf(conf), url)
    }

    #[test]
    fn parking_gets_a_slice_that_grows_with_the_messages() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(24);
        let reserve = |n| deadline - deliver_deadline(now, deadline, n);
        assert_eq!(reserve(0), Duration::from_millis(500));
        assert_eq!(reserve(100), Duration::from_millis(600));
        assert_eq!(reserve(5_000), Duration::from_millis(5_500));
        // Never more than a third of what is left.
        assert_eq!(reserve(usize::MAX), Duration::from_secs(8));
        let soon = now + Duration::from_millis(300);
        assert_eq!(
            soon - deliver_deadline(now, soon, 100),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn each_reason_goes_where_the_plan_says() {
        let both = Queues {
            parked: Some(queue("http://127.0.0.1:1/parked")),
            refused: Some(queue("http://127.0.0.1:1/refused")),
        };
        let parked_only = Queues {
            parked: both.parked.clone(),
            refused: None,
        };
        let none = Queues::default();
        let down = ChunkOutcome::GaveUp {
            last_error: "HTTP 503".into(),
        };
        let key = ChunkOutcome::Unauthorized(401);
        let bad = ChunkOutcome::Refused {
            status: 400,
            detail: "invalid".into(),
        };
        use Plan::*;
        use To::*;
        let cases = [
            (Webhook, &down, false, &both, Parked),
            (Webhook, &key, false, &both, Parked),
            (Webhook, &bad, false, &both, Refused),
            (Webhook, &bad, false, &parked_only, Parked),
            (Webhook, &down, false, &none, Stay),
            (FromParked, &down, false, &both, Stay),
            (FromParked, &key, false, &both, Stay),
            (FromParked, &down, true, &both, Refused),
            (FromParked, &bad, false, &both, Refused),
            (FromParked, &bad, false, &parked_only, Stay),
            (FromRefused, &bad, false, &both, Stay),
            (FromRefused, &down, true, &both, Stay),
        ];
        for (plan, outcome, expired, queues, want) in cases {
            assert_eq!(
                destination(plan, outcome, expired, queues),
                want,
                "{plan:?} {outcome:?} expired={expired}"
            );
        }
    }
}
