//! Events of one request that share an `event_uuid` but differ: each gets its content id, so
//! Segment keeps every one of them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::decode::{self, StreamsRequest};

use super::event::IdRule;
use super::ids::content_id;
use super::{MapContext, MapOutput, Mapped, Unmapped, map_one};

/// Events of one request that share a `messageId` (the same `event_uuid`) but differ in
/// content (MoEngage's doc samples repeat one placeholder uuid) would be deduplicated into
/// one by Segment: give each its content-derived id instead. Truly identical events keep
/// sharing one id. Deterministic: the same body always gets the same ids.
pub(super) fn separate_repeated_uuids(
    out: &mut MapOutput,
    req: &StreamsRequest<'_>,
    ctx: &MapContext<'_>,
) {
    let groups = shared_ids(&out.messages);
    if groups.is_empty() {
        return;
    }
    let mut remapped: Vec<(usize, Result<Mapped, Unmapped>)> = Vec::new();
    for members in groups.values() {
        let raw_of = |pos: &usize| req.events[out.messages[*pos].index];
        let ids: Vec<String> = members.iter().map(|p| content_id(raw_of(p))).collect();
        if ids.iter().all(|id| *id == ids[0]) {
            continue;
        }
        for (pos, id) in members.iter().zip(ids) {
            let index = out.messages[*pos].index;
            let event = decode::decode_event(raw_of(pos));
            let again = map_one(index, raw_of(pos), event, ctx, IdRule::Given(id), None);
            remapped.push((*pos, again));
        }
    }
    if !remapped.is_empty() {
        out.duplicate_uuids = remapped.len();
        put_back(out, remapped);
    }
}

/// The messages that share a `messageId`, by the position of the first of them.
fn shared_ids(messages: &[Mapped]) -> HashMap<usize, Vec<usize>> {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(messages.len());
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for (pos, m) in messages.iter().enumerate() {
        match first.entry(m.message_id.as_str()) {
            Entry::Vacant(v) => {
                v.insert(pos);
            }
            Entry::Occupied(o) => {
                groups
                    .entry(*o.get())
                    .or_insert_with(|| vec![*o.get()])
                    .push(pos);
            }
        }
    }
    groups
}

/// Puts the re-mapped messages in their places; one that is no longer a message (rejected:
/// the longer id pushed it over the size limit) is counted, never dropped.
fn put_back(out: &mut MapOutput, remapped: Vec<(usize, Result<Mapped, Unmapped>)>) {
    let mut gone = Vec::new();
    for (pos, result) in remapped {
        match result {
            Ok(m) => out.messages[pos] = m,
            Err(Unmapped::Rejected(r)) => {
                out.rejected.push(r);
                gone.push(pos);
            }
            // It was mapped once with the same options: it cannot be filtered now.
            Err(Unmapped::Filtered) => {
                out.filtered += 1;
                gone.push(pos);
            }
        }
    }
    if !gone.is_empty() {
        gone.sort_unstable();
        let mut pos = 0;
        out.messages.retain(|_| {
            pos += 1;
            gone.binary_search(&(pos - 1)).is_err()
        });
        out.rejected.sort_by_key(|r| r.index);
    }
}
