//! `moe2seg map`: one Streams body in, Segment messages out as JSON Lines.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use crate::decode::lossy_utf8;
use crate::mapping::options::MappingOptions;
use crate::mapping::time::now_millis;
use crate::mapping::{Limits, MapOutput, map_body_with};

/// A body read into memory.
pub enum Input {
    Heap(Vec<u8>),
    /// A large file, in memory advised to use huge pages ([`HUGE_INPUT`]).
    #[cfg(target_os = "linux")]
    Pages(memmap2::MmapMut),
}

impl std::ops::Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Heap(v) => v,
            #[cfg(target_os = "linux")]
            Input::Pages(m) => m,
        }
    }
}

/// Files this large or larger are read (on Linux) into anonymous memory advised to use
/// transparent huge pages: 2 MB pages instead of 4 KB ones, so reading a 58 MB body takes
/// dozens of page faults instead of ~14,000, and scanning it fewer TLB misses. Only a hint:
/// where huge pages are off, it is ordinary memory.
pub const HUGE_INPUT: u64 = 8 << 20;

/// Reads a body from a path, or stdin for `-`/none.
pub fn read_input(path: Option<&str>) -> io::Result<Input> {
    match path {
        None | Some("-") => {
            let mut buf = Vec::new();
            io::stdin().lock().read_to_end(&mut buf)?;
            Ok(Input::Heap(buf))
        }
        Some(p) => read_file(p),
    }
}

#[cfg(not(target_os = "linux"))]
fn read_file(path: &str) -> io::Result<Input> {
    std::fs::read(path).map(Input::Heap)
}

#[cfg(target_os = "linux")]
fn read_file(path: &str) -> io::Result<Input> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let Some(size) = usize::try_from(len).ok().filter(|_| len >= HUGE_INPUT) else {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        return Ok(Input::Heap(buf));
    };
    let mut pages = memmap2::MmapMut::map_anon(size)?;
    // A hint before the first touch; refused (no THP in the kernel), the pages are 4 KB.
    let _ = pages.advise(memmap2::Advice::HugePage);
    match file.read_exact(&mut pages) {
        // All of it, if the file did not grow meanwhile.
        Ok(()) if file.read(&mut [0u8; 1])? == 0 => Ok(Input::Pages(pages)),
        // It changed size while being read: read it whole the ordinary way.
        Ok(()) => std::fs::read(path).map(Input::Heap),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => std::fs::read(path).map(Input::Heap),
        Err(e) => Err(e),
    }
}

/// Reads `--options FILE`: the options object, or a secret-shaped object holding it under
/// `mapping`. The error says which field is wrong.
pub fn read_options(path: &str) -> Result<MappingOptions, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    MappingOptions::from_json(&text).map_err(|e| format!("{path}: {e}"))
}

/// Writes messages (stdout) and rejections (stderr) as JSON Lines; when the options skipped
/// events, one more stderr line says how many (`{"filtered": N}`).
pub fn write_output(
    out: &MapOutput,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> io::Result<()> {
    // Written from where they are, many per call (no copy through the buffer): the
    // messages of a large file are tens of megabytes.
    let mut slices = Vec::with_capacity(2 * LINES_PER_WRITE);
    for chunk in out.messages.chunks(LINES_PER_WRITE) {
        slices.clear();
        for m in chunk {
            slices.push(io::IoSlice::new(m.json.as_bytes()));
            slices.push(io::IoSlice::new(b"\n"));
        }
        write_all_vectored(stdout, &mut slices)?;
    }
    for r in &out.rejected {
        serde_json::to_writer(&mut *stderr, r)?;
        stderr.write_all(b"\n")?;
    }
    if out.filtered > 0 {
        writeln!(stderr, "{{\"filtered\":{}}}", out.filtered)?;
    }
    stdout.flush()?;
    stderr.flush()
}

/// Messages handed to one vectored write (two slices each, within Linux's 1,024).
const LINES_PER_WRITE: usize = 500;

/// Writes every slice, as `write_all` does for one.
fn write_all_vectored(w: &mut impl Write, mut slices: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match w.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs `map` on raw bytes; returns the process exit code (0 ok, 2 not a Streams body).
/// For a process that ends next: the mapped output is not freed.
pub fn run_map(
    bytes: &[u8],
    options: &MappingOptions,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> io::Result<i32> {
    let text = lossy_utf8(bytes);
    // A file of the user's own: no request-wide bound (the Lambda has them).
    match map_body_with(&text, now_millis(), Limits::NONE, options) {
        Ok(out) => {
            write_output(&out, stdout, stderr)?;
            // The process ends next: freeing every message one by one would be wasted work
            // (a tenth of `moe2seg map`'s instructions on a large file).
            std::mem::forget(out);
            Ok(0)
        }
        Err(e) => {
            writeln!(stderr, "moe2seg: not a MoEngage Streams request: {e}")?;
            Ok(2)
        }
    }
}

/// The command: maps the body at `file` (stdin: none or `-`) with the options at `options`;
/// the exit code.
pub fn map(file: Option<String>, options: Option<String>) -> ExitCode {
    let options = match options.as_deref().map(read_options) {
        None => Default::default(),
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            eprintln!("moe2seg: {e}");
            return ExitCode::from(2);
        }
    };
    let bytes = match read_input(file.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "moe2seg: cannot read {}: {e}",
                file.as_deref().unwrap_or("stdin")
            );
            return ExitCode::from(2);
        }
    };
    // Stdout is line-buffered: one write per message without a BufWriter.
    let mut stdout = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut stderr = io::BufWriter::new(io::stderr().lock());
    match run_map(&bytes, &options, &mut stdout, &mut stderr) {
        Ok(c) => ExitCode::from(c as u8),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moe2seg: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_whole_small_or_large() {
        let dir = std::env::temp_dir().join(format!("moe2seg-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for size in [0, 10, HUGE_INPUT as usize - 1, HUGE_INPUT as usize + 4099] {
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let path = dir.join(format!("body-{size}"));
            std::fs::write(&path, &bytes).unwrap();
            let input = read_input(path.to_str()).unwrap();
            assert!(*input == *bytes, "size {size}");
            #[cfg(target_os = "linux")]
            assert_eq!(
                matches!(input, Input::Pages(_)),
                size as u64 >= HUGE_INPUT,
                "size {size}"
            );
        }
        assert!(read_input(dir.join("missing").to_str()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_are_written_one_per_line() {
        // More messages than one vectored write takes.
        let fixture = include_str!("../../tests/fixtures/batch_100.json");
        let mut body: serde_json::Value = serde_json::from_str(fixture).unwrap();
        let events = body["events"].as_array().unwrap().clone();
        body["events"] = (0..1_200)
            .map(|i| {
                let mut e = events[i % events.len()].clone();
                e["event_uuid"] = format!("evt-{i}").into();
                e
            })
            .collect();
        let body = body.to_string();
        let want = crate::mapping::map_body_with(
            &body,
            0,
            crate::mapping::Limits::NONE,
            &MappingOptions::default(),
        )
        .unwrap();
        assert!(want.messages.len() > 2 * LINES_PER_WRITE);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        write_output(&want, &mut out, &mut err).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), want.messages.len());
        for (line, m) in lines.iter().zip(&want.messages) {
            assert_eq!(*line, m.json);
        }
        assert!(text.ends_with('\n'));
    }
}
