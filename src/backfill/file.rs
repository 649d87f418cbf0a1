//! One export file, end to end: a thread reads it (gunzip, lines, decode, window, map) into
//! batches of Segment's size; the async side forwards them (at most [`IN_FLIGHT`] at once,
//! through the webhook's [`Forwarder`](crate::delivery::forward::Forwarder)) and settles them
//! in line order: counts, rejections, and the checkpoint's `through_line`, so that a rerun
//! re-sends at most the batches that were in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::sync::mpsc;

use crate::decode::Text;
use crate::decode::export::decode_export_line;
use crate::delivery::outcome::{Fate, Forwarded, Plan, Provenance};
use crate::delivery::segment::{BatchFill, ChunkOutcome};
use crate::mapping::options::MappingOptions;
use crate::mapping::single::{Mapper, event_millis};
use crate::mapping::{Mapped, Unmapped, time};
use crate::settings::secret::SecretSource;

use super::checkpoint::Standing;
use super::lines::{Counted, Kind, Line, Lines, ReadError, head, sniff};
use super::report::{Counts, FileEnd, Reject};
use super::source::ExportFile;
use super::{Cancel, Run, Window};

/// Batches of one file sent at once.
pub const IN_FLIGHT: usize = 4;
/// A batch is handed on once it holds this many rejections, even without messages (a file
/// of bad lines must not pile them up in memory).
const MAX_BATCH_REJECTS: usize = 1000;

/// A run of lines, read and mapped: what to send and what became of the rest.
#[derive(Debug, Default)]
struct Batch {
    messages: Vec<Mapped>,
    /// How full the request of `messages` is.
    fill: BatchFill,
    counts: Counts,
    rejects: Vec<Reject>,
    /// The last line it accounts for.
    last_line: u64,
}

/// Backfills one file; `standing` is what the checkpoint says of it (not done).
pub async fn backfill<S: SecretSource>(
    run: &Run<'_, S>,
    file: &ExportFile,
    standing: Standing,
) -> (FileEnd, Counts) {
    let resume_after = match standing {
        Standing::Through(n) => n,
        Standing::New | Standing::Done => 0,
    };
    let source = match super::source::open(file, || run.s3()).await {
        Ok(s) => s,
        Err(e) => {
            return (
                FileEnd::Unfinished {
                    why: format!("cannot open: {e}"),
                },
                Counts::default(),
            );
        }
    };
    let (tx, rx) = mpsc::channel::<Batch>(IN_FLIGHT);
    let reader = Reader {
        name: file.name.clone(),
        options: run.mapping.clone(),
        window: run.window,
        cancel: run.cancel.clone(),
        read_bytes: run.read_bytes.clone(),
        resume_after,
        reference: LastReference::default(),
    };
    let thread = tokio::task::spawn_blocking(move || reader.read(source, &tx));
    let (settled, unfinished) = settle_all(run, file, rx).await;
    let read_end = thread.await.unwrap_or_else(|e| FileEnd::Unfinished {
        why: format!("the reading thread failed: {e}"),
    });
    // A batch that could not be settled decides; else how the reading ended.
    let end = unfinished.map_or(read_end, |why| FileEnd::Unfinished { why });
    (end, settled)
}

/// Forwards the batches as they come (at most [`IN_FLIGHT`] at once) and settles them in
/// order; stops at the first batch that cannot be settled (its reason), which stops the
/// reading thread too.
async fn settle_all<S: SecretSource>(
    run: &Run<'_, S>,
    file: &ExportFile,
    rx: mpsc::Receiver<Batch>,
) -> (Counts, Option<String>) {
    let batches = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let mut sent = std::pin::pin!(
        batches
            .map(|batch| async move {
                let forwarded = forward(run, &batch.messages).await;
                (batch, forwarded)
            })
            .buffered(IN_FLIGHT)
    );
    let mut counts = Counts::default();
    while let Some((batch, forwarded)) = sent.next().await {
        match settle(file, batch, &forwarded) {
            Ok((done, rejects)) => {
                counts.add(&done.counts);
                run.counts_sent
                    .fetch_add(done.counts.sent, Ordering::Relaxed);
                if let Err(e) = run.rejects.write(&rejects) {
                    return (counts, Some(format!("cannot write the rejects file: {e}")));
                }
                if let Some(checkpoint) = run.checkpoint.as_ref()
                    && let Err(e) = checkpoint.through(&file.name, file.size, done.last_line)
                {
                    return (counts, Some(format!("cannot write the checkpoint: {e}")));
                }
            }
            Err(why) => return (counts, Some(why)),
        }
    }
    (counts, None)
}

/// Sends one batch's messages (none: nothing to send).
async fn forward<S: SecretSource>(run: &Run<'_, S>, messages: &[Mapped]) -> Forwarded {
    if messages.is_empty() {
        return Forwarded::default();
    }
    let budget = Instant::now()
        .checked_add(run.batch_budget)
        .unwrap_or_else(Instant::now);
    let deadline = run.deadline.map_or(budget, |d| d.min(budget));
    run.forwarder
        .forward(
            messages,
            Provenance::Request(None),
            Plan::Backfill,
            deadline,
        )
        .await
}

/// A settled batch: its counts with what Segment made of its messages, and the rejections
/// to report (refusals included). `Err`: a message neither delivered, parked nor refused for
/// good (Segment unavailable, the write key refused), or one a queue failed to take: the
/// batch is not settled.
fn settle(
    file: &ExportFile,
    mut batch: Batch,
    forwarded: &Forwarded,
) -> Result<(Batch, Vec<Reject>), String> {
    let outcome_of = |i: usize| {
        forwarded
            .report
            .chunks
            .iter()
            .find(|c| c.range.contains(&i))
            .map(|c| &c.outcome)
    };
    // A queue that failed leaves its messages staying: the batch is not settled (a rerun
    // sends it again), rather than its refusals being only reported.
    if let Some(e) = &forwarded.park_error
        && forwarded.fates.contains(&Fate::Stays)
    {
        return Err(e.to_string());
    }
    let mut rejects = std::mem::take(&mut batch.rejects);
    for (i, (fate, m)) in forwarded.fates.iter().zip(&batch.messages).enumerate() {
        let refusal = match (fate, outcome_of(i)) {
            (Fate::Delivered, _) => {
                batch.counts.sent += 1;
                continue;
            }
            (Fate::Parked, _) => {
                batch.counts.parked += 1;
                continue;
            }
            (Fate::SetAside, Some(ChunkOutcome::Refused { status, detail })) => {
                format!("HTTP {status}: {detail} (set aside in the refused queue)")
            }
            (Fate::SetAside, _) => "set aside in the refused queue".to_owned(),
            (Fate::Stays, Some(ChunkOutcome::Refused { status, detail })) => {
                format!("HTTP {status}: {detail}")
            }
            (Fate::Stays, outcome) => {
                let why = outcome.and_then(ChunkOutcome::failure).map(|(_, d)| d);
                return Err(format!(
                    "Segment did not take line {}: {}",
                    m.index,
                    why.unwrap_or_else(|| "not attempted".into())
                ));
            }
        };
        batch.counts.refused += 1;
        rejects.push(Reject {
            file: file.name.clone(),
            line: m.index as u64,
            reason: "segment_refused",
            event_uuid: m.event_uuid.clone(),
            detail: Some(refusal),
        });
    }
    Ok((batch, rejects))
}

/// The reading thread's part.
struct Reader {
    name: String,
    options: Arc<MappingOptions>,
    window: Window,
    cancel: Arc<Cancel>,
    read_bytes: Arc<AtomicU64>,
    /// Lines up to this one are settled already (a resumed file).
    resume_after: u64,
    /// The reference time of the last line's export hour.
    reference: LastReference,
}

impl Reader {
    /// Reads, maps and hands on the file's batches; says how the reading ended (`Done` at its
    /// end, `Unfinished` when the source failed, `Interrupted` when stopped or when the async
    /// side is gone).
    fn read(mut self, source: Box<dyn std::io::Read + Send>, tx: &mpsc::Sender<Batch>) -> FileEnd {
        let mut counted = Counted::new(source, self.read_bytes.clone());
        let first = match head(&mut counted, 16) {
            Ok(h) => h,
            Err(e) => return FileEnd::Unfinished { why: e.to_string() },
        };
        let kind = sniff(&self.name, &first);
        if kind == Kind::Encrypted {
            return FileEnd::Encrypted;
        }
        let mut lines = Lines::new(kind, first, counted);
        let options = self.options.clone();
        let mapper = Mapper::new(&options);
        let now_ms = time::now_millis();
        let mut batch = Batch::default();
        loop {
            if self.cancel.is_set() {
                return FileEnd::Interrupted;
            }
            let (number, line) = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return self.last(tx, batch, FileEnd::Done),
                Err(ReadError::Corrupt(e)) => {
                    let end = FileEnd::Corrupt {
                        line: lines.number,
                        why: e.to_string(),
                    };
                    return self.last(tx, batch, end);
                }
                Err(ReadError::Source(e)) => return FileEnd::Unfinished { why: e.to_string() },
            };
            if number <= self.resume_after {
                continue;
            }
            let message = self.line(&mapper, line, number, now_ms, &mut batch);
            if let Some(m) = message {
                if !batch.fill.fits(m.json.len()) && !self.hand_on(tx, &mut batch, number - 1) {
                    return FileEnd::Interrupted;
                }
                batch.fill.add(m.json.len());
                batch.messages.push(m);
            }
            // Counted here, in the batch its message (if any) went to.
            batch.counts.lines += 1;
            batch.last_line = number;
            if batch.rejects.len() >= MAX_BATCH_REJECTS && !self.hand_on(tx, &mut batch, number) {
                return FileEnd::Interrupted;
            }
        }
    }

    /// Hands on the last batch (if it holds anything), then ends with `end`.
    fn last(&self, tx: &mpsc::Sender<Batch>, mut batch: Batch, end: FileEnd) -> FileEnd {
        let last = batch.last_line;
        if last > 0 && !self.hand_on(tx, &mut batch, last) {
            return FileEnd::Interrupted;
        }
        end
    }

    /// Hands the batch (through line `last_line`) to the async side; `false` when it is gone
    /// (it stopped at a batch it could not settle).
    fn hand_on(&self, tx: &mpsc::Sender<Batch>, batch: &mut Batch, last_line: u64) -> bool {
        let mut full = std::mem::take(batch);
        full.last_line = last_line;
        batch.last_line = last_line;
        tx.blocking_send(full).is_ok()
    }

    /// Reads one line into `batch`'s counts (all but `lines`): its message, if it makes one.
    fn line(
        &mut self,
        mapper: &Mapper<'_>,
        line: Line<'_>,
        number: u64,
        now_ms: i64,
        batch: &mut Batch,
    ) -> Option<Mapped> {
        let bytes = match line {
            Line::Text(b) => b,
            Line::TooLong => {
                let detail = format!("longer than {} bytes", super::lines::MAX_LINE_BYTES);
                self.reject(batch, number, "line_too_long", None, Some(detail));
                return None;
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            self.reject(batch, number, "empty_line", None, None);
            return None;
        }
        let text = crate::decode::lossy_utf8(bytes);
        self.export_line(mapper, &text, number, now_ms, batch)
    }

    /// Reads one export line (its text) into `batch`'s counts: its message, if it makes one.
    fn export_line(
        &mut self,
        mapper: &Mapper<'_>,
        text: &str,
        number: u64,
        now_ms: i64,
        batch: &mut Batch,
    ) -> Option<Mapped> {
        let export = match decode_export_line(text) {
            Ok(l) => l,
            Err(e) => {
                let detail = matches!(e, crate::decode::export::LineError::NotJson(_))
                    .then(|| crate::excerpt::excerpt(&e.to_string(), 200));
                self.reject(batch, number, e.reason(), None, detail);
                return None;
            }
        };
        let reference = self
            .reference
            .of(export.export_day.as_ref(), export.export_hour.as_ref())
            .unwrap_or(now_ms);
        if let Ok(event) = &export.event
            && !self.window.contains(event_millis(event, reference))
        {
            batch.counts.outside_window += 1;
            return None;
        }
        let app_name = export.app_name.as_ref().and_then(Text::non_empty);
        match mapper.map(
            number as usize,
            export.event_raw,
            export.event,
            app_name,
            reference,
        ) {
            Ok(m) => Some(m),
            Err(Unmapped::Filtered) => {
                batch.counts.filtered += 1;
                None
            }
            Err(Unmapped::Rejected(r)) => {
                let detail = r.detail.map(|d| crate::excerpt::excerpt(&d, 200));
                self.reject(batch, number, r.reason.as_str(), r.event_uuid, detail);
                None
            }
        }
    }

    fn reject(
        &self,
        batch: &mut Batch,
        line: u64,
        reason: &'static str,
        event_uuid: Option<String>,
        detail: Option<String>,
    ) {
        batch.counts.reject(reason);
        batch.rejects.push(Reject {
            file: self.name.clone(),
            line,
            reason,
            event_uuid,
            detail,
        });
    }
}

/// [`export_reference_ms`] of the last line's day and hour, kept: the lines of one export
/// share them.
#[derive(Default)]
struct LastReference {
    day: String,
    hour: String,
    ms: Option<i64>,
}

impl LastReference {
    fn of(&mut self, day: Option<&Text<'_>>, hour: Option<&Text<'_>>) -> Option<i64> {
        let (d, h) = (day.and_then(Text::as_str), hour.and_then(Text::as_str));
        if d == Some(self.day.as_str()) && h.unwrap_or("") == self.hour {
            return self.ms;
        }
        self.ms = export_reference_ms(day, hour);
        self.day = d.unwrap_or("").to_owned();
        self.hour = h.unwrap_or("").to_owned();
        self.ms
    }
}

/// The time an export line stands for, in place of a request's receive time: the end of its
/// `export_day` (`DD-MM-YYYY`) and `export_hour`, or of the day without a usable hour.
pub fn export_reference_ms(day: Option<&Text<'_>>, hour: Option<&Text<'_>>) -> Option<i64> {
    let day = day?.non_empty()?;
    let mut parts = day.split('-');
    let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || d.len() != 2 || m.len() != 2 || y.len() != 4 {
        return None;
    }
    let start = time::parse_iso8601(&format!("{y}-{m}-{d}T00:00:00Z"))?;
    // An hour that is not 0 to 23 is as good as none: the day still bounds the line.
    let hour = hour
        .and_then(Text::non_empty)
        .and_then(|h| h.parse::<i64>().ok())
        .filter(|h| (0..24).contains(h));
    const HOUR: i64 = 3_600_000;
    Some(match hour {
        Some(h) => start + (h + 1) * HOUR - 1,
        None => start + 24 * HOUR - 1,
    })
}

/// How long one batch may take, retries included, before its file counts as unfinished.
pub const DEFAULT_BATCH_BUDGET: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn text(s: &str) -> Text<'_> {
        Text::Str(Cow::Borrowed(s))
    }

    #[test]
    fn an_export_line_stands_for_the_end_of_its_hour() {
        let t = |d: &str, h: Option<&str>| {
            export_reference_ms(Some(&text(d)), h.map(text).as_ref()).map(time::format_millis)
        };
        assert_eq!(
            t("05-12-2026", Some("14")).as_deref(),
            Some("2026-12-05T14:59:59.999Z")
        );
        assert_eq!(
            t("05-12-2026", None).as_deref(),
            Some("2026-12-05T23:59:59.999Z")
        );
        assert_eq!(t("31-02-2026", Some("1")), None);
        assert_eq!(t("2026-12-05", Some("1")), None);
        for unusable in ["24", "14.0", "x"] {
            assert_eq!(
                t("05-12-2026", Some(unusable)).as_deref(),
                Some("2026-12-05T23:59:59.999Z")
            );
        }
        assert_eq!(export_reference_ms(None, Some(&text("3"))), None);
        assert_eq!(
            export_reference_ms(
                Some(&text("05-12-2026")),
                Some(&Text::Num(Cow::Borrowed("0")))
            )
            .map(time::format_millis)
            .as_deref(),
            Some("2026-12-05T00:59:59.999Z")
        );
    }
}
