//! MoEngage S3 export files for the backfill tests: gzip (or plain) JSON Lines, one event
//! a line in MoEngage's wrapper, written into a fresh temporary directory; and `moe2seg`
//! to run on them.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

/// 2025-11-28T12:00:00Z, in seconds: the events' times are around it.
pub const T0: i64 = 1_764_331_200;

/// A directory that is removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("moe2seg-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An email event with uuid `evt-<tag>-<i>` at `T0 + i` seconds.
pub fn event(tag: &str, i: usize) -> Value {
    json!({"event_name": "Email Sent", "event_code": "MOE_EMAIL_SENT",
        "event_uuid": format!("evt-{tag}-{i:05}"), "event_time": T0 + i as i64,
        "uid": format!("user-{}", i % 50), "email_id": format!("u{}@example.com", i % 50),
        "event_attributes": {"campaign_id": "c-1", "campaign_name": "Welcome", "n": i},
        "user_attributes": {"moengage_user_id": format!("mu-{i}")}})
}

/// An export line wrapping `event`.
pub fn line(event: &Value) -> String {
    json!({"app_name": "Acme", "export_hour": 12, "export_doc_id": "d-1", "db_name": "acme",
        "export_day": "28-11-2025", "event": event})
    .to_string()
}

/// The messageId of `event(tag, i)`.
pub fn id(tag: &str, i: usize) -> String {
    format!("moe-evt-{tag}-{i:05}")
}

/// Writes `lines` gzipped.
pub fn write_gz(path: &Path, lines: &[String]) {
    std::fs::write(path, gzip(&(lines.join("\n") + "\n"))).unwrap();
}

pub fn gzip(text: &str) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

/// Writes a gzip export of events `tag` 0..n.
pub fn export(dir: &TempDir, rel: &str, tag: &str, n: usize) -> PathBuf {
    let path = dir.path(rel);
    let lines: Vec<String> = (0..n).map(|i| line(&event(tag, i))).collect();
    write_gz(&path, &lines);
    path
}

/// `moe2seg ARGS` with only these settings in the environment (none of the caller's AWS,
/// Segment, webhook or mapping settings): write key `key`, Segment at `segment`.
pub fn moe2seg(segment: &str, key: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moe2seg"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("AWS_") || name.starts_with("SEGMENT_") || name.starts_with("WEBHOOK_")
        {
            c.env_remove(&*name);
        }
    }
    c.env_remove("SECRET_ID")
        .env_remove("DEAD_LETTER_QUEUE_URL")
        .env_remove("REFUSED_QUEUE_URL")
        .env_remove("MAPPING_OPTIONS")
        .env("SEGMENT_WRITE_KEY", key)
        .env("SEGMENT_REGION", "us")
        .env("WEBHOOK_TOKEN", "t")
        .env("SEGMENT_ENDPOINT_US", segment)
        .env("RUST_LOG", "warn")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}
