//! Property tests: the decoder and mapper never panic, whatever the body, and what they emit
//! keeps the Segment invariants; the API Gateway event parser never panics either.
//!
//! Case counts: every suite runs `PROPTEST_CASES` cases when that variable is set, else its
//! own default (smaller in debug builds, so `cargo test` stays quick; larger with `--release`).
//! A failure prints its minimal input (no regression file is written).
//!
//! Ignored on purpose:
//! - `million_inputs`: a million generated bodies through `map_body` without proptest's
//!   machinery (`MILLION_INPUTS=n` changes the count):
//!   `cargo test --release --test props -- --ignored million_inputs --nocapture`.
//! - `messages_parse_strictly`: attribute values such as `1e400` and `"\ud800"` reach the
//!   messages verbatim.

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use moengage_segment::cli::invoke::request_from_event;
use moengage_segment::cli::map::write_output;
use moengage_segment::decode::json::{canonical_json, compact_json};
use moengage_segment::decode::lossy_utf8;
use moengage_segment::mapping::{
    HASHED_ID_PREFIX, Limits, MAX_MESSAGE_BYTES, MAX_MESSAGE_ID_CHARS, MESSAGE_ID_PREFIX,
    MapOutput, RejectReason, is_usable_uuid, map_body,
};
use proptest::prelude::*;
use proptest::sample::select;
use serde::Deserialize;
use serde_json::{Map, Value, json};

mod pretty;
use pretty::pretty;

// ---------------------------------------------------------------------------------------------
// Configuration and shared data

/// The number of cases of one suite: `PROPTEST_CASES` when set, else the default for the build.
fn cases(debug: u32, release: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            debug
        } else {
            release
        })
}

fn config(debug: u32, release: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(debug, release),
        // A failure on a big body shrinks slowly; bound it so CI reports instead of hanging.
        max_shrink_time: 120_000,
        max_shrink_iters: 20_000,
        // Integration tests have no lib.rs beside them for proptest's regression files; a
        // failure prints its minimal input instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const NOW: i64 = 1_764_331_300_000;

/// The top-level and event fields a Streams body has.
const FIELD_NAMES: &[&str] = &[
    "events",
    "event_name",
    "event_code",
    "event_uuid",
    "event_time",
    "event_type",
    "event_source",
    "uid",
    "email_id",
    "mobile_number",
    "push_id",
    "event_attributes",
    "user_attributes",
    "device_attributes",
    "app_name",
    "source",
    "moe_request_id",
];

/// Attribute keys the mapper looks at (identity, context, spec renames).
const ATTR_NAMES: &[&str] = &[
    "moengage_user_id",
    "moengage_device_id",
    "os",
    "platform",
    "OS Version",
    "os_version",
    "appVersion",
    "app_version",
    "campaign_id",
    "Campaign ID",
    "campaign_name",
    "moe_campaign_id",
    "URL",
    "timestamp",
    "moe_truncated",
    "email",
    "phone",
];

/// The catalog as shipped: `(segment name, [moengage codes])`.
fn catalog() -> &'static [(String, Vec<String>)] {
    static CATALOG: OnceLock<Vec<(String, Vec<String>)>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        include_str!("../data/event-catalog.tsv")
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                let codes = cols
                    .get(3)
                    .unwrap_or(&"")
                    .split(',')
                    .map(|c| c.trim().trim_end_matches('*').to_owned())
                    .filter(|c| !c.is_empty())
                    .collect();
                (cols[0].trim().to_owned(), codes)
            })
            .collect()
    })
}

fn real_codes() -> Vec<String> {
    catalog().iter().flat_map(|(_, c)| c.clone()).collect()
}

fn real_names() -> Vec<String> {
    catalog().iter().map(|(n, _)| n.clone()).collect()
}

/// Every file under `dir` (not recursing), sorted by name.
fn read_dir_files(dir: &Path, exts: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| exts.contains(&x))
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The Streams fixtures (request bodies only, not the expected outputs).
fn fixtures() -> &'static [(String, Vec<u8>)] {
    static F: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut all: Vec<_> = read_dir_files(&root, &["json", "bin"])
            .into_iter()
            .filter(|(n, _)| !n.ends_with(".expected.json"))
            .collect();
        all.extend(read_dir_files(&root.join("not_streams"), &["json", "txt"]));
        assert!(all.len() >= 20, "fixtures missing: {}", all.len());
        all
    })
}

/// The fixtures small enough to mutate cheaply in large numbers.
fn small_fixtures() -> &'static [(String, Vec<u8>)] {
    static F: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    F.get_or_init(|| {
        fixtures()
            .iter()
            .filter(|(_, b)| b.len() <= 16 * 1024)
            .cloned()
            .collect()
    })
}

/// The sample API Gateway / Function URL events.
fn api_events() -> &'static [(String, Vec<u8>)] {
    static F: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
        let all = read_dir_files(&dir, &["json"]);
        assert!(all.len() >= 5, "events missing: {}", all.len());
        all
    })
}

// ---------------------------------------------------------------------------------------------
// Output invariants, checked on everything map_body returns

/// The fields of a Segment message the invariants look at. Deserializing into this struct
/// ignores the rest through serde's skipping path, which (like RFC 8259, and unlike
/// `serde_json::Value`) accepts lone-surrogate escapes such as `"\ud800"` that attribute
/// values may carry verbatim.
#[derive(Deserialize)]
struct Msg {
    #[serde(rename = "type")]
    kind: String,
    event: String,
    #[serde(rename = "messageId")]
    message_id: String,
    timestamp: String,
    #[serde(rename = "userId")]
    user_id: Option<String>,
    #[serde(rename = "anonymousId")]
    anonymous_id: Option<String>,
    properties: serde::de::IgnoredAny,
    context: MsgContext,
    integrations: MsgIntegrations,
}

#[derive(Deserialize)]
struct MsgContext {
    library: MsgLibrary,
}

#[derive(Deserialize)]
struct MsgLibrary {
    name: String,
}

#[derive(Deserialize)]
struct MsgIntegrations {
    #[serde(rename = "MoEngage")]
    moengage: bool,
}

/// Checks the invariants every `MapOutput` must keep, whatever the input.
fn check_output(out: &MapOutput) -> Result<(), String> {
    if out.messages.len() + out.rejected.len() != out.received {
        return Err(format!(
            "{} messages + {} rejected != {} received",
            out.messages.len(),
            out.rejected.len(),
            out.received
        ));
    }
    let mut indexes = vec![false; out.received];
    let all = out
        .messages
        .iter()
        .map(|m| m.index)
        .chain(out.rejected.iter().map(|r| r.index));
    for i in all {
        match indexes.get_mut(i) {
            Some(seen @ false) => *seen = true,
            Some(true) => return Err(format!("event {i} is reported twice")),
            None => return Err(format!("index {i} out of range ({})", out.received)),
        }
    }
    for m in &out.messages {
        check_message(&m.json, &m.message_id).map_err(|e| format!("event {}: {e}", m.index))?;
    }
    Ok(())
}

fn check_message(json: &str, message_id: &str) -> Result<(), String> {
    let short = || json.chars().take(300).collect::<String>();
    if json.len() > MAX_MESSAGE_BYTES {
        return Err(format!("{} bytes > {MAX_MESSAGE_BYTES}", json.len()));
    }
    // Compact (no whitespace outside strings), so also one line.
    if compact_json(json) != json {
        return Err(format!("not compact: {}", short()));
    }
    let m: Msg = serde_json::from_str(json).map_err(|e| format!("not JSON ({e}): {}", short()))?;
    let _ = m.properties;
    if m.kind != "track" {
        return Err(format!("type {:?}", m.kind));
    }
    if m.event.trim().is_empty() {
        return Err(format!("empty event: {}", short()));
    }
    if m.message_id != message_id {
        return Err(format!("messageId {:?} != {message_id:?}", m.message_id));
    }
    if !m.message_id.starts_with(MESSAGE_ID_PREFIX)
        || m.message_id.chars().count() > MAX_MESSAGE_ID_CHARS
        || m.message_id.len() <= MESSAGE_ID_PREFIX.len()
    {
        return Err(format!("bad messageId {:?}", m.message_id));
    }
    if m.timestamp.trim().is_empty() {
        return Err("empty timestamp".into());
    }
    let user = m.user_id.as_deref().is_some_and(|s| !s.trim().is_empty());
    let anon = m
        .anonymous_id
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty());
    if !user && !anon {
        return Err(format!("neither userId nor anonymousId: {}", short()));
    }
    if m.context.library.name != "moengage-segment" {
        return Err(format!("library {:?}", m.context.library.name));
    }
    if m.integrations.moengage {
        return Err("integrations.MoEngage is true".into());
    }
    Ok(())
}

/// Maps `body` and checks the invariants of whatever comes back (an error is fine).
fn map_and_check(body: &str, received_at: i64) -> Result<Option<MapOutput>, String> {
    match map_body(body, received_at, Limits::REQUEST) {
        Ok(out) => check_output(&out).map(|()| Some(out)),
        Err(_) => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// A JSON syntax tree that can hold what serde_json::Value cannot: raw number text (1e400,
// 30-digit integers), raw string contents (lone surrogates, bad escapes), deep nesting.

#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    /// Number text, written as is.
    Num(String),
    /// String contents, written between quotes as is (already escaped, or deliberately not).
    Str(String),
    Arr(Vec<J>),
    /// Keys are raw string contents too.
    Obj(Vec<(String, J)>),
    /// `depth` levels of `[` (or `{"k":`) around `inner`.
    Deep {
        depth: usize,
        objects: bool,
        inner: Box<J>,
    },
}

impl J {
    fn render(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(n),
            J::Str(s) => {
                out.push('"');
                out.push_str(s);
                out.push('"');
            }
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.render(out);
                }
                out.push(']');
            }
            J::Obj(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(k);
                    out.push_str("\":");
                    v.render(out);
                }
                out.push('}');
            }
            J::Deep {
                depth,
                objects,
                inner,
            } => {
                for _ in 0..*depth {
                    out.push_str(if *objects { "{\"k\":" } else { "[" });
                }
                inner.render(out);
                for _ in 0..*depth {
                    out.push(if *objects { '}' } else { ']' });
                }
            }
        }
    }

    fn to_text(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }

    fn from_value(v: &Value) -> J {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Num(n.to_string()),
            Value::String(s) => J::Str(escape(s)),
            Value::Array(a) => J::Arr(a.iter().map(J::from_value).collect()),
            Value::Object(o) => J::Obj(
                o.iter()
                    .map(|(k, v)| (escape(k), J::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// The number of nodes, in the order [`J::node_mut`] counts them.
    fn count(&self) -> usize {
        1 + match self {
            J::Arr(items) => items.iter().map(J::count).sum(),
            J::Obj(entries) => entries.iter().map(|(_, v)| v.count()).sum(),
            J::Deep { inner, .. } => inner.count(),
            _ => 0,
        }
    }

    /// The `n`th node in pre-order.
    fn node_mut(&mut self, n: usize) -> Option<&mut J> {
        if n == 0 {
            return Some(self);
        }
        let mut n = n - 1;
        let children: Vec<&mut J> = match self {
            J::Arr(items) => items.iter_mut().collect(),
            J::Obj(entries) => entries.iter_mut().map(|(_, v)| v).collect(),
            J::Deep { inner, .. } => vec![inner.as_mut()],
            _ => Vec::new(),
        };
        for c in children {
            let size = c.count();
            if n < size {
                return c.node_mut(n);
            }
            n -= size;
        }
        None
    }

    /// Sets `path` (object keys) to `value`, creating objects on the way.
    fn set_path(&mut self, path: &[&str], value: J) {
        let Some((first, rest)) = path.split_first() else {
            *self = value;
            return;
        };
        if !matches!(self, J::Obj(_)) {
            *self = J::Obj(Vec::new());
        }
        let J::Obj(entries) = self else {
            unreachable!()
        };
        let key = escape(first);
        let pos = match entries.iter().position(|(k, _)| *k == key) {
            Some(p) => p,
            None => {
                entries.push((key, J::Obj(Vec::new())));
                entries.len() - 1
            }
        };
        entries[pos].1.set_path(rest, value);
    }

    fn remove_path(&mut self, path: &[&str]) {
        let J::Obj(entries) = self else { return };
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let key = escape(first);
        if rest.is_empty() {
            entries.retain(|(k, _)| *k != key);
        } else if let Some((_, v)) = entries.iter_mut().find(|(k, _)| *k == key) {
            v.remove_path(rest);
        }
    }
}

/// JSON string contents for `s`, correctly escaped.
fn escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Number text: ordinary, huge, tiny, integral floats, epoch times, hundreds of digits.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<i64>().prop_map(|n| n.to_string()),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        2 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        3 => select(vec![
            "0", "-0", "0.0", "-0.0", "1e400", "-1e400", "1E-400", "1.7976931348623157e308",
            "4.9e-324", "4000052183.0", "4000052183.5", "1700000000", "1700000000123",
            "1700000000.999", "99999999999999999999", "18446744073709551616",
            "-9223372036854775809", "9007199254740993", "253402300799999", "253402300800000",
            "1e11", "99999999999", "123456789012345678901234567890.5e-10", "1e+2", "-1",
        ])
        .prop_map(str::to_owned),
        1 => (1usize..600).prop_map(|n| "9".repeat(n)),
        1 => (1usize..400, 1usize..400)
            .prop_map(|(a, b)| format!("{}.{}e{}", "1".repeat(a), "2".repeat(b), a)),
    ]
}

/// Raw string contents, all valid JSON (RFC 8259 allows lone-surrogate escapes): unicode,
/// escapes, surrogates, long runs.
fn string_contents() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\\u0000".to_owned()),
        Just("\\u00e9".to_owned()),
        Just("\\ud83d\\ude00".to_owned()),
        Just("\\uDBFF\\uDFFF".to_owned()),
        Just("\\u2028\\u2029".to_owned()),
        Just("\\n\\r\\t\\b\\f\\/\\\\\\\"".to_owned()),
        Just("é".to_owned()),
        Just("😀".to_owned()),
        Just("\u{fffd}".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("\u{3000}".to_owned()),
        Just(" ".to_owned()),
        Just("MOE_".to_owned()),
        "[a-zA-Z0-9_ .:-]{1,8}",
    ];
    let lone = select(vec![
        "\\ud800",
        "\\udfff",
        "\\ud800\\u0041",
        "\\udc00\\ud800",
        "x\\uDBFF",
    ]);
    prop_oneof![
        4 => any::<String>().prop_map(|s| escape(&s)),
        4 => "[a-zA-Z0-9 _-]{0,24}",
        4 => prop::collection::vec(piece, 0..10).prop_map(|v| v.concat()),
        1 => lone.prop_map(str::to_owned),
        1 => (0usize..6_000, select(vec!["x", "é", "😀", "\\u00e9", "\\ud800", "\\\""]))
            .prop_map(|(n, p)| p.repeat(n)),
    ]
}

/// An object key: a real field name most of the time.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(FIELD_NAMES).prop_map(str::to_owned),
        3 => select(ATTR_NAMES).prop_map(str::to_owned),
        2 => string_contents(),
    ]
}

fn leaf() -> impl Strategy<Value = J> {
    prop_oneof![
        1 => Just(J::Null),
        1 => any::<bool>().prop_map(J::Bool),
        3 => number_text().prop_map(J::Num),
        4 => string_contents().prop_map(J::Str),
    ]
}

/// Any JSON value, nested a few levels, or hundreds of levels once in a while.
fn json_value() -> impl Strategy<Value = J> {
    let tree = leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Arr),
            prop::collection::vec((key(), inner), 0..6).prop_map(J::Obj),
        ]
    });
    prop_oneof![
        20 => tree,
        1 => (100usize..400, any::<bool>(), leaf()).prop_map(|(depth, objects, inner)| J::Deep {
            depth,
            objects,
            inner: Box::new(inner),
        }),
    ]
}

/// Keeps the first entry of each key (a duplicate field fails the whole object).
fn dedup(entries: Vec<(String, J)>) -> Vec<(String, J)> {
    let mut seen = HashSet::new();
    entries
        .into_iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect()
}

/// One entry of an event object, biased to the fields the mapper reads.
fn event_entry() -> impl Strategy<Value = (String, J)> {
    let attrs = prop::collection::vec((key(), json_value()), 0..6).prop_map(|e| J::Obj(dedup(e)));
    prop_oneof![
        4 => (select(FIELD_NAMES).prop_map(str::to_owned), json_value()),
        2 => (
            select(vec!["event_attributes", "user_attributes", "device_attributes"])
                .prop_map(str::to_owned),
            attrs,
        ),
        1 => (string_contents(), json_value()),
    ]
}

/// A name and an identity that work, then anything.
fn plausible_event() -> impl Strategy<Value = J> {
    let name = prop_oneof![
        select(real_names()).prop_map(|n| ("event_name", J::Str(escape(&n)))),
        select(real_codes()).prop_map(|c| ("event_code", J::Str(escape(&c)))),
        string_contents().prop_map(|s| ("event_name", J::Str(s))),
    ];
    let id = prop_oneof![
        "[a-z0-9-]{1,12}".prop_map(|u| ("uid", J::Str(u))),
        number_text().prop_map(|n| ("uid", J::Num(n))),
        "[a-z0-9-]{1,12}".prop_map(|u| {
            let obj = J::Obj(vec![("moengage_user_id".into(), J::Str(u))]);
            ("user_attributes", obj)
        }),
        "[a-z0-9-]{1,12}".prop_map(|u| {
            let obj = J::Obj(vec![("moengage_device_id".into(), J::Str(u))]);
            ("device_attributes", obj)
        }),
    ];
    (name, id, prop::collection::vec(event_entry(), 0..8)).prop_map(|((nk, nv), (ik, iv), rest)| {
        let mut e = vec![(nk.to_owned(), nv), (ik.to_owned(), iv)];
        e.extend(rest);
        J::Obj(dedup(e))
    })
}

fn event_like() -> impl Strategy<Value = J> {
    prop_oneof![
        4 => plausible_event(),
        4 => prop::collection::vec(event_entry(), 0..10).prop_map(|e| J::Obj(dedup(e))),
        1 => prop::collection::vec(event_entry(), 0..10).prop_map(J::Obj),
        1 => json_value(),
    ]
}

/// Text that breaks JSON wherever it lands.
const BREAKERS: &[&str] = &[
    "\\x",
    "\\u12",
    "\\u12G4",
    "\u{1}",
    "\n",
    "\\",
    "\\U0041",
    "\\ud8",
    "01",
    "1.",
    ".5",
    "+1",
    "NaN",
    "Infinity",
    "0x10",
    ",",
    "}",
    "]",
    "\"",
    ":",
    " trailing",
];

/// Bodies shaped like a Streams request, with wrong types and odd values everywhere.
fn streams_like_body() -> impl Strategy<Value = String> {
    let envelope = (
        prop::collection::vec((key(), json_value()), 0..4),
        prop::collection::vec(event_like(), 0..8),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(extra, events, at)| {
            let mut extra = dedup(extra);
            extra.retain(|(k, _)| k != "events");
            let pos = at.index(extra.len() + 1);
            extra.insert(pos, ("events".to_owned(), J::Arr(events)));
            J::Obj(extra)
        });
    let body = prop_oneof![
        10 => envelope,
        1 => (key(), json_value()).prop_map(|(k, v)| J::Obj(vec![("events".into(), v), (k, J::Null)])),
        1 => json_value(),
    ];
    let corruption = prop_oneof![
        8 => Just(None),
        1 => (any::<prop::sample::Index>(), select(BREAKERS)).prop_map(Some),
    ];
    (
        body,
        select(vec![
            "",
            "",
            "",
            "",
            " \n\t",
            "\u{feff}",
            "\u{feff}\u{feff} ",
        ]),
        corruption,
    )
        .prop_map(|(j, pre, corrupt)| {
            let mut text = format!("{pre}{}", j.to_text());
            if let Some((at, token)) = corrupt {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                text.insert_str(i, token);
            }
            text
        })
}

/// Bytes: uniform, JSON-ish token soup, or a Streams prefix followed by soup.
fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    let soup_byte =
        select(b"{}[]\":,0123456789eE.-+ ntrufalsebnu\\\xff\xc3\xa9\xed\xa0\x80".to_vec());
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..2048),
        3 => prop::collection::vec(soup_byte.clone(), 0..512),
        3 => (
            select(vec![
                &b"{\"events\":["[..],
                b"{\"events\":[{",
                b"{\"events\":[{\"uid\":\"u\",\"event_name\":",
                b"{\"app_name\":",
                b"\xef\xbb\xbf{\"events\":[{\"event_attributes\":{",
            ]),
            prop::collection::vec(soup_byte, 0..512),
        )
            .prop_map(|(pre, rest)| [pre, &rest[..]].concat()),
    ]
}

/// A byte-level edit; positions are fractions of the current length.
#[derive(Debug, Clone)]
enum Edit {
    Flip(u32, u8),
    Set(u32, u8),
    Insert(u32, Vec<u8>),
    Delete(u32, u16),
    Truncate(u32),
    Duplicate(u32, u32),
}

const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"18446744073709551616",
    b"\xff",
    b"\xed\xa0\x80",
    b"\xc3",
    b"\x00",
    b"\"uid\":\"x\",",
    b"\"events\":",
    b"{\"event_name\":\"A\",\"uid\":1}",
    b"\xef\xbb\xbf",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<u32>(), 0u8..8).prop_map(|(p, b)| Edit::Flip(p, b)),
        2 => (any::<u32>(), any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
        2 => (any::<u32>(), select(TOKENS).prop_map(<[u8]>::to_vec)).prop_map(|(p, t)| Edit::Insert(p, t)),
        1 => (any::<u32>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(p, t)| Edit::Insert(p, t)),
        2 => (any::<u32>(), 1u16..64).prop_map(|(p, n)| Edit::Delete(p, n)),
        1 => any::<u32>().prop_map(Edit::Truncate),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Edit::Duplicate(a, b)),
    ]
}

fn at(frac: u32, len: usize) -> usize {
    ((frac as u64 * (len as u64 + 1)) >> 32) as usize
}

fn apply_edits(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Flip(p, bit) if len > 0 => bytes[at(*p, len - 1)] ^= 1 << bit,
            Edit::Set(p, b) if len > 0 => bytes[at(*p, len - 1)] = *b,
            Edit::Insert(p, t) => {
                let i = at(*p, len);
                bytes.splice(i..i, t.iter().copied());
            }
            Edit::Delete(p, n) => {
                let i = at(*p, len);
                let j = (i + *n as usize).min(len);
                bytes.drain(i..j);
            }
            Edit::Truncate(p) => bytes.truncate(at(*p, len)),
            Edit::Duplicate(a, b) if len > 0 => {
                let (i, j) = (at(*a, len), at(*b, len));
                let (i, j) = (i.min(j), i.max(j).min(i + 4096));
                let chunk = bytes[i..j].to_vec();
                bytes.splice(j..j, chunk);
            }
            _ => {}
        }
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// a. No panic, whatever the body

proptest! {
    #![proptest_config(config(2048, 131_072))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in arbitrary_bytes(), received_at in any::<i64>()) {
        let text = lossy_utf8(&bytes);
        if let Err(e) = map_and_check(&text, received_at) {
            prop_assert!(false, "{e}");
        }
    }

}

proptest! {
    #![proptest_config(config(256, 16_384))]

    #[test]
    fn wrong_json_never_panics(body in streams_like_body(), received_at in any::<i64>()) {
        if let Err(e) = map_and_check(&body, received_at) {
            prop_assert!(false, "{e}\nbody: {}", body.chars().take(2000).collect::<String>());
        }
    }

}

proptest! {
    #![proptest_config(config(2048, 131_072))]

    #[test]
    fn mutated_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..12),
    ) {
        let (name, body) = which.get(fixtures());
        let bytes = apply_edits(body.clone(), &edits);
        let text = lossy_utf8(&bytes);
        if let Err(e) = map_and_check(&text, NOW) {
            prop_assert!(false, "{name}: {e}");
        }
    }
}

/// Every fixture maps and keeps the invariants (a sanity check for the oracle itself).
#[test]
fn fixtures_keep_the_invariants() {
    let mut mapped = 0;
    for (name, body) in fixtures() {
        match map_and_check(&lossy_utf8(body), NOW) {
            Ok(Some(out)) => mapped += out.messages.len(),
            Ok(None) => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert!(mapped > 100, "only {mapped} messages from the fixtures");
}

// ---------------------------------------------------------------------------------------------
// b. Invariants on generated Streams bodies

/// A scalar field as generated, with its JSON rendering.
#[derive(Debug, Clone)]
enum Scalar {
    Absent,
    Null,
    Empty,
    Blank(String),
    Str(String),
    Int(u64),
    Float(f64),
    Bool(bool),
    Object,
}

impl Scalar {
    fn json(&self) -> Option<Value> {
        Some(match self {
            Scalar::Absent => return None,
            Scalar::Null => Value::Null,
            Scalar::Empty => json!(""),
            Scalar::Blank(s) | Scalar::Str(s) => json!(s),
            Scalar::Int(n) => json!(n),
            Scalar::Float(f) => json!(f),
            Scalar::Bool(b) => json!(b),
            Scalar::Object => json!({"nested": [1, "two"]}),
        })
    }

    /// Whether a top-level field (`uid`, `event_code`, `event_name`) holds usable text:
    /// strings count when not blank, numbers and booleans always.
    fn field_text(&self) -> bool {
        match self {
            Scalar::Str(s) => !s.trim().is_empty(),
            Scalar::Int(_) | Scalar::Float(_) | Scalar::Bool(_) => true,
            _ => false,
        }
    }

    /// Whether an attribute value (`moengage_user_id`, ...) holds usable text: strings when
    /// not blank, numbers; not booleans.
    fn attr_text(&self) -> bool {
        match self {
            Scalar::Str(s) => !s.trim().is_empty(),
            Scalar::Int(_) | Scalar::Float(_) => true,
            _ => false,
        }
    }
}

fn blank() -> impl Strategy<Value = String> {
    select(vec![" ", "  \t", "\n", "\u{3000}", "\u{a0}", "\u{2003} "]).prop_map(str::to_owned)
}

fn id_scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        3 => Just(Scalar::Absent),
        1 => Just(Scalar::Null),
        1 => Just(Scalar::Empty),
        1 => blank().prop_map(Scalar::Blank),
        4 => "[a-zA-Z0-9_@.+-]{1,40}".prop_map(Scalar::Str),
        1 => (" ?[a-z0-9é😀]{1,10} ?").prop_map(Scalar::Str),
        2 => any::<u64>().prop_map(Scalar::Int),
        1 => select(vec![4_000_052_183.0, 1.5, -2.0, 1e20, 0.0]).prop_map(Scalar::Float),
        1 => any::<bool>().prop_map(Scalar::Bool),
        1 => Just(Scalar::Object),
    ]
}

fn code_scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        3 => Just(Scalar::Absent),
        1 => Just(Scalar::Empty),
        1 => blank().prop_map(Scalar::Blank),
        6 => select(real_codes()).prop_map(Scalar::Str),
        1 => select(real_codes()).prop_map(|c| Scalar::Str(format!(" {} ", c.to_ascii_lowercase()))),
        2 => "MOE_[A-Z_]{1,20}".prop_map(Scalar::Str),
        1 => any::<u32>().prop_map(|n| Scalar::Int(n.into())),
        1 => Just(Scalar::Object),
    ]
}

fn name_scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        3 => Just(Scalar::Absent),
        1 => Just(Scalar::Null),
        1 => Just(Scalar::Empty),
        1 => blank().prop_map(Scalar::Blank),
        6 => select(real_names()).prop_map(Scalar::Str),
        2 => "[A-Za-z][A-Za-z0-9 ]{0,30}".prop_map(Scalar::Str),
        1 => any::<String>().prop_map(Scalar::Str),
        1 => any::<bool>().prop_map(Scalar::Bool),
    ]
}

/// A small attribute value: any JSON shape, a few hundred bytes at most.
fn small_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~]{0,30}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum AttrValue {
    Small(Value),
    /// A string of about `n` bytes.
    Big(usize, char),
}

impl AttrValue {
    fn json(&self) -> Value {
        match self {
            AttrValue::Small(v) => v.clone(),
            AttrValue::Big(n, c) => Value::String(c.to_string().repeat(n / c.len_utf8())),
        }
    }
}

fn attr_value() -> impl Strategy<Value = AttrValue> {
    prop_oneof![
        30 => small_value().prop_map(AttrValue::Small),
        1 => (1usize..50_000, select(vec!['x', 'é', '😀', '"', '\n']))
            .prop_map(|(n, c)| AttrValue::Big(n, c)),
    ]
}

/// Keys that are no spec or identity key (they fold to something starting with `x`).
fn free_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "x_[a-zA-Z0-9_ ]{0,12}",
        1 => "x[é😀 -]{0,4}[a-z]{0,4}",
    ]
}

/// A spec or context key with a short scalar value (never dropped by truncation).
fn spec_entry() -> impl Strategy<Value = (String, Value)> {
    (
        select(vec![
            "os",
            "platform",
            "OS Version",
            "appVersion",
            "campaign_id",
            "Campaign ID",
            "campaign_name",
            "moe_campaign_id",
            "locale_id",
            "URL",
        ]),
        prop_oneof![
            select(vec!["ANDROID", "iOS", "web", "WEB", "", " "]).prop_map(Value::from),
            "[a-zA-Z0-9 ._-]{0,40}".prop_map(Value::from),
            any::<u32>().prop_map(Value::from),
        ],
    )
        .prop_map(|(k, v)| (k.to_owned(), v))
}

#[derive(Debug, Clone)]
enum Attrs {
    Absent,
    Null,
    NotObject(Value),
    Map {
        /// The identity key's value (`moengage_user_id` / `moengage_device_id`), first.
        id: Scalar,
        spec: Vec<(String, Value)>,
        free: Vec<(String, AttrValue)>,
        /// A spec value over 32 KB: the event cannot fit whatever is dropped.
        huge_spec: Option<usize>,
    },
}

impl Attrs {
    fn json(&self, id_key: &str) -> Option<Value> {
        Some(match self {
            Attrs::Absent => return None,
            Attrs::Null => Value::Null,
            Attrs::NotObject(v) => v.clone(),
            Attrs::Map {
                id,
                spec,
                free,
                huge_spec,
            } => {
                let mut m = Map::new();
                if let Some(v) = id.json() {
                    m.insert(id_key.to_owned(), v);
                }
                for (k, v) in spec {
                    m.entry(k.clone()).or_insert_with(|| v.clone());
                }
                for (k, v) in free {
                    m.entry(k.clone()).or_insert_with(|| v.json());
                }
                if let Some(n) = huge_spec {
                    m.insert("campaign_name".into(), json!("c".repeat(*n)));
                }
                Value::Object(m)
            }
        })
    }

    fn has_id(&self) -> bool {
        matches!(self, Attrs::Map { id, .. } if id.attr_text())
    }

    fn huge(&self) -> bool {
        matches!(
            self,
            Attrs::Map {
                huge_spec: Some(_),
                ..
            }
        )
    }
}

fn attrs(with_huge: bool) -> impl Strategy<Value = Attrs> {
    let map = (
        id_scalar(),
        prop::collection::vec(spec_entry(), 0..3),
        prop::collection::vec((free_key(), attr_value()), 0..8),
        (0u32..40, 33_000usize..50_000).prop_map(move |(r, n)| (with_huge && r == 0).then_some(n)),
    )
        .prop_map(|(id, spec, free, huge_spec)| Attrs::Map {
            id,
            spec,
            free,
            huge_spec,
        });
    prop_oneof![
        3 => Just(Attrs::Absent),
        1 => Just(Attrs::Null),
        1 => prop_oneof![
            Just(json!("oops")),
            Just(json!([1, {"a": 2}])),
            Just(json!(12.5)),
            Just(json!(true)),
        ]
        .prop_map(Attrs::NotObject),
        8 => map,
    ]
}

/// How an event's `event_uuid` is written; unique per event by construction.
#[derive(Debug, Clone, Copy)]
enum UuidKind {
    Absent,
    Plain(u32),
    Padded,
    Number,
    Long,
    Unicode,
    /// One uuid on every event, as in MoEngage's doc samples.
    Placeholder,
}

fn uuid_kind() -> impl Strategy<Value = UuidKind> {
    prop_oneof![
        2 => Just(UuidKind::Absent),
        6 => any::<u32>().prop_map(UuidKind::Plain),
        1 => Just(UuidKind::Padded),
        1 => Just(UuidKind::Number),
        1 => Just(UuidKind::Long),
        1 => Just(UuidKind::Unicode),
        2 => Just(UuidKind::Placeholder),
    ]
}

impl UuidKind {
    /// The JSON value, and the uuid as the mapper reads it (trimmed text).
    fn make(self, index: usize) -> Option<(Value, String)> {
        let s = match self {
            UuidKind::Absent => return None,
            UuidKind::Plain(r) => format!("evt-{index}-{r:08x}"),
            UuidKind::Padded => {
                return Some((json!(format!("  evt-{index} ")), format!("evt-{index}")));
            }
            UuidKind::Number => {
                let n = 10_000_000_000_u64 + index as u64;
                return Some((json!(n), n.to_string()));
            }
            UuidKind::Long => format!("{index}-{}", "u".repeat(120)),
            UuidKind::Unicode => format!("é-{index}-😀"),
            UuidKind::Placeholder => "3c90c3cc-0d44-4b50-8888-8dd25736052a".to_owned(),
        };
        Some((json!(s), s))
    }
}

fn event_time() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => Just(None),
        2 => (1_500_000_000u64..1_900_000_000).prop_map(|s| Some(json!(s))),
        1 => (1_500_000_000_000u64..1_900_000_000_000).prop_map(|s| Some(json!(s))),
        1 => (1_500_000_000.0f64..1_900_000_000.0).prop_map(|s| Some(json!(s))),
        1 => (1_500_000_000u64..1_900_000_000).prop_map(|s| Some(json!(s.to_string()))),
        1 => select(vec![
            json!("2024-01-02T03:04:05Z"), json!("2024-01-02T03:04:05.123+05:30"), json!("yesterday"),
            json!(""), json!(-5), json!(1e30), json!("NaN"), json!(null), json!({"t": 1}), json!(true),
        ])
        .prop_map(Some),
    ]
}

/// One generated event.
#[derive(Debug, Clone)]
enum GenEvent {
    /// Not an object at all.
    Invalid(Value),
    Event(Box<GenFields>),
}

#[derive(Debug, Clone)]
struct GenFields {
    code: Scalar,
    name: Scalar,
    uid: Scalar,
    uuid: UuidKind,
    time: Option<Value>,
    email: Option<String>,
    push_id: Option<String>,
    event_attributes: Attrs,
    user_attributes: Attrs,
    device_attributes: Attrs,
}

fn gen_event() -> impl Strategy<Value = GenEvent> {
    let fields = (
        (
            code_scalar(),
            name_scalar(),
            id_scalar(),
            uuid_kind(),
            event_time(),
        ),
        (
            proptest::option::of("[a-z]{1,8}@example\\.com"),
            proptest::option::of("[a-f0-9]{16,64}"),
        ),
        (attrs(true), attrs(false), attrs(false)),
    )
        .prop_map(
            |((code, name, uid, uuid, time), (email, push_id), (ea, ua, da))| {
                GenEvent::Event(Box::new(GenFields {
                    code,
                    name,
                    uid,
                    uuid,
                    time,
                    email,
                    push_id,
                    event_attributes: ea,
                    user_attributes: ua,
                    device_attributes: da,
                }))
            },
        );
    prop_oneof![
        20 => fields,
        1 => select(vec![json!("junk"), json!(null), json!(42), json!([]), json!([{"uid": "u"}])])
            .prop_map(GenEvent::Invalid),
    ]
}

/// What the mapper must do with a generated event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Rejected(RejectReason),
    /// A message, whose `event_uuid` is this (trimmed) value.
    Message(Option<String>),
}

/// Builds the body of generated events and what must happen to each.
fn build_body(app: &Option<String>, events: &[GenEvent]) -> (String, Vec<Expect>) {
    let mut list = Vec::new();
    let mut expect = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let f = match e {
            GenEvent::Invalid(v) => {
                list.push(v.clone());
                expect.push(Expect::Rejected(RejectReason::InvalidEvent));
                continue;
            }
            GenEvent::Event(f) => f,
        };
        let mut m = Map::new();
        let uuid = f.uuid.make(i);
        let fields = [
            ("event_code", f.code.json()),
            ("event_name", f.name.json()),
            ("uid", f.uid.json()),
            ("event_uuid", uuid.as_ref().map(|(v, _)| v.clone())),
            ("event_time", f.time.clone()),
            ("email_id", f.email.as_ref().map(|s| json!(s))),
            ("push_id", f.push_id.as_ref().map(|s| json!(s))),
            (
                "event_attributes",
                f.event_attributes.json("moengage_user_id"),
            ),
            (
                "user_attributes",
                f.user_attributes.json("moengage_user_id"),
            ),
            (
                "device_attributes",
                f.device_attributes.json("moengage_device_id"),
            ),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        }
        list.push(Value::Object(m));
        // The event_attributes' moengage_user_id is no identity: only user_attributes' is.
        let named = f.code.field_text() || f.name.field_text();
        let identified =
            f.uid.field_text() || f.user_attributes.has_id() || f.device_attributes.has_id();
        expect.push(if !named {
            Expect::Rejected(RejectReason::NoEventName)
        } else if !identified {
            Expect::Rejected(RejectReason::NoIdentity)
        } else if f.event_attributes.huge() {
            Expect::Rejected(RejectReason::TooLarge)
        } else {
            Expect::Message(uuid.map(|(_, s)| s))
        });
    }
    let mut body = json!({"source": "MOENGAGE", "moe_request_id": "req-props", "events": list});
    if let Some(app) = app {
        body["app_name"] = json!(app);
    }
    (body.to_string(), expect)
}

fn streams_body() -> impl Strategy<Value = (String, Vec<Expect>)> {
    (
        proptest::option::of("[A-Za-z ]{0,20}"),
        prop::collection::vec(gen_event(), 0..50),
    )
        .prop_map(|(app, events)| build_body(&app, &events))
}

proptest! {
    #![proptest_config(config(1024, 65_536))]

    /// The canonical form behind content hashes is exactly serde_json's `Value` round trip
    /// (so the ids of events without a uuid did not change), and fails where it fails.
    #[test]
    fn canonical_json_is_the_value_round_trip(j in json_value(), spaced in any::<bool>()) {
        let text = if spaced { pretty(&j.to_text()) } else { j.to_text() };
        let want = serde_json::from_str::<Value>(&text).ok().map(|v| v.to_string());
        prop_assert_eq!(canonical_json(&text).ok(), want, "{}", text);
    }
}

proptest! {
    #![proptest_config(config(96, 4096))]

    #[test]
    fn generated_bodies_keep_the_invariants(
        (body, expect) in streams_body(),
        received_at in 0i64..4_102_444_800_000,
    ) {
        let out = map_body(&body, received_at, Limits::REQUEST).expect("a generated body is a Streams request");
        if let Err(e) = check_output(&out) {
            prop_assert!(false, "{e}");
        }
        prop_assert_eq!(out.received, expect.len());
        // These bodies hold only what serde_json::Value holds, so the messages parse strictly.
        for m in &out.messages {
            prop_assert!(serde_json::from_str::<Value>(&m.json).is_ok(), "{}", m.json);
        }

        // Each event lands where its content says.
        let mut got: Vec<Option<Expect>> = vec![None; expect.len()];
        for m in &out.messages {
            got[m.index] = Some(Expect::Message(m.event_uuid.clone()));
        }
        for r in &out.rejected {
            got[r.index] = Some(Expect::Rejected(r.reason));
        }
        for (i, (want, got)) in expect.iter().zip(&got).enumerate() {
            prop_assert_eq!(Some(want), got.as_ref(), "event {}", i);
        }

        // messageIds: from the uuid when it can stand in one as it is and no different event
        // of the request carries it too; hashed otherwise; one id on two messages only when
        // they are identical.
        let mut uuid_count: std::collections::HashMap<&str, usize> = Default::default();
        for m in &out.messages {
            if let Some(uuid) = &m.event_uuid {
                *uuid_count.entry(uuid.as_str()).or_default() += 1;
            }
        }
        let mut by_id: std::collections::HashMap<&str, &str> = Default::default();
        let mut content_ids = 0;
        for m in &out.messages {
            if let Some(first) = by_id.insert(m.message_id.as_str(), m.json.as_str()) {
                prop_assert_eq!(first, m.json.as_str(), "one id on different messages");
            }
            match &m.event_uuid {
                Some(uuid) if is_usable_uuid(uuid) && uuid_count[uuid.as_str()] == 1 => {
                    prop_assert_eq!(&m.message_id, &format!("{MESSAGE_ID_PREFIX}{uuid}"));
                }
                Some(uuid) if is_usable_uuid(uuid) => {
                    if m.message_id != format!("{MESSAGE_ID_PREFIX}{uuid}") {
                        prop_assert!(m.message_id.starts_with(HASHED_ID_PREFIX));
                        content_ids += 1;
                    }
                }
                _ => prop_assert!(m.message_id.starts_with(HASHED_ID_PREFIX), "{}", m.message_id),
            }
        }
        prop_assert!(out.duplicate_uuids >= content_ids);
        if uuid_count.values().all(|n| *n == 1) {
            prop_assert_eq!(out.duplicate_uuids, 0);
        }

        // Formatting never changes what is delivered, and `moe2seg map` prints JSON Lines:
        // one compact message per line.
        let spaced = map_body(&pretty(&body), received_at, Limits::REQUEST).unwrap();
        prop_assert!(out == spaced, "pretty-printing changed the output");
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        write_output(&spaced, &mut stdout, &mut stderr).unwrap();
        let stdout = String::from_utf8(stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        prop_assert_eq!(lines.len(), out.messages.len());
        for (line, m) in lines.iter().zip(&out.messages) {
            let v: Value = serde_json::from_str(line).map_err(|e| {
                TestCaseError::fail(format!("line {}: {e}: {line}", m.index))
            })?;
            prop_assert_eq!(&v["messageId"], &json!(m.message_id));
        }
        prop_assert_eq!(String::from_utf8(stderr).unwrap().lines().count(), out.rejected.len());

        // Determinism: the same body and time give the same output; another time changes
        // no messageId.
        let again = map_body(&body, received_at, Limits::REQUEST).unwrap();
        prop_assert!(out == again, "two runs differ");
        let later = map_body(&body, received_at + 86_400_000, Limits::REQUEST).unwrap();
        let ids_now: Vec<&str> = out.messages.iter().map(|m| m.message_id.as_str()).collect();
        let ids_later: Vec<&str> = later.messages.iter().map(|m| m.message_id.as_str()).collect();
        prop_assert_eq!(ids_now, ids_later);
    }

}

proptest! {
    #![proptest_config(config(256, 8192))]

    /// Events without any identity are rejected as `no_identity`, whatever else they carry.
    #[test]
    fn no_identity_is_rejected(
        name in select(real_names()),
        uid in prop_oneof![Just(Scalar::Absent), Just(Scalar::Null), Just(Scalar::Empty),
            blank().prop_map(Scalar::Blank), Just(Scalar::Object)],
        user_id in prop_oneof![Just(Scalar::Absent), Just(Scalar::Empty),
            blank().prop_map(Scalar::Blank), any::<bool>().prop_map(Scalar::Bool), Just(Scalar::Null)],
        ea in attrs(false),
        n in 1usize..5,
    ) {
        let strip = |a: &Attrs, id: &Scalar| match a {
            Attrs::Map { spec, free, .. } => Attrs::Map {
                id: id.clone(), spec: spec.clone(), free: free.clone(), huge_spec: None,
            },
            other => other.clone(),
        };
        let event = GenEvent::Event(Box::new(GenFields {
            code: Scalar::Absent,
            name: Scalar::Str(name),
            uid,
            uuid: UuidKind::Plain(7),
            time: None,
            email: Some("a@example.com".into()),
            push_id: Some("tok".into()),
            event_attributes: strip(&ea, &Scalar::Str("not-an-identity".into())),
            user_attributes: strip(&ea, &user_id),
            device_attributes: strip(&ea, &user_id),
        }));
        let (body, _) = build_body(&None, &vec![event; n]);
        let out = map_body(&body, NOW, Limits::REQUEST).unwrap();
        prop_assert!(out.messages.is_empty());
        prop_assert_eq!(out.rejected.len(), n);
        for r in &out.rejected {
            prop_assert_eq!(r.reason, RejectReason::NoIdentity);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// c. API Gateway events never panic the request parser

/// Event fields lambda_http reads, by payload version.
const EVENT_PATHS: &[&[&str]] = &[
    &["body"],
    &["isBase64Encoded"],
    &["version"],
    &["routeKey"],
    &["rawPath"],
    &["rawQueryString"],
    &["cookies"],
    &["headers"],
    &["headers", "host"],
    &["headers", "Host"],
    &["headers", "content-type"],
    &["headers", "content-encoding"],
    &["headers", "authorization"],
    &["headers", "x-forwarded-proto"],
    &["multiValueHeaders"],
    &["multiValueHeaders", "Host"],
    &["queryStringParameters"],
    &["multiValueQueryStringParameters"],
    &["pathParameters"],
    &["stageVariables"],
    &["resource"],
    &["path"],
    &["httpMethod"],
    &["requestContext"],
    &["requestContext", "domainName"],
    &["requestContext", "stage"],
    &["requestContext", "http"],
    &["requestContext", "http", "method"],
    &["requestContext", "http", "path"],
    &["requestContext", "http", "sourceIp"],
    &["requestContext", "httpMethod"],
    &["requestContext", "path"],
    &["requestContext", "identity"],
    &["requestContext", "authorizer"],
    &["requestContext", "timeEpoch"],
    &["requestContext", "requestTimeEpoch"],
];

/// Paths whose values reach lambda_http's `Url::parse(..).unwrap()` and
/// `.expect("failed to build request")` (URI building); see `known_lambda_http_panics`.
const URI_PATHS: &[&[&str]] = &[
    &["rawPath"],
    &["rawQueryString"],
    &["path"],
    &["headers"],
    &["headers", "host"],
    &["headers", "Host"],
    &["headers", "x-forwarded-proto"],
    &["multiValueHeaders"],
    &["multiValueHeaders", "Host"],
    &["requestContext"],
    &["requestContext", "domainName"],
    &["requestContext", "stage"],
];

/// A base64 body: valid, or broken in the ways that used to panic lambda_http.
fn base64_body() -> impl Strategy<Value = String> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..256).prop_map(move |b| b64(&b)),
        2 => "[A-Za-z0-9+/=]{0,64}",
        1 => "[A-Za-z0-9+/=_ \n.-]{0,64}",
        1 => prop::collection::vec(any::<u8>(), 1..64)
            .prop_map(move |b| b64(&b).trim_end_matches('=').to_owned()),
        1 => prop::collection::vec(any::<u8>(), 1..64)
            .prop_map(move |b| format!("{}=", b64(&b))),
        1 => string_contents(),
    ]
}

fn field_value(safe_strings: bool) -> impl Strategy<Value = J> {
    let s = if safe_strings {
        "[a-zA-Z0-9/_-]{0,24}".prop_map(J::Str).boxed()
    } else {
        prop_oneof![
            string_contents().prop_map(J::Str),
            select(vec![
                ":99999",
                ":abc",
                "//",
                "/a b",
                "http://x",
                "#frag",
                "?q=1",
                "",
                "%",
                "%zz",
                "[::1]",
                "a\\u0000b",
                "\\u00e9",
                "1nvalid",
                "ht tp",
                "héllo",
            ])
            .prop_map(|s| J::Str(s.to_owned())),
        ]
        .boxed()
    };
    prop_oneof![
        4 => s,
        1 => json_value(),
        1 => prop::collection::vec(("[a-zA-Z-]{1,12}", "[ -~]{0,20}"), 0..4)
            .prop_map(|kv| J::Obj(kv.into_iter().map(|(k, v)| (k, J::Str(escape(&v)))).collect())),
        1 => prop::collection::vec(string_contents().prop_map(J::Str), 0..3).prop_map(J::Arr),
    ]
}

#[derive(Debug, Clone)]
enum EventEdit {
    Set(usize, J),
    Remove(usize),
    /// Replace the `n`th node of the event with a random value.
    Node(usize, J),
}

fn event_edit(
    paths: &'static [&'static [&'static str]],
    safe: bool,
) -> impl Strategy<Value = EventEdit> {
    prop_oneof![
        4 => (0..paths.len(), field_value(safe)).prop_map(|(p, v)| EventEdit::Set(p, v)),
        2 => (0..paths.len()).prop_map(EventEdit::Remove),
        2 => (any::<usize>(), json_value()).prop_map(|(n, v)| EventEdit::Node(n, v)),
        2 => base64_body().prop_map(|b| EventEdit::Set(0, J::Str(b))),
        1 => Just(EventEdit::Set(1, J::Bool(true))),
    ]
}

/// Applies edits to a parsed event. `Node` edits never touch a `URI_PATHS` field when
/// `avoid_uri` is set (they pick nodes from the whole tree, so they skip those subtrees by
/// re-setting the original values afterwards).
fn edit_event(base: &Value, paths: &[&[&str]], edits: &[EventEdit], avoid_uri: bool) -> String {
    let mut j = J::from_value(base);
    for e in edits {
        match e {
            EventEdit::Set(p, v) => j.set_path(paths[*p], v.clone()),
            EventEdit::Remove(p) => j.remove_path(paths[*p]),
            EventEdit::Node(n, v) => {
                let count = j.count();
                if let Some(node) = j.node_mut(n % count) {
                    *node = v.clone();
                }
            }
        }
    }
    if avoid_uri {
        for p in URI_PATHS {
            let original = p.iter().try_fold(base, |v, k| v.get(*k));
            match original {
                Some(v) => j.set_path(p, J::from_value(v)),
                None => j.remove_path(p),
            }
        }
        // A `Node` edit may have turned an object on the way into something else.
        if !matches!(j, J::Obj(_)) {
            j = J::from_value(base);
        }
    }
    j.to_text()
}

fn parsed_api_events() -> &'static [(String, Value)] {
    static F: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    F.get_or_init(|| {
        api_events()
            .iter()
            .map(|(n, b)| (n.clone(), serde_json::from_slice(b).unwrap()))
            .collect()
    })
}

/// Top-level keys of API Gateway events; the first six feed the request URI.
const API_KEYS: &[&str] = &[
    "rawPath",
    "rawQueryString",
    "path",
    "headers",
    "multiValueHeaders",
    "requestContext",
    "body",
    "isBase64Encoded",
    "version",
    "routeKey",
    "cookies",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "httpMethod",
    "resource",
];

/// A random event of the REST v1, HTTP v2 or Function URL shape. With `safe`, the fields
/// that feed the request URI keep plain values (see `known_lambda_http_panics`).
fn random_api_event(safe: bool) -> impl Strategy<Value = String> {
    let stage = if safe {
        prop_oneof!["[a-z$]{0,8}".prop_map(J::Str), Just(J::Null)].boxed()
    } else {
        field_value(false).boxed()
    };
    let v1_ctx = (stage.clone(), field_value(true)).prop_map(|(stage, id)| {
        J::Obj(vec![
            ("httpMethod".into(), J::Str("POST".into())),
            ("path".into(), J::Str("/prod/moengage".into())),
            ("resourcePath".into(), J::Str("/moengage".into())),
            ("stage".into(), stage),
            ("requestId".into(), id),
            (
                "identity".into(),
                J::Obj(vec![("sourceIp".into(), J::Str("203.0.113.1".into()))]),
            ),
        ])
    });
    let v2_ctx = (
        stage,
        select(vec!["POST", "GET", "PUT", "post", "BREW", "", "P OST"]),
        field_value(true),
    )
        .prop_map(|(stage, method, ip)| {
            J::Obj(vec![
                ("stage".into(), stage),
                ("routeKey".into(), J::Str("$default".into())),
                ("timeEpoch".into(), J::Num("1764332101123".into())),
                (
                    "http".into(),
                    J::Obj(vec![
                        ("method".into(), J::Str(method.into())),
                        ("path".into(), J::Str("/moengage".into())),
                        ("protocol".into(), J::Str("HTTP/1.1".into())),
                        ("sourceIp".into(), ip),
                    ]),
                ),
            ])
        });
    let ctx = if safe {
        prop_oneof![v1_ctx, v2_ctx].boxed()
    } else {
        prop_oneof![v1_ctx, v2_ctx, json_value()].boxed()
    };
    let keys = if safe { &API_KEYS[6..] } else { API_KEYS };
    (
        ctx,
        base64_body(),
        prop::collection::vec(
            (select(keys).prop_map(str::to_owned), field_value(safe)),
            0..3,
        ),
        select(vec![Some("2.0"), Some("1.0"), None]),
        any::<bool>(),
    )
        .prop_map(|(ctx, body, extra, version, v1)| {
            let mut e = J::Obj(vec![
                ("isBase64Encoded".to_owned(), J::Bool(true)),
                ("body".to_owned(), J::Str(body)),
                ("requestContext".to_owned(), ctx),
                (
                    "headers".to_owned(),
                    J::Obj(vec![(
                        "content-type".into(),
                        J::Str("application/json".into()),
                    )]),
                ),
            ]);
            if let Some(v) = version {
                e.set_path(&["version"], J::Str(v.into()));
            }
            let shape: &[(&str, &str)] = if v1 {
                &[
                    ("httpMethod", "POST"),
                    ("path", "/moengage"),
                    ("resource", "/moengage"),
                ]
            } else {
                &[
                    ("rawPath", "/moengage"),
                    ("rawQueryString", ""),
                    ("routeKey", "POST /moengage"),
                ]
            };
            for (k, v) in shape {
                e.set_path(&[k], J::Str((*v).into()));
            }
            for (k, v) in extra {
                e.set_path(&[&k], v);
            }
            e.to_text()
        })
}

proptest! {
    #![proptest_config(config(1024, 65_536))]

    /// Byte-level damage: almost always turns the event into non-JSON or another shape.
    #[test]
    fn mutated_api_event_bytes_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let (_, bytes) = which.get(api_events());
        let bytes = apply_edits(bytes.clone(), &edits);
        let _ = request_from_event(&lossy_utf8(&bytes));
    }

    /// Structured edits of the sample events, leaving the URI fields alone.
    #[test]
    fn edited_api_events_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(event_edit(EVENT_PATHS, true), 1..6),
    ) {
        let (_, base) = which.get(parsed_api_events());
        let text = edit_event(base, EVENT_PATHS, &edits, true);
        let _ = request_from_event(&text);
    }

    /// Random events marked base64 with random bodies, v1 and v2 request contexts.
    #[test]
    fn random_base64_events_never_panic(text in random_api_event(true)) {
        let _ = request_from_event(&text);
    }
}

proptest! {
    #![proptest_config(config(256, 4096))]

    /// Structured edits of every field lambda_http reads, the URI fields included.
    ///
    /// lambda_http 1.3.2 panics while building the request URI from some field values
    /// (`Url::parse(..).unwrap()` and `.expect("failed to build request")` in
    /// `lambda_http::request`; `known_lambda_http_panics` lists minimal inputs):
    /// `request_from_event` turns those panics into errors.
    #[test]
    fn edited_api_event_uri_fields_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(event_edit(EVENT_PATHS, false), 1..6),
    ) {
        let (_, base) = which.get(parsed_api_events());
        let text = edit_event(base, EVENT_PATHS, &edits, false);
        let _ = request_from_event(&text);
    }

    /// As `random_base64_events_never_panic`, with any string in any field.
    #[test]
    fn random_events_any_field_never_panic(text in random_api_event(false)) {
        let _ = request_from_event(&text);
    }
}

// ---------------------------------------------------------------------------------------------
// d. A million inputs, without proptest's machinery

/// xorshift64*: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn scalar(&mut self) -> &'static str {
        SCALARS[self.below(SCALARS.len())]
    }
}

const SCALARS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "4000052183.0",
    "1e400",
    "18446744073709551616",
    "1700000000",
    "1700000000123",
    "\"\"",
    "\" \"",
    "\"x\"",
    "\"u-1\"",
    "\"\\ud800\"",
    "\"\\u00e9\"",
    "\"ANDROID\"",
    "\"iOS\"",
    "\"2024-01-02T03:04:05Z\"",
    "[]",
    "{}",
    "[1,\"a\"]",
    "{\"a\":{\"b\":null}}",
    "\"MOE_EMAIL_SENT\"",
    "\"NOTIFICATION_RECEIVED_MOE\"",
    "\"é😀\"",
];

/// A synthesized Streams body of 0–7 small events.
fn synth_body(rng: &mut Rng, codes: &[String], names: &[String], out: &mut String) {
    use std::fmt::Write;
    out.clear();
    out.push_str("{\"app_name\":\"A\",\"moe_request_id\":\"r\",\"events\":[");
    let n = rng.below(8);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        if rng.chance(30) {
            out.push_str(rng.scalar());
            continue;
        }
        out.push('{');
        let mut first = true;
        let mut field = |out: &mut String, k: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "\"{k}\":");
        };
        if !rng.chance(5) {
            field(out, "event_code");
            match rng.below(4) {
                0 => out.push_str(rng.scalar()),
                _ => {
                    let _ = write!(out, "\"{}\"", rng.pick(codes));
                }
            }
        }
        if !rng.chance(3) {
            field(out, "event_name");
            match rng.below(3) {
                0 => out.push_str(rng.scalar()),
                _ => {
                    let _ = write!(out, "{:?}", rng.pick(names));
                }
            }
        }
        if !rng.chance(4) {
            field(out, "uid");
            match rng.below(3) {
                0 => out.push_str(rng.scalar()),
                _ => {
                    let _ = write!(out, "\"c-{}\"", rng.next() % 1000);
                }
            }
        }
        if !rng.chance(3) {
            field(out, "event_uuid");
            let _ = write!(out, "\"e-{i}-{}\"", rng.next() % 100_000);
        }
        if rng.chance(2) {
            field(out, "event_time");
            out.push_str(rng.scalar());
        }
        for attrs in ["event_attributes", "user_attributes", "device_attributes"] {
            if rng.chance(2) {
                continue;
            }
            field(out, attrs);
            if rng.chance(10) {
                out.push_str(rng.scalar());
                continue;
            }
            out.push('{');
            for j in 0..rng.below(6) {
                if j > 0 {
                    out.push(',');
                }
                let key = match rng.below(3) {
                    0 => rng.pick(ATTR_NAMES).to_string(),
                    _ => format!("k{}", rng.below(50)),
                };
                let _ = write!(out, "{key:?}:");
                if rng.chance(200) {
                    let _ = write!(out, "\"{}\"", "x".repeat(rng.below(40_000)));
                } else {
                    out.push_str(rng.scalar());
                }
            }
            out.push('}');
        }
        out.push('}');
    }
    out.push_str("]}");
}

/// Mutates `bytes` in place with 1–8 random edits.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(8) {
        let len = bytes.len();
        match rng.below(7) {
            0 | 1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = rng.next() as u8;
            }
            3 => {
                let i = rng.below(len + 1);
                let t = *rng.pick(TOKENS);
                bytes.splice(i..i, t.iter().copied());
            }
            4 => {
                let i = rng.below(len + 1);
                let j = (i + 1 + rng.below(32)).min(len);
                bytes.drain(i..j);
            }
            5 if rng.chance(4) => bytes.truncate(rng.below(len + 1)),
            _ => {}
        }
    }
}

#[test]
#[ignore = "a long run: cargo test --release --test props -- --ignored million_inputs --nocapture"]
fn million_inputs() {
    let total: u64 = std::env::var("MILLION_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let codes = real_codes();
    let names = real_names();
    let bodies = small_fixtures();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut bytes, mut text) = (Vec::new(), String::new());
    let (mut not_streams, mut events, mut messages) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for i in 0..total {
        let body: &str = match i % 3 {
            0 => {
                bytes.clear();
                bytes.extend_from_slice(&rng.pick(bodies).1);
                mutate(&mut rng, &mut bytes);
                text = lossy_utf8(&bytes).into_owned();
                &text
            }
            1 => {
                synth_body(&mut rng, &codes, &names, &mut text);
                &text
            }
            _ => {
                synth_body(&mut rng, &codes, &names, &mut text);
                let mut b = std::mem::take(&mut text).into_bytes();
                mutate(&mut rng, &mut b);
                text = lossy_utf8(&b).into_owned();
                &text
            }
        };
        match map_and_check(body, NOW) {
            Ok(Some(out)) => {
                events += out.received as u64;
                messages += out.messages.len() as u64;
            }
            Ok(None) => not_streams += 1,
            Err(e) => panic!("input {i}: {e}\nbody: {body}"),
        }
    }
    let elapsed = started.elapsed();
    println!(
        "million_inputs: {total} inputs through map_body in {:.1} s ({:.0}/s): \
         {not_streams} not Streams bodies, {events} events, {messages} messages, 0 failures",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    assert!(total < 1000 || messages > 0);
}

// ---------------------------------------------------------------------------------------------
// Known panics, kept as exact inputs for whoever fixes them

/// Sample events with one field changed on which `request_from_event` panics inside
/// lambda_http 1.3.2, each with the panic seen: `(description, event file, edits)`.
/// Every one of them is a URI that `Url::parse` or `http::Uri` refuses.
#[allow(clippy::type_complexity)]
const KNOWN_PANICS: &[(&str, &str, &[(&str, Option<&str>)])] = &[
    (
        "request.rs:553 Url::parse(..).unwrap(): InvalidPort",
        "apigw-v2.json",
        &[("/rawPath", Some(":99999"))],
    ),
    (
        "request.rs:544 Url::parse(..).unwrap(): InvalidPort (no host header, no domainName)",
        "apigw-v2.json",
        &[
            ("/headers/host", None),
            ("/requestContext/domainName", None),
            ("/rawPath", Some(":99999")),
        ],
    ),
    (
        "request.rs:553 Url::parse(..).unwrap(): IdnaError",
        "apigw-v2.json",
        &[("/headers/host", Some("a b"))],
    ),
    (
        "request.rs:553 Url::parse(..).unwrap(): IdnaError (domainName)",
        "function-url.json",
        &[
            ("/headers/host", None),
            ("/requestContext/domainName", Some("xn--a")),
        ],
    ),
    (
        "request.rs:553 Url::parse(..).unwrap(): EmptyHost",
        "apigw-v2.json",
        &[
            ("/headers/host", None),
            ("/requestContext/domainName", Some("")),
            ("/rawPath", Some("")),
        ],
    ),
    (
        "request.rs:553 Url::parse(..).unwrap(): RelativeUrlWithoutBase",
        "apigw-v2.json",
        &[("/headers/x-forwarded-proto", Some("1"))],
    ),
    (
        "request.rs:175 expect(\"failed to build request\"): InvalidUri(InvalidUriChar)",
        "apigw-v2.json",
        &[("/rawQueryString", Some("a b"))],
    ),
    (
        "request.rs:175 expect(\"failed to build request\"): InvalidUri(TooLong)",
        "apigw-v2.json",
        &[("/rawPath", Some("LONG"))],
    ),
    (
        "request.rs:553 Url::parse(..).unwrap(): IdnaError (REST v1)",
        "apigw-rest-v1.json",
        &[("/headers/Host", Some("a b"))],
    ),
    (
        "request.rs:553 Url::parse(..).unwrap(): InvalidDomainCharacter",
        "apigw-v2.json",
        &[
            ("/headers/host", Some("]x")),
            ("/headers/x-forwarded-proto", Some("httpc")),
        ],
    ),
    (
        "request.rs:175 expect(\"failed to build request\"): InvalidUri(InvalidUriChar) (domainName)",
        "apigw-v2.json",
        &[
            ("/headers/host", None),
            ("/requestContext/domainName", Some("k.c{m")),
        ],
    ),
    (
        "request.rs:229 expect(\"failed to build request\"): InvalidUri(InvalidUriChar) (REST v1)",
        "apigw-rest-v1.json",
        &[(
            "/headers/Host",
            Some("r3stapi1d.execute-a`i.us-east-1.amazonaws.com"),
        )],
    ),
    (
        "request.rs:229 expect(\"failed to build request\"): InvalidUri(TooLong) (REST v1)",
        "apigw-rest-v1.json",
        &[("/path", Some("LONG"))],
    ),
];

/// The text of a `KNOWN_PANICS` event.
fn known_panic_event(file: &str, edits: &[(&str, Option<&str>)]) -> String {
    let (_, base) = parsed_api_events()
        .iter()
        .find(|(n, _)| n == file)
        .unwrap_or_else(|| panic!("no events/{file}"));
    let mut v = base.clone();
    for (pointer, value) in edits {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let obj = v
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap();
        match value {
            Some("LONG") => obj.insert(key.into(), json!(format!("/{}", "a".repeat(70_000)))),
            Some(s) => obj.insert(key.into(), json!(s)),
            None => obj.remove(key),
        };
    }
    v.to_string()
}

/// Regression list for lambda_http's panics: `request_from_event` turns each into an error,
/// never a panic.
#[test]
fn known_lambda_http_panics() {
    let mut failures = Vec::new();
    for (what, file, edits) in KNOWN_PANICS {
        let text = known_panic_event(file, edits);
        if std::panic::catch_unwind(|| request_from_event(&text)).is_err() {
            failures.push(*what);
        }
    }
    assert!(
        failures.is_empty(),
        "request_from_event panics on {} of {}: {failures:#?}",
        failures.len(),
        KNOWN_PANICS.len()
    );
}

/// Attribute values pass through verbatim, so a message can carry JSON that RFC 8259 allows
/// but strict parsers refuse: numbers out of the f64 range and lone-surrogate escapes.
/// Ignored: it documents current behaviour for a decision, it is not a regression test.
#[test]
#[ignore = "documents verbatim passthrough of 1e400 and \\ud800 (a finding, not yet decided)"]
fn messages_parse_strictly() {
    for body in [
        r#"{"events":[{"event_name":"A","uid":"u","event_attributes":{"k":1e400}}]}"#,
        r#"{"events":[{"event_name":"A","uid":"u","event_attributes":{"k":"\ud800"}}]}"#,
        r#"{"events":[{"event_name":"A","uid":"u","user_attributes":{"k":[-1e999]}}]}"#,
    ] {
        let out = map_body(body, NOW, Limits::REQUEST).unwrap();
        let json = &out.messages[0].json;
        assert!(
            serde_json::from_str::<Value>(json).is_ok(),
            "{body}\n  => {json}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Mapping options

/// Options drawn from the names, codes and keys the generated bodies use.
fn mapping_options() -> impl Strategy<Value = Value> {
    let names = || {
        let mut all = real_names();
        all.extend(real_codes());
        all.extend(["custom event".to_owned(), "X".to_owned()]);
        all
    };
    let event_list = move || prop::collection::vec(select(names()), 0..4);
    let keys = [
        "email",
        "phone",
        "first_name",
        "moe_email",
        "event_code",
        "campaign_id",
        "app_name",
        "event_uuid",
        "moengage_user_id",
    ];
    (
        event_list(),
        event_list(),
        prop::collection::vec((select(real_names()), "[A-Z][a-z]{1,8}"), 0..3),
        prop::collection::vec(select(keys.to_vec()), 0..3),
        prop::collection::vec(select(keys.to_vec()), 0..3),
        prop::collection::vec(select(keys.to_vec()), 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(skip, only, renames, drop_p, drop_t, hash_t, identify, upper)| {
                let case = |v: Vec<String>| -> Vec<String> {
                    v.into_iter()
                        .map(|n| if upper { n.to_uppercase() } else { n })
                        .collect()
                };
                let only: Vec<String> = case(only)
                    .into_iter()
                    .filter(|o| !skip.iter().any(|s| s.eq_ignore_ascii_case(o)))
                    .collect();
                let hash_t: Vec<&str> =
                    hash_t.into_iter().filter(|k| !drop_t.contains(k)).collect();
                let renames: Map<String, Value> = renames
                    .into_iter()
                    .map(|(from, to)| (from, Value::from(to)))
                    .collect();
                json!({
                    "skip_events": case(skip), "only_events": only, "rename_events": renames,
                    "drop_properties": drop_p, "drop_traits": drop_t, "hash_traits": hash_t,
                    "identify": if identify { "per_user" } else { "off" },
                })
            },
        )
}

/// Whether a trait value is as `hash_traits` leaves it: a hash, or nothing to hide.
fn hashed_or_empty(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            s.trim().is_empty() || (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        }
        Value::Null | Value::Bool(_) => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(config(96, 4096))]

    /// With any options: every event is sent, rejected or filtered, exactly once; options
    /// only remove (an event sent with them is sent without, a rejection is one without);
    /// dropped keys are gone, hashed ones hashed; identify calls are valid, one per user;
    /// the same body maps the same.
    #[test]
    fn options_keep_the_invariants(
        (body, _) in streams_body(),
        options in mapping_options(),
        received_at in 0i64..4_102_444_800_000,
    ) {
        let opts = moengage_segment::mapping::options::MappingOptions::from_value(&options)
            .map_err(|e| TestCaseError::fail(format!("{e}: {options}")))?;
        let with = moengage_segment::mapping::map_body_with(&body, received_at, Limits::REQUEST, &opts)
            .expect("a generated body is a Streams request");
        let without = map_body(&body, received_at, Limits::REQUEST).unwrap();
        let tracks = with.messages.len() - with.identifies;
        prop_assert_eq!(tracks + with.rejected.len() + with.filtered, with.received);
        let sent: HashSet<usize> = without.messages.iter().map(|m| m.index).collect();
        let rejected: HashSet<usize> = without.rejected.iter().map(|r| r.index).collect();
        for m in &with.messages[..tracks] {
            prop_assert!(sent.contains(&m.index), "event {} is sent only with options", m.index);
        }
        for r in &with.rejected {
            prop_assert!(rejected.contains(&r.index), "event {} is rejected only with options", r.index);
        }
        let listed = |field: &str| -> Vec<String> {
            options[field].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
        };
        let mut identify_ids = HashSet::new();
        let mut users = HashSet::new();
        for (i, m) in with.messages.iter().enumerate() {
            let v: Value = serde_json::from_str(&m.json).unwrap();
            prop_assert!(m.json.len() <= MAX_MESSAGE_BYTES);
            let compact = compact_json(&m.json);
            prop_assert_eq!(compact.as_ref(), m.json.as_str());
            let traits = if i < tracks {
                check_message(&m.json, &m.message_id).map_err(TestCaseError::fail)?;
                for k in listed("drop_properties") {
                    prop_assert!(v["properties"].get(&k).is_none(), "properties.{} kept: {}", k, m.json);
                }
                // Nothing skipped is sent: neither by its name (renames go to names no list
                // holds) nor by its code.
                for name in [&v["event"], &v["properties"]["event_code"]] {
                    if let Some(name) = name.as_str() {
                        prop_assert!(
                            !listed("skip_events").iter().any(|s| s.to_lowercase() == name.to_lowercase()),
                            "{} is skipped but sent: {}", name, m.json
                        );
                    }
                }
                v["context"]["traits"].clone()
            } else {
                prop_assert_eq!(&v["type"], "identify");
                prop_assert!(m.message_id.starts_with("moe-id-") && identify_ids.insert(m.message_id.clone()));
                let who = (v["userId"].clone(), v["anonymousId"].clone());
                prop_assert!(!who.0.is_null() || !who.1.is_null());
                if who.0.is_null() {
                    prop_assert!(users.insert(json!(["anonymous", who.1])));
                } else {
                    prop_assert!(users.insert(json!(["user", who.0])));
                }
                prop_assert!(v["traits"].as_object().is_some_and(|t| !t.is_empty()));
                v["traits"].clone()
            };
            for k in listed("drop_traits") {
                prop_assert!(traits.get(&k).is_none(), "traits.{} kept: {}", k, m.json);
            }
            for k in listed("hash_traits") {
                if let Some(t) = traits.get(&k) {
                    prop_assert!(hashed_or_empty(t), "traits.{} = {} is not hashed", k, t);
                }
            }
        }
        if options["identify"] == "off" {
            prop_assert_eq!(with.identifies, 0);
        }
        let again = moengage_segment::mapping::map_body_with(&body, received_at, Limits::REQUEST, &opts).unwrap();
        prop_assert_eq!(&again.messages, &with.messages);
        prop_assert_eq!(again.filtered, with.filtered);
    }
}
