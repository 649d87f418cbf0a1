//! The backfill against the Segment stand-in, in-process: directories of exports sent once
//! each, the window, every kind of bad input reported with its file and line, Segment's
//! refusals, a 429 and the rate ceiling, an outage that leaves files unfinished and the
//! rerun that resumes them.

mod exports;
mod parking;
mod segment_stub;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use exports::{T0, TempDir, event, export, id, line, write_gz};
use moengage_segment::backfill::checkpoint::{Checkpoint, Scope};
use moengage_segment::backfill::report::{FileEnd, Rejects, Summary, exit};
use moengage_segment::backfill::source::{self, Listed};
use moengage_segment::backfill::{Cancel, Run, Window};
use moengage_segment::delivery::forward::Forwarder;
use moengage_segment::delivery::outcome::Queues;
use moengage_segment::delivery::pacer::Pacer;
use moengage_segment::delivery::park::SqsQueue;
use moengage_segment::delivery::segment::{RetryPolicy, SegmentClient};
use moengage_segment::mapping::options::MappingOptions;
use moengage_segment::settings::config::{Endpoints, Settings};
use moengage_segment::settings::secret::{SettingsCache, StaticSource};
use segment_stub::{Reply, SegmentStub};
use serde_json::Value;

const KEY: &str = "backfill-key";

fn forwarder(segment: &SegmentStub, rate: Option<u32>) -> Forwarder<StaticSource> {
    forwarder_with(segment, rate, Queues::default())
}

fn forwarder_with(
    segment: &SegmentStub,
    rate: Option<u32>,
    queues: Queues,
) -> Forwarder<StaticSource> {
    let settings = Settings::from_parts(
        Some(KEY.into()),
        Some("us".into()),
        None,
        None,
        Some("token".into()),
    )
    .unwrap();
    let mut f = Forwarder::live(
        SettingsCache::new(StaticSource(Ok(settings)), Duration::from_secs(300)),
        SegmentClient::new(RetryPolicy {
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            ..RetryPolicy::default()
        })
        .unwrap(),
        Endpoints {
            us: segment.url.clone(),
            eu: segment.url.clone(),
        },
        queues,
    );
    if let Some(rate) = rate {
        f.pace(Arc::new(Pacer::per_second(rate)));
    }
    f
}

/// A run over `forwarder` with these rejects and checkpoint files.
fn run<'f>(
    forwarder: &'f Forwarder<StaticSource>,
    dir: &TempDir,
    window: Window,
    checkpoint: bool,
) -> Run<'f, StaticSource> {
    Run {
        forwarder,
        mapping: MappingOptions::none(),
        window,
        concurrency: 2,
        batch_budget: Duration::from_secs(10),
        deadline: None,
        checkpoint: checkpoint.then(|| {
            let scope = Scope::new(&window, &MappingOptions::default());
            Checkpoint::open(&dir.0.join("checkpoint.jsonl"), &scope).unwrap()
        }),
        rejects: Rejects::file(&dir.0.join("rejects.jsonl")).unwrap(),
        cancel: Arc::new(Cancel::default()),
        read_bytes: Arc::default(),
        counts_sent: Arc::default(),
        s3: Default::default(),
        aws: None,
    }
}

async fn list(paths: &[&std::path::Path]) -> Listed {
    let sources: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    source::list(&sources, || unreachable!("no S3 here"))
        .await
        .unwrap()
}

/// Runs, collecting how each file ended.
async fn backfill(
    run: &Run<'_, StaticSource>,
    listed: &Listed,
) -> (Summary, Vec<(String, FileEnd)>) {
    let ends = std::sync::Mutex::new(Vec::new());
    let summary = run
        .run(listed, |f, e| {
            ends.lock().unwrap().push((f.name.clone(), e.clone()))
        })
        .await;
    (summary, ends.into_inner().unwrap())
}

fn rejects(dir: &TempDir) -> Vec<Value> {
    std::fs::read_to_string(dir.0.join("rejects.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(tag: &str, range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| id(tag, i)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_of_exports_is_sent_once_each() {
    let segment = SegmentStub::start(&[KEY]).await;
    let f = forwarder(&segment, None);
    let dir = TempDir::new("bf-dir");
    export(
        &dir,
        "in/acme_app/export_day=28-11-2025/event_exports_1.json.gz",
        "a",
        700,
    );
    export(
        &dir,
        "in/acme_app/export_day=28-11-2025/event_exports_2.json.gz",
        "b",
        10,
    );
    // Plain JSON Lines (CRLF), and a file that is not an export.
    let plain: Vec<String> = (0..5).map(|i| line(&event("c", i))).collect();
    std::fs::write(dir.path("in/acme_app/other.jsonl"), plain.join("\r\n")).unwrap();
    std::fs::write(dir.path("in/acme_app/_SUCCESS"), "").unwrap();
    let listed = list(&[&dir.0.join("in")]).await;
    assert_eq!((listed.files.len(), listed.skipped.len()), (3, 1));
    let r = run(&f, &dir, Window::default(), true);
    let (summary, ends) = backfill(&r, &listed).await;
    assert!(ends.iter().all(|(_, e)| *e == FileEnd::Done), "{ends:?}");
    assert_eq!(
        (summary.files, summary.files_done, summary.counts.lines),
        (3, 3, 715)
    );
    assert_eq!(summary.counts.sent, 715);
    assert_eq!(summary.exit_code(), exit::SENT);
    let accepted = segment.accepted();
    let want: BTreeSet<String> = ids("a", 0..700)
        .into_iter()
        .chain(ids("b", 0..10))
        .chain(ids("c", 0..5))
        .collect();
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(accepted.values().all(|n| *n == 1), "each once");
    assert!(
        segment.violations().is_empty(),
        "{:?}",
        segment.violations()
    );
    // Batches within Segment's limits: 700 events of ~1 KB make more than one.
    assert!(segment.requests().len() >= 3);

    // A rerun with the checkpoint sends nothing.
    drop(r);
    let r = run(&f, &dir, Window::default(), true);
    let (again, _) = backfill(&r, &listed).await;
    assert_eq!((again.files_already_done, again.counts.sent), (3, 0));
    assert_eq!(segment.accepted(), accepted);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_outside_the_window_are_counted_not_sent() {
    let segment = SegmentStub::start(&[KEY]).await;
    let f = forwarder(&segment, None);
    let dir = TempDir::new("bf-window");
    // Events at T0 + 0..100 s.
    let path = export(&dir, "x.json.gz", "w", 100);
    let window = Window {
        since: Some((T0 + 10) * 1000),
        until: Some((T0 + 40) * 1000),
    };
    let r = run(&f, &dir, window, false);
    let (summary, _) = backfill(&r, &list(&[&path]).await).await;
    assert_eq!(
        (summary.counts.sent, summary.counts.outside_window),
        (30, 70)
    );
    assert_eq!(summary.exit_code(), exit::SENT);
    assert_eq!(
        segment.accepted().keys().cloned().collect::<BTreeSet<_>>(),
        ids("w", 10..40)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_reported_with_its_file_and_line_and_the_run_goes_on() {
    let segment = SegmentStub::start(&[KEY]).await;
    let f = forwarder(&segment, None);
    let dir = TempDir::new("bf-bad");
    let mut nameless = event("m", 4);
    nameless
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k != "uid" && k != "user_attributes");
    let lines = vec![
        line(&event("m", 0)),
        "{not json".to_owned(),
        r#"{"app_name": "Acme", "export_day": "28-11-2025"}"#.to_owned(),
        line(&event("m", 3)),
        line(&nameless),
        format!(
            r#"{{"event": {{"event_name": "Big", "uid": "u", "a": "{}"}}}}"#,
            "x".repeat(5 << 20)
        ),
        line(&event("m", 6)),
    ];
    let good = dir.path("in/good.json.gz");
    write_gz(&good, &lines);
    // A gzip cut in the middle, a corrupt one, an encrypted one.
    let many: Vec<String> = (0..3000).map(|i| line(&event("t", i))).collect();
    let whole = exports::gzip(&(many.join("\n") + "\n"));
    std::fs::write(dir.path("in/truncated.json.gz"), &whole[..whole.len() / 2]).unwrap();
    let mut corrupt = exports::gzip(&(many[..100].join("\n") + "\n"));
    for b in &mut corrupt[30..60] {
        *b ^= 0x5a;
    }
    std::fs::write(dir.path("in/corrupt.json.gz"), &corrupt).unwrap();
    std::fs::write(
        dir.path("in/secret.json.gz.gpg"),
        b"\x85\x01\x0c\x03not really",
    )
    .unwrap();
    let r = run(&f, &dir, Window::default(), true);
    let (summary, ends) = backfill(&r, &list(&[&dir.0.join("in")]).await).await;
    assert_eq!(summary.files_done, 4, "{ends:?}");
    assert_eq!(summary.exit_code(), exit::REPORTED);
    let by = |reason: &str| summary.counts.rejected.get(reason).copied().unwrap_or(0);
    assert_eq!(
        (
            by("invalid_json"),
            by("no_event"),
            by("no_identity"),
            by("line_too_long")
        ),
        (1, 1, 1, 1)
    );
    assert_eq!((by("corrupt_gzip"), by("encrypted")), (2, 1));
    let reports = rejects(&dir);
    let at = |file: &str, line: u64| {
        reports
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(file) && r["line"] == line)
            .map(|r| r["reason"].as_str().unwrap().to_owned())
    };
    assert_eq!(at("good.json.gz", 2).as_deref(), Some("invalid_json"));
    assert_eq!(at("good.json.gz", 3).as_deref(), Some("no_event"));
    assert_eq!(at("good.json.gz", 5).as_deref(), Some("no_identity"));
    assert_eq!(at("good.json.gz", 6).as_deref(), Some("line_too_long"));
    assert_eq!(at("secret.json.gz.gpg", 0).as_deref(), Some("encrypted"));
    let truncated = reports
        .iter()
        .find(|r| r["file"].as_str().unwrap().ends_with("truncated.json.gz"))
        .unwrap();
    assert_eq!(truncated["reason"], "corrupt_gzip");
    let read = truncated["line"].as_u64().unwrap();
    assert!(read > 0 && read < 3000, "{truncated}");
    // Every good event of the good file went, and the readable part of the truncated one.
    let accepted = segment.accepted();
    for i in [0, 3, 6] {
        assert_eq!(accepted.get(&id("m", i)), Some(&1));
    }
    assert!(accepted.contains_key(&id("t", 0)));
    // Corrupt and encrypted files are done: a rerun would not read them better.
    drop(r);
    let r = run(&f, &dir, Window::default(), true);
    let (again, _) = backfill(&r, &list(&[&dir.0.join("in")]).await).await;
    assert_eq!(again.files_already_done, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_segment_refuses_are_reported_and_the_file_finishes() {
    let segment = SegmentStub::start(&[KEY]).await;
    segment.poison(&id("p", 7));
    let f = forwarder(&segment, None);
    let dir = TempDir::new("bf-refused");
    let path = export(&dir, "p.json.gz", "p", 20);
    let r = run(&f, &dir, Window::default(), true);
    let (summary, ends) = backfill(&r, &list(&[&path]).await).await;
    assert_eq!(ends[0].1, FileEnd::Done);
    assert_eq!((summary.counts.sent, summary.counts.refused), (19, 1));
    assert_eq!(summary.exit_code(), exit::REPORTED);
    let reports = rejects(&dir);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["reason"], "segment_refused");
    assert_eq!(reports[0]["line"], 8);
    assert_eq!(reports[0]["event_uuid"], "evt-p-00007");
    assert!(
        reports[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 400")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_its_queue_cannot_take_leaves_the_file_unfinished() {
    let segment = SegmentStub::start(&[KEY]).await;
    segment.poison(&id("q", 7));
    // A refused queue on a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let queue = SqsQueue::new(
        parking::sqs_client(&endpoint),
        format!("{endpoint}/123456789012/refused"),
    );
    let queues = Queues {
        parked: None,
        refused: Some(queue),
    };
    let f = forwarder_with(&segment, None, queues);
    let dir = TempDir::new("bf-refused-queue");
    let path = export(&dir, "q.json.gz", "q", 20);
    let r = run(&f, &dir, Window::default(), true);
    let (summary, ends) = backfill(&r, &list(&[&path]).await).await;
    assert!(
        matches!(&ends[0].1, FileEnd::Unfinished { why } if why.contains("parking in")),
        "{ends:?}"
    );
    assert_eq!(summary.exit_code(), exit::UNFINISHED);
    assert_eq!((summary.counts.lines, summary.counts.refused), (0, 0));
    assert!(rejects(&dir).is_empty(), "not reported as if settled");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_batch_runs_past_the_run_s_deadline() {
    let down = SegmentStub::start(&[KEY]).await;
    down.script(std::iter::repeat_n(Reply::Status(503), 100_000));
    let f = forwarder(&down, None);
    let dir = TempDir::new("bf-deadline");
    let a = export(&dir, "a.json.gz", "d", 3000);
    let mut r = run(&f, &dir, Window::default(), false);
    r.batch_budget = Duration::from_secs(60);
    let started = std::time::Instant::now();
    r.deadline = Some(started + Duration::from_secs(2));
    let (summary, ends) = backfill(&r, &list(&[&a]).await).await;
    assert!(matches!(ends[0].1, FileEnd::Unfinished { .. }), "{ends:?}");
    assert_eq!(summary.exit_code(), exit::UNFINISHED);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "a 60 s batch budget ran past the deadline: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_holds_every_request_back_and_nothing_is_lost_or_sent_twice() {
    let segment = SegmentStub::start(&[KEY]).await;
    segment.script([
        Reply::RetryAfter(429, "1".into()),
        Reply::RetryAfter(429, "1".into()),
    ]);
    let f = forwarder(&segment, Some(50));
    let dir = TempDir::new("bf-429");
    let a = export(&dir, "a.json.gz", "a", 1200);
    let b = export(&dir, "b.json.gz", "b", 1200);
    let r = run(&f, &dir, Window::default(), true);
    let (summary, _) = backfill(&r, &list(&[&a, &b]).await).await;
    assert_eq!(
        (summary.counts.sent, summary.exit_code()),
        (2400, exit::SENT)
    );
    let accepted = segment.accepted();
    assert_eq!(accepted.len(), 2400);
    assert!(accepted.values().all(|n| *n == 1));
    // After each 429, no request (of either file) starts until the Retry-After is over;
    // only those already on their way arrive at once.
    let requests = segment.requests();
    let throttled: Vec<_> = requests
        .iter()
        .filter(|q| q.status == Some(429))
        .map(|q| q.at)
        .collect();
    assert_eq!(throttled.len(), 2);
    for t in throttled {
        let early = requests
            .iter()
            .filter(|q| {
                q.at > t + Duration::from_millis(100) && q.at < t + Duration::from_millis(900)
            })
            .count();
        assert_eq!(early, 0, "requests within a second of a 429");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_is_a_ceiling() {
    let segment = SegmentStub::start(&[KEY]).await;
    let f = forwarder(&segment, Some(4));
    let dir = TempDir::new("bf-rate");
    // ~11 requests: five files at once pressing on the pacer.
    let paths: Vec<_> = (0..5)
        .map(|k| export(&dir, &format!("r{k}.json.gz"), &format!("r{k}"), 2000))
        .collect();
    let mut r = run(&f, &dir, Window::default(), false);
    r.concurrency = 5;
    let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    let (summary, _) = backfill(&r, &list(&refs).await).await;
    assert_eq!(summary.counts.sent, 10_000);
    let at: Vec<_> = segment.requests().iter().map(|q| q.at).collect();
    assert!(at.len() >= 10, "{}", at.len());
    // Received within a 950 ms window (loopback jitter aside): never more than 4.
    let window = Duration::from_millis(950);
    let most = (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t < at[i] + window).count())
        .max()
        .unwrap();
    assert!(most <= 4, "{most} requests within {window:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_leaves_files_unfinished_and_the_rerun_resumes_them() {
    let down = SegmentStub::start(&[KEY]).await;
    // The first requests succeed, then Segment fails for good.
    down.script(
        std::iter::repeat_n(Reply::Normal, 1)
            .chain(std::iter::repeat_n(Reply::Status(503), 100_000)),
    );
    let f = forwarder(&down, None);
    let dir = TempDir::new("bf-outage");
    let a = export(&dir, "a.json.gz", "o", 3000);
    let mut r = run(&f, &dir, Window::default(), true);
    r.batch_budget = Duration::from_secs(2);
    r.concurrency = 1;
    let listed = list(&[&a]).await;
    let (summary, ends) = backfill(&r, &listed).await;
    assert!(matches!(ends[0].1, FileEnd::Unfinished { .. }), "{ends:?}");
    assert_eq!(summary.exit_code(), exit::UNFINISHED);
    let first = down.accepted();
    assert!(!first.is_empty() && first.len() < 3000);
    let c = &summary.counts;
    assert_eq!(
        c.lines,
        c.sent + c.rejected_total(),
        "every line counted once: {c:?}"
    );
    let lines_before = c.lines;
    drop(r);

    // Segment is back: the rerun sends the rest, re-sending at most the batches that were
    // in flight (the same messageIds: Segment keeps one).
    let back = SegmentStub::start(&[KEY]).await;
    let f = forwarder(&back, None);
    let r = run(&f, &dir, Window::default(), true);
    let (summary, ends) = backfill(&r, &listed).await;
    assert_eq!(
        (ends[0].1.clone(), summary.exit_code()),
        (FileEnd::Done, exit::SENT)
    );
    assert_eq!(
        lines_before + summary.counts.lines,
        3000,
        "{:?}",
        summary.counts
    );
    let second = back.accepted();
    let all: BTreeSet<String> = first.keys().chain(second.keys()).cloned().collect();
    assert_eq!(all, ids("o", 0..3000));
    let twice = first.keys().filter(|k| second.contains_key(*k)).count();
    let per_batch = 3000 / back.requests().len().max(1) + 1;
    assert!(
        twice <= 2 * per_batch,
        "{twice} sent twice; in flight at most 2 batches of ~{per_batch}"
    );
}
