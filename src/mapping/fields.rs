//! The members of `properties` and `context.traits`: values ([`Val`]) placed by key so that
//! nothing is dropped on a clash ([`Fields::place`]), shaped by the options' rules.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::decode;

use super::options::KeySet;
use super::write;
use super::write::{Object, WriteJson};

/// A value in `properties` or `context.traits`.
#[derive(Debug, Clone)]
pub(super) enum Val<'m> {
    Raw(&'m str),
    Str(&'m str),
    Bool(bool),
    List(Vec<String>),
    Count(usize),
    /// A value the options hash ([`crate::mapping::options::hash_trait`]).
    Hashed(String),
}

impl Val<'_> {
    /// Whether two values say the same (so keeping one loses nothing): the same text for
    /// scalars, the same compact JSON otherwise.
    pub(super) fn same_as(&self, other: &Val<'_>) -> bool {
        fn scalar<'v>(v: &'v Val<'_>) -> Option<Cow<'v, str>> {
            match v {
                Val::Str(s) => Some(Cow::Borrowed(s.trim())),
                Val::Hashed(s) => Some(Cow::Borrowed(s)),
                Val::Raw(r) => decode::raw_scalar_text(r),
                _ => None,
            }
        }
        match (self, other) {
            (Val::Raw(a), Val::Raw(b)) => a == b,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (a, b) => scalar(a).is_some_and(|x| Some(x) == scalar(b)),
        }
    }
}

impl WriteJson for Val<'_> {
    fn write_json(&self, out: &mut String) {
        match self {
            // Valid compact JSON already: copied as it is.
            Val::Raw(r) => out.push_str(r),
            Val::Str(v) => write::write_str(out, v),
            Val::Bool(b) => b.write_json(out),
            Val::List(l) => l[..].write_json(out),
            Val::Count(n) => n.write_json(out),
            Val::Hashed(h) => write::write_str(out, h),
        }
    }
}

impl<'m> Val<'m> {
    /// The value the options send for a hashed key: the hash of its text (a string's, a
    /// number's digits, or an array's or object's compact JSON). `null`, booleans and empty
    /// strings hold nothing to hide and stay as they are.
    pub(super) fn hashed(self, key: &str) -> Val<'m> {
        let text = match &self {
            Val::Str(s) if !s.trim().is_empty() => Cow::Borrowed(*s),
            Val::Raw(r) => match decode::raw_scalar_text(r) {
                Some(t) => t,
                None if r.starts_with(['[', '{']) => Cow::Borrowed(*r),
                None => return self,
            },
            _ => return self,
        };
        Val::Hashed(crate::mapping::options::hash_trait(key, &text))
    }
}

#[derive(Debug)]
pub(super) struct Field<'m> {
    pub(super) key: Cow<'m, str>,
    /// The key needs no escaping in JSON ([`key_is_clean`]): written without a check.
    pub(super) clean: bool,
    pub(super) val: Val<'m>,
    /// Truncation may remove it (a value outside Segment's spec properties).
    pub(super) droppable: bool,
}

/// An ordered JSON object whose keys are unique.
#[derive(Debug)]
pub(super) struct Fields<'m> {
    pub(super) entries: Vec<Field<'m>>,
    /// Keys taken for fields added later, so no input value can claim them (only
    /// `properties` takes any: the truncation record's).
    pub(super) reserved: &'static [&'static str],
    /// Key → position, once the object is too large for a linear search (randomly seeded:
    /// the keys come from the request).
    pub(super) large: Option<HashMap<Cow<'m, str>, usize>>,
    /// A 128-bit filter of the keys present ([`key_bit`]): a key whose bit is clear is
    /// free without a search, which is the usual case.
    pub(super) mask: u128,
    /// The next `_<n>` tried for a displaced value whose `moe_<key>` is taken as well.
    pub(super) next_suffix: u32,
    /// What the mapping options drop or hash (`None`: nothing, the usual case).
    pub(super) rules: Option<Rules<'m>>,
}

/// The keys of one object that the mapping options drop or hash. A key is matched as it is
/// asked for and, for a value kept under another key (`moe_<key>`), under that key too.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules<'o> {
    pub(super) drop: &'o KeySet,
    pub(super) hash: Option<&'o KeySet>,
}

impl<'o> Rules<'o> {
    /// Rules when any key is listed.
    pub(super) fn of(drop: &'o KeySet, hash: Option<&'o KeySet>) -> Option<Self> {
        (!drop.is_empty() || hash.is_some_and(|h| !h.is_empty())).then_some(Rules { drop, hash })
    }

    /// The value to place under `key` (hashed when listed), or `None` to drop it.
    pub(super) fn apply<'m>(&self, key: &str, val: Val<'m>) -> Option<Val<'m>> {
        if self.drop.contains(key) {
            return None;
        }
        match self.hash {
            Some(h) if h.contains(key) && !matches!(val, Val::Hashed(_)) => Some(val.hashed(key)),
            _ => Some(val),
        }
    }
}

impl<'m> Fields<'m> {
    /// Objects up to this many keys are searched linearly.
    pub(super) const SMALL: usize = 32;

    pub(super) fn with_capacity(n: usize) -> Self {
        Fields {
            entries: Vec::with_capacity(n),
            reserved: &[],
            large: None,
            mask: 0,
            next_suffix: 2,
            rules: None,
        }
    }

    pub(super) fn with_rules(mut self, rules: Option<Rules<'m>>) -> Self {
        self.rules = rules;
        self
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes `keys` for fields added later.
    pub(super) fn reserve(&mut self, keys: &'static [&'static str]) {
        for key in keys {
            self.mask |= key_bit(key);
        }
        self.reserved = keys;
    }

    pub(super) fn find(&self, key: &str) -> Option<usize> {
        match &self.large {
            Some(map) => map.get(key).copied(),
            None if self.mask & key_bit(key) == 0 => None,
            None => self.entries.iter().position(|f| f.key == key),
        }
    }

    /// Whether `key` is free, already holds this very value (nothing needs adding), or is
    /// taken.
    pub(super) fn slot(&self, key: &str, val: &Val<'_>) -> Slot {
        if self.reserved.contains(&key) {
            return Slot::Taken;
        }
        match self.find(key) {
            None => Slot::Free,
            Some(pos) if self.entries[pos].val.same_as(val) => Slot::Same,
            Some(_) => Slot::Taken,
        }
    }

    pub(super) fn push(&mut self, key: Cow<'m, str>, clean: bool, val: Val<'m>, droppable: bool) {
        let bit = key_bit(&key);
        self.push_with_bit(key, bit, clean, val, droppable);
    }

    /// [`Fields::push`] with the key's [`key_bit`] already known.
    pub(super) fn push_with_bit(
        &mut self,
        key: Cow<'m, str>,
        bit: u128,
        clean: bool,
        val: Val<'m>,
        droppable: bool,
    ) {
        self.mask |= bit;
        if let Some(map) = &mut self.large {
            map.insert(key.clone(), self.entries.len());
        }
        self.entries.push(Field {
            key,
            clean,
            val,
            droppable,
        });
        if self.large.is_none() && self.entries.len() > Self::SMALL {
            let map = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, f)| (f.key.clone(), i))
                .collect();
            self.large = Some(map);
        }
    }

    /// Adds `val` under `key`. When `key` already holds the same value nothing is added
    /// (nothing is lost); when it holds a different one, `val` is kept under `alt` (the
    /// attribute's own raw key) if that is free, else under `moe_<key>`, `moe_<key>_<n>`:
    /// never dropped. A displaced value is droppable by truncation. `clean`: `key` and `alt`
    /// need no escaping in JSON (names of this crate's own, or [`key_is_clean`]).
    pub(super) fn place(
        &mut self,
        key: &'m str,
        clean: bool,
        alt: Option<&'m str>,
        val: Val<'m>,
        droppable: bool,
    ) {
        let val = match &self.rules {
            None => val,
            Some(rules) => match rules.apply(key, val) {
                Some(v) => v,
                None => return,
            },
        };
        // The usual case: a key no field has (nor reserved), told by its filter bit alone.
        let bit = key_bit(key);
        if self.large.is_none() && self.mask & bit == 0 {
            return self.push_with_bit(Cow::Borrowed(key), bit, clean, val, droppable);
        }
        self.place_slow(key, clean, alt, val, droppable);
    }

    /// [`Fields::place`] when the key may be taken: tries `key`, then `alt`, then
    /// `moe_<key>`, then `moe_<key>_<n>`.
    #[cold]
    pub(super) fn place_slow(
        &mut self,
        key: &'m str,
        clean: bool,
        alt: Option<&'m str>,
        mut val: Val<'m>,
        droppable: bool,
    ) {
        let alt = alt.filter(|a| *a != key);
        let mut displaced = false;
        // The names are made only when tried: most keys are free at the first.
        for attempt in 0.. {
            let name = match attempt {
                0 => Cow::Borrowed(key),
                1 => match alt {
                    Some(a) => Cow::Borrowed(a),
                    None => continue,
                },
                2 => Cow::Owned(format!("moe_{key}")),
                _ => {
                    self.next_suffix += 1;
                    Cow::Owned(format!("moe_{key}_{}", self.next_suffix - 1))
                }
            };
            if attempt > 0
                && let Some(rules) = self.rules
            {
                // Kept under another key: the options may list that one too.
                val = match rules.apply(&name, val) {
                    Some(v) => v,
                    None => return,
                };
            }
            match self.slot(&name, &val) {
                // `moe_<key>` and `moe_<key>_<n>` are as clean as `key`.
                Slot::Free => return self.push(name, clean, val, droppable || displaced),
                Slot::Same => return,
                // Each failed try meets a distinct existing key: linear overall.
                Slot::Taken => displaced = true,
            }
        }
    }
}

/// Whether an attribute key as decoded needs no escaping in JSON: a borrowed key does not.
/// Both decoders borrow a key only when it holds no escape (the scanner, `Str::escaped`;
/// serde_json, which also borrows only then), and a JSON string holds no raw `"` or control
/// character, so a borrowed key has none of the bytes JSON escapes. A key with escapes is
/// decoded into an owned string and written with [`crate::mapping::write::write_str`].
#[allow(clippy::ptr_arg)] // whether it is borrowed is the point
pub(super) fn key_is_clean(key: &Cow<'_, str>) -> bool {
    matches!(key, Cow::Borrowed(_))
}

/// One of 128 bits for a key, from its length and three of its bytes (cheap, and different
/// for most keys of one object: with the 30 keys of a typical message, about one in five
/// free keys meets a set bit).
pub(super) fn key_bit(key: &str) -> u128 {
    let b = key.as_bytes();
    let (first, mid, last) = match b {
        [] => (0, 0, 0),
        _ => (b[0], b[b.len() / 2], b[b.len() - 1]),
    };
    let h = (b.len() as u32)
        .wrapping_mul(0x9e37)
        .wrapping_add(u32::from(first).wrapping_mul(131))
        .wrapping_add(u32::from(mid).wrapping_mul(31))
        .wrapping_add(u32::from(last).wrapping_mul(7));
    1 << (h.wrapping_mul(0x2545_f491) >> 25)
}

pub(super) enum Slot {
    Free,
    Same,
    Taken,
}

impl WriteJson for Fields<'_> {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        for f in &self.entries {
            let out = match f.clean {
                true => o.clean_key(&f.key),
                false => o.any_key(&f.key),
            };
            f.val.write_json(out);
        }
        o.end();
    }
}
