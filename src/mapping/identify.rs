//! `identify` calls per user (`"identify": "per_user"`): the users of a request, their merged
//! traits, one message each.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::decode;
use crate::decode::{Attributes, Event, StreamsRequest};
use crate::mapping::{
    IDENTIFY_ID_PREFIX, LIBRARY_NAME, LIBRARY_VERSION, MAX_MESSAGE_BYTES, MapContext, Mapped,
};

use super::event::{EventTime, Identity, traits};
use super::fields::{Fields, Val};
use super::ids::{canonical, sha256_hex, text};
use super::message::{Integrations, Library};
use super::truncate::{fitting, shrink};
use super::write::{Object, WriteJson, to_json};

/// A user an `identify` is made for: by `userId`, else by `anonymousId`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) enum UserKey {
    User(String),
    Anonymous(String),
}

/// The users of one request who have traits, in order of first appearance.
#[derive(Debug, Default)]
pub(super) struct Users {
    pub(super) slots: HashMap<UserKey, usize>,
    pub(super) users: Vec<UserEvents>,
    /// Seeds the profile hashes (randomly: the profiles come from the request).
    pub(super) seed: std::hash::RandomState,
}

/// One user's events, one per distinct profile. MoEngage sends the whole profile with every
/// event, so a user's events mostly repeat one profile: only its latest event needs merging.
#[derive(Debug, Default)]
pub(super) struct UserEvents {
    /// (event time in epoch ms, event index) of the latest event of each distinct profile.
    pub(super) events: Vec<(i64, usize)>,
    /// Profile hash → its place in `events`.
    pub(super) profiles: HashMap<u64, usize>,
}

impl Users {
    /// Notes an event of the request under its user, if it has an identity and traits.
    pub(super) fn note(&mut self, index: usize, event: &Event<'_>, ctx: &MapContext<'_>) {
        let readable = !matches!(event.user_attributes, Attributes::TooMany(_));
        let has_traits = text(&event.email_id).is_some()
            || text(&event.mobile_number).is_some()
            || !event.user_attributes.entries().is_empty();
        let Some(identity) = Identity::of(event).filter(|_| readable && has_traits) else {
            return;
        };
        let key = match (identity.user_id, identity.anonymous_id) {
            (Some(u), _) => UserKey::User(u.to_owned()),
            (None, Some(a)) => UserKey::Anonymous(a.into_owned()),
            (None, None) => return,
        };
        // An event without a usable time counts as the oldest: which event is the latest
        // must depend on the body alone, not on when it is received (MoEngage re-sends).
        let at = match EventTime::read(event.event_time.as_ref(), ctx.received_at_ms) {
            EventTime::At(ms) => ms,
            EventTime::Missing | EventTime::Invalid(_) => i64::MIN,
        };
        let slot = *self.slots.entry(key).or_insert_with(|| {
            self.users.push(UserEvents::default());
            self.users.len() - 1
        });
        let profile = {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = self.seed.build_hasher();
            text(&event.email_id).hash(&mut h);
            text(&event.mobile_number).hash(&mut h);
            for (k, v) in event.user_attributes.entries() {
                (k.as_ref(), v.as_ref()).hash(&mut h);
            }
            h.finish()
        };
        let Some(UserEvents { events, profiles }) = self.users.get_mut(slot) else {
            return;
        };
        match profiles.entry(profile) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(events.len());
                events.push((at, index));
            }
            // The same profile again: its latest event stands for it (same values, so only
            // its place in time matters).
            std::collections::hash_map::Entry::Occupied(o) => {
                if let Some(e) = events.get_mut(*o.get()) {
                    *e = (*e).max((at, index));
                }
            }
        }
    }

    /// One `identify` per user: `(index of their latest event, message)`. Their traits are
    /// those of all their events, a later event's value winning (Segment merges an
    /// identify's traits into the profile); who they are and when come from the latest
    /// event (by event time, an event without a usable time counting as the oldest; of equal
    /// times, the later in the request). A user whose traits the options drop entirely gets
    /// none; so does one whose `identify` cannot fit Segment's 32 KB (the tracks carry the
    /// same traits).
    pub(super) fn identifies<'u>(
        self,
        req: &'u StreamsRequest<'_>,
        ctx: &'u MapContext<'_>,
    ) -> impl Iterator<Item = (usize, Mapped)> + 'u {
        self.users
            .into_iter()
            .filter_map(|UserEvents { mut events, .. }| {
                events.sort_unstable();
                let index = events.last()?.1;
                let latest = decode::decode_event(req.events.get(index)?).ok()?;
                let merged = (events.len() > 1).then(|| MergedTraits::of(req, &events, ctx));
                let traits = match &merged {
                    Some(m) => m.fields(),
                    None => traits(&latest, ctx.options),
                };
                let (message_id, json) = map_identify(&latest, traits, ctx)?;
                Some((
                    index,
                    Mapped {
                        index,
                        event_uuid: None,
                        message_id,
                        json,
                    },
                ))
            })
    }
}

/// The traits of a user's events merged: each key once, at its first place, with its latest
/// value. Events are decoded one at a time and the values kept as compact JSON, so merging
/// holds at most one event's structure and the merged text (never more than the body).
#[derive(Debug, Default)]
pub(super) struct MergedTraits {
    /// (key, value as compact JSON, droppable), in first-seen order.
    pub(super) entries: Vec<(String, String, bool)>,
}

impl MergedTraits {
    /// Merges the traits of the events at `events` (time, index), oldest first.
    pub(super) fn of(
        req: &StreamsRequest<'_>,
        events: &[(i64, usize)],
        ctx: &MapContext<'_>,
    ) -> Self {
        let mut merged = MergedTraits::default();
        let mut at: HashMap<String, usize> = HashMap::new();
        for &(_, i) in events {
            let Some(event) = req
                .events
                .get(i)
                .and_then(|raw| decode::decode_event(raw).ok())
            else {
                continue;
            };
            for f in traits(&event, ctx.options).entries {
                let value = to_json(&f.val, 16);
                match at.get(f.key.as_ref()) {
                    Some(&pos) => {
                        let entry = &mut merged.entries[pos];
                        entry.1 = value;
                        entry.2 = f.droppable;
                    }
                    None => {
                        at.insert(f.key.to_string(), merged.entries.len());
                        merged
                            .entries
                            .push((f.key.into_owned(), value, f.droppable));
                    }
                }
            }
        }
        merged
    }

    pub(super) fn fields(&self) -> Fields<'_> {
        let mut out = Fields::with_capacity(self.entries.len());
        for (key, json, droppable) in &self.entries {
            // Written by `to_json` above: valid JSON.
            out.push(Cow::Borrowed(key), false, Val::Raw(json), *droppable);
        }
        out
    }
}

pub(super) struct IdentifyContext {
    pub(super) library: Library,
    /// What truncation dropped (paths under `traits.`), when it had to.
    pub(super) moe_truncated: Option<Vec<String>>,
    pub(super) moe_truncated_count: Option<usize>,
}

pub(super) struct IdentifyMessage<'m> {
    pub(super) kind: &'static str,
    pub(super) user_id: Option<&'m str>,
    pub(super) anonymous_id: Option<&'m str>,
    pub(super) message_id: &'m str,
    pub(super) timestamp: &'m str,
    pub(super) traits: Fields<'m>,
    pub(super) context: IdentifyContext,
    pub(super) integrations: Integrations,
}

impl WriteJson for IdentifyMessage<'_> {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("type", self.kind);
        o.opt_str("userId", self.user_id);
        o.opt_str("anonymousId", self.anonymous_id);
        o.str("messageId", self.message_id);
        o.str("timestamp", self.timestamp);
        o.value("traits", &self.traits);
        let mut c = Object::new(o.key("context"));
        c.value("library", &self.context.library);
        if let Some(paths) = &self.context.moe_truncated {
            c.value("moe_truncated", &paths[..]);
        }
        if let Some(n) = &self.context.moe_truncated_count {
            c.value("moe_truncated_count", n);
        }
        c.end();
        o.value("integrations", &self.integrations);
        o.end();
    }
}

/// What an `identify`'s `messageId` is derived from: the same profile gives the same id, so
/// Segment drops a re-sent one; a changed profile gets a new id.
pub(super) struct ProfileKey<'m> {
    pub(super) user_id: Option<&'m str>,
    pub(super) anonymous_id: Option<&'m str>,
    pub(super) traits: &'m Fields<'m>,
}

impl WriteJson for ProfileKey<'_> {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str_or_null("userId", self.user_id);
        o.str_or_null("anonymousId", self.anonymous_id);
        o.value("traits", self.traits);
        o.end();
    }
}

/// The `identify` of a user: `traits` (merged, after the options), as their latest event
/// says who they are and when. `None` when there are no traits left, or when it cannot fit
/// even after truncation.
pub(super) fn map_identify(
    latest: &Event<'_>,
    traits: Fields<'_>,
    ctx: &MapContext<'_>,
) -> Option<(String, String)> {
    let identity = Identity::of(latest)?;
    if traits.is_empty() {
        return None;
    }
    let profile = to_json(
        &ProfileKey {
            user_id: identity.user_id,
            anonymous_id: identity.anonymous_id.as_deref(),
            traits: &traits,
        },
        512,
    );
    let message_id = format!(
        "{IDENTIFY_ID_PREFIX}{}",
        sha256_hex(canonical(&profile).as_bytes(), 40)
    );
    let timestamp = EventTime::read(latest.event_time.as_ref(), ctx.received_at_ms)
        .timestamp(ctx.received_at_ms);
    let mut message = IdentifyMessage {
        kind: "identify",
        user_id: identity.user_id,
        anonymous_id: identity.anonymous_id.as_deref(),
        message_id: &message_id,
        timestamp: timestamp.as_str(),
        traits,
        context: IdentifyContext {
            library: Library {
                name: LIBRARY_NAME,
                version: LIBRARY_VERSION,
            },
            moe_truncated: None,
            moe_truncated_count: None,
        },
        integrations: Integrations { moengage: false },
    };
    let mut json = to_json(&message, profile.len() + 512);
    if json.len() > MAX_MESSAGE_BYTES {
        let (paths, dropped) = shrink(&mut [("traits.", &mut message.traits)], json.len()).ok()?;
        // Truncation took every trait: an identify without traits says nothing (the tracks
        // carry the truncation record).
        if message.traits.is_empty() {
            return None;
        }
        message.context.moe_truncated = Some(paths);
        message.context.moe_truncated_count = Some(dropped);
        json = fitting(to_json(&message, MAX_MESSAGE_BYTES)).ok()?;
    }
    drop(message); // it borrows message_id
    Some((message_id, json))
}
