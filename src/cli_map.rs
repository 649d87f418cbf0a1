//! `moe2seg map`: one Streams body in, Segment messages out as JSON Lines.

use std::io::{self, Read, Write};

use crate::decode::lossy_utf8;
use crate::map::{Limits, MapOutput, map_body_with};
use crate::options::MappingOptions;
use crate::time::now_millis;

/// Reads a body from a path, or stdin for `-`/none.
pub fn read_input(path: Option<&str>) -> io::Result<Vec<u8>> {
    match path {
        None | Some("-") => {
            let mut buf = Vec::new();
            io::stdin().lock().read_to_end(&mut buf)?;
            Ok(buf)
        }
        Some(p) => std::fs::read(p),
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
    for m in &out.messages {
        stdout.write_all(m.json.as_bytes())?;
        stdout.write_all(b"\n")?;
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
