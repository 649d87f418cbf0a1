//! `moe2seg replay`: re-delivers parked events from the dead-letter queue to Segment with the
//! same client, retry rules and `messageId`s, deleting each only after Segment took it.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::deliver::{ChunkOutcome, Deliver, Target};
use crate::map::Mapped;
use crate::park::{Parcel, SqsQueue};

/// What a replay did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    /// Messages received from the queue.
    pub received: usize,
    /// Accepted by Segment (or, in a dry run, printed).
    pub delivered: usize,
    /// Deleted from the queue (only after Segment took them; never in a dry run).
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
    /// Time budget for delivering one received batch.
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

/// Drains the queue (until a receive comes back empty or `max_batches`).
pub async fn replay<D: Deliver>(
    queue: &SqsQueue,
    deliver: &D,
    target: Target<'_>,
    opts: &ReplayOptions,
) -> Result<ReplayReport, String> {
    let mut report = ReplayReport::default();
    for _ in 0..opts.max_batches {
        let got = queue.receive(1, opts.visibility.as_secs() as i32).await?;
        if got.is_empty() {
            break;
        }
        report.received += got.len();
        let mut messages = Vec::new();
        let mut receipts = Vec::new();
        for r in &got {
            match serde_json::from_str::<Parcel<'_>>(&r.body) {
                Ok(p) => {
                    messages.push(Mapped {
                        index: messages.len(),
                        event_uuid: p.event_uuid.map(str::to_owned),
                        message_id: p.message_id.to_owned(),
                        json: p.message.get().to_owned(),
                    });
                    receipts.push(r.receipt_handle.as_str());
                }
                Err(e) => {
                    report.unreadable += 1;
                    tracing::warn!(error = %e, "not a moengage-segment parcel; left in the queue");
                }
            }
        }
        let outcome = deliver
            .deliver(target, &messages, Instant::now() + opts.batch_budget)
            .await;
        let mut done = Vec::new();
        for chunk in &outcome.chunks {
            if chunk.outcome == ChunkOutcome::Delivered {
                done.extend(chunk.range.clone().map(|i| receipts[i]));
            } else {
                report.failed += chunk.range.len();
                tracing::warn!(outcome = ?chunk.outcome, messages = chunk.range.len(), "replay: still not delivered");
            }
        }
        report.delivered += done.len();
        if !opts.dry_run {
            report.deleted += queue.delete(&done).await?;
        }
    }
    Ok(report)
}
