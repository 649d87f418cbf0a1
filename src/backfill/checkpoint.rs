//! The checkpoint (`--checkpoint PATH`): what a rerun may skip. A JSON Lines file, appended
//! to as the run goes:
//!
//! - `{"scope": {"since", "until", "options"}}`: the window and the mapping options the
//!   records hold for (first); a run with another window or other options cannot resume
//!   from them, since it would skip lines that this one left out;
//! - `{"file", "size", "through_line": N}`: every event of lines 1..=N of the file is
//!   settled (delivered, rejected with a reason, refused by Segment for good, or parked);
//!   written as each batch settles, in line order;
//! - `{"file", "size", "done": true, "end": "…"}`: the whole file is settled (`end`: `done`,
//!   or why it could not be read to its end: `corrupt`, `encrypted`; a rerun would not do
//!   better).
//!
//! A file is known by its name and size: a file that changed size since is read again. The
//! last record of a file wins. Each record is written (and flushed to the system) before the
//! run goes on, so a crash loses nothing written; the file is synced to disk at the end. After
//! a failed write nothing more is written (the files go unfinished), so a half record can
//! only be the last line, which the next run cuts off.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::mapping::options::MappingOptions;
use crate::mapping::sha256_hex;
use crate::mapping::time::format_millis;

use super::Window;

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    file: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    through_line: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<String>,
}

/// What the records of a checkpoint hold for: the window and the mapping options of the runs
/// that wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    since: Option<String>,
    until: Option<String>,
    /// The start of the SHA-256 of the options' JSON.
    options: String,
}

impl Scope {
    pub fn new(window: &Window, options: &MappingOptions) -> Scope {
        Scope {
            since: window.since.map(format_millis),
            until: window.until.map(format_millis),
            options: sha256_hex(options.to_value().to_string().as_bytes(), 16),
        }
    }

    /// How `self` (the checkpoint's) differs from `run`'s, in words.
    fn differences(&self, run: &Scope) -> String {
        let bound = |b: &Option<String>| b.clone().unwrap_or_else(|| "none".into());
        let mut d = Vec::new();
        for (flag, theirs, ours) in [
            ("--since", &self.since, &run.since),
            ("--until", &self.until, &run.until),
        ] {
            if theirs != ours {
                d.push(format!(
                    "{flag} {} (this run: {})",
                    bound(theirs),
                    bound(ours)
                ));
            }
        }
        if self.options != run.options {
            d.push("other mapping options".into());
        }
        d.join(", ")
    }
}

/// A line of the checkpoint.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Scope { scope: Scope },
    Record(Record),
}

/// Where a file stands in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Not started (or changed since).
    New,
    /// Lines 1..=N are settled.
    Through(u64),
    Done,
}

/// The checkpoint of a run: read at start, appended to as files progress.
pub struct Checkpoint {
    path: PathBuf,
    known: Known,
    /// `None`: read only (a dry run writes nothing).
    out: Option<Mutex<Out>>,
}

/// The file appended to; `failed` once a write failed.
struct Out {
    file: File,
    failed: bool,
}

/// Why the checkpoint cannot be used: the run cannot start.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {why}")]
pub struct CheckpointError {
    path: String,
    why: String,
}

impl CheckpointError {
    fn at(path: &Path, why: String) -> CheckpointError {
        CheckpointError {
            path: path.display().to_string(),
            why,
        }
    }
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint at `path` for a run of `scope`, and reads what it
    /// holds. A last line cut short by a crash is cut off; any other line that is not a
    /// record is an error (the path is probably not a checkpoint), and so is a checkpoint of
    /// another scope. A checkpoint grown long (a record per batch) is rewritten with one
    /// record per file.
    pub fn open(path: &Path, scope: &Scope) -> Result<Checkpoint, CheckpointError> {
        let error = |why: String| CheckpointError::at(path, why);
        let read = read_at(path, scope).map_err(error)?;
        let compact_now = read.records > 2 * read.known.len() + 1000;
        if compact_now {
            compact(path, scope, &read.known).map_err(|e| error(e.to_string()))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| error(e.to_string()))?;
        // A compacted checkpoint is whole, and holds its scope.
        if !compact_now {
            let mut fix = || -> io::Result<()> {
                match read.tail {
                    Tail::Whole => {}
                    // A record cut short by a crash is cut off.
                    Tail::Cut(len) => file.set_len(len)?,
                    // A whole record without its newline: the next one starts a line.
                    Tail::Unterminated => file.write_all(b"\n")?,
                }
                if !read.scoped {
                    file.write_all(&line_of(&ScopeLine { scope }))?;
                }
                Ok(())
            };
            fix().map_err(|e| error(e.to_string()))?;
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            known: read.known,
            out: Some(Mutex::new(Out {
                file,
                failed: false,
            })),
        })
    }

    /// Reads the checkpoint at `path` (if there is one) for a run of `scope`, without writing
    /// to it, ever.
    pub fn read_only(path: &Path, scope: &Scope) -> Result<Checkpoint, CheckpointError> {
        let read = read_at(path, scope).map_err(|why| CheckpointError::at(path, why))?;
        Ok(Checkpoint {
            path: path.to_path_buf(),
            known: read.known,
            out: None,
        })
    }

    /// Where `file` of `size` bytes stands.
    pub fn standing(&self, file: &str, size: u64) -> Standing {
        self.known
            .get(&(file.to_owned(), size))
            .map_or(Standing::New, |(standing, _)| *standing)
    }

    /// Records that lines 1..=`line` of the file are settled.
    pub fn through(&self, file: &str, size: u64, line: u64) -> io::Result<()> {
        self.write(&Record {
            file: file.to_owned(),
            size,
            through_line: Some(line),
            done: false,
            end: None,
        })
    }

    /// Records that the file is settled to its end (`end` says how it ended).
    pub fn done(&self, file: &str, size: u64, end: &str) -> io::Result<()> {
        self.write(&Record {
            file: file.to_owned(),
            size,
            through_line: None,
            done: true,
            end: Some(end.to_owned()),
        })
    }

    fn write(&self, record: &Record) -> io::Result<()> {
        let Some(out) = &self.out else {
            return Ok(());
        };
        let mut out = out
            .lock()
            .map_err(|_| io::Error::other("checkpoint lock poisoned"))?;
        if out.failed {
            return Err(io::Error::other(
                "an earlier write to the checkpoint failed",
            ));
        }
        let written = out.file.write_all(&line_of(record));
        out.failed = written.is_err();
        written
    }

    /// Syncs the checkpoint to disk (at the end of a run).
    pub fn sync(&self) -> io::Result<()> {
        match self.out.as_ref().map(Mutex::lock) {
            None => Ok(()),
            Some(Ok(out)) => out.file.sync_all(),
            Some(Err(_)) => Err(io::Error::other("checkpoint lock poisoned")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The scope line, as written.
#[derive(Serialize)]
struct ScopeLine<'s> {
    scope: &'s Scope,
}

/// `value` as a line of JSON.
fn line_of(value: &impl Serialize) -> Vec<u8> {
    // A struct of strings and numbers always serializes.
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}

/// How the checkpoint's last line ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Tail {
    /// With a newline (or the file is empty).
    #[default]
    Whole,
    /// Cut short by a crash: the length of what comes before it.
    Cut(u64),
    /// A whole record without its newline.
    Unterminated,
}

/// What a checkpoint holds (by default: nothing, as a checkpoint not written yet).
#[derive(Default)]
struct Read {
    known: Known,
    /// Records read.
    records: usize,
    /// Whether it has a scope line.
    scoped: bool,
    tail: Tail,
}

/// Reads the checkpoint at `path` (none: empty), which must be of `scope`.
fn read_at(path: &Path, scope: &Scope) -> Result<Read, String> {
    match File::open(path) {
        Ok(file) => read(BufReader::new(file), scope),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Read::default()),
        Err(e) => Err(e.to_string()),
    }
}

/// What the records say, by file; an error for a line that is not a record (but the last,
/// cut short) and for another scope than `scope`.
fn read(mut input: impl BufRead, scope: &Scope) -> Result<Read, String> {
    let mut read = Read::default();
    let (mut number, mut offset) = (0, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(read);
        }
        number += 1;
        offset += n as u64;
        let last = line.last() != Some(&b'\n');
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(line.trim_ascii_end()) {
            Ok(Line::Scope { scope: theirs }) if theirs != *scope => {
                return Err(format!(
                    "written for another run: {}. A checkpoint resumes only the same window and mapping options: rerun with those, or use a new --checkpoint",
                    theirs.differences(scope)
                ));
            }
            Ok(Line::Scope { .. }) => read.scoped = true,
            Ok(Line::Record(r)) => {
                let standing = match (r.done, r.through_line) {
                    (true, _) => Standing::Done,
                    (false, Some(n)) => Standing::Through(n),
                    (false, None) => Standing::New,
                };
                read.known.insert((r.file, r.size), (standing, r.end));
                read.records += 1;
            }
            // The last line, cut short by a crash.
            Err(_) if last => {
                read.tail = Tail::Cut(offset - n as u64);
                return Ok(read);
            }
            Err(e) => return Err(format!("line {number}: not a checkpoint record: {e}")),
        }
        if last {
            read.tail = Tail::Unterminated;
        }
    }
}

/// Rewrites the checkpoint with its scope and one record per file (through a temporary file,
/// renamed over it: a crash leaves the old or the new one, whole).
fn compact(path: &Path, scope: &Scope, known: &Known) -> io::Result<()> {
    let tmp = path.with_extension("compacting");
    let mut out = io::BufWriter::new(File::create(&tmp)?);
    out.write_all(&line_of(&ScopeLine { scope }))?;
    for ((file, size), (standing, end)) in known {
        let record = Record {
            file: file.clone(),
            size: *size,
            through_line: match standing {
                Standing::Through(n) => Some(*n),
                _ => None,
            },
            done: *standing == Standing::Done,
            end: end.clone().filter(|_| *standing == Standing::Done),
        };
        out.write_all(&line_of(&record))?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Each file's standing, and how it ended if it is done.
type Known = HashMap<(String, u64), (Standing, Option<String>)>;

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new(&Window::default(), &MappingOptions::default())
    }

    fn temp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("moe2seg-ckpt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn progress_and_completion_are_read_back() {
        let path = temp("rw");
        let c = Checkpoint::open(&path, &scope()).unwrap();
        assert_eq!(c.standing("a.json.gz", 10), Standing::New);
        c.through("a.json.gz", 10, 300).unwrap();
        c.through("a.json.gz", 10, 600).unwrap();
        c.done("b.json.gz", 20, "done").unwrap();
        c.through("c.json.gz", 30, 5).unwrap();
        c.done("c.json.gz", 30, "corrupt").unwrap();
        drop(c);
        let c = Checkpoint::open(&path, &scope()).unwrap();
        assert_eq!(c.standing("a.json.gz", 10), Standing::Through(600));
        assert_eq!(c.standing("b.json.gz", 20), Standing::Done);
        assert_eq!(c.standing("c.json.gz", 30), Standing::Done);
        // The same name with another size is another file.
        assert_eq!(c.standing("b.json.gz", 21), Standing::New);
        std::fs::remove_file(&path).unwrap();
    }

    /// A checkpoint left as `text` (by a crash) reads as file `a` through line 3, and a
    /// record written after it is read back.
    fn resumes_after(name: &str, text: &str) {
        let path = temp(name);
        std::fs::write(&path, text).unwrap();
        let c = Checkpoint::open(&path, &scope()).unwrap();
        assert_eq!(c.standing("a", 1), Standing::Through(3));
        c.done("a", 1, "done").unwrap();
        drop(c);
        assert_eq!(
            Checkpoint::open(&path, &scope()).unwrap().standing("a", 1),
            Standing::Done
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_record_cut_short_by_a_crash_is_ignored() {
        resumes_after(
            "cut",
            "{\"file\":\"a\",\"size\":1,\"through_line\":3}\n{\"file\":\"a\",\"si",
        );
    }

    #[test]
    fn a_long_checkpoint_is_compacted_to_one_record_a_file() {
        let path = temp("compact");
        let c = Checkpoint::open(&path, &scope()).unwrap();
        for line in 1..=3000 {
            c.through("a", 1, line).unwrap();
        }
        c.done("b", 2, "corrupt").unwrap();
        drop(c);
        let c = Checkpoint::open(&path, &scope()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().count(),
            3,
            "the scope and a record a file: {text}"
        );
        assert!(text.starts_with(r#"{"scope":"#), "{text}");
        assert!(text.contains(r#""end":"corrupt""#), "{text}");
        assert_eq!(c.standing("a", 1), Standing::Through(3000));
        assert_eq!(c.standing("b", 2), Standing::Done);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_read_only_checkpoint_is_never_written() {
        let path = temp("ro");
        let c = Checkpoint::read_only(&path, &scope()).unwrap();
        c.done("a", 1, "done").unwrap();
        c.sync().unwrap();
        assert!(!path.exists());
        std::fs::write(&path, "{\"file\":\"a\",\"size\":1,\"done\":true}\n").unwrap();
        let c = Checkpoint::read_only(&path, &scope()).unwrap();
        assert_eq!(c.standing("a", 1), Standing::Done);
        c.through("b", 1, 5).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        assert_eq!(c.path(), path.as_path());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_checkpoint_is_refused() {
        let path = temp("not");
        std::fs::write(&path, "hello\nworld\n").unwrap();
        let e = Checkpoint::open(&path, &scope()).err().unwrap().to_string();
        assert!(e.contains("line 1: not a checkpoint record"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_long_checkpoint_cut_short_by_a_crash_is_compacted_whole() {
        let path = temp("compact-cut");
        let c = Checkpoint::open(&path, &scope()).unwrap();
        for line in 1..=3000 {
            c.through("a", 1, line).unwrap();
        }
        drop(c);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"file\":\"a\",\"si");
        std::fs::write(&path, &text).unwrap();
        let c = Checkpoint::open(&path, &scope()).unwrap();
        c.done("b", 2, "done").unwrap();
        drop(c);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains('\0'), "{text:?}");
        let c = Checkpoint::open(&path, &scope()).unwrap();
        assert_eq!(c.standing("a", 1), Standing::Through(3000));
        assert_eq!(c.standing("b", 2), Standing::Done);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_last_record_without_its_newline_is_kept_and_ended() {
        resumes_after(
            "unterminated",
            "{\"file\":\"a\",\"size\":1,\"through_line\":3}",
        );
    }

    #[test]
    fn a_record_cut_inside_a_character_is_cut_off() {
        let path = temp("cut-utf8");
        let mut bytes =
            b"{\"file\":\"a\",\"size\":1,\"through_line\":3}\n{\"file\":\"\xc3".to_vec();
        std::fs::write(&path, &bytes).unwrap();
        let c = Checkpoint::open(&path, &scope()).unwrap();
        assert_eq!(c.standing("a", 1), Standing::Through(3));
        drop(c);
        // Not at the end, an invalid line is an error.
        bytes.extend_from_slice(b"\n");
        std::fs::write(&path, &bytes).unwrap();
        assert!(Checkpoint::open(&path, &scope()).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn another_window_or_other_options_cannot_resume() {
        let path = temp("scope");
        let until = |ms| Window {
            since: None,
            until: Some(ms),
        };
        let none = MappingOptions::default();
        let c = Checkpoint::open(&path, &Scope::new(&until(1_000), &none)).unwrap();
        c.done("a", 1, "done").unwrap();
        drop(c);
        let e = Checkpoint::open(&path, &Scope::new(&until(2_000), &none))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("--until 1970-01-01T00:00:01.000Z (this run: 1970-01-01T00:00:02.000Z)")
                && e.contains("use a new --checkpoint"),
            "{e}"
        );
        assert!(Checkpoint::read_only(&path, &Scope::new(&until(2_000), &none)).is_err());
        let skip = MappingOptions::from_json(r#"{"skip_events": ["Email Opened"]}"#).unwrap();
        let e = Checkpoint::open(&path, &Scope::new(&until(1_000), &skip))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("other mapping options"), "{e}");
        // The same scope resumes.
        let c = Checkpoint::open(&path, &Scope::new(&until(1_000), &none)).unwrap();
        assert_eq!(c.standing("a", 1), Standing::Done);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn after_a_failed_write_nothing_more_is_written() {
        let path = temp("failed");
        let c = Checkpoint::open(&path, &scope()).unwrap();
        c.out.as_ref().unwrap().lock().unwrap().failed = true;
        assert!(c.through("a", 1, 5).is_err());
        assert!(c.done("a", 1, "done").is_err());
        drop(c);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        std::fs::remove_file(&path).unwrap();
    }
}
