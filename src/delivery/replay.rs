//! `moe2seg replay --queue URL`: drains a queue by hand through the same [`Forwarder`] as
//! the webhook and the redelivery handler (same client, retry rules, `messageId`s, and the
//! secret re-read on a Segment 401). Each message is deleted only once it is in Segment, or
//! set aside in the refused queue (when replaying the parked queue); what still fails stays.
//!
//! Replaying the refused queue (after fixing what Segment refused) moves nothing: a message
//! Segment still refuses stays in it.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::delivery::forward::Forwarder;
use crate::delivery::outcome::{Fate, Plan, Provenance, Unpacked};
use crate::delivery::park::SqsQueue;
use crate::settings::secret::SecretSource;

/// What a replay did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    /// Messages received from the queue.
    pub received: usize,
    /// Accepted by Segment (or, in a dry run, printed).
    pub delivered: usize,
    /// Moved to the refused queue (replaying the parked queue only).
    pub set_aside: usize,
    /// Deleted from the queue (delivered or set aside; never in a dry run).
    pub deleted: usize,
    /// Still refused or failing: left in the queue (visible again after the timeout).
    pub failed: usize,
    /// Not a parcel this tool wrote: left in the queue.
    pub unreadable: usize,
}

/// Options of a replay run.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// How long received messages stay hidden from other consumers.
    pub visibility: Duration,
    /// Time budget for forwarding one received batch.
    pub batch_budget: Duration,
    /// Stop after this many receive calls (a bound on the run).
    pub max_batches: usize,
    /// Print instead of sending; delete nothing.
    pub dry_run: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            visibility: Duration::from_secs(300),
            batch_budget: Duration::from_secs(60),
            max_batches: 100_000,
            dry_run: false,
        }
    }
}

/// The plan for messages read back from `queue`: only the configured parked queue
/// (`DEAD_LETTER_QUEUE_URL`, compared by queue name) sets refusals aside in the refused queue;
/// any other queue (the refused queue, however its URL is written) moves nothing, so a message
/// is never sent back into the queue it is read from.
pub fn plan_for<S: SecretSource>(forwarder: &Forwarder<S>, queue: &SqsQueue) -> Plan {
    let queues = forwarder.queues();
    let is_parked = queues
        .and_then(|q| q.parked.as_ref())
        .is_some_and(|p| p.name() == queue.name());
    let refused_elsewhere = queues
        .and_then(|q| q.refused.as_ref())
        .is_some_and(|r| r.name() != queue.name());
    if is_parked && refused_elsewhere {
        Plan::FromParked
    } else {
        Plan::FromRefused
    }
}

/// Drains the queue (until a receive comes back empty or `max_batches`).
pub async fn replay<S: SecretSource>(
    queue: &SqsQueue,
    forwarder: &Forwarder<S>,
    opts: &ReplayOptions,
) -> Result<ReplayReport, String> {
    let plan = plan_for(forwarder, queue);
    let mut report = ReplayReport::default();
    for _ in 0..opts.max_batches {
        let got = queue.receive(1, opts.visibility.as_secs() as i32).await?;
        if got.is_empty() {
            break;
        }
        report.received += got.len();
        let Unpacked {
            messages,
            origins,
            record_of,
            unreadable,
        } = Unpacked::read(got.iter().map(|r| Some(r.body.as_str())));
        for (_, e) in &unreadable {
            report.unreadable += 1;
            tracing::warn!(error = %e, "not a moengage-segment parcel; left in the queue");
        }
        let receipts: Vec<&str> = record_of
            .iter()
            .map(|&r| got[r].receipt_handle.as_str())
            .collect();
        let forwarded = forwarder
            .forward(
                &messages,
                Provenance::Parcels(&origins),
                plan,
                Instant::now() + opts.batch_budget,
            )
            .await;
        report.delivered += forwarded.count(Fate::Delivered);
        report.set_aside += forwarded.count(Fate::SetAside);
        report.failed += forwarded.count(Fate::Stays);
        for c in &forwarded.report.chunks {
            if c.outcome != crate::delivery::segment::ChunkOutcome::Delivered {
                tracing::warn!(outcome = ?c.outcome, messages = c.range.len(), "replay: not delivered");
            }
        }
        let done: Vec<&str> = forwarded
            .fates
            .iter()
            .zip(&receipts)
            .filter(|(f, _)| matches!(f, Fate::Delivered | Fate::SetAside))
            .map(|(_, r)| *r)
            .collect();
        if !opts.dry_run {
            report.deleted += queue.delete(&done).await?;
        }
    }
    Ok(report)
}
