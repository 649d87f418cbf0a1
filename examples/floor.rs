//! The serde_json floor for the performance comparison (README "Performance"): read a
//! Streams body, parse it into a `serde_json::Value` tree and write each event back out as a
//! JSON line, with no mapping. `moe2seg map` does strictly more work than this per event.
//!
//! `cargo run --release --example floor -- body.json > /dev/null`

use std::io::Write;

fn main() {
    let path = std::env::args().nth(1).expect("usage: floor BODY.json");
    let bytes = std::fs::read(&path).expect("read body");
    let text = String::from_utf8_lossy(&bytes);
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON body");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for e in v["events"].as_array().expect("events array") {
        serde_json::to_writer(&mut out, e).expect("write");
        out.write_all(b"\n").expect("write");
    }
    out.flush().expect("flush");
}
