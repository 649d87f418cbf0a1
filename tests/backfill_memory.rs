//! The backfill's memory is bounded by design, not by the file: `moe2seg backfill` on one
//! export of about 100 MB uncompressed stays far under 64 MB of peak RSS. (The same on a
//! 1 GB export, with the release build, is in docs/performance.md: benches/backfill.sh.)
//! Alone in its test binary: the peak RSS read is that of this binary's children, and
//! `moe2seg` is its only one.

mod exports;
mod segment_stub;

use std::io::Write;
use std::process::Stdio;

use exports::{TempDir, event, line, moe2seg};
use flate2::Compression;
use flate2::write::GzEncoder;
use segment_stub::SegmentStub;

/// The largest peak resident set size of this process's children that have ended, in KB.
fn children_peak_rss_kb() -> i64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_export_is_streamed_in_bounded_memory() {
    let segment = SegmentStub::start(&["mem-key"]).await;
    let dir = TempDir::new("bf-mem");
    let path = dir.path("big.json.gz");
    // 20,000 events of ~5 KB each (a large attribute): ~100 MB of JSON Lines.
    let mut out = GzEncoder::new(std::fs::File::create(&path).unwrap(), Compression::fast());
    let pad = "x".repeat(5000);
    let mut uncompressed = 0;
    for i in 0..20_000 {
        let mut e = event("mem", i);
        e["event_attributes"]["note"] = pad.clone().into();
        let l = line(&e) + "\n";
        uncompressed += l.len();
        out.write_all(l.as_bytes()).unwrap();
    }
    out.finish().unwrap();
    assert!(uncompressed > 100_000_000, "{uncompressed}");
    let path = path.display().to_string();
    let status = moe2seg(
        &segment.url,
        "mem-key",
        &["backfill", "--concurrency", "1", &path],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status()
    .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(segment.accepted().len(), 20_000);
    let peak_mb = children_peak_rss_kb() / 1024;
    assert!(
        peak_mb < 64,
        "peak RSS {peak_mb} MB for a {} MB export",
        uncompressed >> 20
    );
}
