//! Attribute key renames, loaded from `data/properties.tsv`.
//!
//! MoEngage attribute keys arrive in several spellings (`campaign_id`, `"Campaign ID"`,
//! `appVersion`, `URL`). Keys are compared after folding: ASCII lower case with every
//! non-alphanumeric character removed. A key that folds to a known alias is renamed to the
//! Segment property name (snake_case); every other key is kept as it is.

use rustc_hash::FxHashMap as HashMap;
use std::sync::OnceLock;

/// The rename table, embedded at build time.
pub const PROPERTIES_TSV: &str = include_str!("../../data/properties.tsv");

/// The table's property that also names `context.os.name`.
pub const PLATFORM: &str = "platform";
/// The table's property that also names `context.app.version`.
pub const APP_VERSION: &str = "app_version";

/// Folded alias → Segment property name.
#[derive(Debug)]
pub struct PropertyTable {
    by_folded: HashMap<String, &'static str>,
    names: Vec<&'static str>,
}

impl PropertyTable {
    pub fn global() -> &'static PropertyTable {
        static TABLE: OnceLock<PropertyTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            PropertyTable::parse(PROPERTIES_TSV).unwrap_or_else(|e| panic!("embedded table: {e}"))
        })
    }

    pub fn parse(tsv: &'static str) -> Result<PropertyTable, String> {
        let mut by_folded = HashMap::default();
        let mut names = Vec::new();
        for (lineno, line) in tsv.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name, aliases) = line
                .split_once('\t')
                .ok_or_else(|| format!("line {}: expected name<TAB>aliases", lineno + 1))?;
            let name = name.trim();
            names.push(name);
            // The Segment name itself is always an alias.
            for alias in std::iter::once(name).chain(aliases.split_whitespace()) {
                let folded = fold_key(alias);
                if let Some(prev) = by_folded.insert(folded, name)
                    && prev != name
                {
                    return Err(format!(
                        "line {}: alias {alias} claimed by {prev} and {name}",
                        lineno + 1
                    ));
                }
            }
        }
        Ok(PropertyTable { by_folded, names })
    }

    /// The Segment property name for a raw MoEngage attribute key, if it is a known one.
    pub fn rename(&self, raw_key: &str) -> Option<&'static str> {
        self.classify(raw_key).spec_name()
    }

    /// What a raw attribute key is, folding it once (no allocation).
    pub fn classify(&self, raw_key: &str) -> KeyKind {
        let mut buf = [0u8; 48];
        let mut n = 0;
        for b in raw_key.bytes() {
            if b.is_ascii_alphanumeric() {
                if n == buf.len() {
                    return KeyKind::Other; // longer than any alias
                }
                buf[n] = b.to_ascii_lowercase();
                n += 1;
            }
        }
        let folded = &buf[..n];
        if folded == b"osversion" {
            return KeyKind::OsVersion;
        }
        // Only ASCII bytes were written, so this is valid UTF-8.
        match std::str::from_utf8(folded)
            .ok()
            .and_then(|f| self.by_folded.get(f))
        {
            Some(&PLATFORM) => KeyKind::Platform,
            Some(&APP_VERSION) => KeyKind::AppVersion,
            Some(name) => KeyKind::Spec(name),
            None => KeyKind::Other,
        }
    }

    /// Whether `key` is one of the Segment property names of this table.
    pub fn is_spec_name(&self, key: &str) -> bool {
        self.names.contains(&key)
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// What an attribute key is to the mapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// One of the table's Segment properties.
    Spec(&'static str),
    /// The [`PLATFORM`] property (also `context.os.name`).
    Platform,
    /// The [`APP_VERSION`] property (also `context.app.version`).
    AppVersion,
    /// An "OS Version" spelling (goes to `context.os.version`, and stays a property).
    OsVersion,
    Other,
}

impl KeyKind {
    /// The Segment property this key is renamed to, if any.
    pub fn spec_name(self) -> Option<&'static str> {
        match self {
            KeyKind::Spec(name) => Some(name),
            KeyKind::Platform => Some(PLATFORM),
            KeyKind::AppVersion => Some(APP_VERSION),
            KeyKind::OsVersion | KeyKind::Other => None,
        }
    }
}

/// Lower-case ASCII letters and digits only.
pub fn fold_key(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_fold_together() {
        let t = PropertyTable::global();
        for k in ["Campaign ID", "campaign_id", "campaignId", "CAMPAIGN-ID"] {
            assert_eq!(t.rename(k), Some("campaign_id"), "{k}");
        }
        assert_eq!(t.rename("appVersion"), Some("app_version"));
        assert_eq!(t.rename("App Version"), Some("app_version"));
        assert_eq!(t.rename("sdkVersion"), Some("sdk_version"));
        assert_eq!(t.rename("os"), Some("platform"));
        assert_eq!(t.rename("moe_campaign_id"), Some("readable_campaign_id"));
        assert_eq!(t.rename("URL"), Some("url"));
        assert_eq!(t.rename("moe_first_visit"), Some("first_session"));
        assert_eq!(t.rename("moe_logged_in_status"), Some("logged_in_status"));
        assert_eq!(t.rename("Exit Reason"), Some("exit_reason"));
        assert_eq!(t.rename("exit_reason"), Some("exit_reason"));
    }

    #[test]
    fn streams_glossary_keys() {
        // MoEngage's Streams data glossary (as reproduced in mParticle's MoEngage feed docs).
        let t = PropertyTable::global();
        for (raw, name) in [
            ("moe_c_pid", "parent_campaign_id"),
            ("moe_f_pid", "parent_flow_id"),
            ("moe_f_pname", "parent_flow_name"),
            ("moe_locale_id", "locale_id"),
            ("moe_locale_name", "locale_name"),
            ("moe_variation_id", "variation_id"),
            ("moe_campaign_channel", "campaign_channel"),
            ("campaign_channel", "campaign_channel"),
            ("platform", "platform"),
            ("url", "url"),
        ] {
            assert_eq!(t.rename(raw), Some(name), "{raw}");
        }
    }

    #[test]
    fn context_properties_are_in_the_table() {
        let t = PropertyTable::global();
        assert!(t.is_spec_name(PLATFORM) && t.is_spec_name(APP_VERSION));
    }

    #[test]
    fn unknown_keys_are_not_renamed() {
        let t = PropertyTable::global();
        assert_eq!(t.rename("OS Version"), None);
        assert_eq!(t.classify("OS Version"), KeyKind::OsVersion);
        assert_eq!(t.classify("os_version"), KeyKind::OsVersion);
        assert_eq!(t.classify("Campaign ID"), KeyKind::Spec("campaign_id"));
        assert_eq!(t.classify("OS"), KeyKind::Platform);
        assert_eq!(t.classify("appVersion"), KeyKind::AppVersion);
        assert_eq!(t.classify("foo"), KeyKind::Other);
        assert_eq!(t.rename("moe_campaign_tags"), None);
        assert_eq!(t.rename(""), None);
        assert_eq!(t.rename(&"x".repeat(500)), None);
    }

    #[test]
    fn all_eighteen_seed_properties_are_in_the_table() {
        let t = PropertyTable::global();
        for name in [
            "app_version",
            "sdk_version",
            "platform",
            "campaign_id",
            "campaign_name",
            "campaign_type",
            "readable_campaign_id",
            "parent_campaign_id",
            "parent_flow_id",
            "parent_flow_name",
            "locale_id",
            "locale_name",
            "variation_id",
            "url",
            "timestamp",
            "first_session",
            "logged_in_status",
            "exit_reason",
        ] {
            assert!(t.is_spec_name(name), "{name}");
            assert_eq!(t.rename(name), Some(name));
        }
    }

    #[test]
    fn conflicting_aliases_are_an_error() {
        assert!(PropertyTable::parse("a\tx\nb\tX\n").is_err());
    }
}
