//! Messages over Segment's 32 KB: the largest non-spec values dropped, and listed, until the
//! message fits.

use std::borrow::Cow;

use crate::mapping::{MAX_MESSAGE_BYTES, RejectReason};

use super::fields::{Field, Fields, Val};
use super::message::Message;
use super::write::to_json;

/// Where truncation lists what it dropped (the largest first, at most
/// [`MAX_TRUNCATED_PATHS`]), and how many.
pub(super) const TRUNCATED_KEY: &str = "moe_truncated";
pub(super) const TRUNCATED_COUNT_KEY: &str = "moe_truncated_count";
/// Paths `moe_truncated` lists; `moe_truncated_count` counts them all.
pub(super) const MAX_TRUNCATED_PATHS: usize = 10;
/// A listed path's key longer than this is cut (keys come from the request).
pub(super) const MAX_TRUNCATED_PATH_BYTES: usize = 100;

/// Drops the largest droppable attribute values until the message fits, recording them in
/// `properties.moe_truncated` / `moe_truncated_count` ([`shrink`]).
pub(super) fn truncate(message: &mut Message<'_>, size: usize) -> Result<String, RejectReason> {
    let (paths, dropped) = shrink(
        &mut [
            ("properties.", &mut message.properties),
            ("context.traits.", &mut message.context.traits),
        ],
        size,
    )?;
    let props = &mut message.properties.entries;
    props.push(Field {
        key: Cow::Borrowed(TRUNCATED_KEY),
        clean: true,
        val: Val::List(paths),
        droppable: false,
    });
    props.push(Field {
        key: Cow::Borrowed(TRUNCATED_COUNT_KEY),
        clean: true,
        val: Val::Count(dropped),
        droppable: false,
    });
    fitting(to_json(message, MAX_MESSAGE_BYTES))
}

/// The message when it fits.
pub(super) fn fitting(json: String) -> Result<String, RejectReason> {
    if json.len() <= MAX_MESSAGE_BYTES {
        Ok(json)
    } else {
        Err(RejectReason::TooLarge)
    }
}

/// Removes the largest droppable values of `objects` (each with the path prefix its keys are
/// recorded under) until a message of `size` bytes fits, leaving room for the record of what
/// was dropped; returns that record: the first [`MAX_TRUNCATED_PATHS`] paths (the largest
/// first) and how many. One sort and one pass: the bytes each drop frees are known
/// ([`entry_len`], never more than it really frees), so the shortest list of drops that fits
/// is found before the message is written again, once.
pub(super) fn shrink(
    objects: &mut [(&'static str, &mut Fields<'_>)],
    size: usize,
) -> Result<(Vec<String>, usize), RejectReason> {
    let candidates = largest_first(objects);
    // `,"moe_truncated":[…],"moe_truncated_count":N`, less the paths and the count.
    let record_base = TRUNCATED_KEY.len() + TRUNCATED_COUNT_KEY.len() + 10;
    // Slack for the estimate's two 1-byte overcounts (`true`, an object's only entry).
    const SLACK: usize = 8;
    let mut paths: Vec<String> = Vec::new();
    let mut paths_len = 0;
    let mut freed = 0;
    let mut dropped = 0;
    for c in &candidates {
        freed += c.0;
        dropped += 1;
        if paths.len() < MAX_TRUNCATED_PATHS {
            let path = truncated_path(objects[c.1].0, key_of(objects, c));
            paths_len += serde_json::to_string(&path).map_or(path.len() + 2, |j| j.len()) + 1;
            paths.push(path);
        }
        let record = record_base + paths_len + dropped.to_string().len();
        if size.saturating_sub(freed) + record + SLACK <= MAX_MESSAGE_BYTES {
            break;
        }
    }
    if dropped == 0 {
        return Err(RejectReason::TooLarge);
    }
    remove(objects, &candidates[..dropped]);
    Ok((paths, dropped))
}

/// A value that may be dropped: (bytes freed, object, position in it).
type Candidate = (usize, usize, usize);

/// The key of a candidate value.
fn key_of<'a>(objects: &'a [(&'static str, &mut Fields<'_>)], c: &Candidate) -> &'a str {
    &objects[c.1].1.entries[c.2].key
}

/// The droppable values, the largest first (ties by key, then object: deterministic).
fn largest_first(objects: &[(&'static str, &mut Fields<'_>)]) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = Vec::new();
    for (object, (_, fields)) in objects.iter().enumerate() {
        for (pos, f) in fields.entries.iter().enumerate() {
            if f.droppable {
                candidates.push((entry_len(&f.key, &f.val), object, pos));
            }
        }
    }
    candidates.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| key_of(objects, a).cmp(key_of(objects, b)))
            .then_with(|| a.1.cmp(&b.1))
    });
    candidates
}

/// Removes the `dropped` values from their objects.
fn remove(objects: &mut [(&'static str, &mut Fields<'_>)], dropped: &[Candidate]) {
    let mut gone: Vec<Vec<usize>> = vec![Vec::new(); objects.len()];
    for &(_, object, pos) in dropped {
        gone[object].push(pos);
    }
    for ((_, fields), gone) in objects.iter_mut().zip(&mut gone) {
        gone.sort_unstable();
        let mut pos = 0;
        fields.entries.retain(|_| {
            pos += 1;
            gone.binary_search(&(pos - 1)).is_err()
        });
        // Positions moved: drop the index and say every key may be present, so that a
        // later `find` searches the entries themselves.
        fields.large = None;
        fields.mask = u128::MAX;
    }
}

/// `<prefix><key>` (`properties.<key>`, `context.traits.<key>`, `traits.<key>`), the key
/// cut to [`MAX_TRUNCATED_PATH_BYTES`] and printable.
pub(super) fn truncated_path(prefix: &str, key: &str) -> String {
    format!(
        "{prefix}{}",
        crate::excerpt::excerpt(key, MAX_TRUNCATED_PATH_BYTES)
    )
}

/// Bytes an entry takes in the JSON object: `"key":value,`.
pub(super) fn entry_len(key: &str, val: &Val<'_>) -> usize {
    key.len()
        + 4
        + match val {
            Val::Raw(r) => r.len(),
            Val::Str(s) => s.len() + 2,
            Val::Bool(_) => 5,
            Val::List(l) => l.iter().map(|s| s.len() + 3).sum::<usize>() + 2,
            Val::Count(n) => n.to_string().len(),
            Val::Hashed(h) => h.len() + 2,
        }
}
