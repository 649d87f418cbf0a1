//! Golden fixture pairs: `tests/fixtures/<case>.json` (a MoEngage Streams body) →
//! `tests/fixtures/<case>.expected.json` (the Segment messages and rejections); with mapping
//! options, `tests/fixtures/options/<case>.json` and `<case>.options.json` (the options, as
//! `moe2seg map --options` reads them) → `<case>.expected.json`.
//!
//! Regenerate after an intended mapping change with `UPDATE_GOLDEN=1 cargo test --test golden`
//! and review the diff: the expected files are the spec of the mapping.

use std::fs;
use std::path::{Path, PathBuf};

use moengage_segment::decode::json::compact_json;
use moengage_segment::decode::lossy_utf8;
use moengage_segment::mapping::options::MappingOptions;
use moengage_segment::mapping::{Limits, MAX_MESSAGE_BYTES, MapOutput, map_body, map_body_with};
use serde_json::{Value, json};

mod pretty;
use pretty::pretty;

/// The fixed "received at" instant, so events without a usable event_time are reproducible.
const RECEIVED_AT_MS: i64 = 1_764_331_200_000; // 2025-11-28T12:00:00Z

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn inputs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name.ends_with(".json") && !name.ends_with(".expected.json")) || name.ends_with(".bin")
        })
        .collect();
    v.sort();
    v
}

fn mapped(input: &Path) -> MapOutput {
    mapped_with(input, &MappingOptions::default())
}

fn mapped_with(input: &Path, options: &MappingOptions) -> MapOutput {
    let bytes = fs::read(input).unwrap();
    let text = lossy_utf8(&bytes);
    let out = map_body_with(&text, RECEIVED_AT_MS, Limits::REQUEST, options)
        .unwrap_or_else(|e| panic!("{}: not a Streams body: {e}", input.display()));
    for m in &out.messages {
        // Compact whatever the input's formatting: no whitespace outside strings.
        assert!(
            matches!(compact_json(&m.json), std::borrow::Cow::Borrowed(_)),
            "{}: {} is not compact: {}",
            input.display(),
            m.message_id,
            m.json
        );
    }
    out
}

fn actual(input: &Path) -> Value {
    // The fixtures without options predate `filtered` and `identifies` (always 0 here).
    let mut v = actual_with(input, &MappingOptions::default());
    let fields = v.as_object_mut().unwrap();
    assert_eq!(fields.remove("filtered"), Some(json!(0)));
    assert_eq!(fields.remove("identifies"), Some(json!(0)));
    v
}

/// The options case's output: also what the options skipped and how many identifies.
fn actual_with(input: &Path, options: &MappingOptions) -> Value {
    let out = mapped_with(input, options);
    let messages: Vec<Value> = out
        .messages
        .iter()
        .map(|m| serde_json::from_str(&m.json).unwrap())
        .collect();
    json!({
        "received": out.received,
        "filtered": out.filtered,
        "identifies": out.identifies,
        "messages": messages,
        "rejected": out.rejected,
        "duplicate_uuids": out.duplicate_uuids,
    })
}

/// Every message must be one Segment will accept and attribute.
fn check_invariants(name: &str, got: &Value) {
    let msgs = got["messages"].as_array().unwrap();
    let rejected = got["rejected"].as_array().unwrap();
    let identifies = got["identifies"].as_u64().unwrap_or(0) as usize;
    let filtered = got["filtered"].as_u64().unwrap_or(0) as usize;
    assert_eq!(
        msgs.len() - identifies + rejected.len() + filtered,
        got["received"].as_u64().unwrap() as usize,
        "{name}: every event is either mapped, rejected or filtered"
    );
    let mut ids = std::collections::HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        let what = format!("{name}: {}", m["messageId"]);
        if i >= msgs.len() - identifies {
            // The identifies follow every track.
            assert_eq!(m["type"], "identify", "{what}");
            assert!(m.get("event").is_none() && m.get("properties").is_none());
            assert!(m["traits"].as_object().is_some_and(|t| !t.is_empty()));
            assert!(m["messageId"].as_str().unwrap().starts_with("moe-id-"));
        } else {
            assert_eq!(m["type"], "track", "{what}");
            assert!(m["event"].as_str().is_some_and(|e| !e.is_empty()), "{what}");
        }
        let id = m["messageId"].as_str().unwrap();
        assert!(id.starts_with("moe-") && id.len() <= 100, "{what}");
        // Only truly identical events may share an id (Segment keeps one of them).
        if let Some(first) = ids.insert(id.to_owned(), m.clone()) {
            assert_eq!(&first, m, "{what}: one messageId on different messages");
        }
        assert!(
            m["timestamp"].as_str().is_some_and(|t| t.len() >= 20),
            "{what}"
        );
        assert!(
            m["userId"].as_str().is_some_and(|s| !s.is_empty())
                || m["anonymousId"].as_str().is_some_and(|s| !s.is_empty()),
            "{what}: identity"
        );
        assert_eq!(
            m["context"]["library"]["name"], "moengage-segment",
            "{what}"
        );
        assert_eq!(m["integrations"]["MoEngage"], false, "{what}");
        assert!(m.to_string().len() <= MAX_MESSAGE_BYTES, "{what}: size");
        let ctx_keys: Vec<&str> = m["context"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        for k in ctx_keys {
            assert!(
                ["library", "traits", "device", "os", "app"].contains(&k),
                "{what}: non-spec context field {k}"
            );
        }
    }
}

#[test]
fn golden_fixtures() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let all = inputs();
    assert!(all.len() >= 20, "fixtures missing: {}", all.len());
    for input in all {
        let name = input.file_name().unwrap().to_string_lossy().to_string();
        let stem = name.trim_end_matches(".json").trim_end_matches(".bin");
        let expected_path = fixtures().join(format!("{stem}.expected.json"));
        let got = actual(&input);
        check_invariants(&name, &got);
        compare(&name, &expected_path, &got, update, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Compares `got` with the expected file (or, with `UPDATE_GOLDEN`, writes it), noting a
/// difference in `failures`.
fn compare(
    name: &str,
    expected_path: &Path,
    got: &Value,
    update: bool,
    failures: &mut Vec<String>,
) {
    let file = expected_path.file_name().unwrap().to_string_lossy();
    if update {
        fs::write(
            expected_path,
            serde_json::to_string_pretty(got).unwrap() + "\n",
        )
        .unwrap();
        return;
    }
    let expected: Value = match fs::read_to_string(expected_path) {
        Ok(s) => serde_json::from_str(&s).unwrap(),
        Err(_) => {
            failures.push(format!("{name}: no {file} (run with UPDATE_GOLDEN=1)"));
            return;
        }
    };
    if *got != expected {
        failures.push(format!(
            "{name}: output differs from {file}\n--- got:\n{}",
            serde_json::to_string_pretty(got).unwrap()
        ));
    }
}

/// `tests/fixtures/options/<case>.json` + `<case>.options.json` → `<case>.expected.json`.
#[test]
fn golden_fixtures_with_options() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = fixtures().join("options");
    let mut cases: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".options.json"))
        .map(|n| n.trim_end_matches(".options.json").to_owned())
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "options fixtures missing: {cases:?}");
    let mut failures = Vec::new();
    for case in cases {
        let options_text = fs::read_to_string(dir.join(format!("{case}.options.json"))).unwrap();
        let options = MappingOptions::from_json(&options_text)
            .unwrap_or_else(|e| panic!("{case}.options.json: {e}"));
        let got = actual_with(&dir.join(format!("{case}.json")), &options);
        check_invariants(&case, &got);
        let expected_path = dir.join(format!("{case}.expected.json"));
        compare(&case, &expected_path, &got, update, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// With no options, or options that change nothing, every fixture maps as without them.
#[test]
fn empty_options_change_nothing() {
    for text in [
        "{}",
        r#"{"mapping": {}}"#,
        r#"{"skip_events": [], "only_events": [], "identify": "off"}"#,
    ] {
        let options = MappingOptions::from_json(text).unwrap();
        for input in inputs() {
            assert_eq!(
                mapped_with(&input, &options).messages,
                mapped(&input).messages,
                "{text}: {}",
                input.display()
            );
        }
    }
}

#[test]
fn not_streams_bodies_are_rejected_whole() {
    let dir = fixtures().join("not_streams");
    let mut n = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        let err = map_body(&lossy_utf8(&bytes), RECEIVED_AT_MS, Limits::REQUEST);
        assert!(err.is_err(), "{} should not decode", path.display());
        n += 1;
    }
    assert!(n >= 7);
}

#[test]
fn redelivery_yields_identical_messages() {
    for input in inputs() {
        assert_eq!(actual(&input), actual(&input), "{}", input.display());
    }
}

#[test]
fn formatting_never_changes_what_is_delivered() {
    for input in inputs() {
        let bytes = fs::read(&input).unwrap();
        let text = lossy_utf8(&bytes);
        let compact = map_body(&text, RECEIVED_AT_MS, Limits::REQUEST).unwrap();
        let spaced = pretty(&text);
        assert_ne!(spaced, text.as_ref());
        let pretty = map_body(&spaced, RECEIVED_AT_MS, Limits::REQUEST).unwrap();
        assert_eq!(
            compact.messages,
            pretty.messages,
            "{}: pretty-printing changed the messages",
            input.display()
        );
        assert_eq!(compact.rejected, pretty.rejected, "{}", input.display());
        assert_eq!(compact.duplicate_uuids, pretty.duplicate_uuids);
    }
}
