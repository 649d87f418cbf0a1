//! Mapping options: how one customer shapes the stream to their tracking plan, without a
//! redeploy. They live in the secret's optional `mapping` object (re-read with it), in
//! `MAPPING_OPTIONS` for local runs, or in a file for `moe2seg map --options`:
//!
//! ```json
//! {"skip_events": ["Email Opened", "MOE_EMAIL_DELIVERED"], "only_events": [],
//!  "rename_events": {"Email Sent": "Marketing Email Sent"},
//!  "drop_properties": ["moe_campaign_tags"], "drop_traits": ["phone"],
//!  "hash_traits": ["email"], "identify": "per_user"}
//! ```
//!
//! Every field is optional; no options (or `{}`) map exactly as without them. Options are
//! checked as a whole: an unknown key, a wrong type, an event in both lists, or an entry over
//! a limit is an [`OptionsError`] naming the field, and none of the options is used.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

/// Most entries in one list or in `rename_events`.
pub const MAX_ENTRIES: usize = 1000;
/// Longest event name, code or key in the options, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// Whether `identify` messages are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Identify {
    /// Tracks only (the default).
    #[default]
    Off,
    /// One `identify` per distinct user of a request who has traits.
    PerUser,
}

/// Why options cannot be used: the field and what is wrong with it. Shown to the operator
/// (logs, `moe2seg`), never to callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping option `{field}`: {problem}")]
pub struct OptionsError {
    /// e.g. `skip_events[2]`, `rename_events."Email Sent"`.
    pub field: String,
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> OptionsError {
    OptionsError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A list of names as written, and their lower-cased forms for case-insensitive matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NameList {
    written: Vec<String>,
    folded: HashSet<String>,
}

impl NameList {
    fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    fn contains_folded(&self, folded: &str) -> bool {
        self.folded.contains(folded)
    }
}

/// A set of keys, matched exactly (JSON keys are case-sensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    written: Vec<String>,
    keys: HashSet<String>,
}

impl KeySet {
    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        !self.written.is_empty() && self.keys.contains(key)
    }
}

/// Checked mapping options (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingOptions {
    skip_events: NameList,
    only_events: NameList,
    /// Lower-cased Segment name → (name as written, name to send).
    rename_events: HashMap<String, (String, String)>,
    pub drop_properties: KeySet,
    pub drop_traits: KeySet,
    pub hash_traits: KeySet,
    pub identify: Identify,
}

impl MappingOptions {
    /// No options: the mapping as without them.
    pub fn none() -> Arc<MappingOptions> {
        static NONE: std::sync::OnceLock<Arc<MappingOptions>> = std::sync::OnceLock::new();
        NONE.get_or_init(Default::default).clone()
    }

    /// Reads options from their JSON object (`null` is no options).
    pub fn from_value(v: &Value) -> Result<MappingOptions, OptionsError> {
        let obj = match v {
            Value::Null => return Ok(MappingOptions::default()),
            Value::Object(o) => o,
            other => {
                return Err(invalid(
                    "mapping",
                    format!("expected an object, found {}", kind(other)),
                ));
            }
        };
        let mut o = MappingOptions::default();
        for (key, value) in obj {
            match key.as_str() {
                "skip_events" => o.skip_events = names("skip_events", value)?,
                "only_events" => o.only_events = names("only_events", value)?,
                "rename_events" => o.rename_events = renames(value)?,
                "drop_properties" => o.drop_properties = keys("drop_properties", value)?,
                "drop_traits" => o.drop_traits = keys("drop_traits", value)?,
                "hash_traits" => o.hash_traits = keys("hash_traits", value)?,
                "identify" => o.identify = identify(value)?,
                other => {
                    return Err(invalid(
                        crate::excerpt::excerpt(other, 40),
                        "unknown option (known: skip_events, only_events, rename_events, drop_properties, drop_traits, hash_traits, identify)",
                    ));
                }
            }
        }
        for (i, name) in o.skip_events.written.iter().enumerate() {
            if o.only_events.contains_folded(&name.to_lowercase()) {
                return Err(invalid(
                    format!("skip_events[{i}]"),
                    format!("{name:?} is in only_events too"),
                ));
            }
        }
        for (i, key) in o.drop_traits.written.iter().enumerate() {
            if o.hash_traits.contains(key) {
                return Err(invalid(
                    format!("drop_traits[{i}]"),
                    format!("{key:?} is in hash_traits too"),
                ));
            }
        }
        Ok(o)
    }

    /// Reads options from JSON text: the options object itself, or an object holding it
    /// under `mapping` (the secret's own shape).
    pub fn from_json(text: &str) -> Result<MappingOptions, OptionsError> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            invalid(
                "mapping",
                format!(
                    "not JSON: {:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            )
        })?;
        match v.get("mapping") {
            Some(inner) => MappingOptions::from_value(inner),
            None => MappingOptions::from_value(&v),
        }
    }

    /// The options as their JSON object (what [`MappingOptions::from_value`] reads back).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        let list = |l: &[String]| Value::from(l.to_vec());
        if !self.skip_events.is_empty() {
            m.insert("skip_events".into(), list(&self.skip_events.written));
        }
        if !self.only_events.is_empty() {
            m.insert("only_events".into(), list(&self.only_events.written));
        }
        if !self.rename_events.is_empty() {
            let renames: Map<String, Value> = self
                .rename_events
                .values()
                .map(|(from, to)| (from.clone(), Value::from(to.as_str())))
                .collect();
            m.insert("rename_events".into(), Value::Object(renames));
        }
        for (name, set) in [
            ("drop_properties", &self.drop_properties),
            ("drop_traits", &self.drop_traits),
            ("hash_traits", &self.hash_traits),
        ] {
            if !set.is_empty() {
                m.insert(name.into(), list(&set.written));
            }
        }
        if self.identify != Identify::Off {
            m.insert("identify".into(), Value::from("per_user"));
        }
        Value::Object(m)
    }

    /// Whether events are filtered at all (the common case is no: nothing to check).
    pub fn filters(&self) -> bool {
        !self.skip_events.is_empty() || !self.only_events.is_empty()
    }

    /// Whether an event is sent: its Segment name, its `event_code` or its `event_name` as
    /// MoEngage sent it is in `only_events` (when that is not empty), and none of them is in
    /// `skip_events`. Case-insensitive.
    pub fn sends(&self, names: &[Option<&str>]) -> bool {
        if !self.filters() {
            return true;
        }
        let folded: Vec<String> = names.iter().flatten().map(|n| n.to_lowercase()).collect();
        let any_in = |l: &NameList| folded.iter().any(|n| l.contains_folded(n));
        (self.only_events.is_empty() || any_in(&self.only_events)) && !any_in(&self.skip_events)
    }

    /// The name to send for the Segment name `name`.
    pub fn rename<'n>(&'n self, name: &'n str) -> &'n str {
        if self.rename_events.is_empty() {
            return name;
        }
        match self.rename_events.get(&name.to_lowercase()) {
            Some((_, to)) => to,
            None => name,
        }
    }

    /// Whether any option drops or hashes traits.
    pub fn shapes_traits(&self) -> bool {
        !self.drop_traits.is_empty() || !self.hash_traits.is_empty()
    }
}

impl Serialize for MappingOptions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

/// The value of a hashed trait: the lowercase hex SHA-256 of the trimmed text, lower-cased
/// first for `email`.
pub fn hash_trait(key: &str, text: &str) -> String {
    let text = text.trim();
    if key == "email" {
        crate::mapping::sha256_hex(text.to_lowercase().as_bytes(), 64)
    } else {
        crate::mapping::sha256_hex(text.as_bytes(), 64)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A list of non-empty strings, each within [`MAX_NAME_CHARS`], at most [`MAX_ENTRIES`].
fn strings(field: &str, v: &Value) -> Result<Vec<String>, OptionsError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        other => {
            return Err(invalid(
                field,
                format!("expected a list of strings, found {}", kind(other)),
            ));
        }
    };
    if items.len() > MAX_ENTRIES {
        return Err(invalid(
            field,
            format!("{} entries; at most {MAX_ENTRIES}", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| name(&format!("{field}[{i}]"), item))
        .collect()
}

/// One non-empty string within [`MAX_NAME_CHARS`], trimmed.
fn name(field: &str, v: &Value) -> Result<String, OptionsError> {
    let Value::String(s) = v else {
        return Err(invalid(
            field,
            format!("expected a string, found {}", kind(v)),
        ));
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(invalid(field, "empty"));
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            field,
            format!("longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(s.to_owned())
}

fn names(field: &str, v: &Value) -> Result<NameList, OptionsError> {
    let written = strings(field, v)?;
    let folded = written.iter().map(|n| n.to_lowercase()).collect();
    Ok(NameList { written, folded })
}

fn keys(field: &str, v: &Value) -> Result<KeySet, OptionsError> {
    let written = strings(field, v)?;
    let keys = written.iter().cloned().collect();
    Ok(KeySet { written, keys })
}

fn renames(v: &Value) -> Result<HashMap<String, (String, String)>, OptionsError> {
    let obj = match v {
        Value::Null => return Ok(HashMap::new()),
        Value::Object(o) => o,
        other => {
            return Err(invalid(
                "rename_events",
                format!(
                    "expected an object of Segment name → new name, found {}",
                    kind(other)
                ),
            ));
        }
    };
    if obj.len() > MAX_ENTRIES {
        return Err(invalid(
            "rename_events",
            format!("{} entries; at most {MAX_ENTRIES}", obj.len()),
        ));
    }
    let mut out = HashMap::with_capacity(obj.len());
    for (from, to) in obj {
        let field = format!(
            "rename_events.{:?}",
            crate::excerpt::excerpt(from, MAX_NAME_CHARS)
        );
        let from = name(&field, &Value::String(from.clone()))?;
        let to = name(&field, to)?;
        if let Some((other, _)) = out.insert(from.to_lowercase(), (from.clone(), to)) {
            return Err(invalid(
                field,
                format!("{other:?} differs only in case: names match case-insensitively"),
            ));
        }
    }
    Ok(out)
}

fn identify(v: &Value) -> Result<Identify, OptionsError> {
    match v {
        Value::Null => Ok(Identify::Off),
        Value::String(s) if s.trim().eq_ignore_ascii_case("off") => Ok(Identify::Off),
        Value::String(s) if s.trim().eq_ignore_ascii_case("per_user") => Ok(Identify::PerUser),
        Value::String(_) => Err(invalid("identify", "expected \"off\" or \"per_user\"")),
        other => Err(invalid(
            "identify",
            format!("expected \"off\" or \"per_user\", found {}", kind(other)),
        )),
    }
}

/// The mapping options a secret (or `MAPPING_OPTIONS`) holds: the options in force, and
/// whether the latest ones read are invalid. Invalid options never replace good ones: the
/// last good options keep serving ([`Mapping::keeping`]); with none, the webhook answers
/// 500 `misconfigured`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The options in force (`None`: no good options were ever read).
    pub options: Option<Arc<MappingOptions>>,
    /// Why the latest options read cannot be used.
    pub error: Option<OptionsError>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping::good(MappingOptions::none())
    }
}

impl Mapping {
    pub fn good(options: Arc<MappingOptions>) -> Mapping {
        Mapping {
            options: Some(options),
            error: None,
        }
    }

    /// From the secret's `mapping` field (absent: no options).
    pub fn read(field: Option<&Value>) -> Mapping {
        match field.map(MappingOptions::from_value) {
            None => Mapping::default(),
            Some(Ok(o)) if o == MappingOptions::default() => Mapping::default(),
            Some(Ok(o)) => Mapping::good(Arc::new(o)),
            Some(Err(e)) => Mapping {
                options: None,
                error: Some(e),
            },
        }
    }

    /// The options to map with: those in force; with none, why the latest ones read cannot
    /// be used (the webhook answers 500 `misconfigured`, a backfill does not start).
    pub fn in_force(&self) -> Result<Arc<MappingOptions>, &OptionsError> {
        match (&self.options, &self.error) {
            (Some(options), _) => Ok(options.clone()),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(MappingOptions::none()),
        }
    }

    /// These options, or, when they are invalid, `last_good`.
    pub fn keeping(self, last_good: Option<&Arc<MappingOptions>>) -> Mapping {
        Mapping {
            options: self.options.or_else(|| last_good.cloned()),
            error: self.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        MappingOptions::from_value(&v).unwrap_err().to_string()
    }

    #[test]
    fn the_issue_example_reads_and_round_trips() {
        let v = json!({
          "skip_events": ["Email Opened", "MOE_EMAIL_DELIVERED"],
          "only_events": [],
          "rename_events": {"Email Sent": "Marketing Email Sent"},
          "drop_properties": ["moe_campaign_tags"],
          "drop_traits": ["phone"],
          "hash_traits": ["email"],
          "identify": "per_user"
        });
        let o = MappingOptions::from_value(&v).unwrap();
        assert_eq!(o.identify, Identify::PerUser);
        assert!(o.drop_traits.contains("phone") && !o.drop_traits.contains("Phone"));
        assert_eq!(MappingOptions::from_value(&o.to_value()).unwrap(), o);
        assert_eq!(
            MappingOptions::from_json(&json!({"mapping": v}).to_string()).unwrap(),
            o
        );
    }

    #[test]
    fn filters_by_name_or_code_case_insensitively() {
        let o = MappingOptions::from_value(
            &json!({"skip_events": ["email opened", "moe_email_delivered"]}),
        )
        .unwrap();
        assert!(!o.sends(&[Some("Email Opened"), None]));
        assert!(!o.sends(&[Some("Email Delivered"), Some("MOE_EMAIL_DELIVERED")]));
        assert!(o.sends(&[Some("Email Sent"), Some("MOE_EMAIL_SENT")]));
        let o = MappingOptions::from_value(&json!({"only_events": ["Purchase"]})).unwrap();
        assert!(o.sends(&[Some("purchase"), None]));
        assert!(!o.sends(&[Some("Email Sent"), Some("MOE_EMAIL_SENT")]));
        let o = MappingOptions::from_value(&json!({"only_events": ["MOE_EMAIL_SENT", "Email Opened"], "skip_events": ["Email Opened (bot)"]})).unwrap();
        assert!(o.sends(&[Some("Email Sent"), Some("MOE_EMAIL_SENT")]));
        assert!(MappingOptions::default().sends(&[None, None]));
    }

    #[test]
    fn renames_case_insensitively() {
        let o = MappingOptions::from_value(
            &json!({"rename_events": {"Email Sent": "Marketing Email Sent"}}),
        )
        .unwrap();
        assert_eq!(o.rename("email sent"), "Marketing Email Sent");
        assert_eq!(o.rename("Email Opened"), "Email Opened");
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err(json!({"skip_event": []})),
            "mapping option `skip_event`: unknown option (known: skip_events, only_events, rename_events, drop_properties, drop_traits, hash_traits, identify)"
        );
        assert_eq!(
            err(json!({"skip_events": "Email Opened"})),
            "mapping option `skip_events`: expected a list of strings, found a string"
        );
        assert_eq!(
            err(json!({"skip_events": ["a", 3]})),
            "mapping option `skip_events[1]`: expected a string, found a number"
        );
        assert_eq!(
            err(json!({"only_events": ["a", " "]})),
            "mapping option `only_events[1]`: empty"
        );
        assert_eq!(
            err(json!({"only_events": ["Email Opened"], "skip_events": ["x", "EMAIL OPENED"]})),
            "mapping option `skip_events[1]`: \"EMAIL OPENED\" is in only_events too"
        );
        assert_eq!(
            err(json!({"rename_events": {"Email Sent": ""}})),
            "mapping option `rename_events.\"Email Sent\"`: empty"
        );
        assert_eq!(
            err(json!({"rename_events": {"Email Sent": 1}})),
            "mapping option `rename_events.\"Email Sent\"`: expected a string, found a number"
        );
        assert!(
            err(json!({"rename_events": {"A": "x", "a": "y"}})).contains("differs only in case")
        );
        assert_eq!(
            err(json!({"rename_events": ["x"]})),
            "mapping option `rename_events`: expected an object of Segment name → new name, found an array"
        );
        assert_eq!(
            err(json!({"identify": "always"})),
            "mapping option `identify`: expected \"off\" or \"per_user\""
        );
        assert_eq!(
            err(json!({"identify": true})),
            "mapping option `identify`: expected \"off\" or \"per_user\", found a boolean"
        );
        assert_eq!(
            err(json!({"drop_traits": ["email"], "hash_traits": ["email"]})),
            "mapping option `drop_traits[0]`: \"email\" is in hash_traits too"
        );
        assert_eq!(
            err(json!(["skip_events"])),
            "mapping option `mapping`: expected an object, found an array"
        );
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert!(err(json!({"drop_traits": [long]})).contains("longer than 256 characters"));
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| i.to_string()).collect();
        assert!(err(json!({"skip_events": many})).contains("1001 entries; at most 1000"));
        assert!(
            MappingOptions::from_json("{not json")
                .unwrap_err()
                .to_string()
                .starts_with("mapping option `mapping`: not JSON")
        );
        // An unknown key is shown cut, printable.
        assert!(err(json!({"x\u{0007}".repeat(100): 1})).len() < 250);
    }

    #[test]
    fn hashes_trimmed_and_lowercased_for_email() {
        let h = hash_trait("email", " Jane@Example.COM ");
        assert_eq!(h, hash_trait("email", "jane@example.com"));
        assert_eq!(
            h,
            "8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d"
        );
        assert_ne!(hash_trait("phone", "ABC"), hash_trait("phone", "abc"));
        assert_eq!(
            hash_trait("phone", " +15550100 "),
            hash_trait("phone", "+15550100")
        );
    }

    #[test]
    fn last_good_options_keep_serving() {
        let good = Mapping::read(Some(&json!({"identify": "per_user"})));
        let bad = Mapping::read(Some(&json!({"identify": 1})));
        assert!(bad.options.is_none() && bad.error.is_some());
        let kept = bad.clone().keeping(good.options.as_ref());
        assert_eq!(kept.options, good.options);
        assert_eq!(kept.error, bad.error);
        // With no good options ever, none.
        assert!(bad.clone().keeping(None).options.is_none());
        // Good options replace good ones, and clear the error.
        let fixed = Mapping::read(None).keeping(kept.options.as_ref());
        assert_eq!(fixed, Mapping::default());
    }
}
