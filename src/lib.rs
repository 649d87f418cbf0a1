//! moengage-segment: forwards MoEngage Streams webhooks to Segment.
//!
//! The pipeline is decode → map → deliver:
//! - [`decode`] reads a Streams body leniently, each event on its own;
//! - [`map`] turns each event into a Segment `track` message using the [`catalog`] and
//!   [`properties`] tables;
//! - delivery sends the messages to Segment's batch API.

pub mod catalog;
pub mod cli_map;
pub mod decode;
pub mod map;
pub mod properties;
pub mod time;
