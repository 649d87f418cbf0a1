//! moengage-segment: forwards MoEngage Streams webhooks to Segment.
//!
//! The pipeline is decode → map → forward:
//! - [`decode`] reads a Streams body leniently, each event on its own ([`json`] keeps raw
//!   values compact and gives the canonical form content hashes use; [`time`] reads
//!   `event_time`);
//! - [`map`] turns each event into a Segment `track` message using the [`catalog`] and
//!   [`properties`] tables, shaped by the customer's [`options`] (filters, renames, dropped
//!   or hashed keys, `identify` calls);
//! - [`forward`] delivers the messages ([`deliver`]: batches, the Segment client and its
//!   retries), re-reading the secret on a Segment 401, and parks what Segment did not take by
//!   reason in the [`park`] queues: the parked queue (redelivered automatically) or the
//!   refused queue (kept for a person).
//!
//! Three callers share [`forward`]: [`handler`] (the webhook: HTTP semantics, inbound
//! [`auth`], bounded [`excerpt`]s of input), [`redeliver`] (SQS events of the parked queue →
//! partial batch responses, with backoff) and [`replay`] (`moe2seg replay`).
//!
//! Beside the webhook, [`oauth`] serves `POST /oauth/token` (OAuth 2.0 client credentials)
//! and verifies the stateless tokens it issues, which [`auth`] accepts as `Bearer`.
//!
//! Around them: [`secrets`] and [`config`] (the customer's secret, the environment),
//! [`metrics`] (CloudWatch EMF), [`app`] (wiring real clients and the functions' Init),
//! [`invoke`] and [`cli_map`] (the `moe2seg` commands).

pub mod app;
pub mod auth;
pub mod catalog;
pub mod cli_map;
pub mod config;
pub mod decode;
pub mod deliver;
pub mod excerpt;
pub mod forward;
pub mod handler;
pub mod invoke;
pub mod json;
pub mod logging;
pub mod map;
pub mod metrics;
pub mod oauth;
pub mod options;
pub mod park;
pub mod properties;
pub mod redeliver;
pub mod replay;
pub mod scan;
pub mod secrets;
pub mod time;
pub mod write;
