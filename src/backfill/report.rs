//! What a backfill tells: every line counted once ([`Counts`], summed into a run's
//! [`Summary`]), every event not sent with a reason reported with its file and line
//! ([`Rejects`]), and the exit code.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// What became of a file's lines (or a run's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Lines read (resumed files: the lines after the checkpoint).
    pub lines: u64,
    /// Messages Segment took.
    pub sent: u64,
    /// Events outside `--since` / `--until`: counted, not sent.
    pub outside_window: u64,
    /// Events the mapping options skip.
    pub filtered: u64,
    /// Lines and events that will never be sent, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Messages Segment refused for good (a 4xx): reported, or set aside in the refused
    /// queue when there is one.
    pub refused: u64,
    /// Messages in the parked queue, redelivered by the stack's redelivery function.
    pub parked: u64,
}

impl Counts {
    pub fn reject(&mut self, reason: &'static str) {
        *self.rejected.entry(reason).or_default() += 1;
    }

    pub fn add(&mut self, other: &Counts) {
        self.lines += other.lines;
        self.sent += other.sent;
        self.outside_window += other.outside_window;
        self.filtered += other.filtered;
        for (reason, n) in &other.rejected {
            *self.rejected.entry(reason).or_default() += n;
        }
        self.refused += other.refused;
        self.parked += other.parked;
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// How a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEnd {
    /// Every event settled.
    Done,
    /// Settled as far as it can be read: the rest is corrupt (`line` is the last read).
    Corrupt { line: u64, why: String },
    /// Encrypted (PGP): not read.
    Encrypted,
    /// Not finished (Segment or the source failed): a rerun resumes it.
    Unfinished { why: String },
    /// Stopped by Ctrl-C (or the Lambda's deadline): a rerun resumes it.
    Interrupted,
}

impl FileEnd {
    /// Whether a rerun would do no better (the checkpoint records it as done).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            FileEnd::Done | FileEnd::Corrupt { .. } | FileEnd::Encrypted
        )
    }

    /// The checkpoint's `end` for a final file.
    pub fn as_str(&self) -> &'static str {
        match self {
            FileEnd::Done => "done",
            FileEnd::Corrupt { .. } => "corrupt",
            FileEnd::Encrypted => "encrypted",
            FileEnd::Unfinished { .. } => "unfinished",
            FileEnd::Interrupted => "interrupted",
        }
    }
}

/// A run's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Export files listed.
    pub files: u64,
    /// Files settled in this run (read to their end, or as far as they can be read).
    pub files_done: u64,
    /// Files the checkpoint says an earlier run settled: skipped.
    pub files_already_done: u64,
    /// Files not finished: a rerun resumes them.
    pub files_unfinished: u64,
    /// Listed entries that are not export files (folders, other suffixes).
    pub not_exports: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub interrupted: bool,
}

/// The exit codes of `moe2seg backfill`.
pub mod exit {
    /// Every event in the window was sent (or skipped by the mapping options).
    pub const SENT: u8 = 0;
    /// Every file settled, but some lines or events were rejected, refused by Segment or
    /// parked: reported (`--rejects`), nothing to rerun.
    pub const REPORTED: u8 = 1;
    /// The run could not start.
    pub const CANNOT_START: u8 = 2;
    /// Some files are not finished (Segment or the source failed): rerun to resume.
    pub const UNFINISHED: u8 = 3;
    /// Stopped by Ctrl-C: rerun to resume.
    pub const INTERRUPTED: u8 = 130;
}

impl Summary {
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            exit::INTERRUPTED
        } else if self.files_unfinished > 0 {
            exit::UNFINISHED
        } else if self.counts.rejected_total() > 0
            || self.counts.refused > 0
            || self.counts.parked > 0
        {
            exit::REPORTED
        } else {
            exit::SENT
        }
    }

    /// The summary a person reads (stderr), a line per count that is not zero.
    pub fn human(&self) -> String {
        let c = &self.counts;
        let mut out = format!(
            "backfill summary: {} files ({} settled now, {} settled before, {} unfinished); {} lines; {} sent",
            self.files,
            self.files_done,
            self.files_already_done,
            self.files_unfinished,
            c.lines,
            c.sent
        );
        for (what, n) in [
            ("outside the window", c.outside_window),
            ("filtered by the mapping options", c.filtered),
            ("refused by Segment", c.refused),
            ("parked for redelivery", c.parked),
            ("not export files", self.not_exports),
        ] {
            if n > 0 {
                out.push_str(&format!("; {n} {what}"));
            }
        }
        if !c.rejected.is_empty() {
            let by_reason: Vec<String> =
                c.rejected.iter().map(|(r, n)| format!("{r} {n}")).collect();
            out.push_str(&format!("; rejected: {}", by_reason.join(", ")));
        }
        if self.interrupted {
            out.push_str("; INTERRUPTED: rerun with the same --checkpoint to resume");
        } else if self.files_unfinished > 0 {
            out.push_str("; rerun with the same --checkpoint to resume the unfinished files");
        }
        out
    }
}

/// One line or event not sent, and why (a line of `--rejects`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reject {
    pub file: String,
    /// The line in the file (1-based; 0: the file as a whole).
    pub line: u64,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Where rejections go: JSON Lines to a file (`--rejects`) or stderr, or the log (the
/// Lambda; the first few, the rest counted).
pub enum Rejects {
    Lines(Mutex<Box<dyn Write + Send>>),
    Log(Mutex<u64>),
}

/// Rejections the Lambda logs one by one (the summary counts them all).
const MAX_LOGGED: u64 = 50;

impl Rejects {
    /// Appends to the file at `path`.
    pub fn file(path: &Path) -> io::Result<Rejects> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Rejects::Lines(Mutex::new(Box::new(BufWriter::new(file)))))
    }

    pub fn stderr() -> Rejects {
        Rejects::Lines(Mutex::new(Box::new(io::stderr())))
    }

    pub fn log() -> Rejects {
        Rejects::Log(Mutex::new(0))
    }

    pub fn write(&self, rejects: &[Reject]) -> io::Result<()> {
        match self {
            Rejects::Lines(out) => {
                let mut out = out
                    .lock()
                    .map_err(|_| io::Error::other("rejects lock poisoned"))?;
                for r in rejects {
                    serde_json::to_writer(&mut *out, r).map_err(io::Error::other)?;
                    out.write_all(b"\n")?;
                }
                out.flush()
            }
            Rejects::Log(logged) => {
                let Ok(mut logged) = logged.lock() else {
                    return Ok(());
                };
                for r in rejects {
                    if *logged < MAX_LOGGED {
                        tracing::warn!(file = %r.file, line = r.line, reason = r.reason,
                            event_uuid = r.event_uuid.as_deref().unwrap_or(""),
                            detail = r.detail.as_deref().unwrap_or(""), "backfill: not sent");
                    }
                    *logged += 1;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_says_what_is_left() {
        let mut s = Summary::default();
        assert_eq!(s.exit_code(), exit::SENT);
        s.counts.outside_window = 5;
        s.counts.filtered = 2;
        assert_eq!(s.exit_code(), exit::SENT);
        s.counts.parked = 1;
        assert_eq!(s.exit_code(), exit::REPORTED);
        s.counts.parked = 0;
        s.counts.reject("no_identity");
        assert_eq!(s.exit_code(), exit::REPORTED);
        s.files_unfinished = 1;
        assert_eq!(s.exit_code(), exit::UNFINISHED);
        s.interrupted = true;
        assert_eq!(s.exit_code(), exit::INTERRUPTED);
    }

    #[test]
    fn the_summary_names_every_count_that_is_not_zero() {
        let mut s = Summary {
            files: 3,
            files_done: 2,
            files_already_done: 1,
            ..Summary::default()
        };
        s.counts.lines = 10;
        s.counts.sent = 7;
        s.counts.outside_window = 1;
        s.counts.reject("invalid_json");
        s.counts.reject("invalid_json");
        let text = s.human();
        assert!(
            text.contains("3 files (2 settled now, 1 settled before, 0 unfinished)"),
            "{text}"
        );
        assert!(
            text.contains("10 lines; 7 sent; 1 outside the window"),
            "{text}"
        );
        assert!(text.contains("rejected: invalid_json 2"), "{text}");
        assert!(!text.contains("parked"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["rejected"]["invalid_json"], 2);
        assert_eq!(json["sent"], 7);
    }
}
