//! `cargo bench`: decode + map + serialize against the serde_json floor, chunking, and the
//! full handler on a 100-event request against a local Segment stand-in.
//!
//! The floor is what any mapper must at least do: parse the body into a `serde_json::Value`
//! tree and write each event back out. Report ratios from one run (machines are noisy).

mod common;
#[path = "../tests/segment_stub/mod.rs"]
mod segment_stub;

use std::hint::black_box;

use common::{body_of, local_handler, post};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use moengage_segment::delivery::segment;
use moengage_segment::mapping::{Limits, map_body};
use serde_json::Value;

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
            let ranges = segment::chunk(&out.messages);
            let mut total = 0;
            for r in ranges {
                total += segment::batch_body(&out.messages[r], "2025-11-28T12:00:00.000Z").len();
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
    let (h, auth) = local_handler(&stub.url);
    let body = body_of(100);
    let mut g = c.benchmark_group("handler");
    g.throughput(Throughput::Elements(100));
    g.bench_function("post_100_events_to_local_stub", |b| {
        b.iter(|| {
            let resp = rt.block_on(h.handle(post(&body, &auth)));
            assert_eq!(resp.status(), 200);
        })
    });
    g.finish();
}

criterion_group!(benches, mapping, chunking, handler);
criterion_main!(benches);
