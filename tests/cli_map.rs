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
