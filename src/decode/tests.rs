//! The decoder's unit tests.

use std::borrow::Cow;

use serde::de::IgnoredAny;

use super::*;

/// `text` as an event to decode, once both decoders are seen to read it the same (when the
/// scanner is sure of it).
fn checked(text: &str) -> Result<&str, serde_json::Error> {
    serde_json::from_str::<IgnoredAny>(text)?;
    if let Ok(fast) = fast_event(text) {
        let slow: Event<'_> = serde_json::from_str(text)?;
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text}");
    }
    Ok(text)
}

#[test]
fn envelope_and_events() {
    let body = r#"{"app_name":"Shop","source":"MOENGAGE","moe_request_id":"r1",
        "events":[{"event_name":"A"}, "junk", null],"extra":{"x":1}}"#;
    let req = decode_request(body, MAX_EVENTS).unwrap();
    assert_eq!(req.app_name.unwrap().as_str(), Some("Shop"));
    assert_eq!(req.moe_request_id.unwrap().as_str(), Some("r1"));
    assert_eq!(req.events.len(), 3);
    assert!(decode_event(req.events[0]).is_ok());
    let err = decode_event(req.events[1]).unwrap_err();
    assert!(err.0.contains("a string"), "{err}");
    assert!(decode_event(req.events[2]).unwrap_err().0.contains("null"));
}

#[test]
fn not_streams_bodies_are_errors() {
    assert_eq!(
        decode_request("", MAX_EVENTS).unwrap_err(),
        DecodeError::Empty
    );
    assert_eq!(
        decode_request("  \n", MAX_EVENTS).unwrap_err(),
        DecodeError::Empty
    );
    assert!(matches!(
        decode_request("hello", MAX_EVENTS).unwrap_err(),
        DecodeError::NotJson(_)
    ));
    assert!(matches!(
        decode_request(r#"{"events":[1,2"#, MAX_EVENTS).unwrap_err(),
        DecodeError::NotJson(_)
    ));
    assert_eq!(
        decode_request("[]", MAX_EVENTS).unwrap_err(),
        DecodeError::NotObject
    );
    assert_eq!(
        decode_request("{}", MAX_EVENTS).unwrap_err(),
        DecodeError::NoEvents
    );
    assert_eq!(
        decode_request(r#"{"events":null}"#, MAX_EVENTS).unwrap_err(),
        DecodeError::NoEvents
    );
    assert_eq!(
        decode_request(r#"{"events":{}}"#, MAX_EVENTS).unwrap_err(),
        DecodeError::EventsNotArray
    );
}

#[test]
fn envelope_fields_are_read_as_a_derived_struct_would() {
    let req = decode_request(
        r#"{"moe_request_id":12,"x":{"events":1},"app_name":null,"events":[]}"#,
        MAX_EVENTS,
    )
    .unwrap();
    assert_eq!(req.moe_request_id.unwrap().as_str(), Some("12"));
    assert!(req.app_name.is_none() && req.events.is_empty());
    for bad in [
        r#"{"events":[],"events":[]}"#,
        r#"{"app_name":"a","app_name":"b","events":[]}"#,
        r#"{"events":[]} x"#,
        r#"{"events":[],}"#,
    ] {
        assert!(
            matches!(
                decode_request(bad, MAX_EVENTS),
                Err(DecodeError::NotJson(_))
            ),
            "{bad}"
        );
    }
    // The limit is the caller's.
    assert_eq!(
        decode_request(r#"{"events":[1,2,3]}"#, 2).unwrap_err(),
        DecodeError::TooManyEvents { count: 3, limit: 2 }
    );
}

#[test]
fn event_count_is_bounded() {
    let body = |n: usize| format!("{{\"events\":[{}]}}", vec!["1"; n].join(","));
    assert_eq!(
        decode_request(&body(MAX_EVENTS), MAX_EVENTS)
            .unwrap()
            .events
            .len(),
        MAX_EVENTS
    );
    assert_eq!(
        decode_request(&body(MAX_EVENTS + 5), MAX_EVENTS).unwrap_err(),
        DecodeError::TooManyEvents {
            count: MAX_EVENTS + 5,
            limit: MAX_EVENTS
        }
    );
    // The rest of the body is still read: a syntax error after the limit is reported.
    let broken = format!("{{\"events\":[{},]}}", vec!["1"; MAX_EVENTS + 1].join(","));
    assert!(matches!(
        decode_request(&broken, MAX_EVENTS).unwrap_err(),
        DecodeError::NotJson(_)
    ));
}

#[test]
fn attribute_maps_are_bounded_and_never_trees() {
    let map = |n: usize| {
        let entries: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
        format!("{{\"event_attributes\":{{{}}}}}", entries.join(","))
    };
    let ok = map(MAX_ATTRIBUTES);
    let e = decode_event(checked(&ok).unwrap()).unwrap();
    assert_eq!(e.event_attributes.entries().len(), MAX_ATTRIBUTES);
    let over = map(MAX_ATTRIBUTES + 2);
    let e = decode_event(checked(&over).unwrap()).unwrap();
    assert!(matches!(e.event_attributes, Attributes::TooMany(n) if n == MAX_ATTRIBUTES + 2));
    let e = decode_event(
        checked(r#"{"event_attributes":[ 1, {"a" : [2, 3]}, "x y" ],"user_attributes":1.50}"#)
            .unwrap(),
    )
    .unwrap();
    assert!(
        matches!(&e.event_attributes, Attributes::Other(v) if v.as_ref() == r#"[1,{"a":[2,3]},"x y"]"#)
    );
    assert!(matches!(&e.user_attributes, Attributes::Other(v) if v.as_ref() == "1.5"));
}

#[test]
fn lenient_scalars() {
    let e = decode_event(
        checked(
            r#"{"uid": 4000052183.0, "event_time": 1700000000, "event_uuid": "a\"b",
                "event_name": {"x": 1}, "event_code": true, "push_id": [1]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(e.uid.unwrap().as_str(), Some("4000052183"));
    assert_eq!(e.event_time.unwrap(), Text::Num("1700000000".into()));
    assert_eq!(e.event_uuid.unwrap().as_str(), Some("a\"b"));
    assert_eq!(e.event_name.unwrap(), Text::Unusable(r#"{"x": 1}"#));
    assert_eq!(e.event_code.unwrap().as_str(), Some("true"));
    assert_eq!(e.push_id.unwrap().as_str(), None);
}

#[test]
fn attributes_keep_order_and_raw_values() {
    let e = decode_event(
        checked(
            r#"{"event_attributes": {"b": [1, 2], "a": {"n": null}, "c\u0041": 1.50},
                "user_attributes": "oops", "device_attributes": null}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let ea = e.event_attributes.entries();
    assert_eq!(ea.len(), 3);
    assert_eq!(ea[0].0, "b");
    // Compact, whatever the sender's formatting; numbers verbatim.
    assert_eq!(ea[0].1.as_ref(), "[1,2]");
    assert!(matches!(ea[0].1, Cow::Owned(_)));
    assert_eq!(ea[1].1.as_ref(), r#"{"n":null}"#);
    assert_eq!(ea[2].0, "cA");
    assert_eq!(ea[2].1.as_ref(), "1.50");
    assert!(matches!(&e.user_attributes, Attributes::Other(v) if v.as_ref() == "\"oops\""));
    assert!(matches!(e.device_attributes, Attributes::Absent));
}

#[test]
fn lossy_utf8_replaces_invalid_bytes() {
    let bytes = b"{\"events\":[{\"event_name\":\"caf\xff\"}]}";
    let text = lossy_utf8(bytes);
    let req = decode_request(&text, MAX_EVENTS).unwrap();
    let e = decode_event(req.events[0]).unwrap();
    assert_eq!(e.event_name.unwrap().as_str(), Some("caf\u{fffd}"));
}

#[test]
fn numbers_keep_their_digits() {
    let e = decode_event(
        checked(
            r#"{"uid": 123456789012345678901234567890, "push_id": 123456789012345678901234567891,
                "email_id": -0.0, "mobile_number": 919876543210}"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        e.uid.unwrap().as_str(),
        Some("123456789012345678901234567890")
    );
    assert_eq!(
        e.push_id.unwrap().as_str(),
        Some("123456789012345678901234567891")
    );
    assert_eq!(e.email_id.unwrap().as_str(), Some("0"));
    assert_eq!(e.mobile_number.unwrap().as_str(), Some("919876543210"));
}

#[test]
fn exact_number_text() {
    let t = number_text_exact;
    assert_eq!(t("4000052183.0").as_deref(), Some("4000052183"));
    assert_eq!(t("4000052183.000").as_deref(), Some("4000052183"));
    assert_eq!(t("1.50").as_deref(), Some("1.5"));
    assert_eq!(t("-12.0").as_deref(), Some("-12"));
    assert_eq!(t("-0").as_deref(), Some("0"));
    assert_eq!(t("0.10").as_deref(), Some("0.1"));
    assert_eq!(
        t("123456789012345678901234567890.25").as_deref(),
        Some("123456789012345678901234567890.25")
    );
    assert_eq!(t("1e3").as_deref(), Some("1000"));
    assert_eq!(t("1.5E-7").as_deref(), Some("0.00000015"));
    assert_eq!(t("1e400"), None);
    // Already as written: borrowed, not copied.
    for n in ["1764351178", "-12", "1.5", "0", "0.25", "-0.5"] {
        assert!(matches!(t(n), Some(Cow::Borrowed(b)) if b == n), "{n}");
    }
    for (n, want) in [("1.0", "1"), ("-0.0", "0"), ("2.50", "2.5"), ("1.", "1")] {
        assert!(matches!(t(n), Some(Cow::Owned(o)) if o == want), "{n}");
    }
    assert_eq!(t("-"), None);
    assert_eq!(t("1.x"), None);
}

#[test]
fn text_from_raw_kinds() {
    assert_eq!(Text::from_raw(r#""a""#).unwrap(), Text::Str("a".into()));
    assert!(matches!(
        Text::from_raw(r#""a\"b""#).unwrap(),
        Text::Str(Cow::Owned(s)) if s == "a\"b"
    ));
    assert_eq!(Text::from_raw("true").unwrap(), Text::Bool(true));
    assert_eq!(Text::from_raw("[ ]").unwrap(), Text::Unusable("[ ]"));
    assert_eq!(Text::from_raw("null").unwrap(), Text::Unusable("null"));
    assert!(Text::from_raw(r#""\ud800""#).is_err());
}

#[test]
fn number_text_renders_integral_floats_plainly() {
    assert_eq!(number_text(123.0), "123");
    assert_eq!(number_text(1.5), "1.5");
    assert_eq!(number_text(-0.0), "0");
}

/// Every fixture body (requests, not expected outputs or options).
fn fixture_bodies() -> Vec<String> {
    let mut bodies = Vec::new();
    for dir in ["tests/fixtures", "tests/fixtures/options"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.contains(".expected") && !name.contains(".options")
            {
                bodies.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    bodies
}

/// One to three bytes that matter to the grammar, replaced, inserted or removed anywhere.
fn mutate(rng: &mut fastrand::Rng, body: &str) -> Vec<u8> {
    let alphabet = b"{}[]\":,\\ \n\t0123456789-+.eEtrufalsn\x01\x7fu/abcd";
    let mut bytes = body.as_bytes().to_vec();
    for _ in 0..rng.usize(1..4) {
        let at = rng.usize(..bytes.len());
        let b = alphabet[rng.usize(..alphabet.len())];
        match rng.u8(..3) {
            0 => bytes[at] = b,
            1 => bytes.insert(at, b),
            _ => {
                bytes.remove(at);
            }
        }
    }
    bytes
}

/// How many envelopes and events of `body` the scanner was sure of; panics where it was
/// sure and serde_json disagrees.
fn scanner_agrees(body: &str) -> (usize, usize) {
    let (mut sure, mut events_sure) = (0, 0);
    for max in [MAX_EVENTS, 2] {
        let fast = fast_envelope(body, max);
        let slow = serde_envelope(body, max);
        if let Ok(fast) = &fast
            && !matches!(fast.events, Some(EventList::TooMany(_)))
            && match &fast.events {
                Some(EventList::Array(events)) => events
                    .iter()
                    .all(|raw| !raw.starts_with('{') || fast_event(raw).is_ok()),
                _ => true,
            }
        {
            sure += 1;
            let slow = slow
                .as_ref()
                .unwrap_or_else(|e| panic!("serde refuses: {e}\n{body}"));
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{body}");
        }
    }
    let Ok(env) = serde_envelope(body, MAX_EVENTS) else {
        return (sure, events_sure);
    };
    let Some(EventList::Array(events)) = env.events else {
        return (sure, events_sure);
    };
    for raw in events {
        if let Ok(fast) = fast_event(raw) {
            events_sure += 1;
            let slow: Event<'_> =
                serde_json::from_str(raw).unwrap_or_else(|e| panic!("serde refuses: {e}\n{raw}"));
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{raw}");
        }
    }
    (sure, events_sure)
}

/// Where the scanner is sure, it reads what serde_json reads; it is never sure of what
/// serde_json refuses (a skimmed body: once it is sure of every event in it). Checked on
/// every fixture body and on 10,000 mutations of them.
#[test]
fn the_scanner_agrees_with_serde_json() {
    let bodies = fixture_bodies();
    assert!(bodies.len() > 20);
    let (mut sure, mut events_sure) = (0, 0);
    let mut count = |(s, e): (usize, usize)| {
        sure += s;
        events_sure += e;
    };
    for body in &bodies {
        count(scanner_agrees(body));
    }
    let mut rng = fastrand::Rng::with_seed(13);
    for _ in 0..10_000 {
        let i = rng.usize(..bodies.len());
        let bytes = mutate(&mut rng, &bodies[i]);
        if let Ok(body) = String::from_utf8(bytes) {
            count(scanner_agrees(&body));
        }
    }
    assert!(sure > 5_000 && events_sure > 20_000, "{sure} {events_sure}");
}
