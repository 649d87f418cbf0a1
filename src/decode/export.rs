//! One line of a MoEngage S3 Data Export (JSON Lines): the event in a wrapper,
//! `{"app_name", "export_day", "export_hour", "export_doc_id", "db_name", "event": {…}}`.
//! There is no `moe_request_id` or `source` in an export.
//!
//! Read as leniently as a Streams body: unknown fields are ignored, `app_name` and the export
//! fields may be strings or numbers, and an event that cannot be read is an error for that
//! event alone ([`ExportLine::event`]). The scanner reads the text it is sure of; serde_json
//! the rest, and words every error.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::envelope::{fast_text, plain};
use super::event::{Event, EventError, decode_event, fast_event_at};
use super::scan::{Scanner, Unsure};
use super::text::Text;

/// One export line.
#[derive(Debug)]
pub struct ExportLine<'a> {
    pub app_name: Option<Text<'a>>,
    /// `DD-MM-YYYY`: the day the export covers.
    pub export_day: Option<Text<'a>>,
    /// `0`–`23`: the hour the export covers (hourly and 15-minute exports).
    pub export_hour: Option<Text<'a>>,
    /// The event's JSON text, as sent.
    pub event_raw: &'a str,
    /// The event, or why it could not be read.
    pub event: Result<Event<'a>, EventError>,
}

/// Why a line gives no event at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    /// Not JSON, or JSON but not an object (the error says which).
    #[error("the line is not a JSON object: {0}")]
    NotJson(String),
    /// A JSON object without `event` (or with `"event": null`).
    #[error("the line has no `event`")]
    NoEvent,
}

impl LineError {
    /// The reason a rejection report gives.
    pub fn reason(&self) -> &'static str {
        match self {
            LineError::NotJson(_) => "invalid_json",
            LineError::NoEvent => "no_event",
        }
    }
}

/// Decodes one line (without its line break; surrounding whitespace is allowed, and a
/// byte-order mark, as a file's first line may start with).
pub fn decode_export_line(line: &str) -> Result<ExportLine<'_>, LineError> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    fast_line(line).or_else(|Unsure| serde_line(line))
}

/// The wrapper's fields as serde_json reads them: the same line, or why it is not one.
#[derive(Deserialize)]
struct Wrapper<'a> {
    #[serde(default, borrow)]
    app_name: Option<Text<'a>>,
    #[serde(default, borrow)]
    export_day: Option<Text<'a>>,
    #[serde(default, borrow)]
    export_hour: Option<Text<'a>>,
    #[serde(default, borrow)]
    event: Option<&'a RawValue>,
}

fn serde_line(line: &str) -> Result<ExportLine<'_>, LineError> {
    // serde would read a struct from an array too.
    if !line.trim_start().starts_with('{') {
        return Err(LineError::NotJson(
            match serde_json::from_str::<serde::de::IgnoredAny>(line) {
                Ok(_) => "JSON, but not an object".to_owned(),
                Err(e) => e.to_string(),
            },
        ));
    }
    let w: Wrapper<'_> = match serde_json::from_str(line) {
        Ok(w) => w,
        Err(e) => return Err(LineError::NotJson(e.to_string())),
    };
    let raw = w.event.map(RawValue::get).filter(|r| *r != "null");
    let event_raw = raw.ok_or(LineError::NoEvent)?;
    Ok(ExportLine {
        app_name: w.app_name,
        export_day: w.export_day,
        export_hour: w.export_hour,
        event_raw,
        event: decode_event(event_raw),
    })
}

/// [`decode_export_line`] on the scanner: the same line, or [`Unsure`] (also for a repeated
/// field, which serde_json words as the line's error, and for an event that is not an
/// object the scanner reads in full).
fn fast_line(line: &str) -> Result<ExportLine<'_>, Unsure> {
    let mut s = Scanner::new(line);
    let (mut app_name, mut export_day, mut export_hour) = (None, None, None);
    let mut event = None;
    s.object(|s, key| {
        match plain(key)? {
            "event" if event.is_none() => {
                let start = s.mark();
                let e = fast_event_at(s)?;
                event = Some((s.since(start), e));
            }
            "event" => return Err(Unsure),
            "app_name" => once(&mut app_name, fast_text(s)?)?,
            "export_day" => once(&mut export_day, fast_text(s)?)?,
            "export_hour" => once(&mut export_hour, fast_text(s)?)?,
            _ => {
                s.value()?;
            }
        }
        Ok(())
    })?;
    if !s.at_end() {
        return Err(Unsure);
    }
    // No event: serde_json says whether that is all that is wrong.
    let (event_raw, event) = event.ok_or(Unsure)?;
    Ok(ExportLine {
        app_name: app_name.flatten(),
        export_day: export_day.flatten(),
        export_hour: export_hour.flatten(),
        event_raw,
        event: Ok(event),
    })
}

/// Sets a field read once; a repeated field is left to serde_json, which refuses it.
fn once<'a>(slot: &mut Option<Option<Text<'a>>>, value: Option<Text<'a>>) -> Result<(), Unsure> {
    match slot {
        Some(_) => Err(Unsure),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line as both readers read it, once they are seen to agree (when the scanner is
    /// sure of it).
    fn both(line: &str) -> Result<ExportLine<'_>, LineError> {
        let slow = serde_line(line);
        if let Ok(fast) = fast_line(line) {
            let slow = slow
                .as_ref()
                .expect("the scanner read a line serde_json refuses");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{line}");
        }
        decode_export_line(line)
    }

    #[test]
    fn a_wrapped_event_and_its_export_fields() {
        let line = r#"{"app_name": "Acme", "export_hour": 14, "export_doc_id": "d1", "db_name": "acme", "export_day": "05-12-2026", "event": {"event_name": "Email Sent", "uid": "u1", "event_attributes": {"a": [1, 2]}}}"#;
        let l = both(line).unwrap();
        assert_eq!(l.app_name.unwrap().as_str(), Some("Acme"));
        assert_eq!(l.export_day.unwrap().as_str(), Some("05-12-2026"));
        assert_eq!(l.export_hour.unwrap().as_str(), Some("14"));
        assert!(l.event_raw.starts_with(r#"{"event_name""#) && l.event_raw.ends_with("}}"));
        let event = l.event.unwrap();
        assert_eq!(event.uid.unwrap().as_str(), Some("u1"));
    }

    #[test]
    fn fields_in_any_order_with_whitespace() {
        let line = " {\"event\" : {\"event_code\":\"X\",\"uid\":7} ,\r\n \"app_name\":null }\r";
        let l = both(line.trim()).unwrap();
        assert!(l.app_name.is_none());
        // A byte-order mark before the first line.
        let bom = format!("\u{feff}{}", line.trim());
        assert!(decode_export_line(&bom).unwrap().event.is_ok());
        assert_eq!(l.event.unwrap().uid.unwrap().as_str(), Some("7"));
        assert!(both(line).is_ok());
    }

    #[test]
    fn a_line_that_is_not_json_is_invalid_json() {
        for line in [
            "",
            "not json",
            "{\"event\": {}",
            "[1, 2]",
            "\"text\"",
            "{\"event\": {}} x",
        ] {
            let e = both(line).unwrap_err();
            assert_eq!(e.reason(), "invalid_json", "{line}: {e}");
        }
    }

    #[test]
    fn a_line_without_an_event_is_no_event() {
        for line in [
            "{}",
            r#"{"app_name": "Acme"}"#,
            r#"{"event": null, "app_name": "A"}"#,
        ] {
            assert_eq!(both(line).unwrap_err(), LineError::NoEvent, "{line}");
        }
    }

    #[test]
    fn an_event_that_is_not_an_object_is_an_error_of_that_event() {
        for line in [r#"{"event": "x"}"#, r#"{"event": [1]}"#, r#"{"event": 5}"#] {
            let l = both(line).unwrap();
            assert!(l.event.is_err(), "{line}");
        }
        // A repeated field inside the event: the event's error, not the line's.
        let l = both(r#"{"event": {"uid": "a", "uid": "b"}}"#).unwrap();
        assert!(l.event.is_err());
    }

    #[test]
    fn a_repeated_wrapper_field_is_the_lines_error() {
        for line in [
            r#"{"event": {"uid": "a"}, "event": {"uid": "b"}}"#,
            r#"{"app_name": "A", "app_name": "B", "event": {}}"#,
        ] {
            assert_eq!(both(line).unwrap_err().reason(), "invalid_json", "{line}");
        }
    }

    #[test]
    fn escapes_and_odd_values_read_as_serde_json_reads_them() {
        let line = r#"{"app_name": "A\"cme", "ex\u0074ra": {"x": [1, {"y": "}"}]}, "event": {"event_name": "E\u00e9", "uid": 12345678901234567890123}}"#;
        let l = both(line).unwrap();
        assert_eq!(l.app_name.unwrap().as_str(), Some("A\"cme"));
        let event = l.event.unwrap();
        assert_eq!(event.event_name.unwrap().as_str(), Some("Eé"));
        assert_eq!(event.uid.unwrap().as_str(), Some("12345678901234567890123"));
    }
}
