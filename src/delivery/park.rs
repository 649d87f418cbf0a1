//! The two SQS queues events wait in, and the record ([`Parcel`]) each event waits as.
//!
//! - The parked queue (env `DEAD_LETTER_QUEUE_URL`, `<stack>-parked`): events still
//!   undelivered at the deadline (Segment down, timeouts, a refused write key). The redelivery
//!   handler ([`crate::delivery::redeliver`]) sends them again automatically, with backoff.
//! - The refused queue (env `REFUSED_QUEUE_URL`, `<stack>-refused`): events Segment refuses for
//!   good, and parked events past their redelivery age. Never retried automatically: a person
//!   fixes the cause and runs `moe2seg replay --queue`.
//!
//! A parcel carries the reason, the MoEngage request id, the attempt count and the mapped
//! Segment message, so every later delivery uses the same `messageId`.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::settings::config::sdk_error_text;

/// One parked event: the SQS message body. Its strings borrow from the body when they can
/// (a string holding escapes, e.g. a `"` in an `event_uuid`, is unescaped into its own).
#[derive(Debug, Serialize, Deserialize)]
pub struct Parcel<'a> {
    /// Format version of this record.
    pub version: u32,
    /// `segment_refused`, `segment_unavailable`, `segment_unauthorized` or
    /// `redelivery_expired`.
    #[serde(borrow)]
    pub reason: Cow<'a, str>,
    pub detail: String,
    #[serde(borrow)]
    pub moe_request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub event_uuid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message_id: Cow<'a, str>,
    /// Segment requests made for this event before it was parked (over every delivery).
    pub attempts: u32,
    /// When it entered the queue it is in.
    pub parked_at: String,
    /// When it was first parked, for a parcel moved from the parked queue to the refused one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_parked_at: Option<String>,
    /// The mapped Segment message, exactly as it would be sent.
    #[serde(borrow)]
    pub message: &'a RawValue,
}

/// Why parking failed: the webhook then answers 503 so MoEngage re-sends; a parked message
/// being moved stays where it is.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("parking in {queue} failed: {why}")]
pub struct ParkError {
    pub queue: &'static str,
    pub why: String,
}

/// SQS's limit on one SendMessageBatch request (and one message).
const SQS_BATCH_BYTES: usize = 256 * 1024;
const SQS_BATCH_ENTRIES: usize = 10;
/// SendMessageBatch requests in flight at once when parking.
pub const SEND_CONCURRENCY: usize = 8;

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
    /// `ApproximateReceiveCount` (1 the first time).
    pub receive_count: u32,
    /// `SentTimestamp`, epoch milliseconds.
    pub sent_at_ms: Option<i64>,
}

fn sdk_error<E, R>(what: &str, e: aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    format!("{what}: {}", sdk_error_text(&e))
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    /// Another queue reached with the same client (one AWS configuration per process).
    pub fn sibling(&self, url: impl Into<String>) -> SqsQueue {
        SqsQueue::new(self.client.clone(), url)
    }

    /// The queue's name: the last path segment of its URL (the same queue may be written
    /// with other hosts: `sqs.<region>.amazonaws.com`, `localhost`, a VPC endpoint).
    pub fn name(&self) -> &str {
        self.url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&self.url)
    }

    /// A queue whose client reads the standard AWS environment
    /// ([`aws_sdk_config`](crate::settings::config::aws_sdk_config), with its timeouts: one stuck call
    /// cannot hold a send slot; parking as a whole is also bounded by the caller's deadline).
    /// A ReceiveMessage long poll must stay under the attempt timeout (`moe2seg replay` waits
    /// 1 s). The function builds its queues from one shared configuration instead.
    pub async fn from_env(url: impl Into<String>) -> Self {
        let conf = crate::settings::config::aws_sdk_config().await;
        SqsQueue::new(aws_sdk_sqs::Client::new(&conf), url)
    }

    /// Parks every body before `deadline`, or fails (then nothing is assumed parked, though
    /// some bodies may have been: they are delivered later under the same `messageId`s,
    /// which Segment deduplicates).
    pub async fn park(
        &self,
        queue: &'static str,
        bodies: &[String],
        deadline: Instant,
    ) -> Result<(), ParkError> {
        match tokio::time::timeout_at(deadline.into(), self.send_all(bodies)).await {
            Ok(sent) => sent.map_err(|why| ParkError { queue, why }),
            Err(_) => Err(ParkError {
                queue,
                why: format!(
                    "did not finish before the deadline ({} parcels)",
                    bodies.len()
                ),
            }),
        }
    }

    /// Hides received messages for `visibility` from now (ChangeMessageVisibilityBatch, 10
    /// per call); returns how many SQS confirmed.
    /// Fails only when no call succeeded.
    pub async fn hide(&self, receipts: &[(&str, Duration)]) -> Result<usize, String> {
        let mut changed = 0;
        let mut last_error = None;
        for group in receipts.chunks(SQS_BATCH_ENTRIES) {
            let entries = group
                .iter()
                .enumerate()
                .map(|(i, (r, visibility))| {
                    aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("v{i}"))
                        .receipt_handle(*r)
                        .visibility_timeout(i32::try_from(visibility.as_secs()).unwrap_or(i32::MAX))
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            // A failed call does not stop the others: each hidden message is one try less.
            match self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => changed += out.successful().len(),
                Err(e) => {
                    last_error = Some(sdk_error("ChangeMessageVisibilityBatch", e));
                }
            }
        }
        match (changed, last_error) {
            (0, Some(e)) => Err(e),
            (n, _) => Ok(n),
        }
    }

    /// Sends bodies in SendMessageBatch requests of ≤ 10 entries and ≤ 256 KiB, at most
    /// [`SEND_CONCURRENCY`] at once; entries SQS reports as failed are sent once more. Stops
    /// at the first request that fails. Not bounded in time: [`SqsQueue::park`] bounds it.
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
        let mut sends = stream::iter(groups)
            .map(|group| self.send_group(bodies, group))
            .buffer_unordered(SEND_CONCURRENCY);
        while let Some(sent) = sends.next().await {
            sent?;
        }
        Ok(())
    }

    /// Sends one group (`bodies` indexes) in one SendMessageBatch; the entries SQS reports
    /// as failed are sent once more.
    async fn send_group(&self, bodies: &[String], group: Vec<usize>) -> Result<(), String> {
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
            let reported = out.failed();
            if reported.is_empty() {
                return Ok(());
            }
            if round == 1 {
                return Err(format!("SQS refused {} of the parcels", reported.len()));
            }
            let mut failed: Vec<usize> = reported
                .iter()
                .filter_map(|f| f.id().strip_prefix('m').and_then(|n| n.parse().ok()))
                .filter(|i| todo.contains(i))
                .collect();
            failed.sort_unstable();
            failed.dedup();
            // Ids this batch did not send (or repeated): send the whole group again.
            if failed.len() == reported.len() {
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
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp,
            )
            .send()
            .await
            .map_err(|e| sdk_error("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                use aws_sdk_sqs::types::MessageSystemAttributeName as Name;
                let attribute = |name| m.attributes().and_then(|a| a.get(&name));
                Some(Received {
                    receipt_handle: m.receipt_handle()?.to_owned(),
                    body: m.body()?.to_owned(),
                    receive_count: attribute(Name::ApproximateReceiveCount)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1),
                    sent_at_ms: attribute(Name::SentTimestamp).and_then(|v| v.parse().ok()),
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
