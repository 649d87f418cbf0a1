//! The events of a body read one by one in a single pass ([`EventStream`]).

use super::envelope::{Envelope, fast_text, plain};
use super::event::{Event, EventError, fast_event_at, serde_event};
use super::scan::{Scanner, Unsure};
use super::text::Text;
use super::{StreamStop, StreamsRequest, check_body};

/// The events of a body, read in one pass: the request fields first, then each event in
/// full as it is asked for, then the rest of the body ([`EventStream::finish`]).
pub struct EventStream<'a> {
    pub(super) body: &'a str,
    pub(super) scanner: Scanner<'a>,
    /// The request fields read before `events` (its own `events` stays `None`).
    pub(super) env: Envelope<'a>,
    /// The text of each event read so far.
    pub(super) events: Vec<&'a str>,
    pub(super) max_events: usize,
    /// Whether serde_json found the whole body valid (asked once, when the scanner was
    /// unsure of an event).
    pub(super) checked: bool,
    pub(super) first: bool,
    pub(super) done: bool,
}

impl<'a> EventStream<'a> {
    /// The request's `app_name` and `moe_request_id` (what every message carries).
    pub fn header(&self) -> (Option<Text<'a>>, Option<Text<'a>>) {
        (self.env.app_name.clone(), self.env.moe_request_id.clone())
    }

    /// Reads the request fields up to `events`: `Ok(true)` when it is an array, and the
    /// scanner is inside it.
    pub(super) fn open(&mut self) -> Result<bool, Unsure> {
        let s = &mut self.scanner;
        s.expect(b'{')?;
        if s.eat(b'}') {
            return Ok(false);
        }
        let mut seen = [false; 3];
        loop {
            let key = s.string()?;
            s.expect(b':')?;
            let key = plain(key)?;
            if key == "events" {
                return Ok(s.eat(b'['));
            }
            match self.env.field(key) {
                Some((i, slot)) => {
                    if std::mem::replace(&mut seen[i], true) {
                        return Err(Unsure);
                    }
                    *slot = fast_text(s)?;
                }
                None => {
                    s.value()?;
                }
            }
            if !s.eat(b',') {
                return Ok(false);
            }
        }
    }

    /// When the scanner cannot go on: the body is invalid, or one to decode whole.
    pub(super) fn stop(&self) -> StreamStop {
        match check_body(self.body) {
            Err(e) => StreamStop::Invalid(e),
            Ok(()) => StreamStop::Restart,
        }
    }

    /// The next event: its text, and the event read from it (or why it could not be). An
    /// event the scanner is not sure of has the whole body checked by serde_json first.
    #[allow(clippy::type_complexity)]
    pub fn next_event(
        &mut self,
    ) -> Result<Option<(&'a str, Result<Event<'a>, EventError>)>, StreamStop> {
        if self.done {
            return Ok(None);
        }
        let s = &mut self.scanner;
        let end = if std::mem::replace(&mut self.first, false) {
            s.eat(b']')
        } else if s.eat(b',') {
            false
        } else if s.eat(b']') {
            true
        } else {
            return Err(self.stop());
        };
        if end {
            self.done = true;
            return Ok(None);
        }
        if self.events.len() == self.max_events {
            // Too many: decoded whole, the answer is the one it always was.
            return Err(StreamStop::Restart);
        }
        let start = s.mark();
        if s.peek() == Some(b'{') {
            if let Ok(event) = fast_event_at(s) {
                let raw = s.since(start);
                self.events.push(raw);
                return Ok(Some((raw, Ok(event))));
            }
            s.reset(start);
        }
        // Not an object (checked by the scanner), or one it is unsure of: only skimmed, so
        // the whole body is checked (once) before serde_json reads the event.
        let skimmed = s.peek() == Some(b'{');
        let Ok(raw) = (if skimmed { s.skim() } else { s.value() }) else {
            return Err(self.stop());
        };
        if skimmed && !std::mem::replace(&mut self.checked, true) {
            check_body(self.body).map_err(StreamStop::Invalid)?;
        }
        self.events.push(raw);
        Ok(Some((raw, serde_event(raw))))
    }

    /// After the last event: reads the rest of the body and gives the request, every event
    /// in it read and valid.
    pub fn finish(mut self) -> Result<StreamsRequest<'a>, StreamStop> {
        while self.next_event()?.is_some() {}
        if self.rest().is_err() {
            return Err(self.stop());
        }
        let Envelope {
            app_name,
            source,
            moe_request_id,
            ..
        } = self.env;
        Ok(StreamsRequest {
            app_name,
            source,
            moe_request_id,
            events: self.events,
            body: self.body,
            skimmed: false,
        })
    }

    /// The members after `events`, to the end of the body. A request field there would
    /// change every message already read: such a body is left to be decoded whole.
    pub(super) fn rest(&mut self) -> Result<(), Unsure> {
        let s = &mut self.scanner;
        while s.eat(b',') {
            let key = plain(s.string()?)?;
            s.expect(b':')?;
            if key == "events" || self.env.field(key).is_some() {
                return Err(Unsure);
            }
            s.value()?;
        }
        s.expect(b'}')?;
        if s.at_end() { Ok(()) } else { Err(Unsure) }
    }
}
