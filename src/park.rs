//! Dead-letter parking: events Segment permanently refused, or that were still undelivered at
//! the deadline, are sent to an SQS queue (env `DEAD_LETTER_QUEUE_URL`) with the reason, the
//! MoEngage request id, the attempt count and the mapped Segment message, instead of being
//! lost. `moe2seg replay` delivers them later with the same `messageId`s.

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One parked event: the SQS message body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Parcel<'a> {
    /// Format version of this record.
    pub version: u32,
    /// `segment_refused`, `segment_unavailable` or `segment_unauthorized`.
    pub reason: &'a str,
    pub detail: String,
    pub moe_request_id: Option<&'a str>,
    pub event_uuid: Option<&'a str>,
    pub message_id: &'a str,
    /// Segment requests made for this event before it was parked.
    pub attempts: u32,
    pub parked_at: String,
    /// The mapped Segment message, exactly as it would be sent.
    #[serde(borrow)]
    pub message: &'a RawValue,
}

/// Why parking failed: the handler then answers 503 so MoEngage re-sends.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("parking in the dead-letter queue failed: {0}")]
pub struct ParkError(pub String);

/// Somewhere to park events.
pub trait Park: Send + Sync + 'static {
    /// Parks every body, or fails (then nothing is assumed parked).
    fn park(&self, bodies: Vec<String>) -> impl Future<Output = Result<(), ParkError>> + Send;
}

/// No dead-letter queue: undeliverable events make the answer non-2xx.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPark;

impl Park for NoPark {
    async fn park(&self, _bodies: Vec<String>) -> Result<(), ParkError> {
        Err(ParkError("no dead-letter queue configured".into()))
    }
}

/// SQS's limit on one SendMessageBatch request (and one message).
const SQS_BATCH_BYTES: usize = 256 * 1024;
const SQS_BATCH_ENTRIES: usize = 10;

/// An SQS queue (honours `AWS_ENDPOINT_URL_SQS`).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    pub url: String,
}

/// A message received from the queue.
#[derive(Debug, Clone)]
pub struct Received {
    pub receipt_handle: String,
    pub body: String,
}

fn sdk_error<E, R>(what: &str, e: aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => format!(
            "{what}: {}: {}",
            se.code().unwrap_or("ServiceError"),
            se.message().unwrap_or("")
        ),
        None => format!("{what}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
    }
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    pub async fn from_env(url: impl Into<String>) -> Self {
        let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        SqsQueue::new(aws_sdk_sqs::Client::new(&conf), url)
    }

    /// Sends bodies in SendMessageBatch requests of ≤ 10 entries and ≤ 256 KiB; entries SQS
    /// reports as failed are sent once more.
    pub async fn send_all(&self, bodies: &[String]) -> Result<(), String> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut size = 0;
        for (i, b) in bodies.iter().enumerate() {
            if b.len() > SQS_BATCH_BYTES {
                return Err(format!(
                    "a parcel of {} bytes exceeds SQS's message limit",
                    b.len()
                ));
            }
            match groups.last_mut() {
                Some(g) if g.len() < SQS_BATCH_ENTRIES && size + b.len() <= SQS_BATCH_BYTES => {
                    g.push(i);
                    size += b.len();
                }
                _ => {
                    groups.push(vec![i]);
                    size = b.len();
                }
            }
        }
        for group in groups {
            let mut todo = group;
            for round in 0..2 {
                let entries = todo
                    .iter()
                    .map(|i| {
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(format!("m{i}"))
                            .message_body(&bodies[*i])
                            .build()
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| sdk_error("SendMessageBatch", e))?;
                let failed: Vec<usize> = out
                    .failed()
                    .iter()
                    .filter_map(|f| f.id().strip_prefix('m').and_then(|n| n.parse().ok()))
                    .collect();
                if failed.is_empty() {
                    break;
                }
                if round == 1 {
                    return Err(format!("SQS refused {} of the parcels", failed.len()));
                }
                todo = failed;
            }
        }
        Ok(())
    }

    /// Receives up to 10 messages, hiding them for `visibility_secs`.
    pub async fn receive(
        &self,
        wait_secs: i32,
        visibility_secs: i32,
    ) -> Result<Vec<Received>, String> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_secs)
            .visibility_timeout(visibility_secs)
            .send()
            .await
            .map_err(|e| sdk_error("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Received {
                    receipt_handle: m.receipt_handle()?.to_owned(),
                    body: m.body()?.to_owned(),
                })
            })
            .collect())
    }

    /// Deletes received messages; returns how many SQS confirmed.
    pub async fn delete(&self, receipts: &[&str]) -> Result<usize, String> {
        let mut deleted = 0;
        for group in receipts.chunks(SQS_BATCH_ENTRIES) {
            let entries = group
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(format!("d{i}"))
                        .receipt_handle(*r)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_error("DeleteMessageBatch", e))?;
            deleted += out.successful().len();
        }
        Ok(deleted)
    }
}

impl Park for SqsQueue {
    async fn park(&self, bodies: Vec<String>) -> Result<(), ParkError> {
        self.send_all(&bodies).await.map_err(ParkError)
    }
}
