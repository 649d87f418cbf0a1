//! The checkpoint (`--checkpoint PATH`): what a rerun may skip. A JSON Lines file, appended
//! to as the run goes:
//!
//! - `{"file", "size", "through_line": N}`: every event of lines 1..=N of the file is
//!   settled (delivered, rejected with a reason, refused by Segment for good, or parked);
//!   written as each batch settles, in line order;
//! - `{"file", "size", "done": true, "end": "…"}`: the whole file is settled (`end`: `done`,
//!   or why it could not be read to its end: `corrupt`, `encrypted`; a rerun would not do
//!   better).
//!
//! A file is known by its name and size: a file that changed size since is read again. The
//! last record of a file wins. Each record is written (and flushed to the system) before the
//! run goes on, so a crash loses nothing written; the file is synced to disk at the end.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

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
    out: Option<Mutex<File>>,
}

/// Why the checkpoint cannot be used: the run cannot start.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {why}")]
pub struct CheckpointError {
    path: String,
    why: String,
}

impl Checkpoint {
    /// Opens (or creates) the checkpoint at `path` and reads what it holds. A last line cut
    /// short by a crash is ignored; any other line that is not a record is an error (the
    /// path is probably not a checkpoint). A checkpoint grown long (a record per batch) is
    /// rewritten with one record per file.
    pub fn open(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let error = |why: String| CheckpointError {
            path: path.display().to_string(),
            why,
        };
        let (known, records, whole) = match File::open(path) {
            Ok(file) => read(BufReader::new(file)).map_err(error)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (HashMap::new(), 0, None),
            Err(e) => return Err(error(e.to_string())),
        };
        if records > 2 * known.len() + 1000 {
            compact(path, &known).map_err(|e| error(e.to_string()))?;
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| error(e.to_string()))?;
        // A record cut short by a crash is cut off: the next one starts a line of its own.
        if let Some(len) = whole {
            out.set_len(len).map_err(|e| error(e.to_string()))?;
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            known,
            out: Some(Mutex::new(out)),
        })
    }

    /// Reads the checkpoint at `path` (if there is one) without writing to it, ever.
    pub fn read_only(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let known = match File::open(path) {
            Ok(file) => {
                read(BufReader::new(file))
                    .map_err(|why| CheckpointError {
                        path: path.display().to_string(),
                        why,
                    })?
                    .0
            }
            Err(_) => HashMap::new(),
        };
        Ok(Checkpoint {
            path: path.to_path_buf(),
            known,
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
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let Some(out) = &self.out else {
            return Ok(());
        };
        let mut out = out
            .lock()
            .map_err(|_| io::Error::other("checkpoint lock poisoned"))?;
        out.write_all(&line)
    }

    /// Syncs the checkpoint to disk (at the end of a run).
    pub fn sync(&self) -> io::Result<()> {
        match self.out.as_ref().map(Mutex::lock) {
            None => Ok(()),
            Some(Ok(out)) => out.sync_all(),
            Some(Err(_)) => Err(io::Error::other("checkpoint lock poisoned")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What the records say, by file: (standings, records read, and when the last line was cut
/// short, the length of what comes before it).
fn read(mut input: impl BufRead) -> Result<(Known, usize, Option<u64>), String> {
    let mut known = HashMap::new();
    let (mut records, mut number, mut offset) = (0, 0, 0u64);
    let mut line = String::new();
    loop {
        line.clear();
        let n = input.read_line(&mut line).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok((known, records, None));
        }
        number += 1;
        offset += n as u64;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line.trim_end()) {
            Ok(r) => {
                let standing = match (r.done, r.through_line) {
                    (true, _) => Standing::Done,
                    (false, Some(n)) => Standing::Through(n),
                    (false, None) => Standing::New,
                };
                known.insert((r.file, r.size), (standing, r.end));
                records += 1;
            }
            // The last line, cut short by a crash.
            Err(_) if !line.ends_with('\n') => {
                return Ok((known, records, Some(offset - n as u64)));
            }
            Err(e) => return Err(format!("line {number}: not a checkpoint record: {e}")),
        }
    }
}

/// Rewrites the checkpoint with one record per file (through a temporary file, renamed over
/// it: a crash leaves the old or the new one, whole).
fn compact(path: &Path, known: &Known) -> io::Result<()> {
    let tmp = path.with_extension("compacting");
    let mut out = io::BufWriter::new(File::create(&tmp)?);
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
        serde_json::to_writer(&mut out, &record).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Each file's standing, and how it ended if it is done.
type Known = HashMap<(String, u64), (Standing, Option<String>)>;

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("moe2seg-ckpt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn progress_and_completion_are_read_back() {
        let path = temp("rw");
        let c = Checkpoint::open(&path).unwrap();
        assert_eq!(c.standing("a.json.gz", 10), Standing::New);
        c.through("a.json.gz", 10, 300).unwrap();
        c.through("a.json.gz", 10, 600).unwrap();
        c.done("b.json.gz", 20, "done").unwrap();
        c.through("c.json.gz", 30, 5).unwrap();
        c.done("c.json.gz", 30, "corrupt").unwrap();
        drop(c);
        let c = Checkpoint::open(&path).unwrap();
        assert_eq!(c.standing("a.json.gz", 10), Standing::Through(600));
        assert_eq!(c.standing("b.json.gz", 20), Standing::Done);
        assert_eq!(c.standing("c.json.gz", 30), Standing::Done);
        // The same name with another size is another file.
        assert_eq!(c.standing("b.json.gz", 21), Standing::New);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_record_cut_short_by_a_crash_is_ignored() {
        let path = temp("cut");
        std::fs::write(
            &path,
            "{\"file\":\"a\",\"size\":1,\"through_line\":3}\n{\"file\":\"a\",\"si",
        )
        .unwrap();
        let c = Checkpoint::open(&path).unwrap();
        assert_eq!(c.standing("a", 1), Standing::Through(3));
        c.done("a", 1, "done").unwrap();
        drop(c);
        assert_eq!(
            Checkpoint::open(&path).unwrap().standing("a", 1),
            Standing::Done
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_long_checkpoint_is_compacted_to_one_record_a_file() {
        let path = temp("compact");
        let c = Checkpoint::open(&path).unwrap();
        for line in 1..=3000 {
            c.through("a", 1, line).unwrap();
        }
        c.done("b", 2, "corrupt").unwrap();
        drop(c);
        let c = Checkpoint::open(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains(r#""end":"corrupt""#), "{text}");
        assert_eq!(c.standing("a", 1), Standing::Through(3000));
        assert_eq!(c.standing("b", 2), Standing::Done);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_read_only_checkpoint_is_never_written() {
        let path = temp("ro");
        let c = Checkpoint::read_only(&path).unwrap();
        c.done("a", 1, "done").unwrap();
        c.sync().unwrap();
        assert!(!path.exists());
        std::fs::write(&path, "{\"file\":\"a\",\"size\":1,\"done\":true}\n").unwrap();
        let c = Checkpoint::read_only(&path).unwrap();
        assert_eq!(c.standing("a", 1), Standing::Done);
        c.through("b", 1, 5).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_file_that_is_not_a_checkpoint_is_refused() {
        let path = temp("not");
        std::fs::write(&path, "hello\nworld\n").unwrap();
        let e = Checkpoint::open(&path).err().unwrap().to_string();
        assert!(e.contains("line 1: not a checkpoint record"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
