//! Parking by reason: each message Segment did not take goes where its failure and the
//! forwarding [`Plan`] say (the parked queue, the refused queue, or it stays with the caller),
//! as a [`Parcel`] that keeps its exact message and `messageId`.

use std::borrow::Cow;
use std::time::Instant;

use serde_json::value::RawValue;

use crate::delivery::outcome::{Fate, Forwarded, Plan, Provenance, Queues};
use crate::delivery::park::{Parcel, ParkError, SqsQueue};
use crate::delivery::segment::ChunkOutcome;
use crate::mapping::{Mapped, time};

/// Which queue an undelivered message goes to under `plan`, by its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Parked,
    Refused,
    Stay,
}

fn destination(plan: Plan, outcome: &ChunkOutcome, expired: bool, queues: &Queues) -> To {
    let refused = matches!(outcome, ChunkOutcome::Refused { .. });
    let to = match plan {
        Plan::Webhook | Plan::Backfill if refused => To::Refused,
        Plan::Backfill if matches!(outcome, ChunkOutcome::Unauthorized(_)) => To::Stay,
        Plan::Webhook | Plan::Backfill => To::Parked,
        Plan::FromParked if refused || expired => To::Refused,
        Plan::FromParked | Plan::FromRefused => To::Stay,
    };
    match to {
        To::Refused if queues.refused.is_some() => To::Refused,
        // Without a refused queue, the webhook parks refusals (they are redelivered, and
        // refused again, until a refused queue exists or the parked queue's redrive policy
        // moves them); read-back messages stay.
        To::Refused if plan.is_first() && queues.parked.is_some() => To::Parked,
        To::Parked if queues.parked.is_some() => To::Parked,
        _ => To::Stay,
    }
}

/// The parcels bound for one queue, and the messages they hold.
#[derive(Default)]
struct Bound {
    indexes: Vec<usize>,
    bodies: Vec<String>,
}

/// Parks each undelivered message by reason; a queue that fails leaves its messages staying.
pub(super) async fn settle(
    queues: &Queues,
    messages: &[Mapped],
    provenance: Provenance<'_>,
    plan: Plan,
    forwarded: &mut Forwarded,
    deadline: Instant,
) {
    let (parked, refused) = sort(queues, messages, provenance, plan, forwarded);
    // Both queues at once: a hanging one does not eat the other's time.
    let refused_by = refused_deadline(plan, queues, deadline);
    let (to_parked, to_refused) = tokio::join!(
        send(
            queues.parked.as_ref(),
            &parked.bodies,
            "the parked queue",
            deadline
        ),
        send(
            queues.refused.as_ref(),
            &refused.bodies,
            "the refused queue",
            refused_by
        ),
    );
    // The webhook must not answer 503 for refusals alone (MoEngage would re-send the whole
    // request and park its transient failures again): when the refused queue fails, they go
    // to the parked queue, from which redelivery sets them aside later.
    let to_refused = match (to_refused, plan, queues.parked.as_ref(), &to_parked) {
        (Some(Err(e)), plan, Some(q), None | Some(Ok(()))) if plan.is_first() => {
            tracing::error!(error = %e, "setting refusals aside failed; parking them instead");
            let fallback = q.park("the parked queue", &refused.bodies, deadline).await;
            if fallback.is_ok() {
                record(forwarded, &refused.indexes, Fate::Parked);
            }
            fallback.err().map(Err)
        }
        (other, ..) => other,
    };
    for (result, bound, fate) in [
        (to_parked, &parked, Fate::Parked),
        (to_refused, &refused, Fate::SetAside),
    ] {
        match result {
            Some(Ok(())) => record(forwarded, &bound.indexes, fate),
            Some(Err(e)) => {
                tracing::error!(error = %e, messages = bound.indexes.len(), "parking failed");
                forwarded.park_error.get_or_insert(e);
            }
            None => {}
        }
    }
}

/// When the refused queue must have taken its parcels: the webhook gives it half the time
/// left, so that parking them in the parked queue instead still fits.
fn refused_deadline(plan: Plan, queues: &Queues, deadline: Instant) -> Instant {
    if plan.is_first() && queues.parked.is_some() {
        let now = Instant::now();
        now + deadline.saturating_duration_since(now) / 2
    } else {
        deadline
    }
}

/// Each undelivered message's parcel, sorted by the queue it goes to (the parked queue, the
/// refused queue); the messages that stay are in neither.
fn sort(
    queues: &Queues,
    messages: &[Mapped],
    provenance: Provenance<'_>,
    plan: Plan,
    forwarded: &Forwarded,
) -> (Bound, Bound) {
    let now = time::format_millis(time::now_millis());
    let (mut parked, mut refused) = (Bound::default(), Bound::default());
    // Refused or expired messages kept in the parked queue for want of a refused queue.
    let mut stranded = 0usize;
    for chunk in &forwarded.report.chunks {
        let Some((reason, detail)) = chunk.outcome.failure() else {
            continue;
        };
        for i in chunk.range.clone() {
            let (moe_request_id, attempts, first_parked_at, expired) = provenance.origin(i);
            let to = destination(plan, &chunk.outcome, expired, queues);
            let set_aside = expired || matches!(chunk.outcome, ChunkOutcome::Refused { .. });
            if to == To::Stay && plan == Plan::FromParked && set_aside {
                stranded += 1;
            }
            let (bound, reason) = match to {
                To::Stay => continue,
                To::Parked => (&mut parked, reason),
                To::Refused if expired && reason != "segment_refused" => {
                    (&mut refused, "redelivery_expired")
                }
                To::Refused => (&mut refused, reason),
            };
            let m = &messages[i];
            let attempts = attempts.saturating_add(chunk.attempts);
            match parcel(
                m,
                reason,
                &detail,
                moe_request_id,
                attempts,
                &now,
                first_parked_at,
            ) {
                Ok(body) => {
                    bound.indexes.push(i);
                    bound.bodies.push(body);
                }
                Err(e) => {
                    // Every message gets a parcel or stays: a parcel silently skipped would be
                    // an event lost behind a 2xx.
                    tracing::error!(message_id = %m.message_id, error = %e, "cannot write a parcel");
                }
            }
        }
    }
    warn_stranded(stranded);
    (parked, refused)
}

/// Refused or expired messages kept in the parked queue for want of a refused queue.
fn warn_stranded(stranded: usize) {
    if stranded > 0 {
        tracing::error!(
            events = stranded,
            "no refused queue (REFUSED_QUEUE_URL): refused or expired events stay in the parked queue, which deletes them when its retention ends; set REFUSED_QUEUE_URL"
        );
    }
}

/// Gives the messages at `indexes` their fate.
fn record(forwarded: &mut Forwarded, indexes: &[usize], fate: Fate) {
    for i in indexes {
        forwarded.fates[*i] = fate;
    }
}

/// Parks `bodies` in `queue`; `None` when there is nothing to send (or no queue).
async fn send(
    queue: Option<&SqsQueue>,
    bodies: &[String],
    name: &'static str,
    deadline: Instant,
) -> Option<Result<(), ParkError>> {
    match queue {
        Some(q) if !bodies.is_empty() => Some(q.park(name, bodies, deadline).await),
        _ => None,
    }
}

/// The queue record of one message.
fn parcel(
    m: &Mapped,
    reason: &str,
    detail: &str,
    moe_request_id: Option<&str>,
    attempts: u32,
    now: &str,
    first_parked_at: Option<&str>,
) -> Result<String, serde_json::Error> {
    let message = RawValue::from_string(m.json.clone())?;
    serde_json::to_string(&Parcel {
        version: 1,
        reason: reason.into(),
        detail: detail.to_owned(),
        moe_request_id: moe_request_id.map(Cow::Borrowed),
        event_uuid: m.event_uuid.as_deref().map(Cow::Borrowed),
        message_id: Cow::Borrowed(&m.message_id),
        attempts,
        parked_at: now.to_owned(),
        first_parked_at: first_parked_at.map(str::to_owned),
        message: &message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(url: &str) -> SqsQueue {
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .build();
        SqsQueue::new(aws_sdk_sqs::Client::from_conf(conf), url)
    }

    #[test]
    fn each_reason_goes_where_the_plan_says() {
        let both = Queues {
            parked: Some(queue("http://127.0.0.1:1/parked")),
            refused: Some(queue("http://127.0.0.1:1/refused")),
        };
        let parked_only = Queues {
            parked: both.parked.clone(),
            refused: None,
        };
        let none = Queues::default();
        let down = ChunkOutcome::GaveUp {
            last_error: "HTTP 503".into(),
        };
        let key = ChunkOutcome::Unauthorized(401);
        let bad = ChunkOutcome::Refused {
            status: 400,
            detail: "invalid".into(),
        };
        use Plan::*;
        use To::*;
        let cases = [
            (Webhook, &down, false, &both, Parked),
            (Webhook, &key, false, &both, Parked),
            (Webhook, &bad, false, &both, Refused),
            (Webhook, &bad, false, &parked_only, Parked),
            (Webhook, &down, false, &none, Stay),
            (FromParked, &down, false, &both, Stay),
            (FromParked, &key, false, &both, Stay),
            (FromParked, &down, true, &both, Refused),
            (FromParked, &bad, false, &both, Refused),
            (FromParked, &bad, false, &parked_only, Stay),
            (FromRefused, &bad, false, &both, Stay),
            (FromRefused, &down, true, &both, Stay),
            (Backfill, &down, false, &both, Parked),
            (Backfill, &key, false, &both, Stay),
            (Backfill, &bad, false, &both, Refused),
            (Backfill, &bad, false, &parked_only, Parked),
            (Backfill, &down, false, &none, Stay),
        ];
        for (plan, outcome, expired, queues, want) in cases {
            assert_eq!(
                destination(plan, outcome, expired, queues),
                want,
                "{plan:?} {outcome:?} expired={expired}"
            );
        }
    }
}
