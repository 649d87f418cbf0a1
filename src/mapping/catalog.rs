//! The MoEngage → Segment event catalog, loaded from `data/event-catalog.tsv`.
//!
//! The table is the spec: Segment's MoEngage source page lists 87 event names, and the TSV
//! carries the MoEngage `event_code`s known to produce each one. Lookup order for an event:
//! its `event_code` (all aliases, ASCII case-insensitive), else its `event_name`
//! (case-insensitive), else the event's own name (a custom event).

use rustc_hash::FxHashMap as HashMap;
use std::sync::OnceLock;

/// The catalog TSV, embedded at build time.
pub const CATALOG_TSV: &str = include_str!("../../data/event-catalog.tsv");

/// One row of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The exact Segment event name.
    pub name: &'static str,
    pub category: &'static str,
    pub channel: &'static str,
    /// MoEngage event codes producing this event (may be empty).
    pub codes: Vec<&'static str>,
}

/// What an `event_code` resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeTarget {
    One(usize),
    /// A code one MoEngage document gives for several events (`*` in the TSV).
    Ambiguous(usize, usize),
}

/// The parsed catalog with its lookup indexes.
#[derive(Debug)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    by_code: HashMap<String, CodeTarget>,
    by_name: HashMap<String, usize>,
}

/// How a Segment name was found (useful for tests and debugging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Code,
    Name,
    Custom,
}

impl Catalog {
    /// The catalog built from the embedded TSV (parsed once per process).
    pub fn global() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            Catalog::parse(CATALOG_TSV).unwrap_or_else(|e| panic!("embedded catalog: {e}"))
        })
    }

    /// Parse a catalog TSV (header line, then `name\tcategory\tchannel\tcodes`).
    pub fn parse(tsv: &'static str) -> Result<Catalog, String> {
        let mut entries = Vec::new();
        let mut by_code: HashMap<String, CodeTarget> = HashMap::default();
        let mut by_name = HashMap::default();
        for (lineno, line) in tsv.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let mut cols = line.split('\t');
            let name = cols.next().unwrap_or("").trim();
            let category = cols.next().unwrap_or("").trim();
            let channel = cols.next().unwrap_or("").trim();
            let codes_col = cols.next().unwrap_or("").trim();
            if name.is_empty() {
                return Err(format!("line {}: empty event name", lineno + 1));
            }
            let idx = entries.len();
            let codes = split_codes(codes_col);
            for code in &codes {
                let (code, ambiguous) = match code.strip_suffix('*') {
                    Some(c) => (c, true),
                    None => (*code, false),
                };
                let key = code.to_ascii_uppercase();
                match by_code.get(&key).copied() {
                    None => {
                        by_code.insert(key, CodeTarget::One(idx));
                    }
                    Some(CodeTarget::One(first)) if ambiguous => {
                        by_code.insert(key, CodeTarget::Ambiguous(first, idx));
                    }
                    Some(_) => {
                        return Err(format!(
                            "line {}: code {code} maps to two events without a `*` mark",
                            lineno + 1
                        ));
                    }
                }
            }
            if by_name.insert(name.to_lowercase(), idx).is_some() {
                return Err(format!("line {}: duplicate event name {name}", lineno + 1));
            }
            entries.push(CatalogEntry {
                name,
                category,
                channel,
                codes: codes.into_iter().map(|c| c.trim_end_matches('*')).collect(),
            });
        }
        Ok(Catalog {
            entries,
            by_code,
            by_name,
        })
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// Resolve the Segment event name for a MoEngage event.
    ///
    /// `platform` (from the event's attributes) only breaks ties for ambiguous codes.
    pub fn resolve<'e>(
        &self,
        code: Option<&str>,
        name: Option<&'e str>,
        platform: Option<&str>,
    ) -> Option<(std::borrow::Cow<'e, str>, Resolution)> {
        use std::borrow::Cow;
        if let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) {
            let target = self
                .by_code
                .get(code)
                .or_else(|| self.by_code.get(&code.to_ascii_uppercase()));
            match target {
                Some(CodeTarget::One(i)) => {
                    return Some((Cow::Borrowed(self.entries[*i].name), Resolution::Code));
                }
                Some(CodeTarget::Ambiguous(a, b)) => {
                    let (a, b) = (&self.entries[*a], &self.entries[*b]);
                    let by_name = name
                        .map(str::trim)
                        .and_then(|n| [a, b].into_iter().find(|e| e.name.eq_ignore_ascii_case(n)));
                    let by_platform = || {
                        let p = platform?.to_ascii_lowercase();
                        [a, b]
                            .into_iter()
                            .find(|e| e.channel.to_ascii_lowercase().contains(p.trim()))
                    };
                    let chosen = by_name.or_else(by_platform).unwrap_or(a);
                    return Some((Cow::Borrowed(chosen.name), Resolution::Code));
                }
                None => {}
            }
        }
        match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => match self.lookup_name(name) {
                Some(i) => Some((Cow::Borrowed(self.entries[i].name), Resolution::Name)),
                None => Some((Cow::Borrowed(name), Resolution::Custom)),
            },
            // A custom event with a code but no name: its code is the best name there is.
            None => code
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| (Cow::Owned(c.to_owned()), Resolution::Custom)),
        }
    }

    fn lookup_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_lowercase()).copied()
    }
}

/// Splits the codes column into aliases (separated by single spaces).
///
/// A code is code-shaped: it contains `_` or is ALL CAPS (`UPDATE`, `iOS_IN_APP_SHOWN`,
/// `n_c_s`, `NOTIFICATION_RECEIVED_MOE*`). A column with any other word is one code that
/// contains spaces, such as `Device Uninstall`.
fn split_codes(column: &'static str) -> Vec<&'static str> {
    fn code_shaped(t: &str) -> bool {
        t.contains('_') || t.chars().all(|c| c.is_ascii_uppercase() || c == '*')
    }
    let tokens: Vec<&'static str> = column.split(' ').filter(|c| !c.is_empty()).collect();
    if tokens.iter().all(|t| code_shaped(t)) {
        tokens
    } else {
        vec![column]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_all_87_names() {
        let c = Catalog::global();
        assert_eq!(c.entries().len(), 87);
    }

    /// Every catalog name is reachable: by each of its codes when it has any, and always by
    /// its own name in any letter case.
    #[test]
    fn every_name_is_reachable() {
        let c = Catalog::global();
        for e in c.entries() {
            for code in &e.codes {
                let (name, how) = c.resolve(Some(code), Some(e.name), None).unwrap();
                assert_eq!(name, e.name, "code {code}");
                assert_eq!(how, Resolution::Code);
            }
            let upper = e.name.to_uppercase();
            let (name, _) = c.resolve(None, Some(&upper), None).unwrap();
            assert_eq!(name, e.name);
            let lower = e.name.to_lowercase();
            let (name, how) = c.resolve(Some(""), Some(&lower), None).unwrap();
            assert_eq!(name, e.name);
            assert_eq!(how, Resolution::Name);
        }
    }

    #[test]
    fn codes_beat_names() {
        let c = Catalog::global();
        let r = |code, name| c.resolve(Some(code), Some(name), None).unwrap().0;
        assert_eq!(
            r("MOE_EMAIL_SPAM", "Email Spam Reported"),
            "Email Complained"
        );
        assert_eq!(
            r("MOE_EMAIL_HARD_BOUNCE", "Email Hard Bounced"),
            "Email Bounced"
        );
        assert_eq!(r("n_c_s", "whatever"), "Card Sent");
        assert_eq!(r("ios_in_app_shown", "x"), "In-App Shown iOS");
        assert_eq!(r("Device Uninstall", "x"), "Device Uninstall");
    }

    #[test]
    fn custom_events_keep_their_name() {
        let c = Catalog::global();
        let (name, how) = c
            .resolve(Some("ADDED_TO_CART"), Some(" Added to Cart "), None)
            .unwrap();
        assert_eq!(name, "Added to Cart");
        assert_eq!(how, Resolution::Custom);
        let (name, how) = c.resolve(Some("X_CODE"), None, None).unwrap();
        assert_eq!((name.as_ref(), how), ("X_CODE", Resolution::Custom));
        assert!(c.resolve(Some(" "), None, None).is_none());
        assert!(c.resolve(None, Some("  "), None).is_none());
    }

    #[test]
    fn malformed_tables_are_errors() {
        assert!(Catalog::parse("h\nA\tc\tch\tX\nB\tc\tch\tX\n").is_err());
        assert!(Catalog::parse("h\nA\tc\tch\t\nA\tc\tch\t\n").is_err());
        let ok = Catalog::parse("h\nA\tc\tch\tX*\nB\tc\tch\tX*\n").unwrap();
        assert_eq!(ok.resolve(Some("X"), Some("b"), None).unwrap().0, "B");
    }
}
