//! The message's parts, written by hand ([`super::write`]): members in a fixed order, optional
//! ones left out when empty (the golden fixtures pin the bytes).

use super::fields::Fields;
use super::write::{Object, WriteJson};

pub(super) struct Library {
    pub(super) name: &'static str,
    pub(super) version: &'static str,
}

impl WriteJson for Library {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("name", self.name);
        o.str("version", self.version);
        o.end();
    }
}

#[derive(Default)]
pub(super) struct Device<'m> {
    pub(super) id: Option<&'m str>,
    pub(super) token: Option<&'m str>,
}

pub(super) struct Os<'m> {
    pub(super) name: Option<&'m str>,
    pub(super) version: Option<&'m str>,
}

pub(super) struct App<'m> {
    pub(super) version: &'m str,
}

pub(super) struct Context<'m> {
    pub(super) library: Library,
    pub(super) traits: Fields<'m>,
    pub(super) device: Option<Device<'m>>,
    pub(super) os: Option<Os<'m>>,
    pub(super) app: Option<App<'m>>,
}

impl WriteJson for Context<'_> {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.value("library", &self.library);
        if !self.traits.is_empty() {
            o.value("traits", &self.traits);
        }
        if let Some(device) = &self.device {
            let mut d = Object::new(o.key("device"));
            d.opt_str("id", device.id);
            d.opt_str("token", device.token);
            d.end();
        }
        if let Some(os) = &self.os {
            let mut d = Object::new(o.key("os"));
            d.opt_str("name", os.name);
            d.opt_str("version", os.version);
            d.end();
        }
        if let Some(app) = &self.app {
            let mut d = Object::new(o.key("app"));
            d.str("version", app.version);
            d.end();
        }
        o.end();
    }
}

pub(super) struct Integrations {
    pub(super) moengage: bool,
}

impl WriteJson for Integrations {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.value("MoEngage", &self.moengage);
        o.end();
    }
}

pub(super) struct Message<'m> {
    pub(super) kind: &'static str,
    pub(super) event: &'m str,
    pub(super) user_id: Option<&'m str>,
    pub(super) anonymous_id: Option<&'m str>,
    pub(super) message_id: &'m str,
    pub(super) timestamp: &'m str,
    pub(super) properties: Fields<'m>,
    pub(super) context: Context<'m>,
    pub(super) integrations: Integrations,
}

impl WriteJson for Message<'_> {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("type", self.kind);
        o.str("event", self.event);
        o.opt_str("userId", self.user_id);
        o.opt_str("anonymousId", self.anonymous_id);
        o.str("messageId", self.message_id);
        o.str("timestamp", self.timestamp);
        o.value("properties", &self.properties);
        o.value("context", &self.context);
        o.value("integrations", &self.integrations);
        o.end();
    }
}
