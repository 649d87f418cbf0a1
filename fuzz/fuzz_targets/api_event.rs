//! Lambda event bytes → lossy text → `request_from_event` (the `moe2seg invoke` path):
//! never panics; `Err` is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moengage_segment::decode::lossy_utf8;
use moengage_segment::cli::invoke::request_from_event;

fuzz_target!(|data: &[u8]| {
    let _ = request_from_event(&lossy_utf8(data));
});
