//! What forwarding decides, and for which messages: the queues ([`Queues`]), where the messages
//! come from ([`Plan`], [`Provenance`]), and what became of each ([`Fate`], [`Forwarded`]).

use std::borrow::Cow;

use crate::delivery::park::ParkError;
use crate::delivery::park::{Parcel, SqsQueue};
use crate::delivery::segment::{ChunkOutcome, DeliveryReport};
use crate::mapping::Mapped;

/// The queues undelivered events wait in (either may be absent in local runs).
#[derive(Debug, Clone, Default)]
pub struct Queues {
    /// Transient failures, redelivered automatically (`DEAD_LETTER_QUEUE_URL`).
    pub parked: Option<SqsQueue>,
    /// Permanent refusals, kept for a person (`REFUSED_QUEUE_URL`).
    pub refused: Option<SqsQueue>,
}

/// Where the messages come from, which decides where the undelivered ones go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// A webhook request: transient failures are parked, refusals set aside (fallback: the
    /// parked queue when there is no refused queue). With no queue they stay (non-2xx).
    Webhook,
    /// Read back from the parked queue (redelivery, replay): transient failures stay there
    /// (tried again later), unless past their redelivery age; those and refusals are set aside.
    FromParked,
    /// Read back from the refused queue (replay): whatever still fails stays there.
    FromRefused,
    /// A backfill's lines: as a webhook request, except that a refused write key parks
    /// nothing (every batch would be parked behind it): those messages stay, and their file
    /// is left for a rerun once the key is fixed.
    Backfill,
}

impl Plan {
    /// Whether the messages are sent for the first time (not read back from a queue).
    pub fn is_first(self) -> bool {
        matches!(self, Plan::Webhook | Plan::Backfill)
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Segment took it (or, in a dry run, it was printed).
    Delivered,
    /// Sent to the parked queue.
    Parked,
    /// Sent to the refused queue.
    SetAside,
    /// Neither delivered nor moved: the caller keeps it (the webhook answers non-2xx, the
    /// redelivery reports a batch item failure, replay leaves it in its queue).
    Stays,
}

/// Where a message read back from a queue came from (what its new parcel keeps).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub moe_request_id: Option<String>,
    /// Segment requests made for it before.
    pub attempts: u32,
    /// When it was first parked.
    pub parked_at: Option<String>,
    /// Past its redelivery age: set aside if it still fails.
    pub expired: bool,
}

/// Reads a parcel back from a queue: the message to forward and where it came from (not
/// expired: the caller decides that).
pub fn unpack(body: &str) -> Result<(Mapped, Origin), serde_json::Error> {
    let p: Parcel<'_> = serde_json::from_str(body)?;
    let message = Mapped {
        index: 0,
        event_uuid: p.event_uuid.map(Cow::into_owned),
        message_id: p.message_id.into_owned(),
        json: p.message.get().to_owned(),
    };
    let origin = Origin {
        moe_request_id: p.moe_request_id.map(Cow::into_owned),
        attempts: p.attempts,
        parked_at: Some(p.first_parked_at.unwrap_or(p.parked_at)),
        expired: false,
    };
    Ok((message, origin))
}

/// Queue records read back into messages, in order.
#[derive(Debug, Default)]
pub struct Unpacked {
    /// The messages, `index` numbering them from 0.
    pub messages: Vec<Mapped>,
    pub origins: Vec<Origin>,
    /// The record each message came from.
    pub record_of: Vec<usize>,
    /// The records that are not parcels, with why.
    pub unreadable: Vec<(usize, serde_json::Error)>,
}

impl Unpacked {
    /// Reads back the record bodies (`None`: an empty body) that are parcels.
    pub fn read<'b>(bodies: impl IntoIterator<Item = Option<&'b str>>) -> Unpacked {
        let mut out = Unpacked::default();
        for (r, body) in bodies.into_iter().enumerate() {
            match unpack(body.unwrap_or_default()) {
                Ok((mut message, origin)) => {
                    message.index = out.messages.len();
                    out.messages.push(message);
                    out.origins.push(origin);
                    out.record_of.push(r);
                }
                Err(e) => out.unreadable.push((r, e)),
            }
        }
        out
    }
}

/// The context of the messages being forwarded, for their parcels.
#[derive(Debug, Clone, Copy)]
pub enum Provenance<'a> {
    /// One MoEngage request (the webhook).
    Request(Option<&'a str>),
    /// Parcels read back from a queue, one [`Origin`] per message.
    Parcels(&'a [Origin]),
}

impl Provenance<'_> {
    pub(crate) fn origin(&self, i: usize) -> (Option<&str>, u32, Option<&str>, bool) {
        match self {
            Provenance::Request(id) => (*id, 0, None, false),
            Provenance::Parcels(o) => o.get(i).map_or((None, 0, None, false), |o| {
                (
                    o.moe_request_id.as_deref(),
                    o.attempts,
                    o.parked_at.as_deref(),
                    o.expired,
                )
            }),
        }
    }
}

/// The outcome of one forwarding step.
#[derive(Debug, Default)]
pub struct Forwarded {
    /// One per message, in order.
    pub fates: Vec<Fate>,
    /// How delivery went (batches, retries, latency).
    pub report: DeliveryReport,
    /// A queue that could not take its messages (they stay).
    pub park_error: Option<ParkError>,
}

impl Forwarded {
    pub fn count(&self, fate: Fate) -> usize {
        self.fates.iter().filter(|f| **f == fate).count()
    }

    /// Indexes of the messages whose fate is `fate`.
    pub fn indexes(&self, fate: Fate) -> impl Iterator<Item = usize> + '_ {
        self.fates
            .iter()
            .enumerate()
            .filter(move |(_, f)| **f == fate)
            .map(|(i, _)| i)
    }

    /// The outcomes of the batches that failed, for a message that stays.
    pub fn failed_outcomes(&self) -> impl Iterator<Item = &ChunkOutcome> {
        self.report
            .chunks
            .iter()
            .filter(|c| {
                c.outcome != ChunkOutcome::Delivered
                    && c.range
                        .clone()
                        .any(|i| self.fates.get(i) == Some(&Fate::Stays))
            })
            .map(|c| &c.outcome)
    }
}
