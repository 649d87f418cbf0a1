//! `cargo bench --bench invocation`: what one 100-event webhook invocation costs inside a
//! warm Lambda, the process start left out: the handler's own time (decode, map, deliver to
//! a local Segment stand-in, answer) and the heap allocations it makes, counted by a
//! counting global allocator on the handler's thread only (the stand-in runs on another).
//! Also the allocations of mapping alone. Prints figures; asserts none.

mod common;
#[path = "../tests/segment_stub/mod.rs"]
mod segment_stub;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use common::{body_of, local_handler, post};
use moengage_segment::mapping::{Limits, map_body};

/// The system allocator, counting calls and bytes on threads that ask for it.
struct Counting;

thread_local! {
    /// (counting on this thread, allocations, bytes).
    static COUNT: Cell<(bool, u64, u64)> = const { Cell::new((false, 0, 0)) };
}

fn note(bytes: usize) {
    // `try_with`: no count while a thread's locals are being torn down.
    let _ = COUNT.try_with(|c| {
        let (on, n, b) = c.get();
        if on {
            c.set((on, n + 1, b + bytes as u64));
        }
    });
}

// SAFETY: every call is passed unchanged to `System`; counting touches only a const
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` with this thread's allocations counted: (result, allocations, bytes).
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    COUNT.with(|c| c.set((true, 0, 0)));
    let out = f();
    let (_, n, b) = COUNT.with(|c| c.replace((false, 0, 0)));
    (out, n, b)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let body = body_of(100);

    let map = || map_body(&body, 1_764_331_200_000, Limits::REQUEST).unwrap();
    // Warm: the first call builds the catalog and property tables.
    assert_eq!(map().messages.len(), 100);
    let (_, n, b) = counted(map);
    println!(
        "map_body, 100 events: {n} allocations ({b} bytes), {:.1} per event",
        n as f64 / 100.0
    );
    let runs = 2_000u32;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(map());
    }
    println!(
        "map_body, 100 events: {:.0} µs mean of {runs}",
        (start.elapsed() / runs).as_secs_f64() * 1e6
    );

    // The stand-in on its own thread and runtime, so only the handler's thread is counted.
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let stub = segment_stub::SegmentStub::start(&["bench-key"]).await;
            url_tx.send(stub.url.clone()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let url = url_rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (h, auth) = local_handler(&url);
    let invoke = || {
        let resp = rt.block_on(h.handle(post(&body, &auth)));
        assert_eq!(resp.status(), 200);
    };
    // Warm: the secret read, the pooled connection, the per-process tables.
    for _ in 0..200 {
        invoke();
    }
    let ((), n, b) = counted(invoke);
    println!("handler, one warm 100-event invocation: {n} allocations ({b} bytes)");
    let start = Instant::now();
    for _ in 0..runs {
        invoke();
    }
    let each = start.elapsed() / runs;
    println!(
        "handler, warm 100-event invocation (decode, map, deliver to a local stand-in, answer): {:.0} µs mean of {runs}",
        each.as_secs_f64() * 1e6
    );
}
