//! What one invocation did with its events, counted once ([`Tally`]) for its summary log
//! line and its metrics, whichever function ran.

use std::time::Duration;

use crate::delivery::outcome::{Fate, Forwarded};
use crate::telemetry::metrics::InvocationMetrics;

/// What happened, for the log line and metrics.
#[derive(Debug, Default)]
pub struct Tally {
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

/// Logs what kept batches out of Segment (the answer only carries a stable code).
pub fn log_failures(forwarded: &Forwarded) {
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
