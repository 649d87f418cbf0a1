//! A minimal Lambda Runtime API on 127.0.0.1, to run the real function binaries as
//! Lambda would: it hands out queued events on `GET …/invocation/next` and records what the
//! function posts back. Also records when the function first asked for work (end of Init).
#![allow(dead_code)]

// Shares the HTTP reading of the Segment stand-in: a test crate using this module declares
// `mod segment_stub;` too.
use crate::segment_stub::wire;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub event: String,
    pub deadline_ms: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Invocation>,
    responses: Vec<(String, serde_json::Value)>,
    errors: Vec<(String, String)>,
    first_next_at: Option<Instant>,
    sent_at: Vec<(String, Instant)>,
    answered_at: Vec<(String, Instant)>,
}

#[derive(Clone)]
pub struct FakeRuntime {
    pub addr: String,
    state: Arc<Mutex<State>>,
}

impl FakeRuntime {
    pub async fn start() -> FakeRuntime {
        let state = Arc::new(Mutex::new(State::default()));
        let addr = wire::listen(state.clone(), serve).await.to_string();
        FakeRuntime { addr, state }
    }

    pub fn push(&self, request_id: &str, event: String, budget: Duration) {
        let deadline_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + budget.as_millis() as u64;
        self.state.lock().unwrap().queue.push_back(Invocation {
            request_id: request_id.to_owned(),
            event,
            deadline_ms,
        });
    }

    /// Waits until `n` responses (or errors) arrived, or panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) {
        let start = Instant::now();
        loop {
            {
                let st = self.state.lock().unwrap();
                if st.responses.len() + st.errors.len() >= n {
                    return;
                }
            }
            assert!(
                start.elapsed() < timeout,
                "the function did not answer in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn responses(&self) -> Vec<(String, serde_json::Value)> {
        self.state.lock().unwrap().responses.clone()
    }

    pub fn errors(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().errors.clone()
    }

    pub fn first_next_at(&self) -> Option<Instant> {
        self.state.lock().unwrap().first_next_at
    }

    /// (request id, time the event was handed out, time the answer arrived).
    pub fn timings(&self) -> Vec<(String, Instant, Instant)> {
        let st = self.state.lock().unwrap();
        st.sent_at
            .iter()
            .filter_map(|(id, s)| {
                st.answered_at
                    .iter()
                    .find(|(i, _)| i == id)
                    .map(|(_, a)| (id.clone(), *s, *a))
            })
            .collect()
    }
}

async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(req) = wire::read_request(&mut sock, &mut buf).await? {
        let wire::WireRequest {
            method, path, body, ..
        } = req;
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let inv = loop {
                {
                    let mut st = state.lock().unwrap();
                    st.first_next_at.get_or_insert_with(Instant::now);
                    if let Some(inv) = st.queue.pop_front() {
                        st.sent_at.push((inv.request_id.clone(), Instant::now()));
                        break inv;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {}\r\nlambda-runtime-deadline-ms: {}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:test\r\nlambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\ncontent-length: {}\r\n\r\n{}",
                inv.request_id,
                inv.deadline_ms,
                inv.event.len(),
                inv.event
            );
            sock.write_all(resp.as_bytes()).await?;
            continue;
        }
        let parts: Vec<&str> = path.split('/').collect();
        // /2018-06-01/runtime/invocation/{id}/response|error, /2018-06-01/runtime/init/error
        {
            let mut st = state.lock().unwrap();
            if path.ends_with("/response") && parts.len() >= 6 {
                let id = parts[4].to_owned();
                let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                st.answered_at.push((id.clone(), Instant::now()));
                st.responses.push((id, v));
            } else if path.ends_with("/error") {
                let id = parts
                    .get(4)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "init".into());
                st.errors
                    .push((id, String::from_utf8_lossy(&body).to_string()));
            }
        }
        sock.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}")
            .await?;
    }
    Ok(())
}
