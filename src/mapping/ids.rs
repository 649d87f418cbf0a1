//! Message ids: `moe-<event_uuid>`, hashed and content ids, and the ids of events that share
//! a uuid in one request; request-level texts as every message carries them.

use std::borrow::Cow;
use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::decode::{Event, Text, json};
use crate::mapping::{
    HASHED_ID_PREFIX, MAX_MESSAGE_ID_CHARS, MAX_REQUEST_TEXT_CHARS, MESSAGE_ID_PREFIX,
};

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
