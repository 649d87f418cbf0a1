//! moengage-segment: forwards MoEngage Streams events to Segment.
//!
//! An event arrives, is decoded, mapped and delivered; each folder is one stage, and imports
//! point one way, down this list:
//!
//! - [`cli`]: the `moe2seg` commands (the functions' entry points are `src/bin/`);
//! - [`app`]: the clients built once from the environment, and the handlers made from them;
//! - [`webhook`]: one MoEngage request in, one HTTP answer out (auth, OAuth, body, answer);
//! - [`backfill`]: MoEngage's S3 exports (history) in, line by line, through the same steps;
//! - [`delivery`]: Segment's client, forwarding (deliver → isolate → park), redelivery, replay;
//! - [`mapping`]: one MoEngage event → one Segment message (tables, ids, options);
//! - [`decode`]: a Streams body → borrowed events (knows nothing of Segment).
//!
//! Beside them, used from above and using only `mapping` and below: [`settings`] (the
//! environment and the customer's secret) and [`telemetry`] (logs, metrics); [`excerpt`] is
//! a leaf. `ARCHITECTURE.md` is the map.

pub mod app;
pub mod backfill;
pub mod cli;
pub mod decode;
pub mod delivery;
pub mod excerpt;
pub mod mapping;
pub mod settings;
pub mod telemetry;
pub mod webhook;
