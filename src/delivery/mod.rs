//! Getting messages into Segment: the Segment client ([`segment`]: batches, retries), the one
//! forwarding step ([`forward`]: deliver → isolate what Segment refuses → park by reason), the
//! queues events wait in ([`park`]), and the two ways back out of them: automatic
//! [`redeliver`]y and `moe2seg` [`replay`].

pub mod budget;
pub mod forward;
pub mod outcome;
pub mod pacer;
pub mod park;
pub mod redeliver;
pub mod replay;
pub mod segment;
pub mod settle;
pub mod tally;
