//! `cargo bench`: decode + map + serialize against the serde_json floor, chunking, and the
//! full handler on a 100-event request against a local Segment stand-in.
//!
//! The floor is what any mapper must at least do: parse the body into a `serde_json::Value`
//! tree and write each event back out. Report ratios from one run (machines are noisy).

#[path = "../tests/segment_stub/mod.rs"]
mod segment_stub;

use std::hint::black_box;
use std::time::Duration;

use base64::Engine;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moengage_segment::config::Endpoints;
use moengage_segment::config::Settings;
use moengage_segment::deliver::{self, RetryPolicy, SegmentClient};
use moengage_segment::forward::{Forwarder, Queues};
use moengage_segment::handler::Handler;
use moengage_segment::map::{Limits, map_body};
use moengage_segment::secrets::{SettingsCache, StaticSource};
use serde_json::Value;

/// A body of `n` events made from the realistic 100-event fixture, with unique uuids.
pub fn body_of(n: usize) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/batch_100.json"
    ))
    .unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let base = v["events"].as_array().unwrap().clone();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = base[i % base.len()].clone();
            e["event_uuid"] = Value::String(format!("evt-bench-{i:07}"));
            e
        })
        .collect();
    v["events"] = Value::Array(events);
    v.to_string()
}

fn floor(body: &str) -> usize {
    let v: Value = serde_json::from_str(body).unwrap();
    let mut bytes = 0;
    for e in v["events"].as_array().unwrap() {
        bytes += serde_json::to_string(e).unwrap().len();
    }
    bytes
}

fn mapping(c: &mut Criterion) {
    let mut g = c.benchmark_group("map");
    for n in [100usize, 50_000] {
        let body = body_of(n);
        g.throughput(Throughput::Elements(n as u64));
        if n > 1000 {
            g.sample_size(10);
        }
        g.bench_with_input(
            BenchmarkId::new("decode_map_serialize", n),
            &body,
            |b, body| {
                b.iter(|| {
                    black_box(map_body(black_box(body), 1_764_331_200_000, Limits::NONE).unwrap())
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("serde_json_value_floor", n),
            &body,
            |b, body| b.iter(|| black_box(floor(black_box(body)))),
        );
    }
    g.finish();
}

fn chunking(c: &mut Criterion) {
    let out = map_body(&body_of(50_000), 0, Limits::NONE).unwrap();
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(out.messages.len() as u64));
    g.sample_size(20);
    g.bench_function("chunk_and_build_bodies_50000", |b| {
        b.iter(|| {
            let ranges = deliver::chunk(&out.messages);
            let mut total = 0;
            for r in ranges {
                total += deliver::batch_body(&out.messages[r], "2025-11-28T12:00:00.000Z").len();
            }
            black_box(total)
        })
    });
    g.finish();
}

fn handler(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stub = rt.block_on(segment_stub::SegmentStub::start(&["bench-key"]));
    let settings = Settings::from_parts(
        Some("bench-key".into()),
        Some("us".into()),
        Some("moengage".into()),
        Some("pw".into()),
        None,
    );
    let h = Handler::new(
        Forwarder::live(
            SettingsCache::new(StaticSource(settings), Duration::MAX),
            SegmentClient::new(RetryPolicy::default()).unwrap(),
            Endpoints {
                us: stub.url.clone(),
                eu: stub.url.clone(),
            },
            Queues::default(),
        ),
        6 << 20,
    );
    let body = body_of(100);
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("moengage:pw")
    );
    let mut g = c.benchmark_group("handler");
    g.throughput(Throughput::Elements(100));
    g.bench_function("post_100_events_to_local_stub", |b| {
        b.iter(|| {
            let req = lambda_http::http::Request::builder()
                .method("POST")
                .uri("/moengage")
                .header("authorization", &auth)
                .body(lambda_http::Body::from(body.clone()))
                .unwrap();
            let resp = rt.block_on(h.handle(req));
            assert_eq!(resp.status(), 200);
        })
    });
    g.finish();
}

criterion_group!(benches, mapping, chunking, handler);
criterion_main!(benches);
