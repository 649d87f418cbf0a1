//! A local stand-in for Segment's `POST /v1/batch`, on 127.0.0.1, that enforces Segment's
//! limits and can be scripted per request (status codes, `Retry-After`, slow answers, reset
//! connections). It records every request and counts the `messageId`s it accepted, so tests
//! can assert "every event exactly once".
//!
//! Unscripted requests are answered like Segment: 401 for an unknown write key, 400 for a body
//! over 500 KB or a message over 32 KB, 200 otherwise. Things Segment would accept with 200
//! but silently drop (over 2,500 messages, a message without identity, a track without event
//! name, an identify without traits) are recorded as violations so tests can fail on them.
//!
//! Any request to [`OK_PATH`] gets 200 (accepting nothing): a redirect target that would make
//! a client following redirects believe its batch was delivered.
#![allow(dead_code)]

pub mod wire;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A scripted answer for one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer with this status (and body `{}`), accepting nothing.
    Status(u16),
    /// A status with a `Retry-After` header value.
    RetryAfter(u16, String),
    /// Wait, then answer normally (enforcing limits).
    Delay(Duration),
    /// Close the connection abruptly (TCP reset) without answering.
    Reset,
    /// Answer normally.
    Normal,
    /// A redirect (301, 302, 307, …) to this `Location`, accepting nothing.
    Redirect(u16, String),
    /// A status with a body of this many bytes (`x`s), streamed in 64 KiB writes; accepts
    /// nothing. The stand-in stops writing when the client hangs up.
    BigBody(u16, usize),
}

/// A path that answers 200 to anything (a redirect target).
pub const OK_PATH: &str = "/ok";

#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub write_key: Option<String>,
    pub retry_count: Option<u32>,
    pub body_len: usize,
    pub message_ids: Vec<String>,
    pub status: Option<u16>,
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    /// Answer 400 to any batch containing this messageId (a poisoned message).
    poison: HashSet<String>,
    valid_keys: HashSet<String>,
    requests: Vec<Recorded>,
    accepted: HashMap<String, u32>,
    violations: Vec<String>,
    /// Body bytes written for each finished [`Reply::BigBody`] answer.
    streamed: Vec<usize>,
}

#[derive(Clone)]
pub struct SegmentStub {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl SegmentStub {
    /// Starts a stand-in accepting the given write keys.
    pub async fn start(valid_keys: &[&str]) -> SegmentStub {
        let state = Arc::new(Mutex::new(State {
            valid_keys: valid_keys.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }));
        let url = format!("http://{}", wire::listen(state.clone(), serve).await);
        SegmentStub { url, state }
    }

    /// Queues scripted answers for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn add_key(&self, key: &str) {
        self.state.lock().unwrap().valid_keys.insert(key.to_owned());
    }

    /// From now on, refuse every write key (401).
    pub fn clear_keys(&self) {
        self.state.lock().unwrap().valid_keys.clear();
    }

    pub fn poison(&self, message_id: &str) {
        self.state
            .lock()
            .unwrap()
            .poison
            .insert(message_id.to_owned());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// messageId → how many accepted batches carried it.
    pub fn accepted(&self) -> HashMap<String, u32> {
        self.state.lock().unwrap().accepted.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// Body bytes written by each finished [`Reply::BigBody`] answer (it finishes when all
    /// is written or the client hangs up).
    pub fn streamed(&self) -> Vec<usize> {
        self.state.lock().unwrap().streamed.clone()
    }
}

async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(req) = wire::read_request(&mut sock, &mut buf).await? {
        let wire::WireRequest {
            method,
            path,
            headers,
            body,
        } = req;
        // The redirect target takes no scripted answer: it always answers 200.
        let reply = if path == OK_PATH {
            Reply::Normal
        } else {
            state
                .lock()
                .unwrap()
                .script
                .pop_front()
                .unwrap_or(Reply::Normal)
        };
        let write_key = headers.get("authorization").and_then(|a| {
            let b64 = a.strip_prefix("Basic ")?;
            let dec = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            let s = String::from_utf8(dec).ok()?;
            s.strip_suffix(':').map(str::to_owned)
        });
        let mut rec = Recorded {
            at: Instant::now(),
            method: method.clone(),
            path: path.clone(),
            write_key: write_key.clone(),
            retry_count: headers.get("x-retry-count").and_then(|v| v.parse().ok()),
            body_len: body.len(),
            message_ids: Vec::new(),
            status: None,
        };
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        if let Some(batch) = parsed.as_ref().and_then(|v| v["batch"].as_array()) {
            rec.message_ids = batch
                .iter()
                .filter_map(|m| m["messageId"].as_str().map(str::to_owned))
                .collect();
        }
        if let Reply::Delay(d) = reply {
            tokio::time::sleep(d).await;
        }
        let (status, extra) = match reply {
            Reply::Reset => {
                state.lock().unwrap().requests.push(rec);
                #[allow(deprecated)] // blocking on drop is what a reset needs here
                sock.set_linger(Some(Duration::ZERO))?;
                return Ok(());
            }
            Reply::Status(s) => (s, None),
            Reply::RetryAfter(s, v) => (s, Some(format!("retry-after: {v}\r\n"))),
            Reply::Redirect(s, to) => (s, Some(format!("location: {to}\r\n"))),
            Reply::BigBody(s, len) => {
                rec.status = Some(s);
                state.lock().unwrap().requests.push(rec);
                let head = format!(
                    "HTTP/1.1 {s} X\r\ncontent-type: text/plain\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
                );
                let block = vec![b'x'; 64 * 1024];
                let mut written = 0;
                if sock.write_all(head.as_bytes()).await.is_ok() {
                    while written < len {
                        let n = (len - written).min(block.len());
                        if sock.write_all(&block[..n]).await.is_err() {
                            break;
                        }
                        written += n;
                    }
                }
                state.lock().unwrap().streamed.push(written);
                return Ok(());
            }
            Reply::Delay(_) | Reply::Normal => (
                enforce(
                    &state,
                    &method,
                    &path,
                    write_key.as_deref(),
                    &body,
                    parsed.as_ref(),
                ),
                None,
            ),
        };
        rec.status = Some(status);
        state.lock().unwrap().requests.push(rec);
        let body = if status == 200 {
            "{\"success\":true}"
        } else {
            "{}"
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}connection: keep-alive\r\n\r\n{body}",
            body.len(),
            extra.unwrap_or_default()
        );
        sock.write_all(resp.as_bytes()).await?;
    }
    Ok(())
}

/// Segment's rules for an unscripted request; records accepted ids and violations.
fn enforce(
    state: &Arc<Mutex<State>>,
    method: &str,
    path: &str,
    write_key: Option<&str>,
    body: &[u8],
    parsed: Option<&serde_json::Value>,
) -> u16 {
    let mut st = state.lock().unwrap();
    if path == OK_PATH {
        return 200;
    }
    if method != "POST" || path != "/v1/batch" {
        return 404;
    }
    match write_key {
        Some(k) if st.valid_keys.contains(k) => {}
        _ => return 401,
    }
    if body.len() > 500_000 {
        return 400;
    }
    let Some(batch) = parsed.and_then(|v| v["batch"].as_array()) else {
        return 400;
    };
    if parsed.and_then(|v| v["sentAt"].as_str()).is_none() {
        st.violations.push("batch without sentAt".into());
    }
    for m in batch {
        if m.to_string().len() > 32 * 1024 {
            return 400;
        }
        if let Some(id) = m["messageId"].as_str()
            && st.poison.contains(id)
        {
            return 400;
        }
    }
    if batch.len() > 2500 {
        st.violations.push(format!(
            "batch of {} messages (Segment drops past 2500)",
            batch.len()
        ));
    }
    for m in batch {
        let id = m["messageId"].as_str().unwrap_or("").to_owned();
        let has_identity = ["userId", "anonymousId"]
            .iter()
            .any(|k| m[*k].as_str().is_some_and(|s| !s.is_empty()));
        if !has_identity {
            st.violations
                .push(format!("{id}: no userId/anonymousId (Segment drops it)"));
        }
        let track = m["type"] == "track" && m["event"].as_str().is_some_and(|e| !e.is_empty());
        let identify = m["type"] == "identify" && m["traits"].is_object();
        if !track && !identify {
            st.violations.push(format!(
                "{id}: neither a track with an event name nor an identify with traits"
            ));
        }
        if id.is_empty() || id.len() > 100 {
            st.violations.push(format!("bad messageId {id:?}"));
        }
        *st.accepted.entry(id).or_default() += 1;
    }
    200
}
