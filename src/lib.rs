//! moengage-segment: forwards MoEngage Streams webhooks to Segment.
//!
//! The pipeline is decode → map → deliver:
//! - [`decode`] reads a Streams body leniently, each event on its own ([`json`] keeps raw
//!   values compact and gives the canonical form content hashes use; [`time`] reads
//!   `event_time`);
//! - [`map`] turns each event into a Segment `track` message using the [`catalog`] and
//!   [`properties`] tables;
//! - [`deliver`] batches the messages and sends them to Segment with retries.
//!
//! Around it: [`handler`] (HTTP semantics, inbound [`auth`], bounded [`excerpt`]s of input), [`secrets`] and [`config`]
//! (the customer's secret), [`metrics`] (CloudWatch EMF), [`app`] (wiring real clients), and
//! [`lambda_adapter`] (Lambda event → request → answer, in place of `lambda_http::run`: an event
//! lambda_http cannot convert is answered 400 instead of failing the invocation).

pub mod app;
pub mod auth;
pub mod catalog;
pub mod cli_map;
pub mod config;
pub mod decode;
pub mod deliver;
pub mod excerpt;
pub mod fasthash;
pub mod forward;
pub mod handler;
pub mod invoke;
pub mod json;
pub mod lambda_adapter;
pub mod map;
pub mod metrics;
pub mod park;
pub mod properties;
pub mod redeliver;
pub mod replay;
pub mod secrets;
pub mod time;
