//! `moe2seg map` as a process: exit codes, stdout JSON Lines, stderr rejections.

use std::io::Write;
use std::process::{Command, Stdio};

fn moe2seg(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moe2seg"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn maps_a_file_to_json_lines() {
    let (code, stdout, stderr) = moe2seg(&["map", "tests/fixtures/email.json"], None);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|m| m["type"] == "track"));
}

#[test]
fn rejected_events_go_to_stderr_and_exit_zero() {
    let (code, stdout, stderr) = moe2seg(&["map", "tests/fixtures/mixed_invalid.json"], None);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 3);
    let rejected: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejected.len(), 3);
    assert!(
        rejected
            .iter()
            .all(|r| r.get("reason").is_some() && r.get("event_uuid").is_some())
    );
}

#[test]
fn reads_stdin() {
    let body = br#"{"events":[{"event_name":"Added to Cart","uid":"u1","event_uuid":"e1"}]}"#;
    for args in [&["map"][..], &["map", "-"][..]] {
        let (code, stdout, _) = moe2seg(args, Some(body));
        assert_eq!(code, 0);
        assert!(stdout.contains("\"messageId\":\"moe-e1\""), "{stdout}");
    }
}

#[test]
fn not_a_streams_body_exits_2_with_one_line() {
    let (code, stdout, stderr) = moe2seg(&["map", "tests/fixtures/not_streams/html.txt"], None);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a MoEngage Streams request"));
    let (code, _, stderr) = moe2seg(&["map", "does/not/exist.json"], None);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"));
}

#[test]
fn a_file_is_not_held_to_the_webhook_request_limits() {
    // The Lambda refuses more than 10,000 events per request; a file of the user's own maps
    // whole.
    let events: Vec<String> = (0..10_001)
        .map(|i| format!(r#"{{"event_name":"X","uid":"u","event_uuid":"e{i}"}}"#))
        .collect();
    let body = format!(r#"{{"events":[{}]}}"#, events.join(","));
    let (code, stdout, stderr) = moe2seg(&["map"], Some(body.as_bytes()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 10_001);
}

#[test]
fn a_large_file_is_mapped_as_the_library_maps_it() {
    // 5 MB, read into huge-page-advised memory: repeated uuids far apart, rejected events,
    // an event only serde_json reads. The output is byte for byte the library's.
    use moengage_segment::mapping::{Limits, map_body_with};
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/batch_100.json")).unwrap();
    let base = fixture["events"].as_array().unwrap();
    let mut events = Vec::new();
    let mut size = 0;
    while size < 5 << 20 {
        let i = events.len();
        let mut e = base[i % base.len()].clone();
        e["event_uuid"] = match i % 997 {
            0 => "repeated".into(),
            _ => format!("evt-{i}").into(),
        };
        if i % 1_501 == 7 {
            e.as_object_mut().unwrap().remove("event_name");
            e.as_object_mut().unwrap().remove("event_code");
        }
        let text = if i % 2_999 == 5 {
            "\"not an event\"".to_string()
        } else {
            e.to_string()
        };
        size += text.len() + 1;
        events.push(text);
    }
    let body = format!(
        r#"{{"app_name":"App","moe_request_id":"r-1","events":[{}]}}"#,
        events.join(",")
    );
    let now = moengage_segment::mapping::time::now_millis();
    let want = map_body_with(&body, now, Limits::NONE, &Default::default()).unwrap();
    assert!(want.duplicate_uuids > 2 && want.rejected.len() > 2);
    let (code, stdout, stderr) = moe2seg(&["map"], Some(body.as_bytes()));
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), want.messages.len());
    for (line, m) in lines.iter().zip(&want.messages) {
        assert_eq!(*line, m.json);
    }
    let rejected: Vec<String> = want
        .rejected
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(stderr.lines().collect::<Vec<_>>(), rejected);
}

/// `moe2seg` with the given environment only (plus PATH), from the crate root.
fn moe2seg_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moe2seg"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn options_file_shapes_the_output_as_the_golden_fixture_says() {
    let (code, stdout, stderr) = moe2seg(
        &[
            "map",
            "--options",
            "tests/fixtures/options/issue_example.options.json",
            "tests/fixtures/options/issue_example.json",
        ],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    let got: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/options/issue_example.expected.json").unwrap(),
    )
    .unwrap();
    // The golden fixture was mapped at a fixed time; these events all carry their own.
    assert_eq!(&got, expected["messages"].as_array().unwrap());
    assert_eq!(stderr, "{\"filtered\":2}\n");
}

#[test]
fn invalid_options_exit_2_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("moe2seg-options-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"mapping": {"hash_traits": ["email", 7]}}"#).unwrap();
    let (code, stdout, stderr) = moe2seg(
        &[
            "map",
            "--options",
            bad.to_str().unwrap(),
            "tests/fixtures/email.json",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("mapping option `hash_traits[1]`: expected a string, found a number"),
        "{stderr}"
    );
    let (code, _, stderr) = moe2seg(
        &[
            "map",
            "--options",
            "does/not/exist.json",
            "tests/fixtures/email.json",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read does/not/exist.json"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mapping_options_env_applies_to_local_runs() {
    let settings = [
        ("SEGMENT_WRITE_KEY", "env-key"),
        ("SEGMENT_REGION", "us"),
        ("WEBHOOK_USERNAME", "moengage"),
        ("WEBHOOK_PASSWORD", "local-password"),
    ];
    let answer = |extra: &[(&str, &str)]| {
        let mut env = settings.to_vec();
        env.extend_from_slice(extra);
        let (code, stdout, stderr) =
            moe2seg_env(&["invoke", "--dry-run", "events/apigw-v2.json"], &env);
        (code, stdout, stderr)
    };
    let body = |stdout: &str| -> serde_json::Value {
        let resp: serde_json::Value = serde_json::from_str(stdout).unwrap();
        serde_json::from_str(resp["body"].as_str().unwrap()).unwrap()
    };
    let (code, stdout, stderr) = answer(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(body(&stdout)["filtered"], 0);
    let options = r#"{"skip_events": ["MOE_EMAIL_SENT", "email opened"], "identify": "per_user"}"#;
    let (code, stdout, stderr) = answer(&[("MAPPING_OPTIONS", options)]);
    assert_eq!(code, 0, "{stderr}");
    let b = body(&stdout);
    assert_eq!(
        (&b["received"], &b["filtered"]),
        (&6.into(), &2.into()),
        "{b}"
    );
    assert_eq!(b["identifies"], 2, "{b}");
    // The dry run printed the identify calls it would send.
    assert_eq!(
        stderr.matches("\"type\": \"identify\"").count(),
        2,
        "{stderr}"
    );
    // Invalid: the process says which field, and does not start.
    let (code, _, stderr) = answer(&[("MAPPING_OPTIONS", r#"{"identify": "yes"}"#)]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("MAPPING_OPTIONS") && stderr.contains("mapping option `identify`"),
        "{stderr}"
    );
}
