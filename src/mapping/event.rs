//! One event → one `track` message: its name, identity, time, properties and traits, each a
//! step of [`map_event`].

use std::borrow::Cow;

use crate::decode;
use crate::decode::{Attributes, Event, Text, json};
use crate::mapping::write::WriteJson;
use crate::mapping::{LIBRARY_NAME, LIBRARY_VERSION, MAX_MESSAGE_BYTES, MapContext, RejectReason};

use super::catalog::Catalog;
use super::fields::{Fields, Rules, Val, key_is_clean};
use super::ids::{message_id, text};
use super::message::{App, Context, Device, Integrations, Library, Message, Os};
use super::options::MappingOptions;
use super::properties::{KeyKind, PropertyTable};
use super::time;
use super::truncate::{TRUNCATED_COUNT_KEY, TRUNCATED_KEY, truncate};
use super::write::to_json;

/// How an event's `messageId` is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum IdRule {
    /// From its `event_uuid` ([`message_id`]).
    Uuid,
    /// This one: its [`super::content_id`], for an event sharing a uuid with a different
    /// event.
    Given(String),
}

/// Why [`map_event`] gives no message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unsent {
    Rejected(RejectReason),
    Filtered,
}

impl From<RejectReason> for Unsent {
    fn from(r: RejectReason) -> Self {
        Unsent::Rejected(r)
    }
}

// The steps of map_event

/// The event's attributes, classified once: what goes into `properties`, and what
/// `context` needs.
pub(super) struct Scan<'e> {
    /// (Segment key, raw key, value, is a spec property, the keys are clean), in input
    /// order.
    pub(super) renamed: Vec<(&'e str, &'e str, &'e str, bool, bool)>,
    pub(super) platform: Option<Cow<'e, str>>,
    pub(super) os_version: Option<Cow<'e, str>>,
    pub(super) app_version: Option<Cow<'e, str>>,
}

/// Values `context` needs from one attribute map, found in the same pass.
#[derive(Default)]
pub(super) struct Found<'a> {
    pub(super) platform: Option<&'a str>,
    pub(super) app_version: Option<&'a str>,
    pub(super) os_version: Option<&'a str>,
}

impl<'a> Found<'a> {
    pub(super) fn note(&mut self, kind: KeyKind, v: &'a str) {
        let slot = match kind {
            KeyKind::Platform => &mut self.platform,
            KeyKind::AppVersion => &mut self.app_version,
            KeyKind::OsVersion => &mut self.os_version,
            KeyKind::Spec(_) | KeyKind::Other => return,
        };
        if slot.is_none() && decode::raw_scalar_text(v).is_some() {
            *slot = Some(v);
        }
    }
}

impl<'e> Scan<'e> {
    pub(super) fn new(event: &'e Event<'_>, ctx: &MapContext<'_>) -> Self {
        let table = PropertyTable::global();
        let mut found = Found::default();
        let entries = event.event_attributes.entries();
        let mut renamed = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let kind = ctx.keys.classify(table, k);
            found.note(kind, v);
            // Spec names are clean (a test checks the table): the raw key decides.
            let clean = key_is_clean(k);
            match kind.spec_name() {
                Some(spec) => renamed.push((spec, k.as_ref(), &**v, true, clean)),
                None => renamed.push((k.as_ref(), k.as_ref(), &**v, false, clean)),
            }
        }
        let mut device = Found::default();
        for (k, v) in event.device_attributes.entries() {
            device.note(ctx.keys.classify(table, k), v);
        }
        let pick =
            |a: Option<&'e str>, b: Option<&'e str>| a.or(b).and_then(decode::raw_scalar_text);
        Scan {
            renamed,
            platform: pick(found.platform, device.platform),
            os_version: pick(found.os_version, device.os_version),
            app_version: pick(found.app_version, device.app_version),
        }
    }
}

/// Who the event is about: Segment drops a message with neither id.
pub(super) struct Identity<'e> {
    pub(super) user_id: Option<&'e str>,
    pub(super) anonymous_id: Option<Cow<'e, str>>,
}

impl<'e> Identity<'e> {
    pub(super) fn of(event: &'e Event<'_>) -> Option<Self> {
        let user_id = text(&event.uid);
        let anonymous_id = event
            .user_attributes
            .get_text("moengage_user_id")
            .or_else(|| event.device_attributes.get_text("moengage_device_id"));
        (user_id.is_some() || anonymous_id.is_some()).then_some(Identity {
            user_id,
            anonymous_id,
        })
    }
}

/// `event_time` read: a plausible instant, missing, or unusable (with what was sent).
pub(super) enum EventTime<'e> {
    At(i64),
    Missing,
    Invalid(Cow<'e, str>),
}

impl<'e> EventTime<'e> {
    /// Epoch seconds or milliseconds (number or string), or an ISO-8601 date-time with an
    /// offset; usable only between 2010 and 24 h after the time received.
    pub(super) fn read(field: Option<&'e Text<'_>>, received_at_ms: i64) -> Self {
        let t = match field {
            None => return EventTime::Missing,
            Some(Text::Unusable(raw)) => return EventTime::Invalid(json::compact_json(raw)),
            Some(t) => match t.non_empty() {
                None => return EventTime::Missing,
                Some(t) => t,
            },
        };
        match time::parse_event_time(t).or_else(|| time::parse_iso8601(t)) {
            Some(ms) if time::is_plausible(ms, received_at_ms) => EventTime::At(ms),
            _ => EventTime::Invalid(Cow::Borrowed(t)),
        }
    }

    /// The message's `timestamp`: the event time, else the time received.
    pub(super) fn timestamp(&self, received_at_ms: i64) -> time::Iso {
        match self {
            EventTime::At(ms) => time::Iso::of(*ms),
            EventTime::Missing | EventTime::Invalid(_) => time::Iso::of(received_at_ms),
        }
    }
}

/// `properties`: the request's and event's own fields first, then every event attribute
/// (spec keys renamed), none lost.
pub(super) fn properties<'m>(
    event: &'m Event<'_>,
    ctx: &MapContext<'m>,
    scan: &Scan<'m>,
    time: &'m EventTime<'_>,
) -> Fields<'m> {
    let rules = Rules::of(&ctx.options.drop_properties, None);
    let mut props = Fields::with_capacity(10 + scan.renamed.len()).with_rules(rules);
    let extras = [
        ("event_uuid", text(&event.event_uuid)),
        ("event_code", text(&event.event_code)),
        ("event_type", text(&event.event_type)),
        ("event_source", text(&event.event_source)),
        ("moe_request_id", ctx.moe_request_id),
        ("app_name", ctx.app_name),
    ];
    for (key, value) in extras {
        if let Some(v) = value {
            props.place(key, true, None, Val::Str(v), false);
        }
    }
    match time {
        EventTime::Invalid(raw) => {
            props.place("moe_event_time_invalid", true, None, Val::Str(raw), false)
        }
        EventTime::Missing => {
            props.place("moe_event_time_missing", true, None, Val::Bool(true), false)
        }
        EventTime::At(_) => {}
    }
    props.reserve(&[TRUNCATED_KEY, TRUNCATED_COUNT_KEY]);
    for (key, attrs) in [
        ("moe_event_attributes", &event.event_attributes),
        ("moe_user_attributes", &event.user_attributes),
        ("moe_device_attributes", &event.device_attributes),
    ] {
        if let Attributes::Other(v) = attrs {
            // User attributes that are not an object cannot be matched key by key: with any
            // trait rule they are sent hashed, so no PII passes the rules this way.
            let val = match key == "moe_user_attributes" && ctx.options.shapes_traits() {
                true => Val::Raw(v).hashed(key),
                false => Val::Raw(v),
            };
            props.place(key, true, None, val, true);
        }
    }
    for &(key, raw_key, v, spec, clean) in &scan.renamed {
        props.place(key, clean, Some(raw_key), Val::Raw(v), !spec);
    }
    props
}

/// `context.traits` (and an `identify`'s `traits`): the event's own contact points (`email`
/// from `email_id`, `phone` from `mobile_number`), then every user attribute; a user
/// attribute that differs from them is kept as `moe_email` / `moe_phone`. The options drop
/// or hash keys.
pub(super) fn traits<'m>(event: &'m Event<'_>, options: &'m MappingOptions) -> Fields<'m> {
    let rules = Rules::of(&options.drop_traits, Some(&options.hash_traits));
    let mut traits =
        Fields::with_capacity(2 + event.user_attributes.entries().len()).with_rules(rules);
    if let Some(email) = text(&event.email_id) {
        traits.place("email", true, None, Val::Str(email), false);
    }
    if let Some(phone) = text(&event.mobile_number) {
        traits.place("phone", true, None, Val::Str(phone), false);
    }
    for (k, v) in event.user_attributes.entries() {
        traits.place(
            k,
            key_is_clean(k),
            None,
            Val::Raw(v),
            k != "moengage_user_id",
        );
    }
    traits
}

/// Whether the event goes on: not skipped by the options (a skipped event is not checked
/// further: it is filtered, never rejected), no attribute map over the key limit.
fn admit(event: &Event<'_>, name: Option<&str>, options: &MappingOptions) -> Result<(), Unsent> {
    if let Some(name) = name
        && options.filters()
        && !options.sends(&[Some(name), text(&event.event_code), text(&event.event_name)])
    {
        return Err(Unsent::Filtered);
    }
    for attrs in [
        &event.event_attributes,
        &event.user_attributes,
        &event.device_attributes,
    ] {
        if matches!(attrs, Attributes::TooMany(_)) {
            return Err(RejectReason::TooManyAttributes.into());
        }
    }
    Ok(())
}

/// The message's `context`: library, traits, device, os and app.
fn context<'m>(
    event: &'m Event<'_>,
    ctx: &'m MapContext<'_>,
    scan: &'m Scan<'_>,
    device_id: Option<&'m str>,
) -> Context<'m> {
    let push_token = text(&event.push_id);
    Context {
        library: Library {
            name: LIBRARY_NAME,
            version: LIBRARY_VERSION,
        },
        traits: traits(event, ctx.options),
        device: (device_id.is_some() || push_token.is_some()).then_some(Device {
            id: device_id,
            token: push_token,
        }),
        os: (scan.platform.is_some() || scan.os_version.is_some()).then_some(Os {
            name: scan.platform.as_deref(),
            version: scan.os_version.as_deref(),
        }),
        app: scan.app_version.as_deref().map(|version| App { version }),
    }
}

/// The message as JSON, written into the request's scratch buffer and copied out at its
/// exact size; over 32 KB, truncated (or rejected).
fn serialize(
    message: &mut Message<'_>,
    ctx: &MapContext<'_>,
    raw: &str,
) -> Result<String, RejectReason> {
    let json = match ctx.scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            message.write_json(&mut buf);
            String::from(buf.as_str())
        }
        // Not reached (mapping does not nest); a fresh buffer does the same.
        Err(_) => to_json(message, raw.len() + 512),
    };
    if json.len() > MAX_MESSAGE_BYTES {
        return truncate(message, json.len());
    }
    Ok(json)
}

/// Maps one decoded event. Returns `(messageId, json)`.
pub(super) fn map_event(
    event: &Event<'_>,
    raw: &str,
    ctx: &MapContext<'_>,
    rule: IdRule,
) -> Result<(String, String), Unsent> {
    let scan = Scan::new(event, ctx);
    let resolved = Catalog::global().resolve(
        text(&event.event_code),
        text(&event.event_name),
        scan.platform.as_deref(),
    );
    let options = ctx.options;
    admit(
        event,
        resolved.as_ref().map(|(name, _)| name.as_ref()),
        options,
    )?;
    let (event_name, _how) = resolved.ok_or(RejectReason::NoEventName)?;
    let identity = Identity::of(event).ok_or(RejectReason::NoIdentity)?;
    let message_id = match rule {
        IdRule::Uuid => message_id(event, raw),
        IdRule::Given(id) => id,
    };
    let time = EventTime::read(event.event_time.as_ref(), ctx.received_at_ms);
    let timestamp = time.timestamp(ctx.received_at_ms);

    let device_id = event.device_attributes.get_text("moengage_device_id");
    let mut message = Message {
        kind: "track",
        event: options.rename(&event_name),
        user_id: identity.user_id,
        anonymous_id: identity.anonymous_id.as_deref(),
        message_id: &message_id,
        timestamp: timestamp.as_str(),
        properties: properties(event, ctx, &scan, &time),
        context: context(event, ctx, &scan, device_id.as_deref()),
        integrations: Integrations { moengage: false },
    };

    let json = serialize(&mut message, ctx, raw)?;
    drop(message); // it borrows message_id
    Ok((message_id, json))
}
