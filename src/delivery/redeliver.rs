//! Automatic redelivery: the parked queue's SQS event source invokes the redelivery function
//! with up to 100 parked events; each is sent again through the same [`Forwarder`] (same
//! client, retry rules and `messageId`s as the webhook), and the answer is Lambda's partial
//! batch response:
//!
//! - delivered → success (Lambda deletes it from the parked queue);
//! - refused by Segment for good, or still failing past `REDELIVERY_MAX_AGE_HOURS` → moved to
//!   the refused queue → success;
//! - still failing (Segment down, the write key wrong) → a batch item failure, hidden for a
//!   time that doubles with each receive ([`visibility_after`]: 30 s, 1 min, 2 min, … capped
//!   at 1 h), so a long outage costs a few invocations an hour, not a hot loop;
//! - a record that is not a parcel → moved to the refused queue as it is (never deleted).
//!
//! The function answers every record: it never fails the invocation as a whole.

use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use crate::delivery::budget::Budget;
use crate::delivery::forward::Forwarder;
use crate::delivery::outcome::{Fate, Plan, Provenance, Unpacked};
use crate::delivery::tally::{Tally, log_failures};
use crate::mapping::time;
use crate::settings::config::DEFAULT_REDELIVERY_MAX_AGE_HOURS;
use crate::settings::secret::SecretSource;
use crate::telemetry::metrics::MetricsSink;

/// The receive count SQS gives a record (`ApproximateReceiveCount`: 1 the first time;
/// unreadable counts as 1).
fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
}

/// When SQS first received the record (`SentTimestamp`, epoch milliseconds).
fn sent_at_ms(record: &SqsMessage) -> Option<i64> {
    record
        .attributes
        .get("SentTimestamp")
        .and_then(|v| v.trim().parse().ok())
}

/// First hiding time of a message that still fails.
pub const FIRST_VISIBILITY: Duration = Duration::from_secs(30);
/// Longest hiding time: about one try an hour during a long outage.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(3600);

/// How long a message received `receive_count` times is hidden after it failed again:
/// 30 s doubled with each receive, at most an hour.
pub fn visibility_after(receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    FIRST_VISIBILITY
        .saturating_mul(1 << doublings)
        .min(MAX_VISIBILITY)
}

/// The receipt handle and hiding time of each failed record.
fn hiding<'r>(records: &'r [SqsMessage], failed: &[usize]) -> Vec<(&'r str, Duration)> {
    failed
        .iter()
        .filter_map(|r| records.get(*r))
        .filter_map(|r| {
            let receipt = r.receipt_handle.as_deref().filter(|h| !h.is_empty())?;
            Some((receipt, visibility_after(receive_count(r))))
        })
        .collect()
}

/// The redelivery function's handler: parked events in, a partial batch response out.
pub struct Redelivery<S> {
    pub forwarder: Forwarder<S>,
    pub budget: Budget,
    pub metrics: MetricsSink,
    /// How long a parked event is redelivered before it is set aside.
    pub max_age: Duration,
}

impl<S: SecretSource> Redelivery<S> {
    pub fn new(forwarder: Forwarder<S>) -> Self {
        Redelivery {
            forwarder,
            budget: Budget::default(),
            metrics: MetricsSink::Off,
            max_age: Duration::from_secs(DEFAULT_REDELIVERY_MAX_AGE_HOURS * 3600),
        }
    }

    /// Redelivers the parked events of an SQS event; never fails, answers per record.
    pub async fn redeliver(
        &self,
        event: SqsEvent,
        lambda_deadline_ms: Option<u64>,
    ) -> SqsBatchResponse {
        let started = Instant::now();
        let deadline = self.budget.deadline(lambda_deadline_ms);
        let records = event.records;
        let Unpacked {
            messages,
            origins,
            record_of,
            unreadable,
        } = self.unpack(&records);
        let unreadable: Vec<usize> = unreadable.iter().map(|(r, _)| *r).collect();
        // Records that are not parcels first (they are few, and must not starve behind a long
        // delivery).
        let unreadable_moved = self.set_aside_raw(&records, &unreadable, deadline).await;
        let forwarded = self
            .forwarder
            .forward(
                &messages,
                Provenance::Parcels(&origins),
                Plan::FromParked,
                deadline,
            )
            .await;
        let mut failed: Vec<usize> = forwarded
            .indexes(Fate::Stays)
            .map(|i| record_of[i])
            .collect();
        if !unreadable_moved {
            failed.extend(&unreadable);
        }
        failed.sort_unstable();
        // Hiding is bounded too, half-way into the margin kept before Lambda's own deadline
        // (if it does not finish, the queue's default visibility applies).
        let hide_by = deadline + self.budget.margin / 2;
        self.hide_failed(&records, &failed, hide_by).await;
        let mut tally = Tally {
            received: records.len(),
            ..Tally::default()
        };
        tally.add(&forwarded);
        if unreadable_moved {
            tally.refused += unreadable.len();
        }
        log_failures(&forwarded);
        self.report(&tally, failed.len(), unreadable.len(), started);
        let mut answer = SqsBatchResponse::default();
        answer.set_failures(
            failed
                .into_iter()
                .map(|r| records[r].message_id.clone().unwrap_or_default()),
        );
        answer
    }

    /// Reads each record back into a message (its age against [`Redelivery::max_age`]), or
    /// notes (and logs) it as not a parcel.
    fn unpack(&self, records: &[SqsMessage]) -> Unpacked {
        let now_ms = time::now_millis();
        let mut read = Unpacked::read(records.iter().map(|r| r.body.as_deref()));
        for (origin, &r) in read.origins.iter_mut().zip(&read.record_of) {
            let age_ms = sent_at_ms(&records[r]).map_or(0, |sent| now_ms.saturating_sub(sent));
            origin.expired = u128::try_from(age_ms).unwrap_or(0) > self.max_age.as_millis();
        }
        for (r, e) in &read.unreadable {
            let id = records[*r].message_id.as_deref().unwrap_or_default();
            tracing::warn!(
                sqs_message_id = %crate::excerpt::excerpt(id, 100),
                error = %e,
                "not a moengage-segment parcel; setting it aside in the refused queue"
            );
        }
        read
    }

    /// The summary log line and the metrics of one invocation.
    fn report(&self, tally: &Tally, still_parked: usize, unreadable: usize, started: Instant) {
        let mut metrics = tally.metrics();
        metrics.redelivered = metrics.forwarded;
        metrics.forwarded = 0;
        macro_rules! summary {
            ($lvl:ident) => {
                tracing::$lvl!(
                    records = tally.received,
                    redelivered = tally.forwarded,
                    refused = tally.refused,
                    still_parked,
                    unreadable,
                    retries = tally.retries,
                    segment_requests = tally.requests,
                    segment_latency_ms = tally.segment_latency.as_millis() as u64,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "redelivery summary"
                )
            };
        }
        if still_parked > 0 {
            summary!(warn);
        } else {
            summary!(info);
        }
        self.metrics.emit(&metrics, None, time::now_millis());
    }

    /// Moves records that are not parcels to the refused queue unchanged; `true` when they
    /// are there (or there were none).
    async fn set_aside_raw(
        &self,
        records: &[SqsMessage],
        which: &[usize],
        deadline: Instant,
    ) -> bool {
        if which.is_empty() {
            return true;
        }
        let Some(refused) = self.forwarder.queues().and_then(|q| q.refused.as_ref()) else {
            return false;
        };
        let bodies: Vec<String> = which
            .iter()
            .map(|r| records[*r].body.clone().unwrap_or_default())
            .collect();
        match refused.park("the refused queue", &bodies, deadline).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "setting aside records that are not parcels failed");
                false
            }
        }
    }

    /// Hides the records that still fail for [`visibility_after`] their receive count, by
    /// `hide_by`.
    async fn hide_failed(&self, records: &[SqsMessage], failed: &[usize], hide_by: Instant) {
        let hide = self.hide(records, failed);
        if tokio::time::timeout_at(hide_by.into(), hide).await.is_err() {
            tracing::warn!(
                "extending visibility timeouts did not finish in time; the queue's default applies"
            );
        }
    }

    async fn hide(&self, records: &[SqsMessage], failed: &[usize]) {
        let Some(parked) = self.forwarder.queues().and_then(|q| q.parked.as_ref()) else {
            return;
        };
        let receipts = hiding(records, failed);
        if receipts.is_empty() {
            return;
        }
        match parked.hide(&receipts).await {
            Ok(n) if n == receipts.len() => {}
            Ok(n) => tracing::warn!(
                hidden = n,
                failed = receipts.len(),
                "SQS did not extend every visibility timeout; the queue's default applies"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "extending visibility timeouts failed; the queue's default applies"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_30_seconds_to_an_hour() {
        let secs: Vec<u64> = (0..=12).map(|n| visibility_after(n).as_secs()).collect();
        assert_eq!(
            secs,
            [
                30, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600, 3600
            ]
        );
        assert_eq!(visibility_after(u32::MAX), MAX_VISIBILITY);
    }

    #[test]
    fn a_day_of_outage_costs_a_few_dozen_receives() {
        // Receives within 24 h at the backoff schedule.
        let (mut t, mut n) = (0u64, 0u32);
        while t < 24 * 3600 {
            n += 1;
            t += visibility_after(n).as_secs();
        }
        assert!(n <= 32, "{n} receives in a day");
    }

    #[test]
    fn each_failed_record_is_hidden_by_its_own_receive_count() {
        let record = |n: &str, receipts: &str| {
            let mut r = SqsMessage::default();
            r.message_id = Some(format!("id-{receipts}"));
            r.receipt_handle = Some(receipts.into());
            r.attributes
                .insert("ApproximateReceiveCount".into(), n.into());
            r.event_source = Some("aws:sqs".into());
            r
        };
        let records = [
            record("1", "a"),
            record("4", "b"),
            record("40", "c"),
            record("x", "d"),
            record("2", ""),
        ];
        assert_eq!(
            hiding(&records, &[0, 1, 2, 3, 4, 99]),
            [
                ("a", Duration::from_secs(30)),
                ("b", Duration::from_secs(240)),
                ("c", Duration::from_secs(3600)),
                // An unreadable count counts as a first receive.
                ("d", Duration::from_secs(30)),
            ]
        );
    }

    #[test]
    fn sqs_events_parse_with_their_attributes() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/sqs-parked.json"),
        )
        .unwrap();
        let event: SqsEvent = serde_json::from_str(&text).unwrap();
        assert!(!event.records.is_empty());
        for r in &event.records {
            assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
            assert!(receive_count(r) >= 1);
            assert!(sent_at_ms(r).is_some());
            crate::delivery::outcome::unpack(r.body.as_deref().unwrap()).unwrap();
        }
        let mut answer = SqsBatchResponse::default();
        answer.add_failure("id-1");
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"id-1"}]}"#
        );
    }
}
