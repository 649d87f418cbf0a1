//! The backfill: MoEngage's S3 Data Exports (gzip JSON Lines, one event a line) into
//! Segment, through the same mapping and the same forwarding step as the webhook, so that an
//! event both streamed live and backfilled has one `messageId`.
//!
//! [`source`] lists the files (a directory, `s3://bucket/prefix`); each is read by a thread
//! of its own ([`lines`]: gunzip, bounded lines) and forwarded in batches
//! ([`file`](mod@file)), at most `concurrency` files at once, every request under one rate
//! ceiling ([`crate::delivery::pacer`]). What each line became is counted and every line not
//! sent is reported with its reason ([`report`]); settled lines are recorded in the
//! [`checkpoint`], so a rerun resumes. `moe2seg backfill` drives it from a terminal ([`progress`]); the Step
//! Functions child function runs it on a batch of S3 objects ([`lambda`]).

pub mod checkpoint;
pub mod file;
pub mod lambda;
pub mod lines;
pub mod progress;
pub mod report;
pub mod source;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};

use crate::delivery::forward::{Access, Forwarder};
use crate::mapping::options::MappingOptions;
use crate::settings::secret::SecretSource;

use checkpoint::{Checkpoint, Standing};
use report::{Counts, FileEnd, Reject, Rejects, Summary};
use source::{ExportFile, Listed};

/// The mapping options a backfill maps with: the settings' (read now, by `deadline`: a
/// secret that cannot be read, or holds invalid options, stops the run before anything is
/// sent), or `open` (`MAPPING_OPTIONS`) in a dry run without settings.
pub async fn mapping_options<S: SecretSource>(
    forwarder: &Forwarder<S>,
    deadline: Instant,
    open: &Arc<MappingOptions>,
) -> Result<Arc<MappingOptions>, String> {
    match forwarder
        .access(deadline)
        .await
        .map_err(|e| e.to_string())?
    {
        Access::Check(settings) => settings.mapping.in_force().map_err(|e| e.to_string()),
        Access::Open => Ok(open.clone()),
    }
}

/// The time window on `event_time` (epoch ms): `since` included, `until` not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Window {
    pub fn contains(&self, ms: i64) -> bool {
        self.since.is_none_or(|s| ms >= s) && self.until.is_none_or(|u| ms < u)
    }
}

/// A stop asked for (Ctrl-C, the Lambda's deadline): no file starts and no line is read
/// after it; batches already read finish.
#[derive(Debug, Default)]
pub struct Cancel {
    set: AtomicBool,
}

impl Cancel {
    pub fn set(&self) {
        self.set.store(true, Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }
}

/// What a run works with; shared by its files.
pub struct Run<'f, S> {
    pub forwarder: &'f Forwarder<S>,
    /// The mapping options (the secret's, or `MAPPING_OPTIONS` in a run without settings).
    pub mapping: Arc<MappingOptions>,
    pub window: Window,
    /// Files at once.
    pub concurrency: usize,
    /// How long one batch may take (retries included) before its file is left unfinished.
    pub batch_budget: Duration,
    /// No batch runs past it (the Lambda's deadline; none for the CLI).
    pub deadline: Option<Instant>,
    /// A dry run's is read-only ([`Checkpoint::read_only`]): nothing was sent.
    pub checkpoint: Option<Checkpoint>,
    pub rejects: Rejects,
    pub cancel: Arc<Cancel>,
    /// Bytes read from the sources so far (progress).
    pub read_bytes: Arc<AtomicU64>,
    /// Messages Segment took so far (progress).
    pub counts_sent: Arc<AtomicU64>,
    /// The S3 client, made on first use (a run of local files needs no AWS).
    pub s3: std::sync::OnceLock<aws_sdk_s3::Client>,
    /// The AWS configuration the S3 client is made with.
    pub aws: Option<aws_config::SdkConfig>,
}

impl<S: SecretSource> Run<'_, S> {
    /// The S3 client (made the first time; path-style addressing when an endpoint is set,
    /// as local S3 stand-ins need).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| {
                let conf = self.aws.clone().unwrap_or_else(|| {
                    aws_config::SdkConfig::builder()
                        .behavior_version(aws_config::BehaviorVersion::latest())
                        .build()
                });
                let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
                    || std::env::var_os("AWS_ENDPOINT_URL").is_some();
                let conf = aws_sdk_s3::config::Builder::from(&conf)
                    .force_path_style(custom_endpoint)
                    .build();
                aws_sdk_s3::Client::from_conf(conf)
            })
            .clone()
    }

    /// Backfills `listed`; `each` is told of every file as it ends.
    pub async fn run(&self, listed: &Listed, each: impl Fn(&ExportFile, &FileEnd)) -> Summary {
        let mut summary = Summary {
            files: listed.files.len() as u64,
            not_exports: listed.skipped.len() as u64,
            ..Summary::default()
        };
        let mut todo = Vec::new();
        for file in &listed.files {
            match self
                .checkpoint
                .as_ref()
                .map(|c| c.standing(&file.name, file.size))
            {
                Some(Standing::Done) => summary.files_already_done += 1,
                standing => todo.push((file, standing.unwrap_or(Standing::New))),
            }
        }
        let mut ends =
            stream::iter(todo)
                .take_while(|_| std::future::ready(!self.cancel.is_set()))
                .map(|(file, standing)| async move {
                    (file, file::backfill(self, file, standing).await)
                })
                .buffer_unordered(self.concurrency.max(1));
        while let Some((file, (end, counts))) = ends.next().await {
            summary.counts.add(&counts);
            let end = match self.record_end(file, &end, &mut summary.counts) {
                Ok(()) => end,
                Err(why) => FileEnd::Unfinished { why },
            };
            if end.is_final() {
                summary.files_done += 1;
            }
            each(file, &end);
        }
        drop(ends);
        summary.interrupted = self.cancel.is_set();
        // Unfinished, or never started (stopped before their turn).
        summary.files_unfinished = summary.files - summary.files_done - summary.files_already_done;
        if let Some(c) = self.checkpoint.as_ref()
            && let Err(e) = c.sync()
        {
            tracing::error!(error = %e, "cannot sync the checkpoint");
        }
        summary
    }

    /// Records how a file ended: a rejection for a file that cannot be read to its end, and
    /// in the checkpoint when a rerun would do no better. `Err` when either cannot be
    /// written: the file is then unfinished (a rerun records it).
    fn record_end(
        &self,
        file: &ExportFile,
        end: &FileEnd,
        counts: &mut Counts,
    ) -> Result<(), String> {
        let reject = match end {
            FileEnd::Corrupt { line, why } => Some((*line, "corrupt_gzip", why.clone())),
            FileEnd::Encrypted => Some((
                0,
                "encrypted",
                "PGP-encrypted exports are not supported: decrypt them first (gpg --decrypt)"
                    .to_owned(),
            )),
            _ => None,
        };
        if let Some((line, reason, detail)) = reject {
            let r = Reject {
                file: file.name.clone(),
                line,
                reason,
                event_uuid: None,
                detail: Some(detail),
            };
            self.rejects
                .write(&[r])
                .map_err(|e| format!("cannot write the rejects file: {e}"))?;
            counts.reject(reason);
        }
        if end.is_final()
            && let Some(c) = self.checkpoint.as_ref()
        {
            c.done(&file.name, file.size, end.as_str())
                .map_err(|e| format!("cannot write the checkpoint: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_includes_since_and_excludes_until() {
        let w = Window {
            since: Some(100),
            until: Some(200),
        };
        assert!(!w.contains(99) && w.contains(100) && w.contains(199) && !w.contains(200));
        assert!(Window::default().contains(i64::MIN));
        let open_end = Window {
            since: Some(5),
            until: None,
        };
        assert!(open_end.contains(i64::MAX) && !open_end.contains(4));
    }
}
