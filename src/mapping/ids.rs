//! Message ids: `moe-<event_uuid>`, hashed and content ids, and the ids of events that share
//! a uuid in one request; request-level texts as every message carries them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::decode;
use crate::decode::{Event, StreamsRequest, Text, json};
use crate::mapping::{
    HASHED_ID_PREFIX, MAX_MESSAGE_ID_CHARS, MAX_REQUEST_TEXT_CHARS, MESSAGE_ID_PREFIX, MapContext,
    MapOutput, Mapped,
};

use super::event::{IdRule, Unmapped, map_one};

/// A request-level string as every message carries it: as sent up to
/// [`MAX_REQUEST_TEXT_CHARS`]; a longer one is cut and marked, with a hash of the whole so
/// distinct long values stay distinct: `<first 200 chars>…(sha256:<16 hex>)`.
pub fn cap_request_text(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_REQUEST_TEXT_CHARS || s.chars().count() <= MAX_REQUEST_TEXT_CHARS {
        return Cow::Borrowed(s);
    }
    let head: String = s.chars().take(200).collect();
    Cow::Owned(format!("{head}…(sha256:{})", sha256_hex(s.as_bytes(), 16)))
}

/// Events of one request that share a `messageId` (the same `event_uuid`) but differ in
/// content (MoEngage's doc samples repeat one placeholder uuid) would be deduplicated into
/// one by Segment: give each its content-derived id instead. Truly identical events keep
/// sharing one id. Deterministic: the same body always gets the same ids.
pub(super) fn separate_repeated_uuids(
    out: &mut MapOutput,
    req: &StreamsRequest<'_>,
    ctx: &MapContext<'_>,
) {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(out.messages.len());
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for (pos, m) in out.messages.iter().enumerate() {
        match first.entry(m.message_id.as_str()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(pos);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                groups
                    .entry(*o.get())
                    .or_insert_with(|| vec![*o.get()])
                    .push(pos);
            }
        }
    }
    drop(first);
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
            remapped.push((
                *pos,
                map_one(
                    index,
                    raw_of(pos),
                    decode::decode_event(raw_of(pos)),
                    ctx,
                    IdRule::Given(id),
                    None,
                ),
            ));
        }
    }
    if remapped.is_empty() {
        return;
    }
    out.duplicate_uuids = remapped.len();
    let mut gone = Vec::new();
    for (pos, result) in remapped {
        match result {
            Ok(m) => out.messages[pos] = m,
            // The longer id pushed it over the size limit: rejected, never dropped.
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

/// A scalar field's text, trimmed, when not empty.
pub(super) fn text<'e>(field: &'e Option<Text<'_>>) -> Option<&'e str> {
    field.as_ref().and_then(Text::non_empty)
}

pub(super) fn uuid_of(event: &Event<'_>) -> Option<String> {
    text(&event.event_uuid).map(str::to_owned)
}

/// Best effort: the `event_uuid` of an event whose other fields could not be read.
pub(super) fn salvage_uuid(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Only<'a> {
        #[serde(borrow)]
        event_uuid: Option<&'a serde_json::value::RawValue>,
    }
    let only: Only<'_> = serde_json::from_str(raw).ok()?;
    let uuid = Text::from_raw(only.event_uuid?.get()).ok()?;
    uuid.non_empty().map(short_uuid)
}

/// Rejected events' uuids, as answers and logs show them: at most 100 bytes, printable (the
/// answer lists up to 100 rejections, so its size stays bounded whatever the uuids).
pub(super) fn short_uuid(uuid: &str) -> String {
    crate::excerpt::excerpt(uuid, 100)
}

// messageId

/// Whether an `event_uuid` can stand in a `messageId` as it is: it fits Segment's 100
/// characters, stays out of the hashed and identify namespaces (`h-…`, `id-…`), and holds
/// only printable ASCII other than space, `"` and `\`.
pub fn is_usable_uuid(uuid: &str) -> bool {
    MESSAGE_ID_PREFIX.len() + uuid.len() <= MAX_MESSAGE_ID_CHARS
        && !uuid.starts_with("h-")
        && !uuid.starts_with("id-")
        && uuid
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// The deterministic `messageId` of an event: `moe-<event_uuid>`; a uuid that cannot be used
/// as it is ([`is_usable_uuid`]) is hashed (`moe-h-<sha256 of the uuid>`); an event without
/// a uuid gets its [`content_id`].
pub fn message_id(event: &Event<'_>, raw: &str) -> String {
    match text(&event.event_uuid) {
        Some(uuid) if is_usable_uuid(uuid) => {
            let mut id = String::with_capacity(MESSAGE_ID_PREFIX.len() + uuid.len());
            id.push_str(MESSAGE_ID_PREFIX);
            id.push_str(uuid);
            id
        }
        Some(uuid) => format!("{HASHED_ID_PREFIX}{}", sha256_hex(uuid.as_bytes(), 40)),
        None => content_id(raw),
    }
}

/// `moe-h-<sha256 of the canonical event>`: independent of key order and whitespace, so a
/// re-sent batch yields the same id.
pub fn content_id(raw: &str) -> String {
    format!(
        "{HASHED_ID_PREFIX}{}",
        sha256_hex(canonical(raw).as_bytes(), 40)
    )
}

/// The canonical text of an event ([`json::canonical_json`]); an event too deeply nested
/// for it is hashed in its compact form.
pub(super) fn canonical(raw: &str) -> String {
    json::canonical_json(raw).unwrap_or_else(|_| json::compact_json(raw).into_owned())
}

/// The lowercase hex SHA-256 of `bytes`, cut to `chars` (at most 64).
pub fn sha256_hex(bytes: &[u8], chars: usize) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s.truncate(chars);
    s
}
