//! The backfill function (`BackfillFunction`): a child of the state machine's Distributed
//! Map, given a batch of the export prefix's S3 objects (`ItemBatcher`) and the window. It
//! backfills them like `moe2seg backfill` (no checkpoint: a retried batch re-sends its
//! messages, which Segment deduplicates by `messageId`) and answers a summary, or fails with
//! `BackfillIncomplete` when an object could not be finished (the state machine retries the
//! batch, then fails the Map Run: nothing is lost silently).

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::delivery::budget::Budget;
use crate::delivery::forward::Forwarder;
use crate::mapping::options::MappingOptions;
use crate::mapping::time;
use crate::settings::secret::SecretSource;

use super::report::{FileEnd, Rejects, Summary};
use super::source::Listed;
use super::{Cancel, Run, Window, file};

/// What a Distributed Map child is given: the batch's objects and the execution's input.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchEvent {
    #[serde(rename = "BatchInput")]
    pub input: BatchInput,
    #[serde(rename = "Items")]
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BatchInput {
    pub bucket: String,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
}

/// One object, as the S3 `listObjectsV2` item reader gives it.
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Size", default)]
    pub size: u64,
}

/// What the function answers for a batch it finished.
#[derive(Debug, Serialize)]
pub struct BatchAnswer {
    #[serde(flatten)]
    pub summary: Summary,
    /// Keys passed over: not export files (folders, other suffixes).
    pub skipped: Vec<String>,
}

/// Why a batch fails; the error type is what the state machine's `Retry` matches.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// An object could not be finished (Segment unavailable, S3 failed, out of time): the
    /// state machine retries the batch.
    #[error("not finished: {0}")]
    Incomplete(String),
    /// The input is not a batch of this state machine (retrying will not help).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The settings cannot be read or are invalid (retrying may help once they are fixed).
    #[error("settings: {0}")]
    Settings(String),
}

impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(e: BatchError) -> Self {
        let error_type = match &e {
            BatchError::Incomplete(_) | BatchError::Settings(_) => "BackfillIncomplete",
            BatchError::InvalidInput(_) => "InvalidInput",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The backfill function's handler.
pub struct BackfillFunction<S> {
    pub forwarder: Forwarder<S>,
    pub budget: Budget,
    /// The AWS configuration the S3 client is made with.
    pub aws: Option<aws_config::SdkConfig>,
    /// `MAPPING_OPTIONS` (a run without settings).
    pub open_mapping: Arc<MappingOptions>,
}

impl<S: SecretSource> BackfillFunction<S> {
    /// Backfills one batch before the Lambda deadline (`lambda_deadline_ms`, epoch ms).
    pub async fn handle(
        &self,
        event: BatchEvent,
        lambda_deadline_ms: Option<u64>,
    ) -> Result<BatchAnswer, BatchError> {
        let deadline = self.budget.deadline(lambda_deadline_ms);
        let window = window(&event.input)?;
        let mapping = super::mapping_options(&self.forwarder, deadline, &self.open_mapping)
            .await
            .map_err(BatchError::Settings)?;
        let listed = listed(&event);
        // Lines stop being read early enough for the batches in flight to finish.
        let left = deadline.saturating_duration_since(Instant::now());
        let run = Run {
            forwarder: &self.forwarder,
            mapping,
            window,
            concurrency: 2,
            batch_budget: (left / 3).min(file::DEFAULT_BATCH_BUDGET),
            deadline: Some(deadline),
            checkpoint: None,
            rejects: Rejects::log(),
            cancel: Arc::new(Cancel::default()),
            read_bytes: Arc::default(),
            counts_sent: Default::default(),
            s3: Default::default(),
            aws: self.aws.clone(),
        };
        let stop_at = deadline.checked_sub(left / 3).unwrap_or(deadline);
        let cancel = run.cancel.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(stop_at.into()).await;
            cancel.set();
        });
        let unfinished = std::sync::Mutex::new(Vec::new());
        let summary = run
            .run(&listed, |file, end| {
                if let FileEnd::Unfinished { why } = end
                    && let Ok(mut u) = unfinished.lock()
                {
                    u.push(format!("{}: {why}", file.name));
                }
            })
            .await;
        timer.abort();
        tracing::info!(summary = %summary.human(), "backfill batch");
        if summary.files_unfinished > 0 {
            return Err(incomplete(
                &summary,
                unfinished.into_inner().unwrap_or_default(),
            ));
        }
        Ok(BatchAnswer {
            summary,
            skipped: listed.skipped.into_iter().map(|(name, _)| name).collect(),
        })
    }
}

/// The error of a batch with unfinished objects (`why`: one line each).
fn incomplete(summary: &Summary, mut why: Vec<String>) -> BatchError {
    if summary.interrupted {
        why.push("out of time before the Lambda deadline".to_owned());
    }
    BatchError::Incomplete(format!(
        "{} of {} objects ({})",
        summary.files_unfinished,
        summary.files,
        why.join("; ")
    ))
}

/// The batch's window (`since`, `until`: RFC 3339, or null).
fn window(input: &BatchInput) -> Result<Window, BatchError> {
    let at = |field: &str, v: &Option<String>| -> Result<Option<i64>, BatchError> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(t) => time::parse_iso8601(t).map(Some).ok_or_else(|| {
                BatchError::InvalidInput(format!("{field} is not an RFC 3339 time: {t:?}"))
            }),
        }
    };
    Ok(Window {
        since: at("since", &input.since)?,
        until: at("until", &input.until)?,
    })
}

/// The batch's objects as export files; other keys (folders, other suffixes) passed over.
fn listed(event: &BatchEvent) -> Listed {
    let mut listed = Listed::default();
    for item in &event.items {
        listed.push_s3(&event.input.bucket, &item.key, item.size);
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_event_reads_as_a_batch() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/backfill-items.json"),
        )
        .unwrap();
        let event: BatchEvent = serde_json::from_str(&text).unwrap();
        let l = listed(&event);
        assert!(!l.files.is_empty());
        assert!(
            l.files
                .iter()
                .all(|f| f.name.starts_with("s3://") && f.name.ends_with(".json.gz"))
        );
        assert!(window(&event.input).is_ok());
    }

    #[test]
    fn a_bad_window_is_invalid_input() {
        let input = BatchInput {
            bucket: "b".into(),
            since: Some("yesterday".into()),
            until: None,
        };
        let e = window(&input).unwrap_err();
        assert!(matches!(e, BatchError::InvalidInput(_)), "{e}");
        let d: lambda_runtime::Diagnostic = BatchError::Incomplete("x".into()).into();
        assert_eq!(d.error_type, "BackfillIncomplete");
    }
}
