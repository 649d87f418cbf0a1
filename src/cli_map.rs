//! `moe2seg map`: one Streams body in, Segment messages out as JSON Lines.

use std::io::{self, Read, Write};

use crate::decode::lossy_utf8;
use crate::map::{Limits, MapOutput, map_body};
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

/// Writes messages (stdout) and rejections (stderr) as JSON Lines.
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
    stdout.flush()?;
    stderr.flush()
}

/// Runs `map` on raw bytes; returns the process exit code (0 ok, 2 not a Streams body).
pub fn run_map(bytes: &[u8], stdout: &mut impl Write, stderr: &mut impl Write) -> io::Result<i32> {
    let text = lossy_utf8(bytes);
    // A file of the user's own: no request-wide bound (the Lambda has them).
    match map_body(&text, now_millis(), Limits::NONE) {
        Ok(out) => {
            write_output(&out, stdout, stderr)?;
            Ok(0)
        }
        Err(e) => {
            writeln!(stderr, "moe2seg: not a MoEngage Streams request: {e}")?;
            Ok(2)
        }
    }
}
