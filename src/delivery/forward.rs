//! The forwarding step, shared by the webhook, the redelivery handler
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

use std::sync::Arc;
use std::time::Instant;

use crate::delivery::budget::{by_deadline, deliver_deadline};
use crate::delivery::outcome::{Fate, Forwarded, Plan, Provenance, Queues};
use crate::delivery::segment::{
    ChunkOutcome, ChunkResult, DeliveryReport, DryRun, SegmentClient, Target,
};
use crate::delivery::settle::settle;
use crate::mapping::Mapped;
use crate::settings::config::{ConfigError, Endpoints, Region, Secret, Settings};
use crate::settings::secret::{SecretSource, SettingsCache, SettingsError};

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

    /// Puts every request to Segment under `pacer` (a ceiling on requests per second).
    pub fn pace(&mut self, pacer: std::sync::Arc<crate::delivery::pacer::Pacer>) {
        if let Mode::Live { segment, .. } = &mut self.mode {
            *segment = segment.clone().with_pacer(pacer);
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
            let again = segment
                .deliver(target, &messages[range.clone()], deadline)
                .await;
            report.replace(i, again);
        }
        report.chunks.sort_by_key(|c| c.range.start);
        report
    }
}

impl DeliveryReport {
    /// Puts what sending batch `i` again gave in its place (it may have been split: the new
    /// batches take its place, so that each message keeps its own outcome).
    fn replace(&mut self, i: usize, again: DeliveryReport) {
        let range = self.chunks[i].range.clone();
        let earlier = self.chunks[i].attempts;
        self.retries += again.retries + 1;
        self.latency += again.latency;
        self.split_requests += again.split_requests;
        let mut again = again.chunks.into_iter().map(|c| ChunkResult {
            range: c.range.start + range.start..c.range.end + range.start,
            attempts: c.attempts + earlier,
            outcome: c.outcome,
        });
        if let Some(first) = again.next() {
            self.chunks[i] = first;
            self.chunks.extend(again);
        }
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
