//! `moe2seg backfill` as a user runs it: exit codes and the summary, a run killed (SIGKILL)
//! or stopped (Ctrl-C) and resumed from its checkpoint, S3 (moto) as the source, and the
//! backfill function's event through `moe2seg invoke`.

mod exports;
mod moto;
mod segment_stub;

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use exports::{TempDir, export, id};
use segment_stub::{Reply, SegmentStub};
use serde_json::Value;

const KEY: &str = "cli-backfill-key";

/// `moe2seg ARGS` with the settings in the environment (write key [`KEY`]), Segment at
/// `segment`.
fn moe2seg(segment: &str, args: &[&str]) -> Command {
    exports::moe2seg(segment, KEY, args)
}

fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|_| {
        panic!(
            "no summary: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_say_what_is_left() {
    let segment = SegmentStub::start(&[KEY]).await;
    let dir = TempDir::new("cli-exit");
    let path = export(&dir, "a.json.gz", "x", 50);
    let file = path.display().to_string();
    // Everything sent: 0, a JSON summary on stdout and a line on stderr.
    let out = moe2seg(&segment.url, &["backfill", &file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out)["sent"], 50);
    assert!(
        stderr(&out).contains("backfill summary: 1 files"),
        "{}",
        stderr(&out)
    );
    // Something not sent (outside the window is not that; a bad line is): 1.
    std::fs::write(dir.path("b.jsonl"), "not json\n").unwrap();
    let bad = dir.0.join("b.jsonl").display().to_string();
    let out = moe2seg(&segment.url, &["backfill", &bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // Cannot start: 2, with one line.
    for args in [
        vec!["backfill", "/no/such/dir"],
        vec!["backfill", "--since", "yesterday", &file],
        vec![
            "backfill",
            "--since",
            "2026-01-02T00:00:00Z",
            "--until",
            "2026-01-01T00:00:00Z",
            &file,
        ],
    ] {
        let out = moe2seg(&segment.url, &args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).trim().lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = moe2seg(&segment.url, &["backfill", &file])
        .env_remove("SEGMENT_WRITE_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("needs SECRET_ID"), "{}", stderr(&out));
    // Segment down for good: files unfinished, 3.
    let down = SegmentStub::start(&[KEY]).await;
    down.script(std::iter::repeat_n(Reply::Status(503), 10_000));
    let out = moe2seg(&down.url, &["backfill", "--batch-timeout", "1", &file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("rerun"), "{}", stderr(&out));
}

/// A dry run sends nothing, so it writes no checkpoint (it reads one if there is one).
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_writes_no_checkpoint() {
    let segment = SegmentStub::start(&[KEY]).await;
    let dir = TempDir::new("cli-dry");
    let file = export(&dir, "a.json.gz", "d", 20).display().to_string();
    let checkpoint = dir.0.join("c.jsonl");
    let path = checkpoint.display().to_string();
    let out = moe2seg(
        &segment.url,
        &["backfill", "--dry-run", "--checkpoint", &path, &file],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!checkpoint.exists());
    assert!(segment.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_resumes_only_its_own_window() {
    let segment = SegmentStub::start(&[KEY]).await;
    let dir = TempDir::new("cli-scope");
    let file = export(&dir, "a.json.gz", "s", 20).display().to_string();
    let checkpoint = dir.0.join("c.jsonl").display().to_string();
    let until = |t: &'static str| ["backfill", "--until", t, "--checkpoint", &checkpoint, &file];
    let out = moe2seg(&segment.url, &until("2030-01-01T00:00:00Z"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A wider window would skip what the first run left outside its own: refused.
    let out = moe2seg(&segment.url, &until("2031-01-01T00:00:00Z"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.trim().lines().count() == 1
            && e.contains("--until 2030-01-01T00:00:00.000Z (this run: 2031-01-01T00:00:00.000Z)"),
        "{e}"
    );
    // The same window, spelled otherwise, resumes: the file is done.
    let out = moe2seg(&segment.url, &until("2030-01-01T01:00:00+01:00"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out)["files_already_done"], 1);
    assert_eq!(segment.accepted().len(), 20);
}

/// A run to stop half-way: a slow Segment (each answer 150 ms late), exports of 8 × 1,500
/// events, and `moe2seg backfill --checkpoint` on them, two files at a time, once Segment
/// took 3,000 messages: the run, and the child to stop.
struct SlowRun {
    segment: SegmentStub,
    /// Holds the exports and the checkpoint until the test ends.
    _dir: TempDir,
    input: String,
    checkpoint: String,
}

async fn slow_run() -> (SlowRun, Child) {
    let segment = SegmentStub::start(&[KEY]).await;
    segment.script(std::iter::repeat_n(
        Reply::Delay(Duration::from_millis(150)),
        10_000,
    ));
    let dir = TempDir::new("cli-stop");
    for k in 0..8 {
        export(&dir, &format!("in/f{k}.json.gz"), &format!("s{k}"), 1500);
    }
    let input = dir.0.join("in").display().to_string();
    let checkpoint = dir.0.join("ckpt.jsonl").display().to_string();
    let mut child = moe2seg(
        &segment.url,
        &[
            "backfill",
            "--checkpoint",
            &checkpoint,
            "--concurrency",
            "2",
            &input,
        ],
    )
    .spawn()
    .unwrap();
    until_accepted(&segment, 3000, &mut child).await;
    let run = SlowRun {
        segment,
        _dir: dir,
        input,
        checkpoint,
    };
    (run, child)
}

fn all_ids() -> BTreeSet<String> {
    (0..8)
        .flat_map(|k| (0..1500).map(move |i| id(&format!("s{k}"), i)))
        .collect()
}

/// Waits until Segment took at least `n` messages.
async fn until_accepted(segment: &SegmentStub, n: usize, child: &mut Child) {
    let started = Instant::now();
    while segment.accepted().len() < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be stopped"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The rerun after a stop: everything is in Segment once the two runs are over, and what was
/// sent twice is at most what was in flight (files at once × batches in flight each).
async fn resume_and_check(run: &SlowRun, first: HashMap<String, u32>) {
    let fast = SegmentStub::start(&[KEY]).await;
    let out = moe2seg(
        &fast.url,
        &["backfill", "--checkpoint", &run.checkpoint, &run.input],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let second = fast.accepted();
    let all: BTreeSet<String> = first.keys().chain(second.keys()).cloned().collect();
    assert_eq!(all, all_ids());
    let twice = second.keys().filter(|k| first.contains_key(*k)).count();
    let batch = 1500; // at most: the file's events fit in one or two batches
    assert!(twice <= 4 * 2 * batch, "{twice} sent twice");
    assert!(
        twice < all_ids().len() / 2,
        "{twice} of {} sent twice",
        all_ids().len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_resumes_from_its_checkpoint() {
    let (run, mut child) = slow_run().await;
    child.kill().unwrap();
    child.wait().unwrap();
    let first = run.segment.accepted();
    assert!(first.len() < all_ids().len());
    resume_and_check(&run, first).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_cleanly_and_the_rerun_resumes() {
    let (run, child) = slow_run().await;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("INTERRUPTED"), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["interrupted"], true);
    // What the summary says was sent is what Segment has: in-flight batches finished.
    let first = run.segment.accepted();
    assert_eq!(s["sent"].as_u64().unwrap() as usize, first.len());
    resume_and_check(&run, first).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_exports_are_listed_and_read() {
    let moto = moto::MotoServer::start();
    let s3 = moto.s3();
    s3.create_bucket().bucket("exports").send().await.unwrap();
    let dir = TempDir::new("cli-s3");
    for (k, n) in [(0, 400), (1, 300)] {
        let path = export(&dir, &format!("f{k}.json.gz"), &format!("s3{k}"), n);
        s3.put_object()
            .bucket("exports")
            .key(format!(
                "acme_app/export_day=28-11-2025/event_exports_{k}.json.gz"
            ))
            .body(std::fs::read(path).unwrap().into())
            .send()
            .await
            .unwrap();
    }
    s3.put_object()
        .bucket("exports")
        .key("acme_app/export_day=28-11-2025/_SUCCESS")
        .body(Vec::new().into())
        .send()
        .await
        .unwrap();
    let segment = SegmentStub::start(&[KEY]).await;
    let mut cmd = moe2seg(&segment.url, &["backfill", "s3://exports/acme_app/"]);
    moto.apply_env(&mut cmd)
        .env("AWS_ENDPOINT_URL_S3", &moto.endpoint);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(
        (
            s["files"].as_u64(),
            s["sent"].as_u64(),
            s["not_exports"].as_u64()
        ),
        (Some(2), Some(700), Some(1))
    );
    assert_eq!(segment.accepted().len(), 700);

    // The backfill function's event (the Distributed Map's batch), through moe2seg invoke.
    let event = serde_json::json!({
        "BatchInput": {"bucket": "exports", "since": null, "until": "2025-11-28T12:05:00Z"},
        "Items": [
            {"Key": "acme_app/export_day=28-11-2025/event_exports_0.json.gz", "Size": 1, "Etag": "\"x\""},
            {"Key": "acme_app/export_day=28-11-2025/", "Size": 0},
        ]
    });
    let file = dir.path("event.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let again = SegmentStub::start(&[KEY]).await;
    let mut cmd = moe2seg(&again.url, &["invoke", &file.display().to_string()]);
    moto.apply_env(&mut cmd)
        .env("AWS_ENDPOINT_URL_S3", &moto.endpoint);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Events at T0 + 0..400 s; until T0 + 300 s.
    assert_eq!(
        (answer["sent"].as_u64(), answer["outside_window"].as_u64()),
        (Some(300), Some(100)),
        "{answer}"
    );
    assert_eq!(answer["skipped"].as_array().unwrap().len(), 1);
    // The sample event as it is (events/backfill-items.json), its objects put where it says.
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/backfill-items.json");
    let batch: Value = serde_json::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    let bucket = batch["BatchInput"]["bucket"].as_str().unwrap();
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let mut objects = 0;
    for (k, item) in batch["Items"].as_array().unwrap().iter().enumerate() {
        let key = item["Key"].as_str().unwrap();
        if key.ends_with('/') {
            continue;
        }
        let path = export(
            &dir,
            &format!("sample{k}.json.gz"),
            &format!("sample{k}"),
            40,
        );
        let body = std::fs::read(path).unwrap();
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
        objects += 1;
    }
    let sampled = SegmentStub::start(&[KEY]).await;
    let mut cmd = moe2seg(&sampled.url, &["invoke", &sample.display().to_string()]);
    moto.apply_env(&mut cmd)
        .env("AWS_ENDPOINT_URL_S3", &moto.endpoint);
    let out = cmd.output().unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["files"].as_u64(), Some(objects), "{answer}");
    assert_eq!(answer["sent"].as_u64(), Some(40 * objects), "{answer}");
    assert_eq!(sampled.accepted().len() as u64, 40 * objects);

    // An object that is not there: the batch is not finished (the state machine retries).
    let missing = serde_json::json!({
        "BatchInput": {"bucket": "exports"},
        "Items": [{"Key": "acme_app/export_day=28-11-2025/event_exports_9.json.gz", "Size": 10}]
    });
    std::fs::write(&file, missing.to_string()).unwrap();
    let mut cmd = moe2seg(&again.url, &["invoke", &file.display().to_string()]);
    moto.apply_env(&mut cmd)
        .env("AWS_ENDPOINT_URL_S3", &moto.endpoint);
    let out = cmd.output().unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["errorType"], "BackfillIncomplete", "{answer}");
}
